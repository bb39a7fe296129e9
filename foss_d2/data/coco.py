"""COCO JSON with FOSS's extra annotation fields (``age``, ``gender``, ``age_group``).

``dataset_to_coco`` turns any registered dataset into a COCO dict; ``register_foss_coco`` registers
such a file through detectron2's ``load_coco_json`` keeping the extra keys, so that users of
``register_coco_instances`` get ages and genders too.
"""

import json
import logging
import math
import os
from collections import Counter
from typing import Iterable, List, Optional

from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.structures import BoxMode

from ..utils.json_io import write_json_atomic
from .utils import DatasetError, absolute_annotations

EXTRA_KEYS = ["age", "gender", "age_group"]
logger = logging.getLogger(__name__)


EVALUATOR_TYPES = ("age_single", "age_group", "face_detection")


def dataset_to_coco(records: Iterable[dict], description: str = "FOSS-D2 faces", age_groups=None) -> dict:
    """COCO JSON of FOSS-D2 records, the extra fields kept; ``age_groups``: (names, lower bounds in
    years) of the records' ``age_group`` indices, written to ``info`` for ``register_foss_coco``."""
    images, annotations = [], []
    for img_id, r in enumerate(records, 1):
        h, w = r.get("height"), r.get("width")
        if h is None or w is None:
            with Image.open(r["file_name"]) as im:
                w, h = im.size
        images.append({"id": img_id, "file_name": r["file_name"], "height": int(h), "width": int(w)})
        for a in absolute_annotations(r.get("annotations", []), h, w):
            x, y, bw, bh = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYWH_ABS)
            ann = {
                "id": len(annotations) + 1,
                "image_id": img_id,
                "bbox": [float(x), float(y), float(bw), float(bh)],
                "area": float(bw * bh),
                "iscrowd": int(a.get("iscrowd", 0)),
                "category_id": 1,
            }
            for k in EXTRA_KEYS:
                ann[k] = a.get(k, -1)
            annotations.append(ann)
    info = {"description": description}
    if age_groups is not None:
        info["age_groups"], info["age_group_lower"] = list(age_groups[0]), list(age_groups[1])
    return {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "face"}],
    }


def save_coco(coco: dict, path: str):
    write_json_atomic(path, coco)


# How FOSS-D2's fields are written (every one optional; -1, null or absent: unknown).
FIELD_RULES = {
    "age": "the age in years, in [0, 120]",
    "gender": "0 male, 1 female (or a probability of female in between)",
    "age_group": "an index into the dataset's age groups",
}
MAX_AGE = 120  # the oldest people recorded; the model answers 0-100, UTKFace holds ages up to 116


def _bad_field(a: dict, num_groups: Optional[int]):
    """What is wrong with an annotation's FOSS-D2 fields (None if nothing): ``age`` in [0,
    MAX_AGE], ``gender`` in [0, 1], ``age_group`` an index of the dataset's ``num_groups`` groups
    (any when None); -1, null or absent: unknown."""
    for key in EXTRA_KEYS:
        v = a.get(key, -1)
        if v is None or v == -1:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{key} {v!r} is not a number ({key}: {FIELD_RULES[key]}; -1 or null: unknown)"
        if v != v:  # NaN: unknown, as pandas writes a missing value
            continue
        if key == "age" and not 0 <= v <= MAX_AGE:
            return f"age {v} is outside [0, {MAX_AGE}] (age: {FIELD_RULES['age']}; -1 or null: unknown)"
        if key == "gender" and not 0 <= v <= 1:
            return f"gender {v} is neither -1 nor in [0, 1] (gender: {FIELD_RULES['gender']})"
        in_range = v >= 0 and (num_groups is None or v < num_groups)
        if key == "age_group" and not (float(v).is_integer() and in_range):
            return f"age_group {v} is not an index of the dataset's {num_groups} groups"
    return None


