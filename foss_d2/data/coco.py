"""COCO JSON with FOSS's extra annotation fields (``age``, ``gender``, ``age_group``).

``dataset_to_coco`` turns any registered dataset into a COCO dict; ``register_foss_coco`` registers
such a file through detectron2's ``load_coco_json`` keeping the extra keys, so that users of
``register_coco_instances`` get ages and genders too.
"""

from typing import Iterable, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.structures import BoxMode
from PIL import Image

from ..utils.json_io import write_json_atomic
from .utils import absolute_annotations

EXTRA_KEYS = ["age", "gender", "age_group"]


def dataset_to_coco(records: Iterable[dict], description: str = "FOSS-D2 faces") -> dict:
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
    return {
        "info": {"description": description},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "face"}],
    }


def save_coco(coco: dict, path: str):
    write_json_atomic(path, coco)


def load_foss_coco(json_file: str, image_root: str = "", dataset_name: str = None) -> List[dict]:
    recs = load_coco_json(json_file, image_root, dataset_name, extra_annotation_keys=EXTRA_KEYS)
    for r in recs:
        for a in r["annotations"]:
            a["category_id"] = 0
    return recs


def register_foss_coco(name: str, json_file: str, image_root: str = "", evaluator_type: str = "age_single"):
    DatasetCatalog.register(name, lambda: load_foss_coco(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        thing_classes=["face"], json_file=json_file, image_root=image_root, evaluator_type=evaluator_type
    )
