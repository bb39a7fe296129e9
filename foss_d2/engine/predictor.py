"""Single-image inference, in the shape of detectron2's ``DefaultPredictor``."""

import numpy as np
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from ..data.augmentation import LimitMaxSide
from ..meta_arch import FOSSWithTTA
from ..utils.image_io import load_image, read_image_file  # noqa: F401  (re-exported)


class FOSSPredictor:
    """Loads ``cfg.MODEL.WEIGHTS`` and returns detectron2 ``Instances`` for one image.

    Fields: ``pred_boxes`` (original-image pixels), ``scores``, ``pred_ages``, ``pred_age_stds``,
    ``pred_age_probs`` (101 classes) and ``pred_female_probs``.
    """

    def __init__(self, cfg):
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        if cfg.MODEL.WEIGHTS:
            DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        # The test-time options that are not in the paper (TEST_SIZES, TEST_FLIPs) wrap its single pass.
        self.inference_model = FOSSWithTTA(self.cfg, self.model) if FOSSWithTTA.enabled(self.cfg) else self.model
        self.input_format = cfg.INPUT.FORMAT
        self.limit = LimitMaxSide(cfg.INPUT.MAX_SIDE)

    @torch.no_grad()
    def __call__(self, image):
        img = load_image(image, self.input_format)
        h, w = img.shape[:2]
        img = self.limit.get_transform(img).apply_image(img)
        tensor = torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return self.inference_model([{"image": tensor, "height": h, "width": w}])[0]["instances"].to("cpu")
