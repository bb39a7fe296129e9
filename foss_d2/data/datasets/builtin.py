"""Registers the datasets found under the datasets root (detectron2 convention).

Root: ``$DETECTRON2_DATASETS`` (default ``./datasets``). Expected layout (see datasets/README.md)::

    utkface/UTKFace/*.jpg.chip.jpg
    widerface/WIDER_{train,val}/images/...
    widerface/wider_face_split/wider_face_{train,val}_bbx_gt.txt
    widerface/wider_face_split/demographics_val.csv   (optional)
"""
import os

from detectron2.data import DatasetCatalog

from .utkface import register_utkface
from .wider_face import register_wider_face


def datasets_root() -> str:
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def register_all_foss(root: str = None):
    """Register ``utkface_{train,test,all}`` and ``wider_face_{train,val}`` under ``root``.

    Registration is lazy (nothing is read until a dataset is used), so missing folders only fail
    when the dataset is actually requested, with a message naming the missing path.
    """
    root = root or datasets_root()
    utk = os.path.join(root, "utkface", "UTKFace")
    for split in ("train", "test", "all"):
        name = f"utkface_{split}"
        if name not in DatasetCatalog.list():
            register_utkface(name, utk, split)
    wider = os.path.join(root, "widerface")
    split_dir = os.path.join(wider, "wider_face_split")
    for split in ("train", "val"):
        name = f"wider_face_{split}"
        if name in DatasetCatalog.list():
            continue
        demo = os.path.join(split_dir, f"demographics_{split}.csv")
        register_wider_face(
            name,
            os.path.join(wider, f"WIDER_{split}", "images"),
            os.path.join(split_dir, f"wider_face_{split}_bbx_gt.txt"),
            demo if split == "val" else None,
        )
