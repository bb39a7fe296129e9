"""Age / gender sub-network of FOSS: TResNet-S on face crops, with both connections of section 3.1.

* Facial cropping connection: each of the K boxes is enlarged by the margins (20% top, 10% other
  sides), cropped from the **full-resolution** image and resized to 160x224 (W x H) with ROIAlign.
* Intermediate feature connection: the detector's stride-4 feature is ROIAligned over the same crop
  box to 10x14 and concatenated to the output of the first TResNet block whose output is 10x14; that
  block is made narrower by the same number of channels (48), so the parameter count does not grow.

Losses (section 3.2): λ_mean·L_mean + λ_var·L_var + λ_ce·L_ce for age and λ_gen·BCE for gender,
over predicted boxes whose best IoU with a ground-truth face exceeds th_iou and whose face has the label.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from timm.layers import BlurPool2d, ConvNormAct
from timm.models.tresnet import TResNet
from torch import nn
from torchvision.ops import roi_align

from detectron2.config import configurable
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage


MAX_SAMPLING_RATIO = 16


def sanitize_boxes(boxes: torch.Tensor, min_size: float = 1.0) -> torch.Tensor:
    """Finite XYXY boxes at least ``min_size`` wide and high (an untrained detector emits anything)."""
    boxes = torch.nan_to_num(boxes.float(), nan=0.0, posinf=1e6, neginf=-1e6).clamp(-1e6, 1e6)
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2 = torch.maximum(boxes[:, 2], x1 + min_size)
    y2 = torch.maximum(boxes[:, 3], y1 + min_size)
    return torch.stack([x1, y1, x2, y2], dim=1)


def expand_boxes_with_margins(boxes: torch.Tensor, margins: Sequence[float]) -> torch.Tensor:
    """Enlarge XYXY boxes by fractions of their size: ``margins`` = (top, bottom, left, right)."""
    top, bottom, left, right = margins
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return torch.stack(
        [boxes[:, 0] - left * w, boxes[:, 1] - top * h, boxes[:, 2] + right * w, boxes[:, 3] + bottom * h], dim=1
    )


def crop_faces(image: torch.Tensor, boxes: torch.Tensor, out_hw: Tuple[int, int]) -> torch.Tensor:
    """Bilinear crops of a uint8 [C,H,W] image over XYXY ``boxes`` -> float [N,C,h,w] in [0, 1].

    Boxes must be finite with positive size (see ``sanitize_boxes``).
    Parts of a box outside the image read as 0 (black padding), as ROIAlign does. Only the union of
    the boxes is converted to float, so a 8000x8000 photo costs no more than its faces.
    """
    n = boxes.shape[0]
    c, h, w = image.shape
    if n == 0:
        return image.new_zeros((0, c) + tuple(out_hw), dtype=torch.float32)
    # One pixel of slack so that bilinear samples at the union's border see real neighbours.
    x0 = int(max(0, math.floor(boxes[:, 0].min().item()) - 1))
    y0 = int(max(0, math.floor(boxes[:, 1].min().item()) - 1))
    x1 = int(min(w, math.ceil(boxes[:, 2].max().item()) + 1))
    y1 = int(min(h, math.ceil(boxes[:, 3].max().item()) + 1))
    if x1 <= x0 or y1 <= y0:
        return image.new_zeros((n, c) + tuple(out_hw), dtype=torch.float32)
    region = image[:, y0:y1, x0:x1].float().div_(255.0)
    shifted = boxes.float() - boxes.new_tensor([x0, y0, x0, y0], dtype=torch.float32)
    # About one sample per source pixel, i.e. area averaging when shrinking (no aliasing on big
    # faces); capped so that an absurd box from an untrained detector cannot blow up the cost.
    side = torch.maximum((boxes[:, 3] - boxes[:, 1]) / out_hw[0], (boxes[:, 2] - boxes[:, 0]) / out_hw[1])
    ratio = int(min(MAX_SAMPLING_RATIO, max(1, math.ceil(side.max().item()))))
    return roi_align(
        region[None], [shifted], output_size=tuple(out_hw), spatial_scale=1.0, sampling_ratio=ratio, aligned=True
    )


def age_distribution(logits: torch.Tensor):
    """Softmax over the age classes (class j = j years), its mean and its variance."""
    return distribution_moments(F.softmax(logits, dim=1))


def distribution_moments(probs: torch.Tensor):
    """``probs`` over the age classes (class j = j years), with their mean and variance."""
    j = torch.arange(probs.shape[1], dtype=probs.dtype, device=probs.device)
    mean = (probs * j).sum(1)
    var = (probs * (j[None] - mean[:, None]) ** 2).sum(1)
    return probs, mean, var


def mean_variance_terms(logits: torch.Tensor, ages: torch.Tensor):
    """Per-sample mean loss (m - y)²/2, variance loss Σ p_j (j - m)², and softmax cross-entropy.

    Mean-variance loss of Pan et al. (CVPR 2018); ``ages`` in years, the CE class is round(age).
    """
    _, mean, var = age_distribution(logits)
    l_mean = (mean - ages) ** 2 / 2
    cls = ages.round().clamp(0, logits.shape[1] - 1).long()
    l_ce = F.cross_entropy(logits, cls, reduction="none")
    return l_mean, var, l_ce


def age_gender_losses(
    age_logits: torch.Tensor,
    gender_logits: Optional[torch.Tensor],
    proposal_boxes: List[torch.Tensor],
    targets: List[Instances],
    th_iou: float,
    lambdas: Dict[str, float],
) -> Dict[str, torch.Tensor]:
    """L_age and L_gen of section 3.2.

    Each predicted box takes the ground-truth face of best IoU (b_iou: IoU > th_iou); faces with
    age (gender) < 0 carry no such label (b_age, b_gen). Each loss is normalised by its number of
    unmasked faces; with none, the loss is an exact 0 that still belongs to the graph.
    """
    ages, genders, valid = [], [], []
    for boxes, tgt in zip(proposal_boxes, targets):
        k = boxes.shape[0]
        if len(tgt) == 0 or k == 0:
            ages.append(boxes.new_full((k,), -1.0))
            genders.append(boxes.new_full((k,), -1.0))
            valid.append(torch.zeros(k, dtype=torch.bool, device=boxes.device))
            continue
        iou = pairwise_iou(Boxes(boxes), tgt.gt_boxes)
        best_iou, idx = iou.max(dim=1)
        valid.append(best_iou > th_iou)
        ages.append(tgt.gt_ages.float()[idx] if tgt.has("gt_ages") else boxes.new_full((k,), -1.0))
        genders.append(tgt.gt_genders.float()[idx] if tgt.has("gt_genders") else boxes.new_full((k,), -1.0))
    ages, genders, valid = torch.cat(ages), torch.cat(genders), torch.cat(valid)

    age_mask = valid & (ages >= 0)
    n_age = int(age_mask.sum())
    if n_age > 0:
        l_mean, l_var, l_ce = mean_variance_terms(age_logits[age_mask], ages[age_mask])
        parts = {
            "mean": lambdas["mean"] * l_mean.sum() / n_age,
            "var": lambdas["var"] * l_var.sum() / n_age,
            "ce": lambdas["ce"] * l_ce.sum() / n_age,
        }
        loss_age = parts["mean"] + parts["var"] + parts["ce"]
    else:
        parts = {}
        loss_age = age_logits.sum() * 0.0
    losses = {"loss_age": loss_age}
    if gender_logits is not None:
        gen_mask = valid & (genders >= 0)
        n_gen = int(gen_mask.sum())
        if n_gen > 0:
            bce = F.binary_cross_entropy_with_logits(gender_logits[gen_mask], genders[gen_mask], reduction="sum")
            losses["loss_gender"] = lambdas["gen"] * bce / n_gen
        else:
            losses["loss_gender"] = gender_logits.sum() * 0.0
    try:
        storage = get_event_storage()
    except AssertionError:  # outside a trainer
        storage = None
    if storage is not None:
        storage.put_scalar("age_head/num_age_faces", n_age)
        for name, value in parts.items():
            storage.put_scalar(f"age_head/loss_age_{name}", float(value.detach()))
    return losses


def _narrow_block(block: nn.Module, reduction: int) -> nn.Module:
    """A copy of the first block of a TResNet stage whose output has ``reduction`` fewer channels."""
    expansion = type(block).expansion
    out_ch = block.conv1.conv.out_channels * expansion
    if reduction % expansion or reduction >= out_ch:
        raise ValueError(
            f"WIDTH_REDUCTION={reduction} must be a multiple of {expansion} and smaller than {out_ch}"
        )
    inplanes = block.conv1.conv.in_channels
    planes = (out_ch - reduction) // expansion
    stride = block.stride
    downsample = None
    if block.downsample is not None:
        layers = [nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)] if stride == 2 else []
        layers.append(ConvNormAct(inplanes, planes * expansion, kernel_size=1, stride=1, apply_act=False))
        downsample = nn.Sequential(*layers)
    new = type(block)(
        inplanes, planes, stride=stride, downsample=downsample, use_se=block.se is not None, aa_layer=BlurPool2d
    )
    # TResNet's residual init: the last BN of each block starts at 0.
    last = new.conv3 if hasattr(new, "conv3") else new.conv2
    nn.init.zeros_(last.bn.weight)
    return new


class TResNetAgeNet(nn.Module):
    """TResNet (from scratch) with an optional concatenation point and the two output branches.

    Each branch: 1x1 conv, global average pooling, dropout, then a 101-way (age) or a 1-logit
    (gender, P(female) = sigmoid) fully-connected layer (paper section 4.2).
    """

    STAGES = ("conv1", "layer1", "layer2", "layer3", "layer4")
    STRIDES = (4, 4, 8, 16, 32)

    def __init__(
        self,
        layers: Sequence[int] = (3, 3, 7, 3),
        width_factor: float = 0.9,
        crop_hw: Tuple[int, int] = (224, 160),
        feature_hw: Optional[Tuple[int, int]] = (14, 10),
        feature_channels: int = 0,
        width_reduction: int = 48,
        num_age_classes: int = 101,
        head_channels: int = 512,
        dropout: float = 0.2,
        gender_on: bool = True,
    ):
        super().__init__()
        net = TResNet(layers=list(layers), width_factor=width_factor, num_classes=0)
        self.body = net.body
        self.concat_stage = None
        self.feature_proj = None
        if feature_channels > 0:
            self.concat_stage = self._find_concat_stage(crop_hw, feature_hw)
            stage = getattr(self.body, self.concat_stage)
            stage[0] = _narrow_block(stage[0], width_reduction)
            if feature_channels != width_reduction:
                # The paper's detector feature has exactly WIDTH_REDUCTION (48) channels; otherwise a
                # 1x1 projection makes the concatenation fit the narrowed block.
                self.feature_proj = nn.Conv2d(feature_channels, width_reduction, 1, bias=False)
        num_features = net.num_features

        def branch(out_dim):
            return nn.ModuleDict(
                {
                    "conv": nn.Sequential(nn.Conv2d(num_features, head_channels, 1), nn.ReLU(inplace=True)),
                    "drop": nn.Dropout(dropout),
                    "fc": nn.Linear(head_channels, out_dim),
                }
            )

        self.age_branch = branch(num_age_classes)
        self.gender_branch = branch(1) if gender_on else None

    def _find_concat_stage(self, crop_hw, feature_hw) -> str:
        for name, stride in zip(self.STAGES, self.STRIDES):
            if name != "conv1" and (crop_hw[0] // stride, crop_hw[1] // stride) == tuple(feature_hw):
                return name
        raise ValueError(
            f"No TResNet stage outputs {feature_hw[1]}x{feature_hw[0]} (WxH) for crops of "
            f"{crop_hw[1]}x{crop_hw[0]}: FEATURE_ROI_SIZE must be CROP_SIZE / 4, 8, 16 or 32"
        )

    @staticmethod
    def _run_branch(branch, x):
        x = branch["conv"](x).mean(dim=(2, 3))
        return branch["fc"](branch["drop"](x))

    def forward(self, crops: torch.Tensor, feature: Optional[torch.Tensor] = None):
        x = crops
        for name, module in self.body.named_children():
            if name == self.concat_stage:
                x = module[0](x)
                f = feature if self.feature_proj is None else self.feature_proj(feature)
                x = torch.cat([x, f.to(x.dtype)], dim=1)
                x = module[1:](x)
            else:
                x = module(x)
        age = self._run_branch(self.age_branch, x)
        gender = self._run_branch(self.gender_branch, x).squeeze(1) if self.gender_branch is not None else None
        return age, gender


@ROI_HEADS_REGISTRY.register()
class TResNetAgeHead(nn.Module):
    """Crops K faces from the full-resolution images and estimates age distribution and gender."""

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
        test_flip: bool = False,
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
        self.test_flip = test_flip

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
            "test_flip": c.TEST_FLIP,
        }

    def forward(
        self,
        images: List[torch.Tensor],
        proposals: List[Instances],
        features: Optional[Dict[str, torch.Tensor]] = None,
        feature_scales: Optional[List[Tuple[float, float]]] = None,
        targets: Optional[List[Instances]] = None,
    ):
        """
        Args:
            images: full-resolution uint8 [C,H,W] images in ``INPUT.FORMAT`` channel order.
            proposals: per image, ``pred_boxes`` in full-resolution pixels.
            features: detector features; ``features[in_feature]`` is read when the connection is on.
            feature_scales: per image, (sx, sy) mapping full-resolution pixels to that feature's grid.
            targets: ground truth (``gt_boxes`` in full-resolution pixels, ``gt_ages``, ``gt_genders``).
        Returns:
            proposals with ``pred_ages``, ``pred_age_stds``, ``pred_age_probs``, ``pred_female_probs``
            (inference), or a dict of losses (training).
        """
        boxes = [sanitize_boxes(p.pred_boxes.tensor.detach()) for p in proposals]
        crop_boxes = [expand_boxes_with_margins(b, self.margins) for b in boxes]
        crops = torch.cat([crop_faces(img, cb, self.crop_hw) for img, cb in zip(images, crop_boxes)])
        if self.input_format == "BGR":
            crops = crops.flip(1)  # TResNet is trained on RGB in [0, 1]
        feat = None
        if self.in_feature is not None:
            fmap = features[self.in_feature]
            rois = [cb * cb.new_tensor([sx, sy, sx, sy]) for cb, (sx, sy) in zip(crop_boxes, feature_scales)]
            feat = roi_align(fmap, rois, output_size=self.feature_hw, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        if crops.shape[0] == 0 and not self.training:
            for p in proposals:
                self._attach(p, crops.new_zeros((0, self.net.age_branch["fc"].out_features)), None)
            return proposals
        if self.training:
            age_logits, gender_logits = self.net(crops, feat)
            return age_gender_losses(age_logits, gender_logits, boxes, targets, self.th_iou, self.lambdas)
        age_probs, female_probs = self._predict(crops, feat)
        start = 0
        for p, b in zip(proposals, boxes):
            n = b.shape[0]
            f = female_probs[start : start + n] if female_probs is not None else None
            self._attach(p, age_probs[start : start + n], f)
            start += n
        return proposals

    def _predict(self, crops: torch.Tensor, feat: Optional[torch.Tensor]):
        """Age distributions and P(female); with ``test_flip``, averaged over each crop and its mirror
        image (not in the paper). The ROIAligned detector feature is mirrored with the crop: it
        stands in for the mirrored photo's feature (exact without the feature connection; close with
        it, as the detector trains with flips), at no extra detector cost."""
        if self.test_flip:
            n = crops.shape[0]
            crops = torch.cat([crops, crops.flip(-1)])
            feat = torch.cat([feat, feat.flip(-1)]) if feat is not None else None
        age_logits, gender_logits = self.net(crops, feat)
        age_probs = F.softmax(age_logits, dim=1)
        female_probs = gender_logits.sigmoid() if gender_logits is not None else None
        if self.test_flip:
            age_probs = (age_probs[:n] + age_probs[n:]) / 2
            female_probs = (female_probs[:n] + female_probs[n:]) / 2 if female_probs is not None else None
        return age_probs, female_probs

    @staticmethod
    def _attach(inst: Instances, age_probs: torch.Tensor, female_probs: Optional[torch.Tensor]):
        probs, mean, var = distribution_moments(age_probs)
        inst.pred_age_probs = probs
        inst.pred_ages = mean
        inst.pred_age_stds = var.sqrt()
        if female_probs is None:
            female_probs = age_probs.new_full((age_probs.shape[0],), float("nan"))
        inst.pred_female_probs = female_probs
