"""CenterNet face detector head (Zhou et al. "Objects as Points"), the detection sub-network of FOSS.

Paper section 3.2: L_det = L_reg + λ_size·L_size + λ_off·L_off, where L_reg is the penalty-reduced
focal loss on Gaussian keypoint heatmaps, L_size the L1 loss on box sizes and L_off the L1 loss on
sub-pixel centre offsets. At inference, the K most probable peaks (3x3 max-pool NMS) become boxes.
CenterNet's flip test (MODEL.CENTERNET.TEST_FLIP, not in the FOSS paper) composes ``head_outputs``,
``average_with_mirror`` and ``decode`` in meta_arch/test_time_augmentation.py.
"""

import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes, Instances

from ..utils.precision import check_dtype, run_in
from .build import FACE_DETECTOR_REGISTRY


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """Largest radius such that a box whose corners move by it keeps IoU >= min_overlap with the GT box.

    CornerNet's three-case rule, exactly as in CenterNet's reference code (which keeps its ``/2``
    in place of ``/(2a)``; CenterNet's published models were trained with it).
    """
    one = torch.tensor([float(height), float(width)], dtype=torch.float64)
    return float(gaussian_radii(one[:1], one[1:], min_overlap))


def gaussian_radii(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """``gaussian_radius`` of many boxes at once, in float64 (boxes' heights and widths: tensors)."""
    h, w, m = height.double(), width.double(), float(min_overlap)
    b1 = h + w
    c1 = w * h * (1 - m) / (1 + m)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - m) * w * h
    r2 = (b2 + torch.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * m
    b3 = -2 * m * (h + w)
    c3 = (m - 1) * w * h
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_gaussian(heatmap: np.ndarray, center: Tuple[int, int], radius: int) -> np.ndarray:
    """Splat exp(-(dx²+dy²)/(2σ²)), σ = (2r+1)/6, at integer ``center`` (x, y) with elementwise max."""
    diameter = 2 * radius + 1
    sigma = diameter / 6.0
    ys, xs = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    x, y = int(center[0]), int(center[1])
    h, w = heatmap.shape
    left, right = min(x, radius), min(w - x, radius + 1)
    top, bottom = min(y, radius), min(h - y, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return heatmap
    region = heatmap[y - top : y + bottom, x - left : x + right]
    patch = g[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(region, patch, out=region)
    return heatmap


def splat_gaussians(heat: torch.Tensor, index: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, radii: torch.Tensor):
    """``draw_gaussian`` of N objects into ``heat`` [B,C,H,W] at once: object n's Gaussian of
    integer radius ``radii[n]`` at integer centre (cx[n], cy[n]) of plane ``index[n]`` (b * C + c),
    by elementwise max. Each object's window is its own size, so the work is the objects' pixels,
    not N x the largest window."""
    h, w = heat.shape[-2:]
    device = heat.device
    r = radii.long()
    side = 2 * r + 1
    area = side * side
    total = int(area.sum())  # (the one read from the device: it sets the samples' number)
    if total == 0:
        return heat
    obj = torch.repeat_interleave(torch.arange(len(r), device=device), area, output_size=total)
    k = torch.arange(total, device=device) - (torch.cumsum(area, 0) - area)[obj]  # within the window
    r, side = r[obj], side[obj]
    dy, dx = k.div(side, rounding_mode="floor") - r, k.remainder(side) - r
    sigma = side.double() / 6.0
    # (draw_gaussian's cut below float64's eps never applies: a window's corner is exp(-9) at least)
    g = torch.exp(-(dx * dx + dy * dy).double() / (2 * sigma * sigma))
    x, y = cx[obj] + dx, cy[obj] + dy
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    flat = ((index[obj] * h + y) * w + x).masked_fill(~inside, 0)
    # a sample outside adds max(heat[0], 0) at index 0, which leaves heat (>= 0) as it is
    heat.view(-1).scatter_reduce_(0, flat, g.float().masked_fill(~inside, 0.0), "amax")
    return heat


def fill_cells(mask: torch.Tensor, index: torch.Tensor, x1, y1, x2, y2, cells: int):
    """Sets to 1 the cells of ``mask`` [B,C,H,W] that each box (grid units, within the grid) of
    plane ``index[n]`` touches: rows int(y1) to max(int(y1) + 1, ceil(y2)), columns alike, at most
    ``cells`` of each."""
    h, w = mask.shape[-2:]
    steps = torch.arange(cells, device=mask.device)
    r0, c0 = y1.trunc().long(), x1.trunc().long()
    r1, c1 = torch.maximum(r0 + 1, y2.ceil().long()), torch.maximum(c0 + 1, x2.ceil().long())
    rows, cols = r0[:, None, None] + steps[None, :, None], c0[:, None, None] + steps[None, None, :]
    inside = (rows < r1[:, None, None]) & (cols < c1[:, None, None])
    flat = ((index[:, None, None] * h + rows.clamp(max=h - 1)) * w + cols.clamp(max=w - 1)).masked_fill(~inside, 0)
    mask.view(-1).scatter_reduce_(0, flat.reshape(-1), inside.reshape(-1).to(mask.dtype), "amax")
    return mask


def focal_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    alpha: float = 2.0,
    beta: float = 4.0,
    ignore: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Penalty-reduced pixel-wise focal loss (CenterNet eq. 1), normalised by the number of peaks.

    ``pred`` holds probabilities (after sigmoid), ``gt`` the Gaussian targets with exact 1 at centres.
    Pixels where ``ignore`` (same shape) is 1 add no negative term: a face too small to be a target
    costs nothing whether the detector fires on it or not.
    """
    pred = pred.float().clamp(1e-4, 1 - 1e-4)  # (1 - 1e-4 does not exist in fp16)
    pos = gt.eq(1).float()
    neg = 1.0 - pos
    if ignore is not None:
        neg = neg * (1.0 - ignore)
    pos_loss = torch.log(pred) * (1 - pred) ** alpha * pos
    neg_loss = torch.log(1 - pred) * pred**alpha * (1 - gt) ** beta * neg
    num_pos = pos.sum()
    if num_pos == 0:
        return -neg_loss.sum()
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos


def top_peaks(heat: torch.Tensor, k: int, nms_kernel: int = 3):
    """The ``k`` highest 3x3-max-pool peaks of a sigmoid heatmap [B,C,H,W]: scores, classes and
    flat pixel indices [B,K], and the peaks' x and y on the heatmap grid."""
    b, c, h, w = heat.shape
    pad = (nms_kernel - 1) // 2
    hmax = F.max_pool2d(heat, nms_kernel, stride=1, padding=pad)
    heat = heat * (hmax == heat).float()
    k = min(k, c * h * w)
    scores, inds = heat.reshape(b, -1).topk(k)
    classes = inds // (h * w)
    pix = inds % (h * w)
    return scores, classes, pix, (pix % w).float(), (pix // w).float()


def peak_boxes(size: torch.Tensor, offset: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, stride: float):
    """Boxes [B,K,4] in input pixels from the sizes and offsets [B,2,K] at the peaks (xs, ys) [B,K]."""
    cx = xs + offset[:, 0]
    cy = ys + offset[:, 1]
    bw, bh = size[:, 0].clamp(min=0), size[:, 1].clamp(min=0)  # a negative size means an empty box
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=2) * stride


def decode_centernet(
    heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, k: int, stride: float, nms_kernel: int = 3
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-K peaks of a sigmoid heatmap [B,C,H,W] -> boxes [B,K,4] (input pixels), scores [B,K], classes [B,K]."""
    b = heat.shape[0]
    scores, classes, pix, xs, ys = top_peaks(heat, k, nms_kernel)
    k = pix.shape[1]
    size = size.reshape(b, 2, -1).gather(2, pix.unsqueeze(1).expand(b, 2, k))
    offset = offset.reshape(b, 2, -1).gather(2, pix.unsqueeze(1).expand(b, 2, k))
    return peak_boxes(size, offset, xs, ys, stride), scores, classes


def _plain_conv(m: nn.Module) -> bool:
    """An nn.Conv2d whose answer is F.conv2d of its weight and bias: the class itself, or a subclass
    that says so (engine/fusion.py's PrepackedConv2d, which only runs it faster)."""
    return type(m) is nn.Conv2d or (isinstance(m, nn.Conv2d) and getattr(m, "answers_as_conv2d", False))


def _point_head(head: nn.Sequential):
    """(conv3x3, conv1x1) of a ``_head`` (3x3 conv, ReLU, 1x1 conv), or None for any other head."""
    if not isinstance(head, nn.Sequential) or len(head) != 3:
        return None
    conv3, relu, conv1 = head
    if not (
        _plain_conv(conv3)
        and conv3.kernel_size == (3, 3)
        and conv3.padding == (1, 1)
        and conv3.stride == (1, 1)
        and conv3.dilation == (1, 1)
        and conv3.groups == 1
        and conv3.padding_mode == "zeros"
        and isinstance(relu, nn.ReLU)
        and _plain_conv(conv1)
        and conv1.kernel_size == (1, 1)
        and conv1.groups == 1
    ):
        return None
    return conv3, conv1


def head_at(head: nn.Sequential, x: torch.Tensor, bidx: torch.Tensor, pix: torch.Tensor) -> Optional[torch.Tensor]:
    """A ``_head`` evaluated only at the points (image ``bidx[n]``, flat pixel index ``pix[n]``) of
    its input x [B,C,H,W] -> [N,out]: the same numbers (and gradients) as the dense head gathered
    there, at the cost of N pixels instead of B x H x W (None if ``head`` is not of that form)."""
    parts = _point_head(head)
    if parts is None:
        return None
    conv3, conv1 = parts
    h, w = x.shape[2:]
    offsets = torch.arange(-1, 2, device=x.device)
    rows = (pix // w).view(-1, 1, 1) + offsets.view(1, 3, 1)
    cols = (pix % w).view(-1, 1, 1) + offsets.view(1, 1, 3)
    outside = (rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)
    # each point's 3x3 neighbourhood, zeros outside the map as the conv's padding: gathered from x
    # itself, as a zero-padded copy of the whole map cost more than the head at a photo's points
    patches = x[bidx.view(-1, 1, 1), :, rows.clamp(0, h - 1), cols.clamp(0, w - 1)].masked_fill(outside[..., None], 0)
    # [N,3,3,C] -> [N,C,3,3]: the (C, ky, kx) order of the conv weight
    patches = patches.permute(0, 3, 1, 2).reshape(pix.numel(), x.shape[1] * 9)
    hidden = F.linear(patches, conv3.weight.reshape(conv3.out_channels, -1), conv3.bias).relu()
    return F.linear(hidden, conv1.weight.reshape(conv1.out_channels, -1), conv1.bias)


def head_at_points(head: nn.Sequential, x: torch.Tensor, pix: torch.Tensor) -> Optional[torch.Tensor]:
    """``head_at`` for the K flat pixel indices ``pix`` [B,K] of every image -> [B,out,K]."""
    b, k = pix.shape
    out = head_at(head, x, torch.arange(b, device=pix.device).repeat_interleave(k), pix.reshape(-1))
    return None if out is None else out.view(b, k, -1).transpose(1, 2)


def average_with_mirror(maps: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """Mean of [B,C,H,W] maps and the maps of the mirrored input, turned back (flipped along W)."""
    return (maps + mirrored.flip(-1)) / 2


def _head(in_ch: int, head_conv: int, out_ch: int, bias_init: float = 0.0) -> nn.Sequential:
    head = nn.Sequential(
        nn.Conv2d(in_ch, head_conv, 3, padding=1, bias=True),
        nn.ReLU(inplace=True),
        nn.Conv2d(head_conv, out_ch, 1, bias=True),
    )
    nn.init.constant_(head[-1].bias, bias_init)
    return head


def copy_hidden_channels(dst: nn.Sequential, src: nn.Sequential, channels: torch.Tensor):
    """Sets the 3x3-ReLU-1x1 head ``dst`` (``len(channels)`` hidden channels) to ``src`` restricted
    to its hidden ``channels``; ``src``'s 1x1 bias too where ``dst``'s 1x1 conv has one."""
    d3, d1 = _point_head(dst)
    s3, s1 = _point_head(src)
    with torch.no_grad():
        d3.weight.copy_(s3.weight[channels])
        d3.bias.copy_(s3.bias[channels])
        d1.weight.copy_(s1.weight[:, channels])
        if d1.bias is not None:
            d1.bias.copy_(s1.bias)


def _sub_head(src: nn.Sequential, channels: torch.Tensor, with_bias: bool) -> nn.Sequential:
    """A new ``_head`` of ``src``'s hidden ``channels`` only (weights copied)."""
    conv3, conv1 = _point_head(src)
    head = _head(conv3.in_channels, len(channels), conv1.out_channels)
    if not with_bias:
        head[2].bias = None
    copy_hidden_channels(head, src, channels)
    return head.to(conv3.weight.device)


def run_head(head: nn.Module, x: torch.Tensor, dtype: str = "float32") -> torch.Tensor:
    """``head(x)``; for a 3x3-ReLU-1x1 head with ``dtype`` "bfloat16", its 3x3 conv and ReLU (nearly
    all its work) under ``run_in``'s autocast and its 1x1 conv in float32 on their float32 output."""
    if dtype == "float32" or _point_head(head) is None:
        return head(x)
    return head[2](run_in(dtype, x.device, head[:2], x))


class BoundedHeatmapHead(nn.Module):
    """A one-class heatmap ``_head`` (3x3 conv, ReLU, 1x1 conv) split for inference by the sign of
    each hidden channel's 1x1 weight. ReLU outputs are never negative, so the logit is at most the
    sum over the ``upper`` channels (all those of positive weight): where that bound is at most the
    logit of ``min_score`` no peak above it can be, and the ``rest`` (negative weights) run only at
    the other pixels (``head_at``). Every pixel above ``min_score`` gets its logit (to float
    rounding) and every other one at most that floor, so 3x3 peak picking keeps the same peaks above
    it. The shipped detector (118 of 256 weights positive): on 100 WIDER val photos 0.66% of the
    pixels (at most 4.1% in a photo) needed the rest at 0.2 (tools/research/heatmap_bound.py).
    ``upper`` is rounded up to oneDNN's blocks of ``block`` outputs (one block at least) with the
    most negative channels, which tighten the bound for free. A head trained otherwise can have a
    loose bound (distill_heads.py's 64-channel head: 4 positive weights, the bound clearing 0.2 at
    87% of the pixels): beyond ``dense_above`` of them the rest runs densely, as the gather of each
    pixel's neighbourhood then costs more (a 128 px feature map, 128 or 48 rest channels, one or two
    threads: the two break even at 15-28%)."""

    dense_above = 0.15
    # the rest runs where the bound clears the threshold's logit less this: a pixel left at its
    # bound then scores under min_score whatever float32 rounding does in the sigmoid (the margin
    # only adds a few pixels computed exactly)
    floor_margin = 1e-3

    def __init__(self, head: nn.Sequential, block: int = 16):
        super().__init__()
        parts = _point_head(head)
        if parts is None or parts[1].out_channels != 1:
            raise ValueError("BoundedHeatmapHead splits a one-class 3x3-ReLU-1x1 head")
        w = parts[1].weight.detach().view(-1)
        # positive first, the most negative last; stable, so that an ONNX graph of the upper part
        # (engine/onnx_backend.py) and a split made again from the same weights agree
        by_weight = torch.argsort(w, descending=True, stable=True)
        n_positive = int((w > 0).sum())
        n_upper = min(len(w), max(1, -(-n_positive // block)) * block)
        n_pad = n_upper - n_positive
        positive, negative = by_weight[:n_positive], by_weight[n_positive:]
        upper = torch.cat([positive, negative.flip(0)[:n_pad]])
        rest = negative.flip(0)[n_pad:]
        # the sub-heads' own initialisation must not move the global random state (a seeded run
        # that loads a model for inference halfway would draw other numbers afterwards)
        with torch.random.fork_rng(devices=[]):
            self.upper = _sub_head(head, upper, with_bias=True)
            self.rest = _sub_head(head, rest, with_bias=False) if len(rest) else None

    def forward(
        self, x: torch.Tensor, min_score: Optional[float] = None, bound_only: bool = False, dtype: str = "float32"
    ) -> torch.Tensor:
        """Heatmap logits [B,1,H,W]: exact everywhere, or with ``min_score`` exact where they exceed
        its logit and at most that elsewhere; with ``bound_only`` the upper part's output alone.
        ``dtype``: the upper part's 3x3 conv in it (``run_head``); the logits stay at most the
        bound so computed, the rest adding only non-positive terms."""
        bound = run_head(self.upper, x, dtype)
        return bound if bound_only else self.complete(bound, x, min_score)

    def complete(self, bound: torch.Tensor, x: torch.Tensor, min_score: Optional[float] = None) -> torch.Tensor:
        """``forward``'s logits from the upper part's output ``bound`` (computed here, or in the
        ONNX detector graph) and the head's input ``x``."""
        if self.rest is None:
            return bound
        if min_score is None or min_score <= 0.0:
            return bound + self.rest(x)
        floor = math.log(min_score / (1.0 - min_score)) - self.floor_margin if min_score < 1.0 else math.inf
        b, _, h, w = bound.shape
        logits = bound.reshape(b, h * w).clone()
        bidx, pix = (logits > floor).nonzero(as_tuple=True)
        if len(pix) > self.dense_above * logits.numel():
            return bound + self.rest(x)
        if len(pix):
            logits[bidx, pix] += self.rest_at(x, bidx, pix)
        return logits.view(b, 1, h, w)

    def rest_at(self, x: torch.Tensor, bidx: torch.Tensor, pix: torch.Tensor) -> torch.Tensor:
        """The rest's share of the logit at the points (image ``bidx[n]``, flat pixel ``pix[n]``) -> [N]."""
        return head_at(self.rest, x, bidx, pix)[:, 0]


@FACE_DETECTOR_REGISTRY.register()
class CenterNet(nn.Module):
    """Heatmap + size + offset heads on a stride-4 feature; returns the K most probable faces.

    Boxes are in the coordinates of the detector input (the resized image); the meta-architecture
    maps them back to the full-resolution image.
    """

    @configurable
    def __init__(
        self,
        *,
        in_feature: str,
        in_channels: int,
        stride: int,
        num_classes: int = 1,
        head_conv: int = 256,
        heatmap_head_conv: int = 0,
        lambda_size: float = 0.1,
        lambda_off: float = 1.0,
        focal_alpha: float = 2.0,
        focal_beta: float = 4.0,
        min_overlap: float = 0.7,
        prior_prob: float = 0.1,
        nms_kernel: int = 3,
        ignore_below: float = 0.0,
        heatmap_bound: bool = False,
    ):
        super().__init__()
        self.heatmap_bound = bool(heatmap_bound)  # read by engine/fusion.py's optimize_for_inference
        self.ignore_below = float(ignore_below)
        self.in_feature = in_feature
        self.stride = stride
        self.num_classes = num_classes
        self.lambda_size = lambda_size
        self.lambda_off = lambda_off
        self.focal_alpha = focal_alpha
        self.focal_beta = focal_beta
        self.min_overlap = min_overlap
        self.nms_kernel = nms_kernel
        # The size and offset heads only where they are read: at the K peaks in inference
        # (decode_sparse; off, they run densely: the benchmark's "as trained" baseline) and at the
        # faces' centres in training (sparse_train; the same losses and gradients as dense heads).
        self.sparse_test = True
        self.sparse_train = True
        bias = -math.log((1 - prior_prob) / prior_prob)
        self.heatmap = _head(in_channels, heatmap_head_conv or head_conv, num_classes, bias)
        self.size = _head(in_channels, head_conv, 2)
        self.offset = _head(in_channels, head_conv, 2)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        c = cfg.MODEL.CENTERNET
        shape = input_shape[c.IN_FEATURE]
        return {
            "in_feature": c.IN_FEATURE,
            "in_channels": shape.channels,
            "stride": shape.stride,
            "num_classes": c.NUM_CLASSES,
            "head_conv": c.HEAD_CONV,
            "heatmap_head_conv": c.HEATMAP_HEAD_CONV,
            "lambda_size": c.LAMBDA_SIZE,
            "lambda_off": c.LAMBDA_OFF,
            "focal_alpha": c.FOCAL_ALPHA,
            "focal_beta": c.FOCAL_BETA,
            "min_overlap": c.MIN_OVERLAP,
            "prior_prob": c.PRIOR_PROB,
            "nms_kernel": c.NMS_KERNEL,
            "ignore_below": c.IGNORE_BELOW,
            "heatmap_bound": c.HEATMAP_BOUND,
        }

    def forward(
        self,
        image_size: Tuple[int, int],
        features: Dict[str, torch.Tensor],
        k: int,
        gt_instances: Optional[List[Instances]] = None,
        min_score: Optional[float] = None,
        dense_dtype: str = "float32",
    ):
        """
        Args:
            image_size: (H, W) of the detector input.
            features: backbone outputs; ``features[in_feature]`` is [B,C,H/4,W/4].
            k: number of peaks to return per image.
            gt_instances: boxes in detector-input coordinates; when given, losses are computed.
            min_score: at inference, peaks scoring at most this are not decoded (the caller drops
                them): K is then a cap, not a cost. Every image keeps as many peaks as the image of
                the batch with the most above it.
            dense_dtype: at inference, the heatmap head's dense 3x3 conv in it (``run_head``): the
                caller's MODEL.FOSS.DET_INFERENCE_DTYPE at test time; in float32 it was 7 of a
                group photo's 76 ms in the fast preset on an AMX CPU.
        Returns:
            list of Instances (``pred_boxes``, ``scores``, ``pred_classes``) and a dict of losses.
        """
        check_dtype(dense_dtype, "dense_dtype")
        if gt_instances is None and self.sparse_test and not torch.is_grad_enabled():
            # Inference: the size and offset heads are read only at the K peaks, so they run only
            # there (two thirds of the heads' cost at 480 px: the heads are as costly as the backbone).
            heat = self.heat_logits(features, min_score, dense_dtype).sigmoid()
            results = self.decode_sparse(image_size, features, heat, k, min_score)
            if results is not None:
                return results, {}
        if gt_instances is not None and self.sparse_train and _point_head(self.size) and _point_head(self.offset):
            # Training: the size and offset losses read the heads at the faces' centres only, and
            # the K proposals read them at the peaks; densely they were a third of the detector's
            # multiply-adds at 480 px, forward and backward.
            heat_logits = self.heat_logits(features)
            losses = self.losses(heat_logits, features[self.in_feature], gt_instances)
            return self.decode_sparse(image_size, features, heat_logits.detach().sigmoid(), k), losses
        dtype = dense_dtype if gt_instances is None else "float32"
        heat_logits, size, offset = self.head_outputs(features, dtype=dtype)
        losses = {}
        if gt_instances is not None:
            losses = self.losses(heat_logits, features[self.in_feature], gt_instances, size, offset)
        with torch.no_grad():
            results = self.decode(image_size, heat_logits.sigmoid(), size, offset, k)
        return results, losses

    def heat_logits(
        self, features: Dict[str, torch.Tensor], min_score: Optional[float] = None, dtype: str = "float32"
    ) -> torch.Tensor:
        """Heatmap logits [B,C,h,w]; with ``min_score`` and a ``BoundedHeatmapHead``, only those above
        its logit are exact (the others at most that). The dense 3x3 conv in ``dtype``
        (``run_head``) unless autograd or tracing (the ONNX export) is on."""
        x = features[self.in_feature]
        if torch.is_grad_enabled() or torch.jit.is_tracing():
            dtype = "float32"
        if isinstance(self.heatmap, BoundedHeatmapHead):
            return self.heatmap(x, min_score, dtype=dtype)
        return run_head(self.heatmap, x, dtype)

    def bound_heatmap(self) -> bool:
        """Replaces, for inference, the heatmap head by its ``BoundedHeatmapHead`` (same logits; the
        negative-weight channels only where a peak above the caller's ``min_score`` is possible);
        False, changing nothing, for any other head than a one-class 3x3-ReLU-1x1."""
        if isinstance(self.heatmap, BoundedHeatmapHead):
            return True
        if _point_head(self.heatmap) is None or self.num_classes != 1:
            return False
        self.heatmap = BoundedHeatmapHead(self.heatmap)
        return True

    @torch.no_grad()
    def decode_sparse(
        self,
        image_size: Tuple[int, int],
        features: Dict[str, torch.Tensor],
        heat: torch.Tensor,
        k: int,
        min_score: Optional[float] = None,
    ):
        """``decode`` with the size and offset heads evaluated at the peaks only (``head_at_points``),
        and with ``min_score`` only at those above it (see ``forward``); None when a head is not
        CenterNet's 3x3-ReLU-1x1 (then the dense path runs)."""
        scores, classes, pix, xs, ys = top_peaks(heat, k, self.nms_kernel)
        if min_score is not None:
            # topk sorts each row, so the peaks above the floor come first; one at least, so that
            # nothing downstream meets an empty batch of peaks
            keep = max(int((scores > min_score).sum(dim=1).max()), 1)
            scores, classes, pix, xs, ys = (t[:, :keep] for t in (scores, classes, pix, xs, ys))
        x = features[self.in_feature]
        size = head_at_points(self.size, x, pix)
        offset = head_at_points(self.offset, x, pix)
        if size is None or offset is None:
            return None
        return self._instances(image_size, peak_boxes(size, offset, xs, ys, self.stride), scores, classes)

    def head_outputs(self, features: Dict[str, torch.Tensor], with_offset: bool = True, dtype: str = "float32"):
        """Heatmap logits [B,C,h,w] (``heat_logits``'s ``dtype``), sizes and (unless ``with_offset``
        is False) offsets [B,2,h,w]."""
        x = features[self.in_feature]
        return self.heat_logits(features, dtype=dtype), self.size(x), (self.offset(x) if with_offset else None)

    @torch.no_grad()
    def decode(self, image_size: Tuple[int, int], heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, k: int):
        """The ``k`` most probable faces of each image of a sigmoid heatmap [B,C,h,w], as Instances in
        detector-input pixels."""
        boxes, scores, classes = decode_centernet(heat, size, offset, k, self.stride, self.nms_kernel)
        return self._instances(image_size, boxes, scores, classes)

    @staticmethod
    def _instances(image_size, boxes, scores, classes) -> List[Instances]:
        results = []
        for i in range(boxes.shape[0]):
            inst = Instances(image_size)
            inst.pred_boxes = Boxes(boxes[i])
            inst.scores = scores[i]
            inst.pred_classes = classes[i]
            results.append(inst)
        return results

    @torch.no_grad()
    def targets(self, gt_instances: List[Instances], out_h: int, out_w: int, device):
        """Gaussian heatmaps and per-object size/offset targets on the stride-4 grid, and the
        ignore mask (1 on the grid cells of faces whose longer side is under ``ignore_below``
        input pixels; None when no face is). All faces of the batch at once on ``device``: the same
        numbers as ``gaussian_radius`` and ``draw_gaussian`` face by face, which in the training
        step's main process took 21 ms a batch of 32 of the lent window's detector stage on a CPU
        core (5.9 ms at once), and on a GPU waited for the device at every image."""
        b, nc, s = len(gt_instances), self.num_classes, self.stride
        heat = torch.zeros((b, nc, out_h, out_w), dtype=torch.float32, device=device)
        boxes = [inst.gt_boxes.tensor.detach().to(device, torch.float32).reshape(-1, 4) for inst in gt_instances]
        boxes = torch.cat(boxes) / s if boxes else torch.zeros((0, 4), device=device)

        def classes(inst):
            if inst.has("gt_classes"):
                return inst.gt_classes.to(device).long()
            return torch.zeros(len(inst), dtype=torch.long, device=device)

        cls = [classes(inst) for inst in gt_instances]
        cls = torch.cat(cls) if cls else torch.zeros((0,), dtype=torch.long, device=device)
        if bool(((cls < 0) | (cls >= nc)).any()):  # it would land in another image's heatmap
            ids = f"{int(cls.min())} to {int(cls.max())}"
            raise ValueError(f"CenterNet: gt_classes {ids}, where MODEL.CENTERNET.NUM_CLASSES is {nc}")
        # each face's heatmap plane: image * num_classes + class
        counts = torch.tensor([len(inst) for inst in gt_instances], dtype=torch.long, device=device)
        plane = torch.repeat_interleave(torch.arange(b, device=device), counts, output_size=len(cls)) * nc + cls
        x1, y1, x2, y2 = boxes.unbind(1)
        small = torch.zeros_like(x1, dtype=torch.bool)
        ignore = None
        if self.ignore_below > 0:
            # the face's visible extent on the whole grid (not the centre's clip below)
            vx1, vx2, vy1, vy2 = x1.clamp(0, out_w), x2.clamp(0, out_w), y1.clamp(0, out_h), y2.clamp(0, out_h)
            small = (vx2 > vx1) & (vy2 > vy1) & (torch.maximum(vx2 - vx1, vy2 - vy1) * s < self.ignore_below)
            if bool(small.any()):
                # every cell the box covers, so that a peak anywhere on the face is free
                ignore = torch.zeros_like(heat)
                cells = math.ceil(self.ignore_below / s) + 1  # a small face spans at most this many
                fill_cells(ignore, plane[small], vx1[small], vy1[small], vx2[small], vy2[small], cells)
        x1, x2 = x1.clamp(0, out_w - 1), x2.clamp(0, out_w - 1)
        y1, y2 = y1.clamp(0, out_h - 1), y2.clamp(0, out_h - 1)
        w, h = x2 - x1, y2 - y1
        keep = ~small & (w > 0) & (h > 0)
        x1, y1, x2, y2, w, h, plane = (t[keep] for t in (x1, y1, x2, y2, w, h, plane))
        radii = gaussian_radii(h.ceil(), w.ceil(), self.min_overlap).trunc().clamp_min(0).long()
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ix, iy = cx.trunc().long(), cy.trunc().long()  # int(): the centres are >= 0
        splat_gaussians(heat, plane, ix, iy, radii)
        return (
            heat,
            torch.div(plane, nc, rounding_mode="floor"),
            iy * out_w + ix,
            torch.stack([w, h], dim=1),
            torch.stack([cx - ix, cy - iy], dim=1),
            ignore,
        )

    def losses(self, heat_logits, x, gt_instances, size=None, offset=None):
        """CenterNet's losses; the size and offset heads are run on the feature ``x`` at the faces'
        centres (``head_at``: heads of CenterNet's form only) unless their dense outputs ``size`` and
        ``offset`` [B,2,h,w] are given."""
        b, _, h, w = heat_logits.shape
        heat_gt, bidx, inds, size_gt, off_gt, ignore = self.targets(gt_instances, h, w, heat_logits.device)
        # float32: under fp16 autocast a logit over 8.3 gives a sigmoid of exactly 1, which the clamp
        # cannot move (fp16 has no 1 - 1e-4): log(0) made the loss NaN at a confident centre
        l_reg = focal_loss(heat_logits.float().sigmoid(), heat_gt, self.focal_alpha, self.focal_beta, ignore)
        n = max(len(inds), 1)

        def at_centres(head, dense):  # the predicted (w, h) / (dx, dy) at each object's integer centre
            if dense is None:  # forward runs this only for CenterNet's 3x3-ReLU-1x1 heads
                return head_at(head, x, bidx, inds)
            return dense.permute(0, 2, 3, 1).reshape(b, h * w, -1)[bidx, inds]

        size_pred = at_centres(self.size, size)
        off_pred = at_centres(self.offset, offset)
        # CenterNet's RegL1Loss: summed L1 over both coordinates / (2 · #objects).
        l_size = F.l1_loss(size_pred, size_gt, reduction="sum") / (2 * n)
        l_off = F.l1_loss(off_pred, off_gt, reduction="sum") / (2 * n)
        return {
            "loss_heatmap": l_reg,
            "loss_size": self.lambda_size * l_size,
            "loss_offset": self.lambda_off * l_off,
        }
