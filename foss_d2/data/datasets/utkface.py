"""UTKFace (Zhang, Song, Qi, CVPR 2017): aligned & cropped faces, age/gender/race in the file name.

File name: ``[age]_[gender]_[race]_[date&time].jpg.chip.jpg``; gender 0 = male, 1 = female.
Malformed names (three exist in the official release) are skipped with a warning.

The aligned crops come without face boxes. Until the face-box annotation tool has run (paper 4.2),
each image gets ``UTKFACE_PRIOR_BOX``: a WIDER-FACE-style box (brows-to-chin, cheek-to-cheek) in
relative coordinates, chosen by drawing it over a sample of the aligned crops (datasets/README.md).
"""

import logging
import os
import re
from typing import List, Optional

from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils import hash_split

logger = logging.getLogger(__name__)

UTKFACE_PRIOR_BOX = (0.14, 0.16, 0.86, 0.96)  # x1, y1, x2, y2 relative to the image
_NAME = re.compile(r"^(\d+)_([01])_([0-4])_(\d+)\.jpg\.chip\.jpg$")
SPLITS = ("train", "test", "all")


def parse_utkface_name(name: str) -> Optional[dict]:
    """Age, gender and race from a UTKFace file name, or None when the name is malformed."""
    m = _NAME.match(name)
    if m is None:
        return None
    return {"age": int(m.group(1)), "gender": int(m.group(2)), "race": int(m.group(3))}


def load_utkface(image_dir: str, split: str = "all", test_fraction: float = 0.2) -> List[dict]:
    """Records in detectron2's format with one face each, carrying ``age`` and ``gender``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"UTKFace folder not found: {image_dir}")
    records, skipped = [], []
    for name in sorted(os.listdir(image_dir)):
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        label = parse_utkface_name(name)
        if label is None:
            skipped.append(name)
            continue
        if split != "all" and hash_split(name, test_fraction) != split:
            continue
        path = os.path.join(image_dir, name)
        try:
            with Image.open(path) as im:
                width, height = im.size
        except OSError as e:
            logger.warning("UTKFace: skipping unreadable image %s (%s)", path, e)
            continue
        x1, y1, x2, y2 = UTKFACE_PRIOR_BOX
        records.append(
            {
                "file_name": path,
                "image_id": name,
                "height": height,
                "width": width,
                "annotations": [
                    {
                        "bbox": [x1 * width, y1 * height, x2 * width, y2 * height],
                        "bbox_mode": BoxMode.XYXY_ABS,
                        "category_id": 0,
                        "iscrowd": 0,
                        "age": float(label["age"]),
                        "gender": label["gender"],
                        "race": label["race"],
                    }
                ],
            }
        )
    for name in skipped:
        logger.warning("UTKFace: skipping malformed file name %r", name)
    logger.info(
        "UTKFace %s: %d faces from %s (%d malformed names skipped)", split, len(records), image_dir, len(skipped)
    )
    return records


def evenly_spaced(records: List[dict], n: int) -> List[dict]:
    """``n`` records spread evenly over ``records``. File names start with the age, so a plain
    ``records[:n]`` would take a few ages only; every k-th keeps the whole age range."""
    if n <= 0 or n >= len(records):
        return list(records)
    return [records[i * len(records) // n] for i in range(n)]


def register_utkface(name: str, image_dir: str, split: str = "all", limit: int = 0):
    """``limit`` > 0 registers an evenly spaced subset of the split (e.g. ``utkface_test_500``, for
    evaluations that must be quick, as detectron2's ``coco_2017_val_100``)."""
    DatasetCatalog.register(name, lambda: evenly_spaced(load_utkface(image_dir, split), limit))
    MetadataCatalog.get(name).set(
        thing_classes=["face"], image_root=image_dir, evaluator_type="age_single", split=split
    )
