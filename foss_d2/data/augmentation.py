"""The paper's default augmentations (section 4.2): random flip, scaling, crop, rotation, colour
jitter and blur, as detectron2 ``Augmentation``s so that boxes follow every geometric change."""

import cv2
import numpy as np
import torch
from fvcore.transforms.transform import PadTransform

from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from ..utils.image_io import swap_red_blue
from .utils import absolute_annotations


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


def _uniform(lo_hi) -> float:
    return float(np.random.uniform(*lo_hi))


class _RandomPixelOp(T.Augmentation):
    """With probability ``prob``, ``apply(image, value)`` (pixels only: boxes stay) for a value drawn
    once per image from ``value_range``."""

    def __init__(self, prob=0.0, value_range=(0.0, 0.0)):
        super().__init__()
        self.prob = float(prob)
        self.value_range = tuple(value_range)

    def draw(self):
        return _uniform(self.value_range)

    def apply(self, image: np.ndarray, value) -> np.ndarray:
        raise NotImplementedError

    def get_transform(self, image):
        if np.random.rand() >= self.prob:
            return T.NoOpTransform()
        value = self.draw()
        return T.ColorTransform(lambda img: self.apply(img, value))


class RandomJPEG(_RandomPixelOp):
    """With probability ``prob``, a JPEG round trip at a quality drawn from ``quality_range``."""

    def __init__(self, prob=0.0, quality_range=(30, 90), image_format="BGR"):
        super().__init__(prob, (int(quality_range[0]), int(quality_range[1])))
        self.image_format = image_format

    def draw(self):
        return int(np.random.randint(self.value_range[0], self.value_range[1] + 1))

    def apply(self, image, quality):
        return jpeg_round_trip(image, quality, self.image_format)


def jpeg_round_trip(image: np.ndarray, quality: int, image_format: str = "BGR") -> np.ndarray:
    """``image`` encoded and decoded by OpenCV's JPEG codec at ``quality``."""
    rgb = image_format == "RGB"  # OpenCV takes BGR; its luma/chroma split depends on the order
    src = swap_red_blue(image) if rgb else np.ascontiguousarray(image)
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return image
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return swap_red_blue(out) if rgb else out


class RandomDownscale(_RandomPixelOp):
    """With probability ``prob``, shrink by a factor from ``factor_range`` (area averaging, as a
    camera's sensor does) and scale back up bilinearly to the same size: the detail of a small face."""

    def __init__(self, prob=0.0, factor_range=(2.0, 6.0)):
        super().__init__(prob, factor_range)

    def apply(self, image, factor):
        return downscale_upscale(image, factor)


def downscale_upscale(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(image.shape)


class RandomGreyscale(_RandomPixelOp):
    """With probability ``prob``, OpenCV's greyscale conversion, kept as three equal channels."""

    def __init__(self, prob=0.0, image_format="BGR"):
        super().__init__(prob)
        self.code = cv2.COLOR_RGB2GRAY if image_format == "RGB" else cv2.COLOR_BGR2GRAY

    def apply(self, image, _):
        return np.repeat(cv2.cvtColor(image, self.code)[:, :, None], 3, axis=2)


class RandomGamma(_RandomPixelOp):
    """With probability ``prob``, values v -> 255 (v / 255) ** gamma, gamma from ``gamma_range``:
    dim or washed-out lighting that brightness/contrast jitter (linear) does not give."""

    def __init__(self, prob=0.0, gamma_range=(0.6, 1.6)):
        super().__init__(prob, gamma_range)

    def apply(self, image, gamma):
        lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)
        return cv2.LUT(image, lut)


