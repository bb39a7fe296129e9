"""Test-time options that are not in the FOSS paper, as a wrapper around its single pass (as
detectron2's GeneralizedRCNNWithTTA wraps GeneralizedRCNN):

* MODEL.FOSS.TEST_SIZES (TEST_SIZES_MAX_BOX, TEST_NMS_THRESH): more detector passes, for the small
  faces of large photos that the DET_INPUT_SIZE pass loses to the downscale;
* MODEL.CENTERNET.TEST_FLIP: CenterNet's flip test (Zhou et al. 2019);
* MODEL.AGE_HEAD.TEST_FLIP: each face's age and gender averaged over its crop and the mirror image.

With every option off, ``FOSSWithTTA(cfg, model)`` answers exactly as ``model.inference``.
"""

from typing import Dict, List, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from detectron2.layers import nms
from detectron2.structures import Instances

from ..proposal_generator.centernet import average_with_mirror
from .foss import FOSS


def flip_test_detect(
    detector, image_size, features, mirrored_features, k: int, dtype: str = "float32"
) -> List[Instances]:
    """CenterNet's flip test: heatmap and sizes averaged with those of the mirrored input, turned
    back. Offsets are the unmirrored input's, as in CenterNet: a mirrored offset points into a
    different pixel. ``dtype``: the heatmap head's dense conv in it (DET_INFERENCE_DTYPE)."""
    heat, size, offset = detector.head_outputs(features, dtype=dtype)
    mirrored_heat, mirrored_size, _ = detector.head_outputs(mirrored_features, with_offset=False, dtype=dtype)
    heat = average_with_mirror(heat.sigmoid(), mirrored_heat.sigmoid())
    size = average_with_mirror(size, mirrored_size)
    return detector.decode(image_size, heat, size, offset, k)


