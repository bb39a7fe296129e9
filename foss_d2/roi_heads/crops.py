"""The facial cropping connection of FOSS (paper section 3.1): each face box, enlarged by the
margins (20% top, 10% other sides), is cropped from the full-resolution image with ROIAlign."""

import contextlib
import math
import threading
from typing import Optional, Sequence, Tuple

import torch
from torchvision.ops import roi_align

MAX_SAMPLING_RATIO = 16
# roi_align_separable's windows a batch of boxes, in floats (128 MiB): a photo's few huge boxes (an
# untrained detector's) are cut one or a few at a time
WINDOW_FLOATS = 1 << 25
_kernel = threading.local()


@contextlib.contextmanager
def torchvision_roi_align():
    """Within it (this thread), the crops and the feature's ROIAlign run torchvision's kernel on
    CPU too, as FOSS-D2 did until 2026-12-07: ``tools/benchmark.py peer``'s "as trained" variant
    runs the code as it was when issue 19 was filed."""
    before = getattr(_kernel, "torchvision", False)
    _kernel.torchvision = True
    try:
        yield
    finally:
        _kernel.torchvision = before


def _separable(device: torch.device) -> bool:
    """Whether ROIAlign runs as ``roi_align_separable`` (on CPU) rather than torchvision's kernel."""
    return device.type == "cpu" and not getattr(_kernel, "torchvision", False)


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


def jitter_boxes(
    boxes: torch.Tensor, shift: float, scale: float, aspect: float, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """XYXY boxes as a less exact detector might give them (MODEL.AGE_HEAD.CROP_JITTER): the centre
    moved by up to ``shift`` of the width / height, the size (sqrt of the area) times a factor in
    [1 - scale, 1 + scale], the aspect ratio w / h times a factor in [1 - aspect, 1 + aspect]."""
    if boxes.shape[0] == 0 or (shift <= 0 and scale <= 0 and aspect <= 0):
        return boxes
    n = boxes.shape[0]
    u = torch.rand((n, 4), generator=generator, dtype=torch.float32).to(boxes) * 2 - 1  # U(-1, 1)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + u[:, 0] * shift * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + u[:, 1] * shift * h
    s = 1 + u[:, 2] * scale
    r = (1 + u[:, 3] * aspect).sqrt()
    nw, nh = w * s * r, h * s / r
    return torch.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], dim=1)


def _axis_samples(start: torch.Tensor, length: torch.Tensor, bins: int, ratio: int, extent: int):
    """ROIAlign's bilinear samples along one axis (torchvision's kernel with ``aligned=True``) for
    n boxes from ``start`` over ``length`` pixels [n] of an axis of ``extent`` pixels: ``ratio``
    samples a bin, each reading two neighbouring pixels. Returns their pixel indices and weights
    [n, bins, 2 * ratio], the weights divided by ``ratio`` (a bin is the mean of its samples)."""
    n = start.shape[0]
    k = torch.arange(bins * ratio, device=start.device, dtype=start.dtype)
    step = (length / bins)[:, None]
    bin_index, sample = k.div(ratio, rounding_mode="floor"), k.remainder(ratio)
    pos = (start - 0.5)[:, None] + bin_index * step + (sample + 0.5) * step / ratio
    inside = (pos >= -1.0) & (pos <= extent)  # a sample further out reads 0
    pos = pos.clamp(min=0.0)
    low = pos.floor().clamp(max=extent - 1)
    frac = (pos - low) * (low < extent - 1)  # at the last pixel a sample reads that pixel alone
    high = (low + 1).clamp(max=extent - 1)
    w = inside.to(pos.dtype) / ratio
    index = torch.cat([low.view(n, bins, ratio), high.view(n, bins, ratio)], dim=2).long()
    weight = torch.cat([((1 - frac) * w).view(n, bins, ratio), (frac * w).view(n, bins, ratio)], dim=2)
    return index, weight


