"""Drawing faces (foss_d2/utils/visualizer.py): the boxes and labels are detectron2's Visualizer's,
blended onto the photo instead of the photo being resampled through matplotlib, each label rendered
once and pasted wherever it recurs (issue 19, item 4)."""

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from foss_d2.utils.visualizer import (
    FEMALE_COLOR,
    MALE_COLOR,
    UNKNOWN_COLOR,
    _face_visualizer,
    _label_sprite,
    _overlay_onto,
    draw_faces,
    draw_predictions,
)

from detectron2.utils.visualizer import Visualizer

ROOT = os.path.join(os.path.dirname(__file__), "..")

# the family photo's people and two odd boxes: one over the top-left corner, one too small for its label
BOXES = np.array(
    [
        [120, 60, 210, 170],
        [300, 80, 380, 190],
        [450, 150, 500, 210],
        [-15, -10, 40, 45],
        [600, 300, 612, 314],
    ],
    dtype=np.float64,
)
AGES = [34.2, 41.0, 9.6, 70.0, None]
FEMALES = [0.9, 0.1, float("nan"), 0.6, 0.2]
DASHED = [False, False, True, False, True]


def _reference(image_rgb):
    """The same picture through detectron2's Visualizer alone, as the drawing was before."""
    vis = Visualizer(image_rgb)
    labels = np.array(["34, F", "41, M", "10", "70, F", "M"], dtype=object)
    colors = [FEMALE_COLOR, MALE_COLOR, UNKNOWN_COLOR, FEMALE_COLOR, MALE_COLOR]
    dashed = np.array(DASHED)
    ax = vis.output.ax
    for group in (~dashed, dashed):
        first = len(ax.patches)
        picked = [c for c, g in zip(colors, group) if g]
        vis.overlay_instances(boxes=BOXES[group], labels=list(labels[group]), assigned_colors=picked, alpha=0.0)
        if group is dashed:
            for patch in ax.patches[first:]:
                patch.set_linestyle((0, (4, 3)))
    return vis.get_output().get_image()


def test_drawing_is_detectron2_visualizers_on_the_untouched_photo():
    photo = cv2.imread(os.path.join(ROOT, "demo", "family.jpg"))[:, :, ::-1].copy()
    drawn = draw_faces(photo, BOXES, AGES, FEMALES, dashed=DASHED)
    ref = _reference(photo)
    assert drawn.shape == ref.shape == photo.shape and drawn.dtype == np.uint8
    diff = np.abs(drawn.astype(int) - ref.astype(int))
    touched_ref = (ref != photo).any(-1)
    # a label is pasted at its anchor's nearest pixel (matplotlib places glyphs to a 64th of one) and
    # blended after the boxes (two roundings where it covers a box line): a few grey levels at most
    assert diff.max() <= 5 and (diff > 2).sum() <= 0.01 * touched_ref.sum()
    touched = (drawn != photo).any(-1)
    assert touched_ref.sum() > 5000  # boxes and five labels were drawn
    # every pixel the Visualizer leaves alone stays the photo's, bit for bit, and the other way round
    # but for blends that round back to the photo's value
    assert not (touched & ~touched_ref).any()
    assert (touched_ref & ~touched).sum() <= 0.01 * touched_ref.sum()
    assert (
        not np.shares_memory(drawn, photo)
        and (photo == cv2.imread(os.path.join(ROOT, "demo", "family.jpg"))[:, :, ::-1]).all()
    )


def test_label_background_is_blended_at_its_alpha():
    """On a flat grey photo the labels' black background (alpha 0.8) reads 0.2 x 200 = 40, and the
    text's light colour shows above it."""
    grey = np.full((240, 320, 3), 200, np.uint8)
    drawn = draw_faces(grey, [[100.0, 120.0, 220.0, 230.0]], [30.0], [0.9])
    values, counts = np.unique(drawn.reshape(-1, 3), axis=0, return_counts=True)
    common = {tuple(v): c for v, c in zip(values, counts)}
    assert common[(200, 200, 200)] > 0.9 * grey.shape[0] * grey.shape[1]
    assert common.get((40, 40, 40), 0) > 100  # the label's background, away from the glyphs
    # the label hangs inside the box from its top-left corner; below it the box holds the photo
    assert drawn[160:225, 110:210].tolist() == grey[160:225, 110:210].tolist()


def test_drawing_at_another_scale_resizes_the_photo_by_area():
    """At scale 0.5 the picture is the canvas's 80x50; columns of 0 and 200 shrink by area to 100
    (nearest-neighbour sampling would keep 0 or 200), away from the box and its label."""
    photo = np.zeros((100, 160, 3), np.uint8)
    photo[:, 1::2] = 200
    drawn = draw_faces(photo, [[20.0, 20.0, 80.0, 90.0]], [25.0], [0.2], scale=0.5)
    assert drawn.shape == (50, 80, 3)
    assert (drawn[:, 50:] == 100).all() and (drawn[40:, :8] == 100).all()
    assert (drawn[:, :45] != 100).any()  # the box and its label


