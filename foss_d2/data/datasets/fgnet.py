"""FG-NET ageing database (Lanitis et al.): 1,002 scanned portraits of 82 people aged 0-69.

``images/PPPAaa[x].JPG``: person ``PPP`` at age ``aa`` (a trailing letter marks a second photo at the
same age); ``points/pppaaa[x].pts``: 68 landmarks (iBUG order: jaw 0-16, brows 17-26, ...). There is
no face box and no gender. The box is derived from the landmarks in WIDER FACE's convention
(cheek to cheek, forehead to chin): the landmarks span brows to chin, so the top is raised by
``FOREHEAD`` of that height (docs/DESIGN.md).

Splits are person-disjoint (the usual protocol is leave-one-person-out): a person's photos are all
in ``train`` or all in ``test``, fixed by a hash of the person id.
"""

import logging
import os
import re
from typing import List, Optional

import numpy as np
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils import DatasetError, hash_split

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{3})A(\d{2})([a-z]?)\.jpg$", re.IGNORECASE)
FOREHEAD = 0.25
SPLITS = ("train", "test", "all")


def parse_fgnet_name(name: str) -> Optional[dict]:
    """Person id and age from an FG-NET file name, or None when the name is malformed."""
    m = _NAME.match(name)
    if m is None:
        return None
    return {"person": m.group(1), "age": int(m.group(2))}


def read_pts(path: str) -> np.ndarray:
    """The landmarks of a ``.pts`` file as an [N, 2] array; errors name the file and line."""
    with open(path) as f:
        lines = [ln.strip() for ln in f]
    try:
        start, end = lines.index("{"), lines.index("}")
    except ValueError:
        raise DatasetError(f"{path}: no '{{ ... }}' block of points") from None
    points = []
    for k in range(start + 1, end):
        try:
            x, y = (float(v) for v in lines[k].split())
        except ValueError:
            raise DatasetError(f"{path}:{k + 1}: expected 'x y', got {lines[k]!r}") from None
        points.append((x, y))
    if len(points) < 3:
        raise DatasetError(f"{path}: {len(points)} points, too few for a face box")
    return np.asarray(points, dtype=np.float64)


def box_from_landmarks(points: np.ndarray, width: int, height: int) -> List[float]:
    """XYXY face box: the landmarks' extent, its top raised by FOREHEAD of its height, clipped."""
    x1, y1 = points.min(0)
    x2, y2 = points.max(0)
    y1 -= FOREHEAD * (y2 - y1)
    return [float(max(0.0, x1)), float(max(0.0, y1)), float(min(width, x2)), float(min(height, y2))]


def load_fgnet(root: str, split: str = "all", test_fraction: float = 0.2) -> List[dict]:
    """Records with one face each (``age``; ``gender`` -1), person-disjoint ``train``/``test``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    image_dir, pts_dir = os.path.join(root, "images"), os.path.join(root, "points")
    for d in (image_dir, pts_dir):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"FG-NET folder not found: {d}")
    records = []
    for name in sorted(os.listdir(image_dir)):
        label = parse_fgnet_name(name)
        if label is None:
            logger.warning("FG-NET: skipping file with a malformed name %r", name)
            continue
        if split != "all" and hash_split(label["person"], test_fraction) != split:
            continue
        path = os.path.join(image_dir, name)
        pts = os.path.join(pts_dir, os.path.splitext(name)[0].lower() + ".pts")
        try:
            with Image.open(path) as im:
                width, height = im.size
            points = read_pts(pts)
        except (OSError, ValueError) as e:
            logger.warning("FG-NET: skipping %s (%s)", path, e)
            continue
        records.append(
            {
                "file_name": path,
                "image_id": name,
                "height": height,
                "width": width,
                "person": label["person"],
                "annotations": [
                    {
                        "bbox": box_from_landmarks(points, width, height),
                        "bbox_mode": BoxMode.XYXY_ABS,
                        "category_id": 0,
                        "iscrowd": 0,
                        "age": float(label["age"]),
                        "gender": -1,
                    }
                ],
            }
        )
    logger.info(
        "FG-NET %s: %d faces of %d people from %s", split, len(records), len({r["person"] for r in records}), root
    )
    return records


def register_fgnet(name: str, root: str, split: str = "all"):
    DatasetCatalog.register(name, lambda: load_fgnet(root, split))
    MetadataCatalog.get(name).set(thing_classes=["face"], image_root=root, evaluator_type="age_single", split=split)
