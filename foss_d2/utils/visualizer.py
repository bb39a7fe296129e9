"""Drawing faces with "age, gender" labels through detectron2's Visualizer. matplotlib (about
0.4 s of a run's start-up) is imported when the first picture is drawn, so that runs and API
users that draw nothing never pay for it."""

import functools
import math
import threading
import types
from typing import Optional, Sequence

import cv2
import numpy as np

from .image_io import swap_red_blue

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
    """detectron2's Visualizer with the costs of a many-face picture removed. It is made from the
    picture's size alone (``FaceVisualizer(height, width, scale)``): its canvas holds no picture,
    which ``_overlay_onto`` blends with numpy (matplotlib would load, check and resample it: 5 of
    the 9 ms the Visualizer took to set up a 1024x1366 photo). Its boxes are added without matplotlib's
    data-limit update (the view is the picture's extent) and each takes ``line_style`` so that
    dashed ones are drawn as such. Its labels are kept (``labels``: text, anchor, font size, colour,
    alignment, rotation) instead of becoming matplotlib artists: ``_overlay_onto`` pastes each as a
    picture rendered once (``_label_sprite``)."""
    import matplotlib as mpl

    from detectron2.utils.visualizer import VisImage, Visualizer

    class Canvas(VisImage):
        def __init__(self, height: int, width: int, scale: float):
            super().__init__(np.broadcast_to(np.zeros((), np.uint8), (height, width, 3)), scale=scale)

        def reset_image(self, img):
            # the view VisImage's imshow(extent=...) sets, without the image
            self.ax.set_aspect("equal")
            self.ax.set_xlim(0, self.width)
            self.ax.set_ylim(self.height, 0)

    class FaceVisualizer(Visualizer):
        line_style = "-"

        def __init__(self, height: int, width: int, scale: float = 1.0):
            # Visualizer.__init__ would load the picture; its other state is not read by overlay_instances
            self.output = Canvas(height, width, scale)
            self._default_font_size = max(np.sqrt(height * width) // 90, 10 // scale)  # as Visualizer's
            self.labels = []

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

        def draw_text(self, text, position, *, font_size=None, color="g", horizontal_alignment="center", rotation=0):
            color = tuple(float(c) for c in mpl.colors.to_rgb(color))
            style = (font_size or self._default_font_size, color, horizontal_alignment, rotation)
            self.labels.append((str(text), position, style))
            return self.output

    return FaceVisualizer


_sprite_canvas = threading.local()  # a matplotlib figure is not for two threads at once


def _sprite_side(text: str, font_px: float) -> int:
    """A first guess at the side of a square around a label's anchor that the label does not reach
    the edge of (``_label_sprite`` doubles it while the label does)."""
    return 2 * (len(text) + 2) * max(8, math.ceil(font_px)) + 16


@functools.lru_cache(maxsize=1024)
def _label_sprite(text: str, scale: float, style: tuple, dpi: float):
    """The RGBA picture of one label as detectron2's ``Visualizer.draw_text`` renders it (``style``:
    font size, colour, alignment, rotation) at ``scale`` on a canvas of ``dpi``, with the offset
    (rows, columns) of its top-left pixel from the label's anchor. A group photo's labels are a few
    hundred strings in one size, so each is rendered once instead of once a face (a matplotlib text
    took 1.5 ms a face, two thirds of the drawing time of a group photo)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from detectron2.utils.visualizer import Visualizer

    font_size, color, align, rotation = style
    if not hasattr(_sprite_canvas, "ax"):
        fig = Figure(frameon=False)
        FigureCanvasAgg(fig)
        _sprite_canvas.ax = fig.add_axes([0.0, 0.0, 1.0, 1.0])
        _sprite_canvas.ax.axis("off")
        _sprite_canvas.side = 0
    ax = _sprite_canvas.ax
    if ax.figure.dpi != dpi:
        ax.figure.set_dpi(dpi)
        _sprite_canvas.side = 0  # its size in inches is set again below
    # the canvas is kept for the next label: matplotlib makes a new renderer at each new size
    need = _sprite_side(text, font_size * scale * dpi / 72)
    while True:
        if need > _sprite_canvas.side:
            _sprite_canvas.side = need
            ax.figure.set_size_inches((need + 1e-2) / dpi, (need + 1e-2) / dpi)
            ax.set_xlim(0, need)
            ax.set_ylim(need, 0)
        side = _sprite_canvas.side
        anchor = side // 2
        # detectron2's own draw_text on this canvas: a Visualizer is only its output and font size
        owner = types.SimpleNamespace(output=types.SimpleNamespace(ax=ax, scale=scale), _default_font_size=font_size)
        kwargs = dict(font_size=font_size, color=color, horizontal_alignment=align, rotation=rotation)
        Visualizer.draw_text(owner, text, (anchor, anchor), **kwargs)
        try:
            ax.figure.canvas.draw()
        finally:  # a failed render (a label too large for Agg) must not stay on the next ones
            ax.texts[-1].remove()
        rgba = np.asarray(ax.figure.canvas.buffer_rgba())
        left, top, width, height = cv2.boundingRect(cv2.extractChannel(rgba, 3))
        if not (width and height):
            return np.zeros((0, 0, 4), np.uint8), (0, 0)
        if top > 0 and left > 0 and top + height < rgba.shape[0] and left + width < rgba.shape[1]:
            sprite = rgba[top : top + height, left : left + width].copy()
            sprite.flags.writeable = False  # shared by every picture that draws this label
            return sprite, (top - anchor, left - anchor)
        need = 2 * side


def _blend(picture: np.ndarray, rgba: np.ndarray, top: int = 0, left: int = 0):
    """``rgba`` (straight alpha) blended in place onto ``picture`` (uint8 RGB) with its top-left
    pixel at (``top``, ``left``), clipped to the picture; only pixels it covers are touched."""
    h, w = picture.shape[:2]
    t, l = max(top, 0), max(left, 0)
    b, r = min(top + rgba.shape[0], h), min(left + rgba.shape[1], w)
    if b <= t or r <= l:
        return
    patch = rgba[t - top : b - top, l - left : r - left]
    # OpenCV finds the few drawn pixels of a canvas 5x faster than np.nonzero on its alpha plane
    found = cv2.findNonZero(cv2.extractChannel(patch, 3))
    if found is None:
        return
    xs, ys = found[:, 0, 0], found[:, 0, 1]
    a = patch[ys, xs, 3:].astype(np.float32) / 255.0
    region = picture[t:b, l:r]
    blended = region[ys, xs] * (1.0 - a) + patch[ys, xs, :3] * a
    region[ys, xs] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _overlay_onto(vis, image_rgb: np.ndarray) -> np.ndarray:
    """The Visualizer's boxes rendered on a transparent canvas and blended onto the picture, then
    its labels pasted over them in the order it drew them: matplotlib would otherwise resample the
    whole picture onto its canvas (a third of the drawing time of a group photo), at scale 1 only to
    copy it. At another scale the picture is resized to the canvas by OpenCV (by area when it
    shrinks). A label is pasted at its anchor's nearest pixel (matplotlib places it to a 64th of
    one: a label moves by at most half a pixel); a label whose anchor or size is not a number is
    left out, as matplotlib leaves it out."""
    out = vis.output
    out.fig.patch.set_visible(False)
    out.canvas.draw()
    canvas = np.asarray(out.canvas.buffer_rgba())  # the renderer's own buffer, not a copy
    height, width = canvas.shape[:2]
    result = np.asarray(image_rgb)
    if result.ndim == 3 and result.shape[2] == 1:
        result = result[:, :, 0]
    if result.ndim == 2:  # grey: three equal channels (matplotlib would show it in a colour map)
        result = np.repeat(result[:, :, None], 3, axis=2)
    # as the Visualizer reads a picture: clipped to 0-255 (float or 16-bit), an alpha channel not drawn
    if result.dtype == np.uint8:
        result = np.array(result[:, :, :3], order="C")  # a copy: the caller's photo stays as it was
    else:
        result = np.ascontiguousarray(np.clip(result[:, :, :3], 0, 255).astype(np.uint8))
    if not (width and height):  # a sliver of a picture at a small scale: nothing to draw on
        return np.zeros((height, width, 3), np.uint8)
    if result.shape[:2] != (height, width):
        shrink = width < result.shape[1]
        result = cv2.resize(result, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)
    _blend(result, canvas)
    if vis.labels:
        # the anchors in the canvas's pixels (rows from the top), as matplotlib places a text
        anchors = out.ax.transData.transform(np.array([p for _, p, _ in vis.labels], dtype=np.float64))
        for (text, _, style), (x, y) in zip(vis.labels, anchors):
            if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(style[0])):
                continue
            sprite, (top, left) = _label_sprite(text, out.scale, style, out.fig.dpi)
            _blend(result, sprite, round(height - y) + top, round(x) + left)
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
    vis = _face_visualizer()(*np.shape(image_rgb)[:2], scale=scale)
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
    img_bgr, boxes = fit_max_side(img_bgr, [f["box"] for f in faces], max_side)  # shrunk before it is copied
    out = draw_faces(
        swap_red_blue(img_bgr),
        boxes,
        [f.get("age") for f in faces],
        [f["p_female"] if f.get("p_female") is not None else float("nan") for f in faces],
        dashed=[f.get("score") is not None and f["score"] < UNCERTAIN_BELOW for f in faces],  # (None: unknown)
    )
    return swap_red_blue(out)
