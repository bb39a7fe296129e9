from . import datasets  # noqa: F401
from .augmentation import LimitMaxSide, RandomGaussianBlur, RandomScale, build_foss_augmentations
from .build import build_foss_train_loader, load_train_datasets
from .dataset_mapper import FOSSDatasetMapper, annotations_to_face_instances
from .samplers import DatasetWeightedTrainingSampler
from .tiling import TilingAugmentation

__all__ = [
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
