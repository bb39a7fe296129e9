"""Tiling augmentation (paper section 3.3, Fig. 3): pseudo group photos from single-face images.

A canvas is split into n = 1, 4 or 9 cells (random); each cell shows one image, resized to fit the
cell with its aspect ratio kept and centred. At most ``max_images`` distinct images are loaded per
canvas ("for the sake of time efficiency"); the remaining cells repeat them. Every face box is
mapped into canvas pixels and keeps its age and gender.
"""

import logging
import math
from typing import Callable, List, Optional, Sequence

import cv2
import numpy as np

from detectron2.structures import BoxMode

from .utils import absolute_annotations

logger = logging.getLogger(__name__)


class TilingAugmentation:
    def __init__(
        self,
        pool: Sequence[dict],
        read_image: Callable[[dict], np.ndarray],
        num_tiles: Sequence[int] = (1, 4, 9),
        probs: Optional[Sequence[float]] = None,
        max_images: int = 4,
        canvas_size: int = 600,
        augment: Optional[Callable[[np.ndarray, List[dict]], np.ndarray]] = None,
        pool_weights: Optional[Sequence[float]] = None,
    ):
        """
        Args:
            pool: dataset records from which the extra tiles are drawn.
            read_image: loads a record's image as HxWx3 uint8.
            num_tiles: possible tile counts; each must be a square (1, 4, 9, ...).
            augment: ``augment(image, annotations)`` -> image of the same size, applied to each loaded
                image before it is placed (INPUT.AUG.WILD), so that every source image draws its own.
            pool_weights: the extra tiles are drawn from ``pool`` in proportion to these (the
                sampler's image weights, DATALOADER.AGE_BALANCE) instead of uniformly; the sampler
                alone picks one face of a canvas of up to 9.
        """
        for n in num_tiles:
            if int(math.isqrt(n)) ** 2 != n:
                raise ValueError(f"tile counts must be squares, got {n}")
        if max_images < 1:
            raise ValueError("max_images must be >= 1")
        self.pool = pool
        self.read_image = read_image
        self.num_tiles = list(num_tiles)
        p = np.asarray(probs if probs else [1.0] * len(self.num_tiles), dtype=np.float64)
        if len(p) != len(self.num_tiles) or (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"need one non-negative probability per tile count, got {list(p)}")
        self.probs = p / p.sum()
        self.max_images = max_images
        self.canvas_size = canvas_size
        self.augment = augment
        self.bad = set()  # pool records that could not be read
        self.pool_p = None
        if pool_weights is not None:
            w = np.asarray(pool_weights, dtype=np.float64)
            if w.shape != (len(pool),) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"need {len(pool)} non-negative pool weights, not all 0")
            self.pool_p = w / w.sum()

    def __call__(self, record: dict, rng: Optional[np.random.Generator] = None):
        """Returns (canvas HxWx3 uint8, annotations in XYXY_ABS canvas pixels)."""
        rng = rng or np.random.default_rng(np.random.randint(2**31))
        n = int(rng.choice(self.num_tiles, p=self.probs))
        k = min(n, self.max_images)
        # the record's own image: unreadable, the whole sample is (the caller draws another record)
        sources, images = [record], [self._read(record)]
        for _ in range(4 * (k - 1)):  # extra tiles: an unreadable one is replaced by another draw
            if len(sources) == k or len(self.bad) >= len(self.pool):
                break
            i = int(
                rng.integers(0, len(self.pool)) if self.pool_p is None else rng.choice(len(self.pool), p=self.pool_p)
            )
            if i in self.bad:
                continue
            try:
                images.append(self._read(self.pool[i]))
            except (FileNotFoundError, ValueError) as e:
                self.bad.add(i)  # not drawn again (in this worker)
                logger.warning("skipping a tile: %s", e)
                continue
            sources.append(self.pool[i])
        k = len(sources)
        # Cells 0..k-1 get each loaded image once, the rest repeat them at random.
        order = list(range(k)) + list(rng.integers(0, k, size=n - k))
        rng.shuffle(order)
        if self.augment is not None:
            # per loaded image: the cells that repeat an image (n > max_images) repeat its look too
            images = [self.augment(img, r["annotations"]) for img, r in zip(images, sources)]
        return self.compose(images, [r["annotations"] for r in sources], order)

    def _read(self, record: dict) -> np.ndarray:
        """The record's image; a FileNotFoundError or ValueError when it cannot be read or its size is
        not the record's width and height (boxes in another image's pixels would be trained in the
        wrong place)."""
        img = self.read_image(record)
        if record.get("width") and record.get("height"):
            h, w = img.shape[:2]
            if (record["width"], record["height"]) != (w, h):
                raise ValueError(
                    f"{record.get('file_name', '?')} is {w}x{h}, its record says "
                    f"{record['width']}x{record['height']}: its boxes would be in the wrong place"
                )
        return img

    def compose(self, images: List[np.ndarray], annotations: List[List[dict]], order: Sequence[int]):
        """Place ``images[order[c]]`` in cell c (row-major) of a ``canvas_size`` square canvas."""
        n = len(order)
        side = math.isqrt(n)
        cell = self.canvas_size // side
        canvas = np.zeros((cell * side, cell * side, 3), dtype=np.uint8)
        out = []
        for c, src in enumerate(order):
            img = images[src]
            h, w = img.shape[:2]
            s = min(cell / w, cell / h)
            nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
            ox = (c % side) * cell + (cell - nw) // 2
            oy = (c // side) * cell + (cell - nh) // 2
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
            canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(img, (nw, nh), interpolation=interp)
            sx, sy = nw / w, nh / h
            for a in absolute_annotations(annotations[src], h, w):
                box = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
                b = dict(a)
                b["bbox"] = [box[0] * sx + ox, box[1] * sy + oy, box[2] * sx + ox, box[3] * sy + oy]
                b["bbox_mode"] = BoxMode.XYXY_ABS
                out.append(b)
        return canvas, out
