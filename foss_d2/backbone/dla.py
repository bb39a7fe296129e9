"""DLA-34 with CenterNet's DLA-up / IDA-up neck: the detection backbone of FOSS (paper section 4.2).

The trunk is timm's ``dla34`` (levels 2-5, strides 4-32), built from scratch: no weights are
downloaded. The neck follows CenterNet's ``DLASeg``: iterative deep aggregation up to stride 4,
then one more IDA-up over the stride 4/8/16 outputs. Two stride-4 features are exposed:

* ``dla_up``: the output of DLA-up, i.e. before the extra aggregation CenterNet adds. The paper
  branches the intermediate feature connection off here.
* ``dla_out``: the final CenterNet feature, read by the heatmap/size/offset heads.

Deformable convolutions (CenterNet's "DLA-34 DCN") are optional through torchvision's
``deform_conv2d``; plain 3x3 convs are the default so that training on CPU stays fast.
"""

import math

import timm
import torch
from torch import nn
from torchvision.ops import deform_conv2d

from detectron2.layers import ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from ..utils.freezing import FrozenParts
from ..utils.precision import in_float32


class ModulatedDeformConv(nn.Module):
    """3x3 DCNv2 (offsets and masks predicted from the input) on torchvision's ``deform_conv2d``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        nn.init.kaiming_uniform_(self.weight, a=1)
        self.offset_mask = nn.Conv2d(in_ch, 27, 3, padding=1)
        # Zero offsets and 0.5 masks at start: the layer begins as a (scaled) regular conv.
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)

    def forward(self, x):
        # torchvision has no CPU bfloat16 kernel for it (MODEL.FOSS.DET_INFERENCE_DTYPE)
        return in_float32(self._deform, x)

    def _deform(self, x):
        o1, o2, mask = self.offset_mask(x).chunk(3, dim=1)
        offset = torch.cat([o1, o2], dim=1)
        return deform_conv2d(x, offset, self.weight, self.bias, padding=(1, 1), mask=mask.sigmoid())


class ConvNormRelu(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, norm: str, dcn: bool):
        super().__init__()
        self.conv = ModulatedDeformConv(in_ch, out_ch) if dcn else nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm = get_norm(norm, out_ch) or nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


def _bilinear_init(up: nn.ConvTranspose2d):
    """Initialise a depthwise transposed conv as bilinear upsampling (CenterNet's ``fill_up_weights``)."""
    w = up.weight.data
    f = math.ceil(w.size(2) / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    for i in range(w.size(2)):
        for j in range(w.size(3)):
            w[0, 0, i, j] = (1 - math.fabs(i / f - c)) * (1 - math.fabs(j / f - c))
    for ch in range(1, w.size(0)):
        w[ch, 0, :, :] = w[0, 0, :, :]


class IDAUp(nn.Module):
    """Iterative deep aggregation: project, upsample and merge each level into its finer neighbour."""

    def __init__(self, out_ch: int, channels, up_factors, norm: str, dcn: bool):
        super().__init__()
        # CenterNet assumes the finest level already has out_ch channels; project it otherwise.
        self.proj_0 = ConvNormRelu(channels[0], out_ch, norm, dcn) if channels[0] != out_ch else None
        for i in range(1, len(channels)):
            f = int(up_factors[i])
            setattr(self, f"proj_{i}", ConvNormRelu(channels[i], out_ch, norm, dcn))
            up = nn.ConvTranspose2d(out_ch, out_ch, f * 2, stride=f, padding=f // 2, groups=out_ch, bias=False)
            _bilinear_init(up)
            setattr(self, f"up_{i}", up)
            setattr(self, f"node_{i}", ConvNormRelu(out_ch, out_ch, norm, dcn))

    def forward(self, layers, startp: int, endp: int):
        if self.proj_0 is not None:
            layers[startp] = self.proj_0(layers[startp])
        for i in range(startp + 1, endp):
            # in float32 under a bfloat16 autocast (MODEL.FOSS.DET_INFERENCE_DTYPE): PyTorch's CPU
            # kernel for this depthwise transposed conv in bfloat16 took half the pass
            up = in_float32(getattr(self, f"up_{i - startp}"), getattr(self, f"proj_{i - startp}")(layers[i]))
            prev = layers[i - 1]
            if up.dtype != prev.dtype:
                # summed in the finer level's dtype (bfloat16): PyTorch's float32 + bfloat16 sum,
                # then the node conv's cast of it, took a tenth of the bfloat16 backbone
                up = up.to(prev.dtype)
            layers[i] = getattr(self, f"node_{i - startp}")(up + prev)


class DLAUp(nn.Module):
    def __init__(self, channels, scales, norm: str, dcn: bool):
        super().__init__()
        in_channels = list(channels)
        scales = list(scales)
        self.n = len(channels) - 1
        for i in range(self.n):
            j = -i - 2
            setattr(
                self,
                f"ida_{i}",
                IDAUp(channels[j], in_channels[j:], [s // scales[j] for s in scales[j:]], norm, dcn),
            )
            scales[j + 1 :] = [scales[j]] * len(scales[j + 1 :])
            in_channels[j + 1 :] = [channels[j]] * len(in_channels[j + 1 :])

    def forward(self, layers):
        layers = list(layers)
        out = [layers[-1]]
        for i in range(self.n):
            getattr(self, f"ida_{i}")(layers, len(layers) - i - 2, len(layers))
            out.insert(0, layers[-1])
        return out


class DLASeg(FrozenParts, Backbone):
    """DLA trunk + DLA-up + IDA-up; outputs ``dla_up`` and ``dla_out`` at stride 4."""

    def __init__(
        self,
        arch: str = "dla34",
        out_channels: int = 64,
        norm: str = "BN",
        dcn: bool = False,
        freeze_age_feature: bool = False,
    ):
        super().__init__()
        # Levels 2..5 of DLA (strides 4, 8, 16, 32). pretrained=False: nothing is downloaded.
        self.base = timm.create_model(arch, pretrained=False, features_only=True, out_indices=(2, 3, 4, 5))
        channels = self.base.feature_info.channels()
        strides = self.base.feature_info.reduction()
        scales = [s // strides[0] for s in strides]
        self.dla_up = DLAUp(channels, scales, norm, dcn)
        self.ida_up = IDAUp(out_channels, channels[:-1], scales[:-1], norm, dcn)
        self.up_channels = channels[0]
        self.out_channels = out_channels
        self.stride = strides[0]
        self.freeze_age_feature = freeze_age_feature
        if freeze_age_feature:
            # everything that dla_up, the age network's input, depends on: trunk and DLA-up
            self.freeze_parts([self.base, self.dla_up])

    def forward(self, x):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_age_feature):
            levels = self.base(x)
            up = self.dla_up(levels)
        y = list(up[:-1])  # IDA-up replaces the list's entries, never a tensor in place
        self.ida_up(y, 0, len(y))
        return {"dla_up": up[0], "dla_out": y[-1]}

    def output_shape(self):
        return {
            "dla_up": ShapeSpec(channels=self.up_channels, stride=self.stride),
            "dla_out": ShapeSpec(channels=self.out_channels, stride=self.stride),
        }


@BACKBONE_REGISTRY.register()
def build_dla_backbone(cfg, input_shape: ShapeSpec):
    c = cfg.MODEL.DLA
    return DLASeg(
        arch=c.ARCH, out_channels=c.OUT_CHANNELS, norm=c.NORM, dcn=c.USE_DCN, freeze_age_feature=c.FREEZE_AGE_FEATURE
    )
