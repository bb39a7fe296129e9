"""The age / gender head of FOSS (paper section 3.1): TResNet on face crops, with both connections.

* Facial cropping connection (crops.py): each of the K boxes is enlarged by the margins, cropped from
  the **full-resolution** image and resized to 160x224 (W x H).
* Intermediate feature connection (tresnet.py): the detector's stride-4 feature is ROIAligned over the
  same crop box to 10x14 and concatenated inside the age network.

Trained with the losses of section 3.2 (losses.py).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.structures import Instances

from ..config import check_crop_jitter
from ..utils.ages import check_readout, read_age
from ..utils.freezing import FrozenParts
from ..utils.precision import check_dtype, run_in
from .build import AGE_HEAD_REGISTRY
from .crops import crop_faces, expand_boxes_with_margins, jitter_boxes, roi_align_features, sanitize_boxes
from .losses import (
    age_gender_losses,
    distribution_moments,
    flip_consistency_loss,
    match_labels,
    teacher_age_loss,
    teacher_gender_loss,
)
from .tresnet import TResNetAgeNet


def with_mirror(crops: torch.Tensor, feat: Optional[torch.Tensor]):
    """N crops and their ROIAligned features followed by their N mirror images, the feature
    mirrored with its crop (it stands in for the mirrored photo's; see ``predict``)."""
    mirrored = torch.cat([feat, feat.flip(-1)]) if feat is not None else None
    return torch.cat([crops, crops.flip(-1)]), mirrored


@AGE_HEAD_REGISTRY.register()
class TResNetAgeHead(FrozenParts, nn.Module):
    """Crops K faces from the full-resolution images and estimates age distribution and gender.

    At test time ``forward`` is ``crops_and_features``, ``predict`` and ``attach`` in a row; the
    test-time options (meta_arch/test_time_augmentation.py) compose the same pieces.
    """

    @configurable
    def __init__(
        self,
        *,
        net: TResNetAgeNet,
        crop_hw: Tuple[int, int],
        feature_hw: Tuple[int, int],
        margins: Sequence[float],
        in_feature: Optional[str],
        th_iou: float,
        lambdas: Dict[str, float],
        input_format: str = "BGR",
        crop_jitter: Sequence[float] = (0.0, 0.0, 0.0),
        zero_feature: bool = False,
        frozen_parts: Sequence[str] = (),
        age_readout: str = "mean",
        age_std_scale: float = 1.0,
        lambda_teacher_gen: float = 0.0,
        teacher_labelled_too: bool = False,
        lambda_teacher_age: float = 0.0,
        teacher_age_gate: float = 5.0,
        teacher_flip: bool = False,
        lambda_flip: float = 0.0,
        inference_dtype: str = "float32",
        prepack: bool = True,
        test_crops_per_call: int = 0,
    ):
        super().__init__()
        self.net = net
        self.crop_hw = tuple(crop_hw)
        self.feature_hw = tuple(feature_hw)
        self.margins = tuple(margins)
        self.in_feature = in_feature
        self.th_iou = th_iou
        self.lambdas = lambdas
        self.input_format = input_format
        check_crop_jitter(crop_jitter)
        self.crop_jitter = tuple(float(j) for j in crop_jitter)
        self.zero_feature = bool(zero_feature)
        self.age_readout = check_readout(age_readout)
        if not age_std_scale > 0:
            raise ValueError(f"MODEL.AGE_HEAD.AGE_STD_SCALE must be over 0, got {age_std_scale}")
        self.age_std_scale = float(age_std_scale)
        self.lambda_teacher_gen = float(lambda_teacher_gen)
        self.teacher_labelled_too = bool(teacher_labelled_too)
        self.lambda_teacher_age = float(lambda_teacher_age)
        self.teacher_age_gate = float(teacher_age_gate)
        self.teacher_flip = bool(teacher_flip)
        if lambda_flip < 0:
            raise ValueError(f"MODEL.AGE_HEAD.LAMBDA_FLIP must be >= 0, got {lambda_flip}")
        self.lambda_flip = float(lambda_flip)
        self.inference_dtype = check_dtype(inference_dtype)
        self.prepack = bool(prepack)  # read by engine/fusion.py's optimize_for_inference
        if test_crops_per_call < 0:
            raise ValueError(f"MODEL.AGE_HEAD.TEST_CROPS_PER_CALL must be >= 0, got {test_crops_per_call}")
        self.test_crops_per_call = int(test_crops_per_call)
        self.freeze_parts(self._resolve_parts(net, frozen_parts))

    @staticmethod
    def _resolve_parts(net: nn.Module, names: Sequence[str]) -> List[nn.Module]:
        """The modules of ``net`` named by MODEL.AGE_HEAD.FROZEN_PARTS; a part the architecture does
        not build (``feature_proj`` when the detector feature already has WIDTH_REDUCTION channels)
        has nothing to freeze."""
        found = []
        for name in names:
            module = net
            for attr in name.split("."):
                module = getattr(module, attr, False)
                if module is None:
                    break
                if not isinstance(module, nn.Module):
                    parts = [n for n, _ in net.named_children()]
                    raise ValueError(
                        f"MODEL.AGE_HEAD.FROZEN_PARTS: the age network has no part {name!r} (top-level parts: {parts})"
                    )
            if module is not None:
                found.append(module)
        return found

    @classmethod
    def from_config(cls, cfg, input_shape=None):
        c = cfg.MODEL.AGE_HEAD
        crop_hw = (c.CROP_SIZE[1], c.CROP_SIZE[0])
        feature_hw = (c.FEATURE_ROI_SIZE[1], c.FEATURE_ROI_SIZE[0])
        feature_channels = 0
        if c.INTERMEDIATE_FEATURE:
            if input_shape is None or c.IN_FEATURE not in input_shape:
                raise ValueError(f"MODEL.AGE_HEAD.IN_FEATURE={c.IN_FEATURE!r} is not a backbone output")
            feature_channels = input_shape[c.IN_FEATURE].channels
        net = TResNetAgeNet(
            layers=c.LAYERS,
            width_factor=c.WIDTH_FACTOR,
            crop_hw=crop_hw,
            feature_hw=feature_hw,
            feature_channels=feature_channels,
            width_reduction=c.WIDTH_REDUCTION,
            num_age_classes=c.NUM_AGE_CLASSES,
            head_channels=c.HEAD_CHANNELS,
            dropout=c.DROPOUT,
            gender_on=c.GENDER_ON,
        )
        return {
            "net": net,
            "crop_hw": crop_hw,
            "feature_hw": feature_hw,
            "margins": c.CROP_MARGINS,
            "in_feature": c.IN_FEATURE if c.INTERMEDIATE_FEATURE else None,
            "th_iou": c.TH_IOU,
            "lambdas": {"mean": c.LAMBDA_MEAN, "var": c.LAMBDA_VAR, "ce": c.LAMBDA_CE, "gen": c.LAMBDA_GEN},
            "input_format": cfg.INPUT.FORMAT,
            "crop_jitter": tuple(c.CROP_JITTER),
            "zero_feature": c.ZERO_FEATURE,
            "frozen_parts": tuple(c.FROZEN_PARTS),
            "age_readout": c.AGE_READOUT,
            "age_std_scale": c.AGE_STD_SCALE,
            "lambda_teacher_gen": c.LAMBDA_TEACHER_GEN,
            "teacher_labelled_too": c.TEACHER_LABELLED_TOO,
            "lambda_teacher_age": c.LAMBDA_TEACHER_AGE,
            "teacher_age_gate": c.TEACHER_AGE_GATE,
            "teacher_flip": c.TEACHER_FLIP,
            "lambda_flip": c.LAMBDA_FLIP,
            "inference_dtype": c.INFERENCE_DTYPE,
            "prepack": c.PREPACK,
            "test_crops_per_call": c.TEST_CROPS_PER_CALL,
        }

    def forward(
        self,
        images: List[torch.Tensor],
        proposals: List[Instances],
        features: Optional[Dict[str, torch.Tensor]] = None,
        feature_scales: Optional[List[Tuple[float, float]]] = None,
        targets: Optional[List[Instances]] = None,
        teacher: Optional[Tuple["TResNetAgeHead", Dict[str, torch.Tensor]]] = None,
    ):
        """
        Args:
            images: full-resolution uint8 [C,H,W] images in ``INPUT.FORMAT`` channel order.
            proposals: per image, ``pred_boxes`` in full-resolution pixels.
            features: detector features; ``features[in_feature]`` is read when the connection is on.
            feature_scales: per image, (sx, sy) mapping full-resolution pixels to that feature's grid.
            targets: ground truth (``gt_boxes`` in full-resolution pixels, ``gt_ages``, ``gt_genders``).
            teacher: training only (MODEL.FOSS.TEACHER_WEIGHTS): a frozen age head and its own
                detector's features of the same images; it reads the same crops.
        Returns:
            proposals with ``pred_ages``, ``pred_age_stds``, ``pred_age_probs``, ``pred_female_probs``
            (inference), or a dict of losses (training).
        """
        boxes, crop_boxes, crops, feat = self._inputs(images, proposals, features, feature_scales)
        if not self.training:
            return self.attach(proposals, *self.predict(crops, feat))
        matches = match_labels(boxes, targets, self.th_iou)
        t_age, t_gender = self.teacher_answers(teacher, crops, crop_boxes, feature_scales)
        return self.train_losses(crops, feat, matches, t_age, t_gender)

    def train_losses(
        self,
        crops: torch.Tensor,
        feat: Optional[torch.Tensor],
        matches: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        teacher_age: Optional[torch.Tensor] = None,
        teacher_gender: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """A training step's losses of the age network on ``crops`` and their features: ``losses``
        on its answers; with LAMBDA_FLIP the mirror images (crop and feature mirrored together) go
        through the network in the same batch, learn from the same labels and teacher answers,
        and the two halves' answers are pulled together (``flip_consistency_loss``); the trainer's
        face counts (``age_head/num_age_faces`` ...) then count both halves."""
        if self.lambda_flip <= 0:
            return self.losses(*self.net(crops, feat), matches, teacher_age, teacher_gender)
        n = crops.shape[0]
        twice = lambda t: None if t is None else torch.cat([t, t])  # noqa: E731
        age_logits, gender_logits = self.net(*with_mirror(crops, feat))
        losses = self.losses(
            age_logits, gender_logits, tuple(twice(m) for m in matches), twice(teacher_age), twice(teacher_gender)
        )
        g = (None, None) if gender_logits is None else (gender_logits[:n], gender_logits[n:])
        losses.update(flip_consistency_loss(age_logits[:n], age_logits[n:], *g, matches[2], self.lambda_flip))
        return losses

    @torch.no_grad()
    def teacher_answers(self, teacher, crops: torch.Tensor, crop_boxes, feature_scales):
        """The frozen teacher's age and gender logits on the student's crops (None, None without
        one); with TEACHER_FLIP it answers as at test time with the mirror average."""
        if teacher is None:
            return None, None
        head, teacher_features = teacher
        t_feat = head.roi_feature(teacher_features, crop_boxes, feature_scales, crops.shape[0])
        if not self.teacher_flip:
            return head.net(crops, t_feat)
        t_probs, t_female = head.predict(crops, t_feat, mirror=True)
        # float32: in fp16 (autocast) 1 - 1e-6 is 1 and 1e-12 is 0, so the logit or the log was infinite
        t_gender = torch.logit(t_female.float(), eps=1e-6) if t_female is not None else None
        return t_probs.float().clamp_min(1e-12).log(), t_gender

    def losses(
        self,
        age_logits: torch.Tensor,
        gender_logits: Optional[torch.Tensor],
        matches: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        teacher_age: Optional[torch.Tensor] = None,
        teacher_gender: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """Section 3.2's L_age and L_gen over the faces ``matches`` (``match_labels``) labels, and
        with a teacher (its logits given) the teacher's terms."""
        losses = age_gender_losses(age_logits, gender_logits, None, None, self.th_iou, self.lambdas, matches)
        if teacher_age is None:
            return losses
        if gender_logits is not None:
            losses.update(
                teacher_gender_loss(
                    gender_logits, teacher_gender, matches, self.lambda_teacher_gen, self.teacher_labelled_too
                )
            )
        if self.lambda_teacher_age > 0:
            losses.update(
                teacher_age_loss(age_logits, teacher_age, matches, self.lambda_teacher_age, self.teacher_age_gate)
            )
        return losses

    @torch.no_grad()
    def training_inputs(
        self, images, proposals, features, feature_scales, targets, teacher=None
    ) -> Dict[str, torch.Tensor]:
        """With ``forward``'s arguments, what ``forward`` in training reads of the faces it learns
        from (best IoU > th_iou): their crops [N,3,h,w] in [0, 1], ROIAligned features (or None),
        age and gender labels (-1 = none) and, with a teacher, its age and gender logits.
        ``train_losses(crops, feature, ...)`` on them with every box matched is ``forward``'s loss
        (the boxes that match no face count in no term)."""
        boxes, crop_boxes, crops, feat = self._inputs(images, proposals, features, feature_scales)
        ages, genders, valid = match_labels(boxes, targets, self.th_iou)
        t_age, t_gender = self.teacher_answers(teacher, crops, crop_boxes, feature_scales)
        out = {"crops": crops, "feature": feat, "ages": ages, "genders": genders}
        if t_age is not None:
            out["teacher_age"] = t_age
            out["teacher_gender"] = t_gender
        return {k: (v[valid] if v is not None else None) for k, v in out.items()}

    def crops_and_features(
        self,
        images: List[torch.Tensor],
        proposals: List[Instances],
        features: Optional[Dict[str, torch.Tensor]] = None,
        feature_scales: Optional[List[Tuple[float, float]]] = None,
    ):
        """The age network's inputs (Sec. 3.1): per image the sanitized boxes, and over all faces the
        margin-enlarged RGB crops in [0, 1] [N,3,h,w] and their ROIAligned detector feature (or None).

        In training with CROP_JITTER, crop and feature are cut from the same jittered box; the boxes
        returned (which the losses match to faces) stay the detector's. With ZERO_FEATURE the
        feature is zeros, here, so that every caller (test-time flip, ONNX) gets the same."""
        boxes, _, crops, feat = self._inputs(images, proposals, features, feature_scales)
        return boxes, crops, feat

    def _inputs(self, images, proposals, features, feature_scales):
        """``crops_and_features`` with the crop boxes (full-resolution pixels) in second place."""
        boxes = [sanitize_boxes(p.pred_boxes.tensor.detach()) for p in proposals]
        cut = boxes
        if self.training and any(j > 0 for j in self.crop_jitter):
            cut = [sanitize_boxes(jitter_boxes(b, *self.crop_jitter)) for b in boxes]
        crop_boxes = [expand_boxes_with_margins(b, self.margins) for b in cut]
        crops = torch.cat([crop_faces(img, cb, self.crop_hw) for img, cb in zip(images, crop_boxes)])
        if self.input_format == "BGR":
            crops = crops.flip(1)  # TResNet is trained on RGB in [0, 1]
        return boxes, crop_boxes, crops, self.roi_feature(features, crop_boxes, feature_scales, crops.shape[0])

    def roi_feature(self, features, crop_boxes, feature_scales, n: int) -> Optional[torch.Tensor]:
        """The detector feature ROIAligned over each crop box to FEATURE_ROI_SIZE [n,C,h,w]; zeros
        with ZERO_FEATURE; None without the connection."""
        if self.in_feature is None:
            return None
        fmap = features[self.in_feature]
        if self.zero_feature:
            return fmap.new_zeros((n, fmap.shape[1]) + self.feature_hw)
        rois = [cb * cb.new_tensor([sx, sy, sx, sy]) for cb, (sx, sy) in zip(crop_boxes, feature_scales)]
        return roi_align_features(fmap, rois, self.feature_hw, 2)

    def predict(self, crops: torch.Tensor, feat: Optional[torch.Tensor], mirror: bool = False):
        """Age distributions [N,101] and P(female) [N] (None without the gender branch) of N crops;
        with ``mirror`` averaged over each crop and its mirror image (MODEL.AGE_HEAD.TEST_FLIP). The
        ROIAligned detector feature is mirrored with the crop: it stands in for the mirrored photo's
        feature (exact without the feature connection; close with it, as the detector trains with
        flips), at no detector cost."""
        if crops.shape[0] == 0:
            return crops.new_zeros((0, self.net.age_branch["fc"].out_features)), None
        n = crops.shape[0]
        if mirror:
            crops, feat = with_mirror(crops, feat)
        age_logits, gender_logits = self.run_net(crops, feat)
        age_probs = F.softmax(age_logits, dim=1)
        female_probs = gender_logits.sigmoid() if gender_logits is not None else None
        if mirror:
            age_probs = (age_probs[:n] + age_probs[n:]) / 2
            female_probs = (female_probs[:n] + female_probs[n:]) / 2 if female_probs is not None else None
        return age_probs, female_probs

    def run_net(self, crops: torch.Tensor, feat: Optional[torch.Tensor]):
        """The age network at test time, in MODEL.AGE_HEAD.INFERENCE_DTYPE, on at most
        TEST_CROPS_PER_CALL crops a call; float32 logits."""
        step = self.test_crops_per_call
        if not self.training and 0 < step < crops.shape[0]:
            parts = [
                self.run_net(crops[i : i + step], None if feat is None else feat[i : i + step])
                for i in range(0, crops.shape[0], step)
            ]
            gender = None if parts[0][1] is None else torch.cat([g for _, g in parts])
            return torch.cat([a for a, _ in parts]), gender
        if self.training:
            return self.net(crops, feat)
        return run_in(self.inference_dtype, crops.device, self.net, crops, feat)

    def attach(self, proposals: List[Instances], age_probs: torch.Tensor, female_probs: Optional[torch.Tensor]):
        """Hands each image's faces, in order, their rows of ``age_probs`` / ``female_probs`` as
        ``pred_age_probs``, ``pred_ages`` (read as AGE_READOUT says: the mean by default),
        ``pred_age_stds`` (the distribution's std x AGE_STD_SCALE) and ``pred_female_probs``."""
        start = 0
        for p in proposals:
            n = len(p)
            f = female_probs[start : start + n] if female_probs is not None else None
            self._attach(p, age_probs[start : start + n], f)
            start += n
        return proposals

    def _attach(self, inst: Instances, age_probs: torch.Tensor, female_probs: Optional[torch.Tensor]):
        probs, _, var = distribution_moments(age_probs)
        inst.pred_age_probs = probs
        inst.pred_ages = read_age(probs, self.age_readout)
        inst.pred_age_stds = var.sqrt() * self.age_std_scale
        if female_probs is None:
            female_probs = age_probs.new_full((age_probs.shape[0],), float("nan"))
        inst.pred_female_probs = female_probs
