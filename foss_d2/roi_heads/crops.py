"""The facial cropping connection of FOSS (paper section 3.1): each face box, enlarged by the
margins (20% top, 10% other sides), is cropped from the full-resolution image with ROIAlign."""

import math
from typing import Optional, Sequence, Tuple

import torch
from torchvision.ops import roi_align

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
