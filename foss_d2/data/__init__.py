from . import datasets  # noqa: F401
from .augmentation import LimitMaxSide, RandomGaussianBlur, RandomScale, build_foss_augmentations
from .build import build_foss_train_loader, load_train_datasets
from .coco import dataset_to_coco, load_foss_coco, register_foss_coco, save_coco
from .dataset_mapper import FOSSDatasetMapper, annotations_to_face_instances
from .samplers import DatasetWeightedTrainingSampler
from .tiling import TilingAugmentation

__all__ = [
    "dataset_to_coco",
    "load_foss_coco",
    "register_foss_coco",
    "save_coco",
    "LimitMaxSide",
    "RandomGaussianBlur",
    "RandomScale",
    "build_foss_augmentations",
    "build_foss_train_loader",
    "load_train_datasets",
    "FOSSDatasetMapper",
    "annotations_to_face_instances",
    "DatasetWeightedTrainingSampler",
    "TilingAugmentation",
]
