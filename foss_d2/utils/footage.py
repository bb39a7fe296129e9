"""Synthetic footage from still photos, for the video tests and benchmarks: a camera that pans and
zooms over each photo, one shot per photo, with every face's box known in every frame."""

from typing import Iterable, Iterator, Sequence, Tuple

import cv2
import numpy as np


def camera_matrix(image_hw: Tuple[int, int], out_wh: Tuple[int, int], zoom: float, center: Tuple[float, float]):
    """The 2x3 affine map from photo to frame pixels: the photo fitted to the frame, times
    ``zoom``, with the photo point ``center`` (fractions of its width and height) mid-frame."""
    (ih, iw), (w, h) = image_hw, out_wh
    s = min(w / iw, h / ih) * zoom
    cx, cy = center[0] * iw, center[1] * ih
    return np.array([[s, 0, w / 2 - s * cx], [0, s, h / 2 - s * cy]], np.float64)


def shot(
    image: np.ndarray,
    n_frames: int,
    out_wh: Tuple[int, int] = (640, 480),
    zoom: Tuple[float, float] = (1.0, 1.3),
    center_from: Tuple[float, float] = (0.5, 0.5),
    center_to: Tuple[float, float] = (0.5, 0.5),
) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """(frame, matrix) for each frame of a shot whose zoom and centre move linearly."""
    for i in range(n_frames):
        t = i / max(n_frames - 1, 1)
        z = zoom[0] + t * (zoom[1] - zoom[0])
        c = tuple(a + t * (b - a) for a, b in zip(center_from, center_to))
        m = camera_matrix(image.shape[:2], out_wh, z, c)
        yield cv2.warpAffine(image, m, out_wh, flags=cv2.INTER_LINEAR, borderValue=(110, 110, 110)), m


def map_boxes(boxes: Sequence[Sequence[float]], m: np.ndarray, out_wh: Tuple[int, int]) -> np.ndarray:
    """Boxes (x1, y1, x2, y2) in photo pixels -> frame pixels, clipped to the frame."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.stack([b[:, 0] * m[0, 0] + m[0, 2], b[:, 1] * m[1, 1] + m[1, 2]], 1)
    out = np.concatenate([out, np.stack([b[:, 2] * m[0, 0] + m[0, 2], b[:, 3] * m[1, 1] + m[1, 2]], 1)], 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, out_wh[0])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, out_wh[1])
    return out


def write_video(path: str, frames: Iterable[np.ndarray], fps: float = 25.0) -> int:
    """An mp4 of ``frames`` (BGR, all of the first one's size), as the runner reads it; a generator
    is written as it goes, not held in memory. Returns the frames written."""
    writer, n = None, 0
    try:
        for f in frames:
            if writer is None:
                writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (f.shape[1], f.shape[0]))
            writer.write(f)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    return n
