"""TResNet (Ridnik et al.) as FOSS's age network, with the intermediate feature connection (paper
section 3.1): the detector's feature, ROIAligned over the crop box, is concatenated to the output of
the first block whose output has its size; that block is made narrower by the same number of
channels (48), so the parameter count does not grow."""

from typing import Optional, Sequence, Tuple

import torch
from timm.layers import BlurPool2d, ConvNormAct
from timm.models.tresnet import TResNet
from torch import nn


def _narrow_block(block: nn.Module, reduction: int) -> nn.Module:
    """A copy of the first block of a TResNet stage whose output has ``reduction`` fewer channels."""
    expansion = type(block).expansion
    out_ch = block.conv1.conv.out_channels * expansion
    if reduction % expansion or reduction >= out_ch:
        raise ValueError(f"WIDTH_REDUCTION={reduction} must be a multiple of {expansion} and smaller than {out_ch}")
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
