"""Drawing faces with "age, gender" labels through detectron2's Visualizer."""

import math
from typing import Optional, Sequence

import cv2
import numpy as np
from detectron2.utils.visualizer import Visualizer

MALE_COLOR = (0.20, 0.45, 0.95)
FEMALE_COLOR = (0.95, 0.30, 0.45)
UNKNOWN_COLOR = (0.6, 0.6, 0.6)


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
    vis = Visualizer(image_rgb, scale=scale)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.array([face_label(a, f) for a, f in zip(ages, females)], dtype=object)
    colors = []
    for f in females:
        if f is None or math.isnan(f) or f < 0:
            colors.append(UNKNOWN_COLOR)
        else:
            colors.append(FEMALE_COLOR if f > 0.5 else MALE_COLOR)
    dashed = np.zeros(len(boxes), bool) if dashed is None else np.asarray(dashed, bool)
    ax = vis.output.ax
    # the dashed boxes last: the Visualizer adds one rectangle patch a box, so theirs are the new ones
    for group in (~dashed, dashed):
        if not group.any():
            continue
        first = len(ax.patches)
        picked = [c for c, g in zip(colors, group) if g]
        vis.overlay_instances(boxes=boxes[group], labels=list(labels[group]), assigned_colors=picked, alpha=0.0)
        if group is dashed:
            for patch in ax.patches[first:]:
                patch.set_linestyle((0, (4, 3)))
    return vis.get_output().get_image()
