"""Registers every dataset of the paper under the datasets root (detectron2 convention).

Root: ``$DETECTRON2_DATASETS`` (default ``./datasets``), or ``DATASETS.ROOT`` in the config.
Layouts are each dataset's official one; see datasets/README.md. Registration is lazy: a
dataset's files are only read when it is used, and a missing folder fails then, naming the path.
"""

import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..coco import register_foss_coco
from ..utils import DatasetError
from .appa_real import register_appa_real
from .fgnet import register_fgnet
from .images_of_groups import register_images_of_groups
from .imdb_wiki import register_imdb_wiki
from .megaage_asian import register_megaage_asian
from .utkface import register_utkface
from .wider_face import register_wider_face


def datasets_root() -> str:
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


FOSS_DATASETS = []  # the names register_all_foss registers, for error messages
_REGISTERED = {}  # name -> the arguments it was registered with


def _register(name, fn, *args):
    if name not in FOSS_DATASETS:
        FOSS_DATASETS.append(name)
    registered = name in DatasetCatalog.list()
    if registered and _REGISTERED.get(name) == args:
        return
    if registered:
        if name not in _REGISTERED:
            return  # registered by the user's own code: theirs
        # registered here under another DATASETS.ROOT (two configs in one process): the new root wins
        DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
    fn(name, *args)
    _REGISTERED[name] = args


def register_all_foss(root: str = None):
    root = root or datasets_root()
    utk = os.path.join(root, "utkface", "UTKFace")
    for split in ("train", "test", "all"):
        _register(f"utkface_{split}", register_utkface, utk, split)
    _register("utkface_test_500", register_utkface, utk, "test", 500)
    wider = os.path.join(root, "widerface")
    split_dir = os.path.join(wider, "wider_face_split")
    for split in ("train", "val"):
        demo = os.path.join(split_dir, f"demographics_{split}.csv") if split == "val" else None
        _register(
            f"wider_face_{split}",
            register_wider_face,
            os.path.join(wider, f"WIDER_{split}", "images"),
            os.path.join(split_dir, f"wider_face_{split}_bbx_gt.txt"),
            demo,
        )
    # More WIDER FACE train photos in the same layout (crowds; ../shared/data/README.md): its own
    # dataset, so that it can be mixed with wider_face_train by DATALOADER.DATASET_WEIGHTS.
    more = os.path.join(root, "widerface_more")
    _register(
        "wider_face_train_more",
        register_wider_face,
        os.path.join(more, "WIDER_train", "images"),
        os.path.join(more, "wider_face_split", "wider_face_train_bbx_gt.txt"),
    )
    fgnet = os.path.join(root, "fgnet", "FGNET")
    for split in ("train", "test", "all"):
        _register(f"fgnet_{split}", register_fgnet, fgnet, split)
    for which in ("imdb", "wiki"):
        mat = os.path.join(root, f"{which}_crop", f"{which}.mat")
        for split in ("train", "test"):
            _register(f"{which}_{split}", register_imdb_wiki, mat, None, split)
    appa = os.path.join(root, "appa-real-release")
    for split in ("train", "valid", "test"):
        _register(f"clap2016_{split}", register_appa_real, appa, split)
    mega = os.path.join(root, "megaage_asian")
    for split in ("train", "test"):
        _register(f"megaage_asian_{split}", register_megaage_asian, mega, split)
    iog = os.path.join(root, "images_of_groups")
    _register("images_of_groups", register_images_of_groups, iog)
    _register("images_of_groups_test", register_images_of_groups, iog, True)


def register_config_datasets(cfg):
    """Every built-in dataset under ``DATASETS.ROOT``, then the config's COCO JSONs (``DATASETS.COCO``:
    (name, json_file, image_root[, evaluator_type]) each; evaluator_type "age_single" for single-face
    photos, "age_group" for group photos with age groups, "face_detection" for boxes only)."""
    register_all_foss(cfg.DATASETS.ROOT or None)
    for entry in cfg.DATASETS.COCO:
        if isinstance(entry, str) or len(entry) not in (3, 4) or not all(isinstance(e, str) for e in entry):
            one = tuple(cfg.DATASETS.COCO) if isinstance(entry, str) else tuple(entry)
            raise DatasetError(
                "DATASETS.COCO is a list of (name, json_file, image_root[, evaluator_type]) entries, each of "
                f"strings, got the entry {entry!r}; one dataset is written with a comma after it: "
                f'DATASETS.COCO "({one!r},)"'
            )
        name, json_file = entry[0], entry[1]
        if not os.path.isfile(json_file):
            hint = (
                " (where a tool writes it, e.g. tools/research/teacher_genders.py for "
                "configs/zoo/next-age-teacher-cpu.yaml, run that first)"
                if "teacher" in json_file
                else ""
            )
            raise FileNotFoundError(f"DATASETS.COCO: {name}'s JSON file not found: {json_file}{hint}")
        if name in FOSS_DATASETS:
            raise DatasetError(f"DATASETS.COCO: {name} is a built-in dataset's name; give yours another")
        if name in DatasetCatalog.list():
            if MetadataCatalog.get(name).get("json_file") == json_file:
                continue  # registered by an earlier call in this process
            raise DatasetError(f"DATASETS.COCO: the name {name} is already registered, for another file")
        register_foss_coco(name, json_file, entry[2], *entry[3:])
