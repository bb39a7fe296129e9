"""Annotation helpers shared by the mapper and the tiling augmentation."""

import zlib
from typing import List, Sequence

from detectron2.structures import BoxMode


class DatasetError(ValueError):
    """A mistake in a dataset file or in the config's choice of datasets, found when the data
    loads: the tools say it in one line (``train_net.py`` exits 2) instead of a traceback."""


def photo_paths(specs: Sequence[str]) -> List[str]:
    """The image files of registered datasets, in order: ``NAME`` all of them, ``NAME:N`` N spread
    evenly over the dataset (its files sorted)."""
    from detectron2.data import DatasetCatalog

    paths = []
    for spec in specs:
        name, _, count = spec.partition(":")
        files = sorted({d["file_name"] for d in DatasetCatalog.get(name)})
        if count:
            files = files[:: max(1, len(files) // int(count))][: int(count)]
        paths += files
    return paths


def absolute_annotations(annos: List[dict], height: int, width: int) -> List[dict]:
    """Copies of ``annos`` whose relative boxes (XYXY_REL / XYWH_REL) are made absolute for an image
    of ``height`` x ``width``. Loaders of pre-cropped datasets whose image sizes are not read up front
    (IMDB-WIKI, MegaAge-Asian, APPA-REAL) store relative boxes; detectron2 transforms need absolute ones."""
    out = []
    for a in annos:
        mode = a.get("bbox_mode")
        if mode in (BoxMode.XYXY_REL, BoxMode.XYWH_REL):
            x, y, u, v = a["bbox"]
            a = dict(a, bbox=[x * width, y * height, u * width, v * height])
            a["bbox_mode"] = BoxMode.XYXY_ABS if mode == BoxMode.XYXY_REL else BoxMode.XYWH_ABS
        out.append(a)
    return out


def hash_split(key: str, test_fraction: float = 0.2) -> str:
    """ "train" or "test", fixed by a hash of ``key``: independent of listing order and machine."""
    return "test" if (zlib.crc32(key.encode()) % 1000) < test_fraction * 1000 else "train"