def roi_align_separable(
    image: torch.Tensor, boxes: torch.Tensor, output_size: Tuple[int, int], sampling_ratio: int
) -> torch.Tensor:
    """torchvision's ``roi_align(image[None], [boxes], output_size, 1.0, sampling_ratio, aligned=True)``
    for a [C,H,W] ``image`` (any dtype; the result is float32 [N,C,h,w], contiguous), computed as two small
    matrix products a box (ROIAlign over an axis-aligned box is bilinear sampling, separable in y
    and x): each box reads only its own window of the image. torchvision's CPU kernel runs box by
    box on one thread and converts the whole image to float first: 50 crops of a group photo took
    it 8 ms (a 2-core Xeon, 2026-12-07), the detector feature's 64 channels 3-5 ms. The same
    numbers up to float rounding, and the same gradient with respect to ``image``."""
    n = boxes.shape[0]
    c, h, w = image.shape
    (oh, ow), r = output_size, int(sampling_ratio)
    if r < 1:
        raise ValueError(f"roi_align_separable needs a sampling ratio of at least 1, got {sampling_ratio}")
    out = image.new_zeros((n, c, oh, ow), dtype=torch.float32)
    if n == 0 or c == 0 or h == 0 or w == 0:
        return out
    with torch.autocast(image.device.type, enabled=False):
        b = boxes.detach().float()
        iy, wy = _axis_samples(b[:, 1], b[:, 3] - b[:, 1], oh, r, h)
        ix, wx = _axis_samples(b[:, 0], b[:, 2] - b[:, 0], ow, r, w)
        iy, ix = iy.flatten(1), ix.flatten(1)
        spans = torch.stack([iy.amin(1), iy.amax(1), ix.amin(1), ix.amax(1)], dim=1).tolist()
        # boxes grouped by their longer side's power of two: in a group they differ by at most 2x
        groups = {}
        for i, (y0, y1, x0, x1) in enumerate(spans):
            groups.setdefault(max(y1 - y0, x1 - x0).bit_length(), []).append(i)
        for members in groups.values():
            gh = max(spans[i][1] - spans[i][0] for i in members) + 1
            gw = max(spans[i][3] - spans[i][2] for i in members) + 1
            step = max(1, WINDOW_FLOATS // (c * gh * gw))  # boxes a batch: their windows' memory bounded
            for k in range(0, len(members), step):
                sel = members[k : k + step]
                idx = torch.tensor(sel, device=image.device)
                tops = [min(spans[i][0], h - gh) for i in sel]
                lefts = [min(spans[i][2], w - gw) for i in sel]
                my = _local_matrix(iy[idx], wy[idx], tops, gh)  # [m,oh,gh]
                mx = _local_matrix(ix[idx], wx[idx], lefts, gw)  # [m,ow,gw]
                win = _windows(image, tops, lefts, gh, gw)  # [m,C,gh,gw]
                cols = (win.view(len(sel), c * gh, gw) @ mx.transpose(1, 2)).view(len(sel), c, gh, ow)
                out.index_copy_(0, idx, my[:, None] @ cols)  # [m,C,oh,ow]
        return out


def _local_matrix(index: torch.Tensor, weight: torch.Tensor, firsts, size: int) -> torch.Tensor:
    """Samples (index, weight) [m, bins, s] as matrices [m, bins, size] over each box's window of
    ``size`` pixels from ``firsts`` (m ints)."""
    first = torch.tensor(firsts, device=index.device)
    out = weight.new_zeros(weight.shape[:2] + (size,))
    return out.scatter_add_(2, index.view(weight.shape) - first[:, None, None], weight)


def _windows(image: torch.Tensor, tops, lefts, gh: int, gw: int) -> torch.Tensor:
    """The ``gh`` x ``gw`` windows of a [C,H,W] ``image`` (any layout) from (``tops``, ``lefts``),
    as float32 [m,C,gh,gw]: only the windows' pixels are read and made float."""
    win = image.new_empty((len(tops), image.shape[0], gh, gw), dtype=torch.float32)
    for k, (t, left) in enumerate(zip(tops, lefts)):
        win[k].copy_(image[:, t : t + gh, left : left + gw])
    return win


def crop_faces(image: torch.Tensor, boxes: torch.Tensor, out_hw: Tuple[int, int]) -> torch.Tensor:
    """Bilinear crops of a uint8 [C,H,W] image over XYXY ``boxes`` -> float [N,C,h,w] in [0, 1].

    Boxes must be finite with positive size (see ``sanitize_boxes``).
    Parts of a box outside the image read as 0 (black padding), as ROIAlign does. Only the pixels
    under the boxes are made float, so a 8000x8000 photo costs no more than its faces.
    """
    n = boxes.shape[0]
    c, h, w = image.shape
    if n == 0:
        return image.new_zeros((0, c) + tuple(out_hw), dtype=torch.float32)
    # About one sample per source pixel, i.e. area averaging when shrinking (no aliasing on big
    # faces); capped so that an absurd box from an untrained detector cannot blow up the cost.
    side = torch.maximum((boxes[:, 3] - boxes[:, 1]) / out_hw[0], (boxes[:, 2] - boxes[:, 0]) / out_hw[1])
    # the largest box's side, and the boxes' union: read in one transfer (on a GPU each read waits)
    top, bx0, by0, bx1, by1 = torch.stack([side.max(), *boxes[:, :2].amin(0), *boxes[:, 2:].amax(0)]).tolist()
    ratio = int(min(MAX_SAMPLING_RATIO, max(1, math.ceil(top))))
    if _separable(image.device):
        return roi_align_separable(image, boxes, tuple(out_hw), ratio).div_(255.0)
    # On a GPU torchvision's kernel runs the boxes in parallel: it reads the boxes' union, one
    # pixel of slack around it so that bilinear samples at its border see their real neighbours.
    x0, y0 = int(max(0, math.floor(bx0) - 1)), int(max(0, math.floor(by0) - 1))
    x1, y1 = int(min(w, math.ceil(bx1) + 1)), int(min(h, math.ceil(by1) + 1))
    if x1 <= x0 or y1 <= y0:
        return image.new_zeros((n, c) + tuple(out_hw), dtype=torch.float32)
    region = image[:, y0:y1, x0:x1].float().div_(255.0)
    shifted = boxes.float() - boxes.new_tensor([x0, y0, x0, y0], dtype=torch.float32)
    return roi_align(region[None], [shifted], tuple(out_hw), spatial_scale=1.0, sampling_ratio=ratio, aligned=True)


def roi_align_features(fmap: torch.Tensor, rois: Sequence[torch.Tensor], output_size: Tuple[int, int], ratio: int):
    """``roi_align(fmap, rois, output_size, 1.0, ratio, aligned=True)`` over a batch [B,C,H,W] and
    its boxes per image: on CPU ``roi_align_separable`` image by image (in float32), on a GPU
    torchvision's."""
    if not _separable(fmap.device):
        return roi_align(fmap, list(rois), output_size, spatial_scale=1.0, sampling_ratio=ratio, aligned=True)
    return torch.cat([roi_align_separable(f, r, output_size, ratio) for f, r in zip(fmap, rois)])
