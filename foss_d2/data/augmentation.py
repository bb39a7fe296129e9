"""The paper's default augmentations (section 4.2): random flip, scaling, crop, rotation, colour
jitter and blur, as detectron2 ``Augmentation``s so that boxes follow every geometric change."""

import cv2
import numpy as np
import torch
from detectron2.data import transforms as T
from fvcore.transforms.transform import PadTransform


class RandomScale(T.Augmentation):
    """Resize by a factor drawn uniformly from ``scale_range``."""

    def __init__(self, scale_range=(0.75, 1.25)):
        super().__init__()
        self.scale_range = tuple(scale_range)

    def get_transform(self, image):
        h, w = image.shape[:2]
        s = np.random.uniform(*self.scale_range)
        return T.ResizeTransform(h, w, max(1, int(round(h * s))), max(1, int(round(w * s))))


class RandomGaussianBlur(T.Augmentation):
    """With probability ``prob``, blur with a Gaussian of sigma drawn from ``sigma_range`` (pixels)."""

    def __init__(self, prob=0.1, sigma_range=(0.5, 2.0)):
        super().__init__()
        self.prob = prob
        self.sigma_range = tuple(sigma_range)

    def get_transform(self, image):
        if np.random.rand() >= self.prob:
            return T.NoOpTransform()
        sigma = float(np.random.uniform(*self.sigma_range))
        return T.ColorTransform(lambda img: cv2.GaussianBlur(img, (0, 0), sigma))


class RandomZoomOut(T.Augmentation):
    """With probability ``prob``, shrink the picture by a factor from ``factor_range`` and place it
    at a random spot of a canvas of the original size, filled with the picture's mean grey.

    Not in the paper: an age network trained on close-ups (UTKFace canvases hold 1-9 faces) meets
    20-60 px faces in group photos, blurred by upscaling and with a detector feature taken at a
    scale it never saw; this shows it such faces with their labels.
    """

    def __init__(self, prob=0.0, factor_range=(2.0, 5.0)):
        super().__init__()
        self.prob = float(prob)
        self.factor_range = tuple(factor_range)

    def get_transform(self, image):
        if np.random.rand() >= self.prob:
            return T.NoOpTransform()
        h, w = image.shape[:2]
        f = float(np.random.uniform(*self.factor_range))
        nh, nw = max(1, int(round(h / f))), max(1, int(round(w / f)))
        x0 = int(np.random.randint(0, w - nw + 1))
        y0 = int(np.random.randint(0, h - nh + 1))
        # PIL's resize filters over the whole footprint, so the small copy is anti-aliased the way
        # a camera's downscaled photo is.
        return T.TransformList(
            [
                T.ResizeTransform(h, w, nh, nw),
                PadTransform(x0, y0, w - nw - x0, h - nh - y0, orig_w=nw, orig_h=nh, pad_value=float(image.mean())),
            ]
        )


def build_foss_augmentations(cfg, is_train: bool):
    """Augmentations from ``cfg.INPUT.AUG``; none at test time (the model resizes by itself)."""
    if not is_train:
        return []
    a = cfg.INPUT.AUG
    augs = []
    if a.ZOOM_OUT_PROB > 0:
        augs.append(RandomZoomOut(a.ZOOM_OUT_PROB, a.ZOOM_OUT_RANGE))
    if a.FLIP:
        augs.append(T.RandomFlip(horizontal=True, vertical=False))
    if a.SCALE_RANGE and tuple(a.SCALE_RANGE) != (1.0, 1.0):
        augs.append(RandomScale(a.SCALE_RANGE))
    if a.CROP_FRACTION < 1.0:
        augs.append(T.RandomCrop("relative_range", (a.CROP_FRACTION, a.CROP_FRACTION)))
    if a.ROTATION > 0:
        # expand=False keeps the image size; rotated boxes become the bounding box of their corners.
        augs.append(T.RandomRotation([-a.ROTATION, a.ROTATION], expand=False))
    if a.COLOR_JITTER > 0 and not a.COLOR_ON_DEVICE:
        lo, hi = 1 - a.COLOR_JITTER, 1 + a.COLOR_JITTER
        augs += [T.RandomBrightness(lo, hi), T.RandomContrast(lo, hi), T.RandomSaturation(lo, hi)]
    if a.BLUR_PROB > 0:
        augs.append(RandomGaussianBlur(a.BLUR_PROB))
    return augs


class LimitMaxSide(T.Augmentation):
    """Downscale images whose longer side exceeds ``max_side`` (bounded memory on huge photos)."""

    def __init__(self, max_side: int):
        super().__init__()
        self.max_side = int(max_side)

    def get_transform(self, image):
        h, w = image.shape[:2]
        if self.max_side <= 0 or max(h, w) <= self.max_side:
            return T.NoOpTransform()
        s = self.max_side / max(h, w)
        return T.ResizeTransform(h, w, max(1, int(round(h * s))), max(1, int(round(w * s))))


# detectron2's RandomSaturation grey weights, applied to the channels in their stored order.
_GREY = (0.299, 0.587, 0.114)


def draw_color_jitter(strength: float):
    """The (brightness, contrast, saturation) factors that detectron2's RandomBrightness,
    RandomContrast and RandomSaturation would draw, in their order, for INPUT.AUG.COLOR_ON_DEVICE."""
    lo, hi = 1 - strength, 1 + strength
    return [float(np.random.uniform(lo, hi)) for _ in range(3)]


def apply_color_jitter(image: torch.Tensor, factors) -> torch.Tensor:
    """detectron2's brightness, contrast and saturation blends on a uint8 [C, H, W] tensor, on its
    device (INPUT.AUG.COLOR_ON_DEVICE: a loader worker spends about half its time on these three
    full-resolution blends, a GPU a fraction of a millisecond). Each step rounds to uint8 as
    detectron2's does (clip, then truncate)."""
    b, c, s = factors
    x = image.float()
    x = (x * b).clamp_(0, 255).trunc_()
    x = (x.mean() * (1 - c) + x * c).clamp_(0, 255).trunc_()
    grey = sum(w * x[i] for i, w in enumerate(_GREY))[None]
    x = (grey * (1 - s) + x * s).clamp_(0, 255).trunc_()
    return x.to(torch.uint8)
