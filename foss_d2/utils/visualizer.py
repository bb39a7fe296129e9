"""Drawing faces with "age, gender" labels through detectron2's Visualizer. matplotlib (about
0.4 s of a run's start-up) is imported when the first picture is drawn, so that runs and API
users that draw nothing never pay for it."""

import functools
import math
from typing import Optional, Sequence

import cv2
import numpy as np

MALE_COLOR = (0.20, 0.45, 0.95)
FEMALE_COLOR = (0.95, 0.30, 0.45)
UNKNOWN_COLOR = (0.6, 0.6, 0.6)

# Boxes scored under this are drawn dashed: on WIDER val 14.5% of the shipped model's boxes scored
# 0.2-0.4 are faces, 78.9% of those above 0.4 (docs/RESULTS.md section 1: 2,317 and 644
# boxes, 750 and 508 of them faces).
UNCERTAIN_BELOW = 0.4

# The demo's pictures are shrunk to this longer side: matplotlib's canvas of an 8000 px photo
# would take gigabytes.
DEFAULT_DRAW_MAX_SIDE = 2048


def gender_color(female: Optional[float]):
    """The RGB colour (0-1) of a face of P(female) ``female``; negative/NaN/None = unknown."""
    if female is None or math.isnan(female) or female < 0:
        return UNKNOWN_COLOR
    return FEMALE_COLOR if female > 0.5 else MALE_COLOR


def face_label(age: Optional[float], female: Optional[float]) -> str:
    """'34, F' style label; ``female`` is a probability or a 0/1 label, negative/NaN/None = unknown."""
    parts = []
    if age is not None and not math.isnan(age) and age >= 0:
        parts.append(f"{age:.0f}")
    if female is not None and not math.isnan(female) and female >= 0:
        parts.append("F" if female > 0.5 else "M")
    return ", ".join(parts) if parts else "?"


def fit_max_side(image: np.ndarray, boxes, max_side: Optional[int]):
    """``image`` shrunk so that its longer side is at most ``max_side`` and ``boxes`` (x1, y1, x2, y2)
    scaled with it; unchanged when it already fits or ``max_side`` is 0/None. Drawing goes through a
    matplotlib canvas of the picture's size, so an 8000x8000 photo would take gigabytes at full size."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, boxes
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.array([size[0] / w, size[1] / h] * 2)
    return small, boxes


@functools.lru_cache(maxsize=None)
def _face_visualizer():
    """detectron2's Visualizer with two costs of a many-face picture removed: its boxes are added
    without matplotlib's data-limit update (the view is the picture's extent, set by the Visualizer),
    and each box takes ``line_style`` so that dashed ones are drawn as such."""
    import matplotlib as mpl
    from detectron2.utils.visualizer import Visualizer

    class FaceVisualizer(Visualizer):
        line_style = "-"

        def draw_box(self, box_coord, alpha=0.5, edge_color="g", line_style=None):
            x0, y0, x1, y1 = box_coord
            linewidth = max(self._default_font_size / 4, 1)
            self.output.ax.add_artist(
                mpl.patches.Rectangle(
                    (x0, y0),
                    x1 - x0,
                    y1 - y0,
                    fill=False,
                    edgecolor=edge_color,
                    linewidth=linewidth * self.output.scale,
                    alpha=alpha,
                    linestyle=line_style or self.line_style,
                )
            )
            return self.output

    return FaceVisualizer


def _overlay_onto(vis, image_rgb: np.ndarray) -> np.ndarray:
    """The Visualizer's boxes and labels rendered on a transparent canvas and blended onto the
    picture: matplotlib would otherwise resample the whole picture onto its canvas (a third of the
    drawing time of a group photo), at scale 1 only to copy it. At another scale the picture is
    resized to the canvas by OpenCV (by area when it shrinks)."""
    out = vis.output
    for im in list(out.ax.images):
        im.remove()
    out.fig.patch.set_visible(False)
    buf, (width, height) = out.canvas.print_to_buffer()
    result = np.asarray(image_rgb)
    if result.ndim == 3 and result.shape[2] == 1:
        result = result[:, :, 0]
    if result.ndim == 2:  # grey: three equal channels (matplotlib would show it in a colour map)
        result = np.repeat(result[:, :, None], 3, axis=2)
    # as the Visualizer reads a picture: clipped to 0-255 (float or 16-bit), an alpha channel not drawn
    result = np.ascontiguousarray(np.clip(result[:, :, :3], 0, 255).astype(np.uint8))
    if not (width and height):  # a sliver of a picture at a small scale: nothing to draw on
        return np.zeros((height, width, 3), np.uint8)
    if result.shape[:2] != (height, width):
        shrink = width < result.shape[1]
        result = cv2.resize(result, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)
    rgba = np.frombuffer(buf, np.uint8).reshape(height, width, 4)
    ys, xs = np.nonzero(rgba[:, :, 3])
    a = rgba[ys, xs, 3:].astype(np.float32) / 255.0
    blended = result[ys, xs] * (1.0 - a) + rgba[ys, xs, :3] * a
    result[ys, xs] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return result


def draw_faces(
    image_rgb: np.ndarray,
    boxes: np.ndarray,
    ages: Sequence[Optional[float]],
    females: Sequence[Optional[float]],
    scale: float = 1.0,
    max_side: Optional[int] = None,
    dashed: Optional[Sequence[bool]] = None,
) -> np.ndarray:
    """RGB image with each box drawn in a gender colour and labelled "age, gender"; the boxes that
    ``dashed`` marks (e.g. the detector's less certain ones) with a dashed line. With ``max_side``,
    a larger picture is first shrunk to that longer side (boxes scaled with it)."""
    image_rgb, boxes = fit_max_side(image_rgb, boxes, max_side)
    vis = _face_visualizer()(image_rgb, scale=scale)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.array([face_label(a, f) for a, f in zip(ages, females)], dtype=object)
    colors = [gender_color(f) for f in females]
    dashed = np.zeros(len(boxes), bool) if dashed is None else np.asarray(dashed, bool)
    for group, style in ((~dashed, "-"), (dashed, (0, (4, 3)))):
        if group.any():
            vis.line_style = style
            picked = [c for c, g in zip(colors, group) if g]
            vis.overlay_instances(boxes=boxes[group], labels=list(labels[group]), assigned_colors=picked, alpha=0.0)
    return _overlay_onto(vis, image_rgb)


def draw_predictions(img_bgr: np.ndarray, faces, max_side: Optional[int] = None) -> np.ndarray:
    """The BGR picture with each face (the dicts of ``FaceAgeEstimator`` and predictions.json)
    drawn and labelled with its age and gender, shrunk to ``max_side`` on its longer side when
    larger; a face scored under UNCERTAIN_BELOW has a dashed box."""
    out = draw_faces(
        img_bgr[:, :, ::-1],
        [f["box"] for f in faces],
        [f.get("age") for f in faces],
        [f["p_female"] if f.get("p_female") is not None else float("nan") for f in faces],
        max_side=max_side,
        dashed=[f.get("score", 1.0) < UNCERTAIN_BELOW for f in faces],
    )
    return np.ascontiguousarray(out[:, :, ::-1])  # an array OpenCV can draw on, not a reversed view
