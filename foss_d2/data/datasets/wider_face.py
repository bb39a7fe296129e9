"""WIDER FACE (Yang et al., CVPR 2016) and the WIDER FACE demographics (Yang et al., AIES 2022).

``wider_face_{train,val}_bbx_gt.txt``: image path; number of faces; one line per face
``x1 y1 w h blur expression illumination invalid occlusion pose`` (0 faces: one line of zeros).
Faces flagged ``invalid`` become ``iscrowd=1`` (detectron2's "ignore": kept for evaluation, not
used as training targets); zero-size boxes are dropped.

The demographics CSV gives, per face index of an image's entry, a perceived gender (Male/Female)
and a perceived age group (Young Adult < Adult < Middle age < Senior); "Not Sure" is unlabelled.
"""

import csv
import logging
import os
from typing import Dict, List, Optional, Tuple

from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils import DatasetError

logger = logging.getLogger(__name__)


WIDER_AGE_GROUPS = ["Young Adult", "Adult", "Middle age", "Senior"]
# The perceived groups carry no numeric ranges. To score a predicted age in years, FOSS-D2 maps
# it with these lower bounds (a documented choice, see docs/DESIGN.md): <30, 30-44, 45-64, 65+.
WIDER_GROUP_LOWER = [0, 30, 45, 65]
_GENDERS = {"Male": 0, "Female": 1}
_ATTRS = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


def parse_wider_bbx_gt(path: str) -> List[Tuple[str, List[List[int]]]]:
    """[(relative image path, [[x1, y1, w, h, blur, expression, illumination, invalid, occlusion, pose], ...])].

    Malformed files raise ValueError naming the file and the 1-based line, so an edited annotation
    can be fixed where it is wrong.
    """
    with open(path) as f:
        lines = [ln.strip() for ln in f]
    out, i = [], 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        name = lines[i]
        try:
            n = int(lines[i + 1])
        except IndexError:
            raise DatasetError(
                f"{path}:{i + 1}: the file ends after {name!r}, where its face count should follow"
            ) from None
        except ValueError:
            raise DatasetError(f"{path}:{i + 2}: expected a face count after {name!r}, got {lines[i + 1]!r}") from None
        if n < 0:
            raise DatasetError(f"{path}:{i + 2}: negative face count {n} for {name!r}")
        rows = [_parse_face_line(path, lines, i + 2 + j, name, i + 2, n) for j in range(max(n, 1))]
        out.append((name, rows if n > 0 else []))
        i += 2 + max(n, 1)
    return out


def _parse_face_line(path: str, lines: List[str], k: int, name: str, count_line: int, n: int) -> List[int]:
    """Line ``k`` (0-based) of a bbx_gt file as 10 integers; the error says where and, when the line
    looks like the next entry, that the face count above is probably too high."""
    where = f"{path}:{k + 1}"
    hint = f" (is the face count {n} of {name!r} on line {count_line} too high?)"
    if k >= len(lines):
        raise DatasetError(f"{where}: the file ends inside the faces of {name!r}" + hint)
    fields = lines[k].split()
    if len(fields) == 1 and not fields[0].lstrip("-").isdigit():
        raise DatasetError(f"{where}: expected a face line, got {lines[k]!r}" + hint)
    if len(fields) != len(_ATTRS) + 4:
        raise DatasetError(
            f"{where}: expected 10 integers (x1 y1 w h blur expression illumination invalid occlusion pose) "
            f"for a face of {name!r}, got {len(fields)}: {lines[k]!r}"
        )
    try:
        return [int(v) for v in fields]
    except ValueError:
        bad = next(v for v in fields if not v.lstrip("-").isdigit())
        raise DatasetError(f"{where}: {bad!r} is not an integer in the face line {lines[k]!r} of {name!r}") from None


def load_wider_demographics(csv_path: str) -> Dict[Tuple[str, int], dict]:
    """{(image path relative to images/, face index): {"gender": 0/1/-1, "age_group": 0..3/-1}}."""
    table = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            name = row["file"]
            if name.startswith("images/"):
                name = name[len("images/") :]
            gender = _GENDERS.get(row["perceived_gender"], -1)
            age = row["perceived_age"]
            group = WIDER_AGE_GROUPS.index(age) if age in WIDER_AGE_GROUPS else -1
            table[(name, int(row["face"]))] = {"gender": gender, "age_group": group}
    return table


_MISSING_SAID = set()  # demographics files said to be missing


def load_wider_face(image_root: str, gt_file: str, demographics_csv: Optional[str] = None) -> List[dict]:
    """Records of WIDER FACE images with every face box; faces carry no real age (``age`` = -1).
    ``demographics_csv`` joins perceived age groups and genders; without that file (a separate
    download) the faces have none, with a warning: face AP still works."""
    if not os.path.isfile(gt_file):
        raise FileNotFoundError(f"WIDER FACE annotation file not found: {gt_file}")
    demo = {}
    if demographics_csv and os.path.isfile(demographics_csv):
        demo = load_wider_demographics(demographics_csv)
    elif demographics_csv and demographics_csv not in _MISSING_SAID:  # the evaluators load it again
        _MISSING_SAID.add(demographics_csv)
        logger.warning(
            "WIDER FACE: %s not found: its faces have no perceived age group or gender (face AP only); "
            "it is the WIDER FACE demographics file, a separate download (datasets/README.md)",
            demographics_csv,
        )
    records = []
    for rel, rows in parse_wider_bbx_gt(gt_file):
        path = os.path.join(image_root, rel)
        try:
            with Image.open(path) as im:  # reads the header only
                w, h = im.size
        except OSError as e:
            logger.warning("WIDER FACE: skipping missing or unreadable image %s (%s)", path, e)
            continue
        annos = []
        for idx, row in enumerate(rows):
            x, y, bw, bh = row[:4]
            attrs = dict(zip(_ATTRS, row[4:10]))
            if bw <= 0 or bh <= 0:
                continue
            d = demo.get((rel, idx), {})
            annos.append(
                {
                    "bbox": [float(x), float(y), float(bw), float(bh)],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "category_id": 0,
                    "iscrowd": int(attrs.get("invalid", 0) == 1),
                    "age": -1.0,
                    "gender": d.get("gender", -1),
                    "age_group": d.get("age_group", -1),
                    "face_index": idx,
                    **attrs,
                }
            )
        records.append({"file_name": path, "image_id": rel, "height": h, "width": w, "annotations": annos})
    logger.info(
        "WIDER FACE: %d images, %d faces from %s", len(records), sum(len(r["annotations"]) for r in records), gt_file
    )
    return records


def register_wider_face(name: str, image_root: str, gt_file: str, demographics_csv: Optional[str] = None):
    DatasetCatalog.register(name, lambda: load_wider_face(image_root, gt_file, demographics_csv))
    meta = dict(thing_classes=["face"], image_root=image_root, gt_file=gt_file, evaluator_type="face_detection")
    if demographics_csv:
        meta.update(
            evaluator_type="age_group",
            age_groups=list(WIDER_AGE_GROUPS),
            age_group_lower=list(WIDER_GROUP_LOWER),
            demographics=demographics_csv,
        )
    MetadataCatalog.get(name).set(**meta)
