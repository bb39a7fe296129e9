"""CLAP2016 / APPA-REAL (ChaLearn LAP 2016 apparent age; Agustsson et al. 2017): 7,591 images.

Official layout: ``{train,valid,test}/`` image folders and ``gt_avg_{train,valid,test}.csv`` with
columns ``file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age``. Each ``X.jpg`` has a
``X.jpg_face.jpg`` crop (40% margin around the detected face, rotated upright); the optional
``allcategories_{split}.csv`` (``file,gender,race,makeup,time,happiness``) gives gender.
The paper trains on the real age; the apparent age mean / std are kept on each annotation.
"""

import csv
import logging
import os
from typing import List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .imdb_wiki import CROP_FACE_BOX

logger = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


def load_appa_real(root: str, split: str, use_face_crops: bool = True) -> List[dict]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    gt = os.path.join(root, f"gt_avg_{split}.csv")
    if not os.path.isfile(gt):
        raise FileNotFoundError(f"APPA-REAL ground truth not found: {gt}")
    genders = {}
    cats = os.path.join(root, f"allcategories_{split}.csv")
    if os.path.isfile(cats):
        with open(cats, newline="") as f:
            for row in csv.DictReader(f):
                genders[row["file"]] = {"male": 0, "female": 1}.get(row["gender"].strip().lower(), -1)
    records = []
    with open(gt, newline="") as f:
        for row in csv.DictReader(f):
            name = row["file_name"]
            path = os.path.join(root, split, name + "_face.jpg" if use_face_crops else name)
            x1, y1, x2, y2 = CROP_FACE_BOX if use_face_crops else (0.0, 0.0, 1.0, 1.0)
            records.append(
                {
                    "file_name": path,
                    "image_id": f"{split}/{name}",
                    "annotations": [
                        {
                            "bbox": [x1, y1, x2, y2],
                            "bbox_mode": BoxMode.XYXY_REL,
                            "category_id": 0,
                            "iscrowd": 0,
                            "age": float(row["real_age"]),
                            "apparent_age": float(row["apparent_age_avg"]),
                            "apparent_age_std": float(row["apparent_age_std"]),
                            "gender": genders.get(name, -1),
                        }
                    ],
                }
            )
    logger.info("APPA-REAL %s: %d images", split, len(records))
    return records


def register_appa_real(name: str, root: str, split: str):
    DatasetCatalog.register(name, lambda: load_appa_real(root, split))
    MetadataCatalog.get(name).set(thing_classes=["face"], evaluator_type="age_single", split=split)