class FOSSWithTTA(nn.Module):
    """A FOSS model with the config's test-time options; ``forward(batched_inputs)`` answers in the
    format of ``FOSS.inference``. Wrap a model only for inference (see ``enabled``)."""

    def __init__(self, cfg, model: nn.Module):
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        if not isinstance(model, FOSS):
            raise TypeError(f"FOSSWithTTA wraps a FOSS model, not {type(model).__name__}")
        self.model = model
        # detectron2's inference_context restores the wrapper's mode afterwards, and with it the model's.
        self.training = model.training
        self.test_sizes = tuple(int(s) for s in cfg.MODEL.FOSS.TEST_SIZES)
        self.test_sizes_max_box = float(cfg.MODEL.FOSS.TEST_SIZES_MAX_BOX)
        self.test_nms_thresh = float(cfg.MODEL.FOSS.TEST_NMS_THRESH)
        self.detector_flip = bool(cfg.MODEL.CENTERNET.TEST_FLIP)
        self.age_flip = bool(cfg.MODEL.AGE_HEAD.TEST_FLIP)
        if self.detector_flip and not hasattr(model.proposal_generator, "head_outputs"):
            raise ValueError("MODEL.CENTERNET.TEST_FLIP needs a CenterNet face detector")

    @staticmethod
    def enabled(cfg) -> bool:
        """Whether ``cfg`` turns on any test-time option; if not, ``FOSS.inference`` alone is the answer."""
        return bool(len(cfg.MODEL.FOSS.TEST_SIZES) or cfg.MODEL.CENTERNET.TEST_FLIP or cfg.MODEL.AGE_HEAD.TEST_FLIP)

    def forward(self, batched_inputs: List[Dict]):
        return self.inference(batched_inputs)

    @torch.no_grad()
    def inference(self, batched_inputs: List[Dict], do_postprocess: bool = True):
        model = self.model
        images = [x["image"].to(model.device) for x in batched_inputs]
        # Pass 0 is the paper's; the TEST_SIZES passes only run on images the first one shrank.
        shrunk = [i for i, im in enumerate(images) if self.shrunk_by_first_pass(im)]
        passes = [(model.test_input_size(images), list(range(len(images))))]
        passes += [(s, shrunk) for s in self.test_sizes if shrunk]
        found = [[] for _ in images]
        runs = []
        for j, (size, idx) in enumerate(passes):
            features, proposals, scales = self.detect_pass([images[i] for i in idx], size)
            for i, p, (sx, sy) in zip(idx, proposals, scales):
                if j > 0:
                    p = self.keep_small_faces(p, sx, sy)
                p.det_pass = torch.full_like(p.pred_classes, j)
                found[i].append(p)
            runs.append((idx, features, model.feature_scales(scales)))
        proposals = [model.age_candidates(self.merge_passes(ps)) for ps in found]
        if model.age_head is not None:
            proposals = self._estimate_ages(images, proposals, runs)
        for p in proposals:
            p.remove("det_pass")
        return model.postprocess(proposals, batched_inputs, images, do_postprocess)

    def detect_pass(self, images: List[torch.Tensor], size: int):
        """``FOSS.detect_pass``; with MODEL.CENTERNET.TEST_FLIP the mirrored input goes through the detector too."""
        model = self.model
        if not self.detector_flip:
            return model.detect_pass(images, size)
        x = model.preprocess_detector(images, size)
        # One batch for both orientations; the age network only ever reads the unmirrored half.
        both = model.test_features(torch.cat([x, x.flip(-1)]))
        features = {name: f[: len(x)] for name, f in both.items()}
        mirrored = {name: f[len(x) :] for name, f in both.items()}
        proposals = flip_test_detect(
            model.proposal_generator, (size, size), features, mirrored, model.k_test, model.test_dtype()
        )
        return (features, *model.proposals_to_image(proposals, images, size))

    def shrunk_by_first_pass(self, image: torch.Tensor) -> bool:
        """Whether the DET_INPUT_SIZE pass downscales ``image`` [C,H,W]: only then do TEST_SIZES passes
        run (a smaller image holds no detail the first pass lost)."""
        return max(image.shape[1:]) > self.model.det_input_size

    def keep_small_faces(self, p: Instances, sx: float, sy: float, max_box: Optional[float] = None) -> Instances:
        """The faces of a TEST_SIZES pass whose longer side, in that pass's input pixels (image pixels
        times (sx, sy)), is below ``max_box`` (default TEST_SIZES_MAX_BOX): a detector trained at
        DET_INPUT_SIZE has never seen larger faces."""
        limit = self.test_sizes_max_box if max_box is None else max_box
        wh = p.pred_boxes.tensor[:, 2:] - p.pred_boxes.tensor[:, :2]
        return p[torch.max(wh[:, 0] * sx, wh[:, 1] * sy) < limit]

    def merge_passes(self, per_pass: List[Instances]) -> Instances:
        """One image's faces from all detector passes: NMS over their union, the K_TEST best kept."""
        if len(per_pass) == 1:
            return per_pass[0]
        p = Instances.cat(per_pass)
        return p[nms(p.pred_boxes.tensor, p.scores, self.test_nms_thresh)[: self.model.k_test]]

    def estimate_ages(self, images, proposals: List[Instances], features, feature_scales) -> List[Instances]:
        """The age head on the faces of one detector pass; with MODEL.AGE_HEAD.TEST_FLIP averaged
        over each crop and its mirror image."""
        head = self.model.age_head
        if not self.age_flip:
            return head(images, proposals, features, feature_scales)
        _, crops, feat = head.crops_and_features(images, proposals, features, feature_scales)
        return head.attach(proposals, *head.predict(crops, feat, mirror=True))

    def _estimate_ages(self, images, proposals: List[Instances], runs) -> List[Instances]:
        """Every face through the age head with the detector feature of the pass that found it, so
        the feature connection (Sec. 3.1) stays aligned with its crop; faces come back in order of
        decreasing score."""
        parts = [[] for _ in images]
        for j, (idx, features, feature_scales) in enumerate(runs):
            subsets = [proposals[i][proposals[i].det_pass == j] for i in idx]
            subsets = self.estimate_ages([images[i] for i in idx], subsets, features, feature_scales)
            for i, sub in zip(idx, subsets):
                parts[i].append(sub)
        out = []
        for ps in parts:
            p = Instances.cat(ps)
            out.append(p[torch.sort(p.scores, descending=True, stable=True).indices])
        return out
