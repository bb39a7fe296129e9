"""Images of Groups (Gallagher & Chen, CVPR 2009): 5,080 group photos, 28,231 faces, 7 age groups.

Official layout: 11 folders (Wed2a ... Group8a), each with its images and a ``PersonData.txt``.
Each row is either an image row (the file name) or a face row following it, with 6 tab-separated
fields: left-eye x, left-eye y, right-eye x, right-eye y, age code, gender code. Age codes 1, 5,
10, 16, 28, 51, 75 stand for the groups 0-2, 3-7, 8-12, 13-19, 20-36, 37-65, 66+; gender 1 is
female, 2 male.

The paper (4.3) scores the test split of Gallagher & Chen, which PersonData.txt does not mark:
``images_of_groups_test`` reads it from ``TEST_FACES`` beside the folders, one test face a line,
``<folder>/<image> <xl> <yl> <xr> <yr>`` (its eye positions as in PersonData.txt). Its photos'
other faces stay as boxes without labels: found, they are no false detection, and no age or
gender is scored on them.

Face boxes are derived from the eyes (``box_from_eyes``): with d the inter-eye distance and (cx, cy)
the eye midpoint, the box is 2.4·d wide centred on cx, from cy - 0.9·d to cy + 2.1·d. These ratios
match WIDER-style boxes (brows to chin, cheek to cheek) on aligned faces, where the eyes sit at
about 37% of the height and d is about 0.42 of the face width.
"""

import logging
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image

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
TEST_FACES = "test_faces.txt"


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


def read_test_faces(path: str) -> Dict[str, List[Tuple[float, float, float, float]]]:
    """{"<folder>/<image>": [eye positions of its test faces]} from a ``TEST_FACES`` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Images of Groups: {path} not found. The paper's test split (Gallagher & Chen's) is not marked in "
            "PersonData.txt: write its faces there, one a line, '<folder>/<image> <xl> <yl> <xr> <yr>' (the "
            "face's eye positions as in PersonData.txt); images_of_groups scores every face"
        )
    faces: Dict[str, List[Tuple[float, float, float, float]]] = {}
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 5:
                    raise ValueError
                eyes = tuple(float(v) for v in fields[1:])
            except ValueError:
                raise DatasetError(
                    f"{path}:{ln}: expected '<folder>/<image> <xl> <yl> <xr> <yr>', got {line.strip()!r}"
                ) from None
            faces.setdefault(fields[0], []).append(eyes)
    return faces


def load_images_of_groups(
    root: str, folders: Optional[Sequence[str]] = None, test_faces: Optional[str] = None
) -> List[dict]:
    """Every photo of ``folders`` (all 11 by default) with its faces; with ``test_faces`` (a
    ``TEST_FACES`` file) only the photos holding a listed face, the others' labels set to unknown."""
    listed = read_test_faces(test_faces) if test_faces else None
    found = set()
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
            key = f"{folder}/{name}"
            if listed is not None:
                if key not in listed:
                    continue
                for a in annos:
                    if tuple(a["eyes"]) in listed[key]:
                        found.add((key, tuple(a["eyes"])))
                    else:  # a face of the photo outside the split: a box, no label to score
                        a["age_group"], a["gender"] = -1, -1
            path = os.path.join(root, folder, name)
            try:  # the header only: COCO's face AP needs each image's size
                with Image.open(path) as im:
                    width, height = im.size
            except OSError as e:
                logger.warning("Images of Groups: skipping %s (%s)", path, e)
                continue
            records.append({"file_name": path, "image_id": key, "height": height, "width": width, "annotations": annos})
    if listed is not None:
        unknown = [(k, e) for k, eyes in listed.items() for e in eyes if (k, e) not in found]
        if unknown:
            raise DatasetError(
                f"{test_faces}: {len(unknown)} of its faces are no face of PersonData.txt (first: {unknown[0][0]} "
                f"with eyes {list(unknown[0][1])})"
            )
    logger.info("Images of Groups: %d images, %d faces", len(records), sum(len(r["annotations"]) for r in records))
    return records


def register_images_of_groups(name: str, root: str, test_split: bool = False):
    test_faces = os.path.join(root, TEST_FACES) if test_split else None
    DatasetCatalog.register(name, lambda: load_images_of_groups(root, test_faces=test_faces))
    MetadataCatalog.get(name).set(
        thing_classes=["face"],
        evaluator_type="age_group",
        age_groups=list(IOG_AGE_GROUPS),
        age_group_lower=list(IOG_GROUP_LOWER),
    )
