"""Dataset mapper of FOSS-D2: full-resolution image + face boxes with ages and genders.

The detector input (the 480x480 resize) is made inside the model, so this mapper hands over one
image only, at full resolution (bounded by INPUT.MAX_SIDE), and ``instances`` whose ``gt_ages`` /
``gt_genders`` (-1 = unknown) stay aligned with ``gt_boxes`` through every transform.
"""

import copy
import logging
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Instances

from ..utils.image_io import read_image_file
from .augmentation import (
    LimitMaxSide,
    PerImageAugmentation,
    build_foss_augmentations,
    build_wild_augmentations,
    draw_color_jitter,
)
from .tiling import TilingAugmentation
from .utils import absolute_annotations

logger = logging.getLogger(__name__)


def annotations_to_face_instances(annos: List[dict], image_hw) -> Instances:
    """detectron2 Instances with gt_boxes / gt_classes plus gt_ages and gt_genders (-1 = unknown)."""
    inst = utils.annotations_to_instances(annos, image_hw)
    inst.gt_ages = torch.tensor([float(a.get("age", -1)) for a in annos], dtype=torch.float32)
    inst.gt_genders = torch.tensor([float(a.get("gender", -1)) for a in annos], dtype=torch.float32)
    return inst


class FOSSDatasetMapper:
    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: Sequence,
        image_format: str = "BGR",
        max_side: int = 2048,
        tilers: Optional[Dict[str, TilingAugmentation]] = None,
        read_image: Optional[Callable[[dict], np.ndarray]] = None,
        color_on_device: float = 0.0,
        wild_augmentations: Sequence = (),
    ):
        self.is_train = is_train
        # INPUT.AUG.WILD on an untiled picture; a tiler applies them to each of its tiles itself
        self.wild = PerImageAugmentation(wild_augmentations) if wild_augmentations else None
        # > 0: the colour jitter strength whose factors go to the model (INPUT.AUG.COLOR_ON_DEVICE)
        self.color_on_device = color_on_device
        self.augmentations = T.AugmentationList([LimitMaxSide(max_side)] + list(augmentations))
        self.image_format = image_format
        self.tilers = tilers or {}
        # a record -> its image; a DecodedImageCache (INPUT.CACHE_DECODED) or the file itself
        self.read_image = read_image or (lambda r: read_image_file(r["file_name"], image_format))

    @classmethod
    def from_config(
        cls,
        cfg,
        is_train: bool = True,
        pools: Optional[Dict[str, List[dict]]] = None,
        read_image: Optional[Callable[[dict], np.ndarray]] = None,
        pool_weights: Optional[Dict[str, Sequence[float]]] = None,
    ):
        """``pools``: per tiled dataset, the records its extra tiles come from; ``pool_weights``:
        optionally, their drawing weights (DATALOADER.AGE_BALANCE)."""
        fmt = cfg.INPUT.FORMAT
        read_image = read_image or (lambda r: read_image_file(r["file_name"], fmt))
        wild = build_wild_augmentations(cfg, is_train)
        tilers = {}
        if is_train and cfg.INPUT.TILING.ENABLED:
            t = cfg.INPUT.TILING
            for name, pool in (pools or {}).items():
                tilers[name] = TilingAugmentation(
                    pool,
                    read_image,
                    num_tiles=t.NUM_TILES,
                    probs=t.PROBS,
                    max_images=t.MAX_IMAGES,
                    canvas_size=t.CANVAS_SIZE,
                    augment=PerImageAugmentation(wild) if wild else None,
                    pool_weights=(pool_weights or {}).get(name),
                )
        return {
            "is_train": is_train,
            "augmentations": build_foss_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "max_side": cfg.INPUT.MAX_SIDE,
            "tilers": tilers,
            "read_image": read_image,
            "color_on_device": cfg.INPUT.AUG.COLOR_JITTER if is_train and cfg.INPUT.AUG.COLOR_ON_DEVICE else 0.0,
            "wild_augmentations": wild,
        }

    def __call__(self, dataset_dict: dict) -> dict:
        d = copy.deepcopy(dataset_dict)
        tiler = self.tilers.get(d.get("dataset_name")) if self.is_train else None
        try:
            if tiler is not None:
                image, annos = tiler(d)
            else:
                image = self.read_image(d)
                utils.check_image_size(d, image)  # the file's width and height wrong: skipped as unreadable
        except (FileNotFoundError, ValueError) as e:
            if not self.is_train:
                raise  # evaluation must not silently swap images
            # detectron2's MapDataset draws another sample when a mapper returns None: one bad file
            # costs a warning, not the training run.
            logger.warning("skipping training sample: %s", e)
            return None
        if tiler is not None:
            d.pop("height", None)
            d.pop("width", None)
            d.pop("annotations", None)
        else:
            annos = d.pop("annotations", None)
            if annos is not None:
                annos = absolute_annotations(annos, *image.shape[:2])
            if self.wild is not None and self.is_train:
                image = self.wild(image, annos)
        aug = T.AugInput(image)
        transforms = self.augmentations(aug)
        image = aug.image
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.color_on_device > 0:
            d["color_jitter"] = draw_color_jitter(self.color_on_device)
        if annos is not None and self.is_train:
            hw = image.shape[:2]
            annos = [utils.transform_instance_annotations(a, transforms, hw) for a in annos if a.get("iscrowd", 0) == 0]
            d["instances"] = utils.filter_empty_instances(annotations_to_face_instances(annos, hw))
        elif annos is not None:
            d["annotations"] = annos  # evaluators read them from the dataset, kept for visualisation
        return d
