"""The paper's default augmentations (section 4.2): random flip, scaling, crop, rotation, colour
jitter and blur, as detectron2 ``Augmentation``s so that boxes follow every geometric change."""
import cv2
import numpy as np

from detectron2.data import transforms as T


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


def build_foss_augmentations(cfg, is_train: bool):
    """Augmentations from ``cfg.INPUT.AUG``; none at test time (the model resizes by itself)."""
    if not is_train:
        return []
    a = cfg.INPUT.AUG
    augs = []
    if a.FLIP:
        augs.append(T.RandomFlip(horizontal=True, vertical=False))
    if a.SCALE_RANGE and tuple(a.SCALE_RANGE) != (1.0, 1.0):
        augs.append(RandomScale(a.SCALE_RANGE))
    if a.CROP_FRACTION < 1.0:
        augs.append(T.RandomCrop("relative_range", (a.CROP_FRACTION, a.CROP_FRACTION)))
    if a.ROTATION > 0:
        # expand=False keeps the image size; rotated boxes become the bounding box of their corners.
        augs.append(T.RandomRotation([-a.ROTATION, a.ROTATION], expand=False))
    if a.COLOR_JITTER > 0:
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