def test_a_photo_without_faces_and_other_channel_counts():
    photo = cv2.imread(os.path.join(ROOT, "demo", "family.jpg"))[:, :, ::-1].copy()
    assert (draw_faces(photo, np.zeros((0, 4)), [], []) == photo).all()
    grey = photo[:, :, 1].copy()
    drawn = draw_faces(grey, BOXES[:1], AGES[:1], FEMALES[:1])
    assert drawn.shape == photo.shape and (drawn[300:, 300:] == grey[300:, 300:, None]).all()
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    assert (
        draw_faces(rgba, BOXES, AGES, FEMALES, dashed=DASHED) == draw_faces(photo, BOXES, AGES, FEMALES, dashed=DASHED)
    ).all()


def test_the_photo_is_not_drawn_through_matplotlib(monkeypatch):
    """The photo is blended with numpy, never resampled by matplotlib's image artist (a third of a
    group photo's drawing time): with that artist broken, drawing at scale 1 still works."""
    import matplotlib.image

    def broken(*args, **kwargs):
        raise AssertionError("the photo went through matplotlib")

    monkeypatch.setattr(matplotlib.image.AxesImage, "draw", broken)
    photo = np.full((120, 160, 3), 70, np.uint8)
    drawn = draw_faces(photo, [[20.0, 20.0, 90.0, 100.0]], [25.0], [0.2])
    assert (drawn != 70).any() and (drawn[60:95, 30:85] == 70).all()


def test_pictures_are_read_as_the_visualizer_reads_them():
    """One channel is grey; float and 16-bit values are clipped to 0-255, as detectron2's Visualizer
    clips them (300 -> 255, not 300 mod 256 = 44)."""
    one = np.full((60, 80, 1), 120, np.uint8)
    assert (draw_faces(one, np.zeros((0, 4)), [], []) == 120).all()
    hot = np.full((60, 80, 3), 300.0)
    assert (draw_faces(hot, np.zeros((0, 4)), [], []) == 255).all()
    wide = np.full((60, 80, 3), 1000, np.uint16)
    assert (draw_faces(wide, np.zeros((0, 4)), [], []) == 255).all()


def test_drawing_at_a_larger_scale_takes_the_nearest_pixel():
    """At scale 2 each photo pixel becomes a 2x2 block (the Visualizer's nearest-pixel sampling):
    columns 0, 200, 0, ... read 0, 0, 200, 200, ... away from the box; a sliver whose canvas has
    no rows gives an empty picture."""
    photo = np.zeros((40, 60, 3), np.uint8)
    photo[:, 1::2] = 200
    drawn = draw_faces(photo, [[5.0, 5.0, 20.0, 30.0]], [25.0], [0.2], scale=2.0)
    assert drawn.shape == (80, 120, 3)
    expected = np.repeat(photo[:, :, 0], 2, axis=1)[0, 80:]
    assert (drawn[70:, 80:, 0] == expected).all()
    assert draw_faces(np.zeros((1, 2000, 3), np.uint8), [], [], [], scale=0.4).shape[0] == 0


def test_a_recurring_label_is_rendered_once_and_pasted_where_the_visualizer_puts_it():
    """A group photo's small faces share one font size: 12 faces labelled "25, M" or "25, F" take
    two renders, and each pasted label is the Visualizer's own, within a few grey levels (glyphs placed
    to a whole pixel instead of a 64th, labels over box lines blended in two roundings)."""
    photo = np.full((300, 800, 3), 90, np.uint8)
    photo[:, ::3] = 160  # stripes, so that a misplaced label shows
    boxes = np.array([[20 + 64 * i, 40 + 100 * (i % 2), 50 + 64 * i, 70 + 100 * (i % 2)] for i in range(12)], float)
    females = [0.9 if i % 3 == 0 else 0.1 for i in range(12)]
    _label_sprite.cache_clear()
    drawn = draw_faces(photo, boxes, [25.2] * 12, females)
    info = _label_sprite.cache_info()
    assert (info.misses, info.hits) == (2, 10)
    vis = Visualizer(photo)
    colors = [FEMALE_COLOR if f > 0.5 else MALE_COLOR for f in females]
    labels = ["25, F" if f > 0.5 else "25, M" for f in females]
    vis.overlay_instances(boxes=boxes, labels=labels, assigned_colors=colors, alpha=0.0)
    ref = vis.get_output().get_image()
    lines = Visualizer(photo).overlay_instances(boxes=boxes, assigned_colors=colors, alpha=0.0).get_image()
    touched = (ref != photo).any(-1)
    assert touched.sum() > (lines != photo).any(-1).sum() + 12 * 150  # twelve labels drawn over the boxes
    diff = np.abs(drawn.astype(int) - ref.astype(int)).max(-1)
    assert diff.max() <= 5 and (diff > 2).sum() <= 0.05 * touched.sum()


