"""Images of Groups (Gallagher & Chen, CVPR 2009): 5,080 group photos, 28,231 faces, 7 age groups.

Official layout: 11 folders (Wed2a ... Group8a), each with its images and a ``PersonData.txt``.
Each row is either an image row (the file name) or a face row following it, with 6 tab-separated
fields: left-eye x, left-eye y, right-eye x, right-eye y, age code, gender code. Age codes 1, 5,
10, 16, 28, 51, 75 stand for the groups 0-2, 3-7, 8-12, 13-19, 20-36, 37-65, 66+; gender 1 is
female, 2 male.

Face boxes are derived from the eyes (``box_from_eyes``): with d the inter-eye distance and (cx, cy)
the eye midpoint, the box is 2.4·d wide centred on cx, from cy - 0.9·d to cy + 2.1·d. These ratios
match WIDER-style boxes (brows to chin, cheek to cheek) on aligned faces, where the eyes sit at
about 37% of the height and d is about 0.42 of the face width.
"""

import logging
import math
import os
from typing import List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils import DatasetError

logger = logging.getLogger(__name__)


IOG_FOLDERS = (
    "Wed2a",
    "Wed3a",
    "Wed5a",
    "Fam2a",
    "Fam4a",
    "Fam5a",
    "Fam8a",
    "Group2a",
    "Group4a",
    "Group5a",
    "Group8a",
)
IOG_AGE_CODES = (1, 5, 10, 16, 28, 51, 75)
IOG_AGE_GROUPS = ("0-2", "3-7", "8-12", "13-19", "20-36", "37-65", "66+")
# Lower bound of each group in years (the upper bound is the next one's lower bound).
IOG_GROUP_LOWER = (0, 3, 8, 13, 20, 37, 66)
BOX_WIDTH, BOX_TOP, BOX_BOTTOM = 2.4, 0.9, 2.1


def box_from_eyes(xl: float, yl: float, xr: float, yr: float) -> List[float]:
    d = math.hypot(xr - xl, yr - yl)
    cx, cy = (xl + xr) / 2, (yl + yr) / 2
    return [cx - BOX_WIDTH * d / 2, cy - BOX_TOP * d, cx + BOX_WIDTH * d / 2, cy + BOX_BOTTOM * d]


def parse_person_data(path: str):
    """[(image name, [(xl, yl, xr, yr, age_code, gender_code), ...]), ...]."""
    out = []
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            fields = line.strip().split()
            if not fields:
                continue
            if len(fields) == 1:
                out.append((fields[0], []))
            elif len(fields) == 6 and out:
                out[-1][1].append(tuple(float(v) for v in fields[:4]) + (int(fields[4]), int(fields[5])))
            else:
                raise DatasetError(f"{path}:{ln}: expected an image name or 6 face fields, got {line.strip()!r}")
    return out


def load_images_of_groups(
    root: str, folders: Optional[Sequence[str]] = None, test_list: Optional[str] = None
) -> List[dict]:
    records = []
    for folder in folders or IOG_FOLDERS:
        pd = os.path.join(root, folder, "PersonData.txt")
        if not os.path.isfile(pd):
            raise FileNotFoundError(f"Images of Groups: {pd} not found")
        for name, faces in parse_person_data(pd):
            annos = []
            for xl, yl, xr, yr, age_code, gender_code in faces:
                group = IOG_AGE_CODES.index(age_code) if age_code in IOG_AGE_CODES else -1
                annos.append(
                    {
                        "bbox": box_from_eyes(xl, yl, xr, yr),
                        "bbox_mode": BoxMode.XYXY_ABS,
                        "category_id": 0,
                        "iscrowd": 0,
                        "age": -1.0,  # groups only: not a per-year label, so no age loss
                        "age_group": group,
                        "gender": {1: 1, 2: 0}.get(gender_code, -1),
                        "eyes": [xl, yl, xr, yr],
                    }
                )
            records.append(
                {"file_name": os.path.join(root, folder, name), "image_id": f"{folder}/{name}", "annotations": annos}
            )
    logger.info("Images of Groups: %d images, %d faces", len(records), sum(len(r["annotations"]) for r in records))
    return records


def register_images_of_groups(name: str, root: str):
    DatasetCatalog.register(name, lambda: load_images_of_groups(root))
    MetadataCatalog.get(name).set(
        thing_classes=["face"],
        evaluator_type="age_group",
        age_groups=list(IOG_AGE_GROUPS),
        age_group_lower=list(IOG_GROUP_LOWER),
    )
