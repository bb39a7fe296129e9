"""The FOSS meta-architecture (paper section 3.1, Fig. 2): one model, two backbones.

The detector sees the image resized to DET_INPUT_SIZE² (480x480); the age network sees faces
cropped from the full-resolution image. Both images live inside the model: the data pipeline hands
over only the full-resolution one, so they can never fall out of step.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import nms
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.modeling.proposal_generator import build_proposal_generator
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import Boxes, Instances


@META_ARCH_REGISTRY.register()
class FOSS(nn.Module):
    """CenterNet face detector + TResNet-S age/gender head, trained frozen or end-to-end (Sec. 3.3)."""

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        proposal_generator: nn.Module,
        age_head: Optional[nn.Module],
        pixel_mean,
        pixel_std,
        det_input_size: int = 480,
        k_train: int = 1,
        k_test: int = 20,
        score_thresh_test: float = 0.2,
        freeze_detector: bool = True,
        add_gt_boxes: bool = False,
        age_on_all_k: bool = True,
        test_sizes: Sequence[int] = (),
        test_sizes_max_box: float = 160.0,
        test_nms_thresh: float = 0.5,
        input_format: str = "BGR",
    ):
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.age_head = age_head
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.det_input_size = det_input_size
        self.k_train = k_train
        self.k_test = k_test
        self.score_thresh_test = score_thresh_test
        # Freezing only makes sense when there is an age head to train.
        self.freeze_detector = freeze_detector and age_head is not None
        self.add_gt_boxes = add_gt_boxes
        self.age_on_all_k = age_on_all_k
        self.test_sizes = tuple(int(s) for s in test_sizes)
        self.test_sizes_max_box = test_sizes_max_box
        self.test_nms_thresh = test_nms_thresh
        self.input_format = input_format
        if self.freeze_detector:
            for p in self.detector_parameters():
                p.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        age_head = None if cfg.MODEL.FOSS.DETECTOR_ONLY else build_roi_heads(cfg, shapes)
        return {
            "backbone": backbone,
            "proposal_generator": build_proposal_generator(cfg, shapes),
            "age_head": age_head,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "det_input_size": cfg.MODEL.FOSS.DET_INPUT_SIZE,
            "k_train": cfg.MODEL.FOSS.K_TRAIN,
            "k_test": cfg.MODEL.FOSS.K_TEST,
            "score_thresh_test": cfg.MODEL.FOSS.SCORE_THRESH_TEST,
            "freeze_detector": cfg.MODEL.FOSS.FREEZE_DETECTOR,
            "add_gt_boxes": cfg.MODEL.FOSS.ADD_GT_BOXES,
            "age_on_all_k": cfg.MODEL.FOSS.AGE_ON_ALL_K,
            "test_sizes": cfg.MODEL.FOSS.TEST_SIZES,
            "test_sizes_max_box": cfg.MODEL.FOSS.TEST_SIZES_MAX_BOX,
            "test_nms_thresh": cfg.MODEL.FOSS.TEST_NMS_THRESH,
            "input_format": cfg.INPUT.FORMAT,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def detector_parameters(self):
        yield from self.backbone.parameters()
        yield from self.proposal_generator.parameters()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_detector:
            # A frozen detector also keeps its BatchNorm statistics.
            self.backbone.eval()
            self.proposal_generator.eval()
        return self

    def preprocess_detector(self, images: List[torch.Tensor], size: Optional[int] = None) -> torch.Tensor:
        """Resize each full-resolution image to DET_INPUT_SIZE² (or ``size``²) and normalise it (paper 4.2)."""
        s = size or self.det_input_size
        out = []
        for img in images:
            x = img.to(self.device, non_blocking=True).float()[None]
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            out.append(x[0])
        return (torch.stack(out) - self.pixel_mean) / self.pixel_std

    def _to_detector(self, inst: Instances, sx: float, sy: float) -> Instances:
        out = Instances((self.det_input_size, self.det_input_size))
        out.gt_boxes = Boxes(inst.gt_boxes.tensor * inst.gt_boxes.tensor.new_tensor([sx, sy, sx, sy]))
        out.gt_classes = inst.gt_classes
        return out

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: dicts with "image" (uint8 [C,H,W], full resolution, INPUT.FORMAT order),
                and in training "instances" (gt_boxes in the same pixels, gt_classes, gt_ages,
                gt_genders with -1 = unknown). Optional "height"/"width": output resolution.
        Returns:
            training: dict of losses. inference: [{"instances": Instances}] with pred_boxes, scores,
            pred_classes, pred_ages, pred_age_stds, pred_age_probs, pred_female_probs.
        """
        if not self.training:
            return self.inference(batched_inputs)
        images = [x["image"].to(self.device) for x in batched_inputs]
        targets = [x["instances"].to(self.device) for x in batched_inputs]
        scales = [(self.det_input_size / im.shape[2], self.det_input_size / im.shape[1]) for im in images]
        det_targets = [self._to_detector(t, sx, sy) for t, (sx, sy) in zip(targets, scales)]
        det_images = self.preprocess_detector(images)
        size = (self.det_input_size, self.det_input_size)
        train_detector = not self.freeze_detector
        with torch.set_grad_enabled(train_detector):
            features = self.backbone(det_images)
            proposals, losses = self.proposal_generator(
                size, features, self.k_train, det_targets if train_detector else None
            )
        if self.age_head is None:
            return losses
        proposals = [self._to_image(p, sx, sy, im.shape[1:]) for p, (sx, sy), im in zip(proposals, scales, images)]
        if self.add_gt_boxes:
            proposals = [self._with_gt(p, t) for p, t in zip(proposals, targets)]
        losses.update(self.age_head(images, proposals, features, self._feature_scales(scales), targets))
        return losses

    def _feature_scales(self, scales):
        stride = self.proposal_generator.stride
        return [(sx / stride, sy / stride) for sx, sy in scales]

    @staticmethod
    def _to_image(p: Instances, sx: float, sy: float, image_hw) -> Instances:
        out = Instances(tuple(image_hw))
        out.pred_boxes = Boxes(p.pred_boxes.tensor / p.pred_boxes.tensor.new_tensor([sx, sy, sx, sy]))
        out.scores = p.scores
        out.pred_classes = p.pred_classes
        return out

    @staticmethod
    def _with_gt(p: Instances, t: Instances) -> Instances:
        gt = Instances(p.image_size)
        gt.pred_boxes = t.gt_boxes.clone()
        gt.scores = torch.ones(len(t), device=p.scores.device)
        gt.pred_classes = t.gt_classes
        return Instances.cat([p, gt])

    def detect_pass(self, images: List[torch.Tensor], size: int):
        """One detector pass on the images resized to ``size``²: its features, the K_TEST most
        probable faces in full-resolution pixels, and the (sx, sy) that map those pixels to the input.
        With MODEL.CENTERNET.TEST_FLIP the mirrored input goes through the detector too."""
        scales = [(size / im.shape[2], size / im.shape[1]) for im in images]
        x = self.preprocess_detector(images, size)
        mirrored = None
        if getattr(self.proposal_generator, "test_flip", False):
            # One batch for both orientations; the age network only ever reads the unmirrored half.
            both = self.backbone(torch.cat([x, x.flip(-1)]))
            features = {name: f[: len(x)] for name, f in both.items()}
            mirrored = {name: f[len(x) :] for name, f in both.items()}
        else:
            features = self.backbone(x)
        proposals, _ = self.proposal_generator((size, size), features, self.k_test, mirrored_features=mirrored)
        proposals = [self._to_image(p, sx, sy, im.shape[1:]) for p, (sx, sy), im in zip(proposals, scales, images)]
        return features, proposals, scales

    @torch.no_grad()
    def inference(self, batched_inputs: List[Dict], do_postprocess: bool = True):
        images = [x["image"].to(self.device) for x in batched_inputs]
        # Pass 0 is the paper's; the TEST_SIZES passes only run on images the first one shrank.
        passes = [(self.det_input_size, list(range(len(images))))]
        shrunk = [i for i, im in enumerate(images) if self.shrunk_by_first_pass(im)]
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
            runs.append((idx, features, self._feature_scales(scales)))
        proposals = [self.merge_passes(ps) for ps in found]
        if not self.age_on_all_k:
            proposals = [p[p.scores > self.score_thresh_test] for p in proposals]
        if self.age_head is not None:
            proposals = self._estimate_ages(images, proposals, runs)
        results = []
        for p, x, im in zip(proposals, batched_inputs, images):
            p = self.confident_faces(p)
            p.remove("det_pass")
            if do_postprocess:
                p = detector_postprocess(p, x.get("height", im.shape[1]), x.get("width", im.shape[2]))
            results.append({"instances": p})
        return results

    def shrunk_by_first_pass(self, image: torch.Tensor) -> bool:
        """Whether the DET_INPUT_SIZE pass downscales ``image`` [C,H,W]: only then do TEST_SIZES passes run."""
        return max(image.shape[1:]) > self.det_input_size

    def confident_faces(self, p: Instances) -> Instances:
        """The faces scored above SCORE_THRESH_TEST, their boxes clipped to the image."""
        p = p[p.scores > self.score_thresh_test]
        p.pred_boxes.clip(p.image_size)
        return p

    def keep_small_faces(self, p: Instances, sx: float, sy: float, max_box: Optional[float] = None) -> Instances:
        """The faces of a TEST_SIZES pass whose longer side, in that pass's input pixels (image
        pixels times (sx, sy)), is below ``max_box`` (default TEST_SIZES_MAX_BOX)."""
        limit = self.test_sizes_max_box if max_box is None else max_box
        wh = p.pred_boxes.tensor[:, 2:] - p.pred_boxes.tensor[:, :2]
        return p[torch.max(wh[:, 0] * sx, wh[:, 1] * sy) < limit]

    def merge_passes(self, per_pass: List[Instances]) -> Instances:
        """One image's faces from all detector passes: NMS over their union, the K_TEST best kept."""
        if len(per_pass) == 1:
            return per_pass[0]
        p = Instances.cat(per_pass)
        return p[nms(p.pred_boxes.tensor, p.scores, self.test_nms_thresh)[: self.k_test]]

    def _estimate_ages(self, images, proposals: List[Instances], runs) -> List[Instances]:
        """The age head on every face, each reading the detector feature of the pass that found it
        (the feature connection, Sec. 3.1); faces come back in order of decreasing score."""
        parts = [[] for _ in images]
        for j, (idx, features, feature_scales) in enumerate(runs):
            subsets = [proposals[i][proposals[i].det_pass == j] for i in idx]
            subsets = self.age_head([images[i] for i in idx], subsets, features, feature_scales)
            for i, sub in zip(idx, subsets):
                parts[i].append(sub)
        out = []
        for ps in parts:
            p = Instances.cat(ps)
            out.append(p[torch.sort(p.scores, descending=True, stable=True).indices])
        return out