class RandomOccluder(T.Augmentation):
    """With probability ``prob``, a rectangle of random solid colour or noise over a fraction from
    ``size_range`` of the area of one face box (drawn at random), inside the box: hands, glasses,
    hair or another head in front of a face. ``size_range[1] < 1``, so some face is always left."""

    def __init__(self, prob=0.0, size_range=(0.1, 0.3)):
        super().__init__()
        lo, hi = float(size_range[0]), float(size_range[1])
        if not 0 < lo <= hi < 1:
            raise ValueError(f"occluder size must satisfy 0 < lo <= hi < 1, got {list(size_range)}")
        self.prob = float(prob)
        self.size_range = (lo, hi)

    def get_transform(self, image, boxes):
        if boxes is None or len(boxes) == 0 or np.random.rand() >= self.prob:
            return T.NoOpTransform()
        h, w = image.shape[:2]
        x1, y1, x2, y2 = np.asarray(boxes, dtype=np.float64)[np.random.randint(len(boxes))]
        # the box's whole pixels inside the image
        bx0, by0 = int(np.ceil(max(0.0, x1))), int(np.ceil(max(0.0, y1)))
        bx1, by1 = int(np.floor(min(w, x2))), int(np.floor(min(h, y2)))
        bw, bh = bx1 - bx0, by1 - by0
        if bw < 2 or bh < 2:
            return T.NoOpTransform()
        frac = _uniform(self.size_range)
        fx = float(np.random.uniform(frac, 1.0))  # width fraction; height fraction frac / fx <= 1
        rw = min(bw, max(1, int(round(fx * bw))))
        rh = min(bh, max(1, int(round(frac / fx * bh))))
        if rw == bw and rh == bh:  # rounding on a tiny box: leave a strip of face
            rh -= 1
        ox = bx0 + int(np.random.randint(0, bw - rw + 1))
        oy = by0 + int(np.random.randint(0, bh - rh + 1))
        solid = np.random.rand() < 0.5
        fill = np.random.randint(0, 256, size=((1, 1) if solid else (rh, rw)) + image.shape[2:]).astype(image.dtype)

        def paint(img):
            img = img.copy()  # a cached decoded image must stay as read
            img[oy : oy + rh, ox : ox + rw] = fill
            return img

        return T.ColorTransform(paint)


def build_wild_augmentations(cfg, is_train: bool):
    """INPUT.AUG.WILD's photometric ops, in the order a photo gets them: an occluder in the scene,
    the lighting, a greyscale print, a low-resolution camera, JPEG. None when all are off."""
    if not is_train:
        return []
    a = cfg.INPUT.AUG.WILD
    fmt = cfg.INPUT.FORMAT
    augs = []
    if a.OCCLUDER_PROB > 0:
        augs.append(RandomOccluder(a.OCCLUDER_PROB, a.OCCLUDER_SIZE))
    if a.GAMMA_PROB > 0:
        augs.append(RandomGamma(a.GAMMA_PROB, a.GAMMA_RANGE))
    if a.GREY_PROB > 0:
        augs.append(RandomGreyscale(a.GREY_PROB, fmt))
    if a.DOWNSCALE_PROB > 0:
        augs.append(RandomDownscale(a.DOWNSCALE_PROB, a.DOWNSCALE_RANGE))
    if a.JPEG_PROB > 0:
        augs.append(RandomJPEG(a.JPEG_PROB, a.JPEG_QUALITY, fmt))
    return augs


class PerImageAugmentation:
    """``aug(image, annotations)`` -> the image through ``augmentations``, which see the faces'
    XYXY boxes (the occluder needs them) and change no geometry: one source image's own draw, for
    each tile of a tiled canvas (data/tiling.py) or for an untiled picture."""

    def __init__(self, augmentations):
        self.augmentations = T.AugmentationList(list(augmentations))

    def __call__(self, image: np.ndarray, annotations=None) -> np.ndarray:
        boxes = [
            BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
            for a in absolute_annotations(annotations or [], *image.shape[:2])
            if a.get("iscrowd", 0) == 0
        ]
        aug = T.AugInput(image, boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
        self.augmentations(aug)
        return aug.image


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