def test_drawing_in_several_threads_gives_each_picture_as_drawn_alone():
    """Labels are rendered on a canvas of each thread's own: four threads drawing at once (new
    labels among them) give the pictures one thread draws."""
    photo = cv2.imread(os.path.join(ROOT, "demo", "family.jpg"))[:, :, ::-1].copy()
    ages = [[a + k if a is not None else None for a in AGES] for k in range(8)]
    _label_sprite.cache_clear()
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda a: draw_faces(photo, BOXES, a, FEMALES, dashed=DASHED), ages))
    _label_sprite.cache_clear()
    for a, picture in zip(ages, together):
        assert (picture == draw_faces(photo, BOXES, a, FEMALES, dashed=DASHED)).all()


def test_a_bgr_picture_is_drawn_as_its_rgb_one_with_the_channels_swapped():
    """draw_predictions (the demo's BGR pictures) swaps red and blue through OpenCV on the way in
    and out: the picture is draw_faces's of the RGB photo, channels reversed, to the last bit."""
    bgr = cv2.imread(os.path.join(ROOT, "demo", "family.jpg"))
    faces = [
        {"box": list(b), "age": a, "p_female": f, "score": 0.3 if d else 0.9}
        for b, a, f, d in zip(BOXES, AGES, FEMALES, DASHED)
    ]
    drawn = draw_predictions(bgr, faces)
    want = draw_faces(bgr[:, :, ::-1], BOXES, AGES, FEMALES, dashed=DASHED)[:, :, ::-1]
    assert drawn.flags.c_contiguous and (drawn == want).all() and (drawn != bgr).any()


def _labels_only(photo, boxes):
    """The picture of draw_faces's labels alone (its boxes taken off the canvas before rendering)."""
    vis = _face_visualizer()(*photo.shape[:2])
    vis.overlay_instances(boxes=boxes, labels=["34, F"] * len(boxes), assigned_colors=[FEMALE_COLOR] * len(boxes))
    for patch in list(vis.output.ax.patches):
        patch.remove()
    return _overlay_onto(vis, photo)


def test_a_label_is_pasted_at_its_anchors_nearest_pixel():
    """Boxes 0.37 px right and down of whole pixels get their labels where the whole-pixel boxes
    do, 0.63 px off where boxes one pixel further do: to the bit."""
    photo = cv2.imread(os.path.join(ROOT, "demo", "family.jpg"))[:, :, ::-1].copy()
    boxes = BOXES[:3]
    at = {off: _labels_only(photo, boxes + off) for off in (0.0, 0.37, 0.63, 1.0)}
    assert (at[0.0] != photo).any(-1).sum() > 3 * 150  # three labels drawn
    assert (at[0.37] == at[0.0]).all() and (at[0.63] == at[1.0]).all() and (at[0.0] != at[1.0]).any()


def test_a_label_larger_than_the_first_guess_grows_the_canvas(monkeypatch):
    """The canvas a label is rendered on grows until the label is clear of its edge: from a 16 px
    guess the sprite is the one rendered on a canvas large enough at once."""
    import foss_d2.utils.visualizer as visualizer

    style = (17.0, (0.95, 0.3, 0.45), "left", 0)
    _label_sprite.cache_clear()
    roomy, offset = _label_sprite("71, F", 1.0, style, 100.0)
    _label_sprite.cache_clear()
    monkeypatch.setattr(visualizer, "_sprite_side", lambda text, font_px: 16)
    visualizer._sprite_canvas.side = 0
    grown, grown_offset = _label_sprite("71, F", 1.0, style, 100.0)
    _label_sprite.cache_clear()
    assert roomy.shape[0] > 16 and roomy.shape[1] > 40  # larger than the guess, both ways
    assert grown.shape == roomy.shape and (grown == roomy).all() and grown_offset == offset


def test_bgra_pictures_and_faces_without_a_place():
    """A BGRA picture is drawn as its BGR one; a face whose box is not a number is left out of the
    picture (its label too), the others drawn."""
    bgr = cv2.imread(os.path.join(ROOT, "demo", "family.jpg"))
    faces = [{"box": list(b), "age": 30.0, "p_female": 0.2} for b in BOXES[:2]]
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    assert (draw_predictions(bgra, faces) == draw_predictions(bgr, faces)).all()
    lost = faces + [{"box": [float("nan")] * 4, "age": 30.0, "p_female": 0.2}]
    assert (draw_predictions(bgr, lost) == draw_predictions(bgr, faces)).all()
