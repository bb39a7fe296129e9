"""MegaAge-Asian (Zhang et al. 2017): 40,000 aligned Asian faces, ages 1-69.

Official layout: ``megaage_asian/{train,test}/<name>`` images and ``megaage_asian/list/``
with ``{train,test}_name.txt`` (one file name per line) and ``{train,test}_age.txt`` (the ages, same
order). No gender labels. Faces are aligned crops: the face box is the same relative prior as
UTKFace's until the annotation tool replaces it.
"""

import logging
import os
from typing import List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils import DatasetError
from .utkface import UTKFACE_PRIOR_BOX

logger = logging.getLogger(__name__)


def load_megaage_asian(root: str, split: str) -> List[dict]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    names_f = os.path.join(root, "list", f"{split}_name.txt")
    ages_f = os.path.join(root, "list", f"{split}_age.txt")
    for p in (names_f, ages_f):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"MegaAge-Asian list not found: {p}")
    with open(names_f) as f:
        names = [ln.strip() for ln in f if ln.strip()]
    with open(ages_f) as f:
        ages = [ln.strip() for ln in f if ln.strip()]
    if len(names) != len(ages):
        raise DatasetError(f"{names_f} has {len(names)} names but {ages_f} has {len(ages)} ages")
    records = []
    for name, age in zip(names, ages):
        records.append(
            {
                "file_name": os.path.join(root, split, name),
                "image_id": f"{split}/{name}",
                "annotations": [
                    {
                        "bbox": list(UTKFACE_PRIOR_BOX),
                        "bbox_mode": BoxMode.XYXY_REL,
                        "category_id": 0,
                        "iscrowd": 0,
                        "age": float(age),
                        "gender": -1,
                    }
                ],
            }
        )
    logger.info("MegaAge-Asian %s: %d images", split, len(records))
    return records


def register_megaage_asian(name: str, root: str, split: str):
    DatasetCatalog.register(name, lambda: load_megaage_asian(root, split))
    MetadataCatalog.get(name).set(thing_classes=["face"], evaluator_type="age_single", split=split)
