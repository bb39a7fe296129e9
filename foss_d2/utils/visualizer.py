"""Drawing faces with "age, gender" labels through detectron2's Visualizer."""
import math
from typing import Optional, Sequence

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


def draw_faces(
    image_rgb: np.ndarray,
    boxes: np.ndarray,
    ages: Sequence[Optional[float]],
    females: Sequence[Optional[float]],
    scale: float = 1.0,
) -> np.ndarray:
    """RGB image with each box drawn in a gender colour and labelled "age, gender"."""
    vis = Visualizer(image_rgb, scale=scale)
    labels = [face_label(a, f) for a, f in zip(ages, females)]
    colors = []
    for f in females:
        if f is None or math.isnan(f) or f < 0:
            colors.append(UNKNOWN_COLOR)
        else:
            colors.append(FEMALE_COLOR if f > 0.5 else MALE_COLOR)
    if len(boxes):
        vis.overlay_instances(boxes=np.asarray(boxes), labels=labels, assigned_colors=colors, alpha=0.0)
    return vis.get_output().get_image()
