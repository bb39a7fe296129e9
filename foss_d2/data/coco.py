"""COCO JSON with FOSS's extra annotation fields (``age``, ``gender``, ``age_group``).

``dataset_to_coco`` turns any registered dataset into a COCO dict; ``register_foss_coco`` registers
such a file through detectron2's ``load_coco_json`` keeping the extra keys, so that users of
``register_coco_instances`` get ages and genders too.
"""

import json
from typing import Iterable, List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.structures import BoxMode
from PIL import Image

from ..utils.json_io import write_json_atomic
from .utils import absolute_annotations

EXTRA_KEYS = ["age", "gender", "age_group"]


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


def _bad_field(a: dict, num_groups: Optional[int]):
    """What is wrong with an annotation's FOSS-D2 fields (None if nothing): ``age`` a number (-1 or
    absent: unknown), ``gender`` a number in [0, 1] (-1: unknown), ``age_group`` an index of the
    dataset's ``num_groups`` groups (any when None; -1: unknown)."""
    for key in EXTRA_KEYS:
        v = a.get(key, -1)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{key} {v!r} is not a number"
        if key == "gender" and v != -1 and not 0 <= v <= 1:
            return f"gender {v} is neither -1 nor in [0, 1]"
        in_range = v >= 0 and (num_groups is None or v < num_groups)
        if key == "age_group" and v != -1 and not (float(v).is_integer() and in_range):
            return f"age_group {v} is not an index of the dataset's {num_groups} groups"
    return None


def load_foss_coco(json_file: str, image_root: str = "", dataset_name: str = None) -> List[dict]:
    """detectron2's COCO loader with FOSS-D2's fields, checked here (a string age would otherwise
    stop training at a random iteration, naming no file)."""
    recs = load_coco_json(json_file, image_root, dataset_name, extra_annotation_keys=EXTRA_KEYS)
    groups = MetadataCatalog.get(dataset_name).get("age_groups") if dataset_name else None
    for r in recs:
        for a in r["annotations"]:
            a["category_id"] = 0
            problem = _bad_field(a, len(groups) if groups else None)
            if problem:
                raise ValueError(f"{json_file}: {problem} (image {r['file_name']}, annotation {a.get('id', '?')})")
    return recs


def register_foss_coco(name: str, json_file: str, image_root: str = "", evaluator_type: str = "age_single"):
    """Registers a COCO JSON with FOSS-D2's fields. For ``age_group`` the groups that ``age_group``
    indexes come from the JSON's ``info`` (``dataset_to_coco`` writes them), else the paper's
    Images of Groups seven (0-2, 3-7, 8-12, 13-19, 20-36, 37-65, 66+)."""
    if evaluator_type not in EVALUATOR_TYPES:
        raise ValueError(f"{name}: evaluator type {evaluator_type!r} is none of {', '.join(EVALUATOR_TYPES)}")
    DatasetCatalog.register(name, lambda: load_foss_coco(json_file, image_root, name))
    meta = dict(thing_classes=["face"], json_file=json_file, image_root=image_root, evaluator_type=evaluator_type)
    if evaluator_type == "age_group":
        from .datasets.images_of_groups import IOG_AGE_GROUPS, IOG_GROUP_LOWER

        with open(json_file) as f:
            info = json.load(f).get("info", {})
        meta["age_groups"] = list(info.get("age_groups", IOG_AGE_GROUPS))
        meta["age_group_lower"] = list(info.get("age_group_lower", IOG_GROUP_LOWER))
    MetadataCatalog.get(name).set(**meta)