def _check_coco_file(json_file: str, needs_coco_eval: bool):
    """The parts of a COCO file that detectron2's loader would only trip over later (a KeyError
    naming no file, or an assertion on the metadata): one category, named ``face``; each image's
    ``file_name``, ``width`` and ``height``; each annotation's ``bbox``; and, where pycocotools
    evaluates the file (``needs_coco_eval``), each annotation's ``area`` and ``iscrowd``."""
    coco = _load_json(json_file)
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise DatasetError(f"{json_file} is not a COCO file: no 'images' list")
    for key in ("images", "annotations", "categories"):  # (each entry is read with .get below)
        entries = coco.get(key) or []
        if not isinstance(entries, list):
            raise DatasetError(f"{json_file}: '{key}' is a list of objects, got {type(entries).__name__}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise DatasetError(f"{json_file}: {key}[{i}] is not an object: {entry!r:.80}")
    names = [c.get("name") for c in coco.get("categories") or []]
    if names != ["face"]:
        raise DatasetError(
            f"{json_file}: FOSS-D2 datasets hold one category, named 'face' (id any); this file has {names or 'none'}"
        )
    category_ids = {c.get("id") for c in coco["categories"]}
    image_ids = set()
    for img in coco["images"]:
        where = f"{json_file}: image {img.get('id', img.get('file_name', '?'))}"
        missing = [k for k in ("id", "file_name", "width", "height") if k not in img]
        if missing:
            raise DatasetError(f"{where} has no {', '.join(missing)}")
        if not isinstance(img["file_name"], str) or not img["file_name"]:
            raise DatasetError(f"{where}: file_name {img['file_name']!r} is not a path")
        if not all(_is_number(img[k]) and img[k] > 0 for k in ("width", "height")):
            raise DatasetError(
                f"{where}: width and height must be positive numbers, got {img['width']!r}, {img['height']!r}"
            )
        if not isinstance(img["id"], (int, str)) or isinstance(img["id"], bool):  # detectron2 writes either
            raise DatasetError(f"{where}: its id {img['id']!r} is neither an integer nor a string")
        if img["id"] in image_ids:
            raise DatasetError(f"{where}: the id is used twice")
        if image_ids and isinstance(img["id"], str) != isinstance(next(iter(image_ids)), str):
            # detectron2's loader sorts the ids: a TypeError naming no file
            raise DatasetError(f"{where}: its id {img['id']!r} mixes integers and strings among the image ids")
        image_ids.add(img["id"])
    need = ("id", "bbox", "image_id", "category_id") + (("area", "iscrowd") if needs_coco_eval else ())
    ann_ids = set()
    for ann in coco.get("annotations") or []:
        missing = [k for k in need if k not in ann]
        where = f"{json_file}: annotation {ann.get('id', '?')}"
        if missing:
            why = (
                " (COCO's AP reads area and iscrowd: 0 for a face, area = w * h)"
                if {"area", "iscrowd"} & set(missing)
                else ""
            )
            raise DatasetError(f"{where} has no {', '.join(missing)}{why}")
        box = ann["bbox"]
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise DatasetError(f"{where}: bbox {box!r} is not [x, y, width, height] in pixels")
        if ann["category_id"] not in category_ids:
            raise DatasetError(f"{where}: category_id {ann['category_id']!r} is not the face category's id")
        if ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd", 0), str):
            raise DatasetError(f"{where}: iscrowd {ann['iscrowd']!r} is neither 0 (a face) nor 1 (a crowd region)")
        if ann["id"] in ann_ids:
            raise DatasetError(f"{where}: the id is used twice")
        ann_ids.add(ann["id"])


def _load_json(json_file: str):
    """A dataset file's JSON; a DatasetError naming the file when it is not JSON (a binary file too)."""
    with open(json_file) as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{json_file} is not valid JSON: {e}") from None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _usable_box(box, r: dict) -> bool:
    """Whether a face box (x1, y1, x2, y2) has an area, finite corners and lies (at least partly)
    inside its image."""
    x1, y1, x2, y2 = box
    w, h = r.get("width"), r.get("height")
    inside = w is None or h is None or (x2 > 0 and y2 > 0 and x1 < w and y1 < h)
    return all(map(math.isfinite, (x1, y1, x2, y2))) and x2 > x1 and y2 > y1 and inside


def _runs_past_edge(box, r: dict, tolerance: float = 0.1) -> bool:
    """A box (x1, y1, x2, y2) reaching past its image by more than ``tolerance`` of its own size:
    most often COCO's [x, y, width, height] written as [x1, y1, x2, y2]. Kept, clipped, but worth a
    look."""
    w, h = r.get("width"), r.get("height")
    if w is None or h is None:
        return False
    x1, y1, x2, y2 = box
    dx, dy = tolerance * (x2 - x1), tolerance * (y2 - y1)
    return x2 - w > dx or y2 - h > dy or -x1 > dx or -y1 > dy


def load_foss_coco(json_file: str, image_root: str = "", dataset_name: str = None) -> List[dict]:
    """detectron2's COCO loader with FOSS-D2's fields, checked here so that a mistake in the file
    is an error naming it, not a crash at a random training iteration: see ``_check_coco_file``
    and ``_bad_field``. Null labels read as unknown (-1). Boxes without an area or outside their
    image are dropped with a warning (a rotated empty box would otherwise train as a face); a
    dataset whose images are all missing is an error, some missing a warning."""
    meta = MetadataCatalog.get(dataset_name) if dataset_name else None
    etype = meta.get("evaluator_type", "") if meta is not None else ""
    _check_coco_file(json_file, etype in ("age_group", "face_detection"))
    recs = load_coco_json(json_file, image_root, dataset_name, extra_annotation_keys=EXTRA_KEYS + ["id"])
    groups = meta.get("age_groups") if meta is not None else None
    dropped, past = [], []
    for r in recs:
        kept = []
        for a in r["annotations"]:
            a["category_id"] = 0
            problem = _bad_field(a, len(groups) if groups else None)
            if problem:
                raise DatasetError(f"{json_file}: {problem} (image {r['file_name']}, annotation {a.get('id', '?')})")
            for key in EXTRA_KEYS:
                if a.get(key) is None or a[key] != a[key]:
                    a[key] = -1
            box = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
            if _usable_box(box, r):
                kept.append(a)
                if _runs_past_edge(box, r):
                    past.append((r["file_name"], a.get("id", "?"), a["bbox"], r["width"], r["height"]))
            else:
                dropped.append((r["file_name"], a.get("id", "?"), a["bbox"]))
        r["annotations"] = kept
    name = dataset_name or json_file
    if dropped:
        logger.warning(
            "%s: %d face boxes without an area or outside their image are left out (first: image %s, "
            "annotation %s, bbox %s)",
            name,
            len(dropped),
            *dropped[0],
        )
    if past:
        logger.warning(
            "%s: %d face boxes run past their image's edge by over a tenth of their size and are cut at it "
            "(first: image %s, annotation %s, bbox %s in a %sx%s image): COCO's bbox is [x, y, width, height], "
            "was [x1, y1, x2, y2] written?",
            name,
            len(past),
            *past[0],
        )
    counts = Counter(r["file_name"] for r in recs)
    twice = [f for f, n in counts.items() if n > 1]
    if twice:
        logger.warning(
            "%s: %d %s listed more than once under other ids (first: %s): each entry is trained "
            "and scored as a photo of its own",
            name,
            len(twice),
            "image is" if len(twice) == 1 else "images are",
            twice[0],
        )
    if recs and not any(r["annotations"] for r in recs):
        logger.warning("%s: %s holds no face box: it trains and scores as photos without faces", name, json_file)
    files = sorted(counts)
    missing = [f for f in files if not os.path.isfile(f)]
    if files and len(missing) == len(files):
        raise DatasetError(
            f"{name}: none of the {len(files)} images of {json_file} is there (first: {missing[0]}): "
            f"is its image root ({image_root or 'the paths in the file'}) right?"
        )
    if missing:
        logger.warning(
            "%s: %d of %d images are missing (first: %s); training skips them, evaluation refuses to start",
            name,
            len(missing),
            len(files),
            missing[0],
        )
    return recs


def register_foss_coco(name: str, json_file: str, image_root: str = "", evaluator_type: str = "age_single"):
    """Registers a COCO JSON with FOSS-D2's fields. For ``age_group`` the groups that ``age_group``
    indexes come from the JSON's ``info`` (``dataset_to_coco`` writes them), else the paper's
    Images of Groups seven (0-2, 3-7, 8-12, 13-19, 20-36, 37-65, 66+)."""
    if evaluator_type not in EVALUATOR_TYPES:
        raise DatasetError(f"{name}: evaluator type {evaluator_type!r} is none of {', '.join(EVALUATOR_TYPES)}")
    DatasetCatalog.register(name, lambda: load_foss_coco(json_file, image_root, name))
    meta = dict(thing_classes=["face"], json_file=json_file, image_root=image_root, evaluator_type=evaluator_type)
    if evaluator_type == "age_group":
        from .datasets.images_of_groups import IOG_AGE_GROUPS, IOG_GROUP_LOWER

        data = _load_json(json_file)
        info = (data.get("info") if isinstance(data, dict) else None) or {}
        if not isinstance(info, dict):
            raise DatasetError(f"{json_file}: its info is not an object (age_groups, age_group_lower)")
        names, lower = info.get("age_groups"), info.get("age_group_lower")
        if (names is None) != (lower is None) or (names is not None and len(names) != len(lower)):
            raise DatasetError(
                f"{json_file}: info's age_groups and age_group_lower go together, one lower bound in years a "
                f"group (got {names} and {lower}); without both, the paper's groups {IOG_AGE_GROUPS}"
            )
        meta["age_groups"] = list(names if names is not None else IOG_AGE_GROUPS)
        meta["age_group_lower"] = list(lower if lower is not None else IOG_GROUP_LOWER)
    MetadataCatalog.get(name).set(**meta)
