"""Issue 16: ages in the wild. INPUT.AUG.WILD's photometric ops, MODEL.AGE_HEAD.CROP_JITTER and
ZERO_FEATURE, DATALOADER.AGE_BALANCE, and that all of them off leave the old path as it was."""

import cv2
import numpy as np
import pytest
import torch
from conftest import tiny_cfg
from torchvision.ops import roi_align

from foss_d2.data import DatasetWeightedTrainingSampler, FOSSDatasetMapper, LimitMaxSide, build_foss_augmentations
from foss_d2.data.augmentation import (
    RandomDownscale,
    RandomGamma,
    RandomGreyscale,
    RandomJPEG,
    RandomOccluder,
    build_wild_augmentations,
    downscale_upscale,
    jpeg_round_trip,
)
from foss_d2.data.samplers import age_balance_weights
from foss_d2.roi_heads import TResNetAgeHead
from foss_d2.roi_heads.crops import crop_faces, expand_boxes_with_margins, jitter_boxes, sanitize_boxes
from foss_d2.utils.ages import AGE_BANDS, age_band

from detectron2.data import transforms as T
from detectron2.structures import Boxes, BoxMode, Instances


def _apply(aug, image, boxes=None):
    inp = T.AugInput(image, boxes=None if boxes is None else np.asarray(boxes, np.float64))
    aug(inp)
    return inp.image


def _photo(h=120, w=160, seed=0):
    """A smooth picture with some texture (what JPEG is made for): gradients plus mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 60], axis=2)
    img = img + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


# --- photometric ops -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,code", [("BGR", cv2.COLOR_BGR2GRAY), ("RGB", cv2.COLOR_RGB2GRAY)])
def test_greyscale_is_opencvs_in_three_equal_channels(fmt, code):
    img = _photo()
    out = _apply(RandomGreyscale(1.0, fmt), img)
    grey = cv2.cvtColor(img, code)
    assert out.shape == img.shape and out.dtype == np.uint8
    for c in range(3):
        assert np.array_equal(out[:, :, c], grey)
    # a pure red pixel: 0.299 * 255 = 76.2 -> 76 (BGR order: red is the last channel)
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 2 if fmt == "BGR" else 0] = 255
    assert _apply(RandomGreyscale(1.0, fmt), red)[0, 0].tolist() == [76, 76, 76]


def test_downscale_keeps_a_flat_picture_and_loses_a_checkerboard():
    flat = np.full((60, 90, 3), 173, np.uint8)
    assert np.array_equal(downscale_upscale(flat, 3.7), flat)
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)[:, :, None].repeat(3, 2)
    out = _apply(RandomDownscale(1.0, (2.0, 2.0)), board)
    assert out.shape == board.shape
    # every 2x2 block averages to 127.5: the pattern is gone, only its mean grey is left
    assert board.std() > 127 and out.std() < 2 and abs(out.mean() - 127.5) < 1
    # factor 1 is (almost) the identity: INTER_AREA then INTER_LINEAR at the same size
    img = _photo()
    assert np.array_equal(downscale_upscale(img, 1.0), img)


def test_gamma_lut_by_hand():
    img = np.array([[[0, 128, 255]]], np.uint8)
    out = _apply(RandomGamma(1.0, (2.0, 2.0)), img)
    # 255 * (128 / 255) ** 2 = 64.25 -> 64; 0 and 255 stay
    assert out.tolist() == [[[0, 64, 255]]]
    out = _apply(RandomGamma(1.0, (0.5, 0.5)), img)
    assert out.tolist() == [[[0, 181, 255]]]  # 255 * sqrt(128 / 255) = 180.66


@pytest.mark.parametrize("quality", [30, 60, 90])
def test_jpeg_changes_the_picture_but_stays_close(quality):
    img = _photo()
    out = jpeg_round_trip(img, quality)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)
    assert 25 < _psnr(out, img) < 45, _psnr(out, img)
    # what OpenCV gives by itself
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert np.array_equal(out, cv2.imdecode(buf, cv2.IMREAD_COLOR))
    # RGB pictures go through the codec in OpenCV's order and come back in theirs
    rgb = jpeg_round_trip(img[:, :, ::-1], quality, "RGB")
    assert np.array_equal(rgb, out[:, :, ::-1])


def test_jpeg_worse_quality_loses_more():
    img = _photo(seed=1)
    assert _psnr(jpeg_round_trip(img, 30), img) < _psnr(jpeg_round_trip(img, 90), img)
    np.random.seed(0)
    qs = set()
    for _ in range(50):
        out = _apply(RandomJPEG(1.0, (40, 40)), img)
        qs.add(out.tobytes())
    assert len(qs) == 1 and np.array_equal(out, jpeg_round_trip(img, 40))


def test_occluder_covers_the_asked_fraction_inside_one_box():
    bg = np.empty((200, 300, 3), np.uint8)
    bg[:] = (7, 13, 29)
    boxes = [[20.0, 30.0, 120.0, 130.0], [150.0, 40.0, 250.0, 140.0]]  # two 100x100 faces
    lo, hi = 0.1, 0.3
    np.random.seed(0)
    hit = [0, 0]
    for _ in range(200):
        src = bg.copy()
        out = _apply(RandomOccluder(1.0, (lo, hi)), src, boxes)
        assert np.array_equal(src, bg)  # the input is not written into (cached images)
        changed = (out != bg).any(2)
        ys, xs = np.nonzero(changed)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        # one rectangle, filled (solid or noise: at most a few noise pixels equal the background)
        assert changed[y0:y1, x0:x1].mean() > 0.99
        inside = [b for b in boxes if b[0] <= x0 and x1 <= b[2] and b[1] <= y0 and y1 <= b[3]]
        assert len(inside) == 1
        hit[boxes.index(inside[0])] += 1
        frac = (x1 - x0) * (y1 - y0) / (100 * 100)
        assert lo - 0.015 <= frac <= hi + 0.015, frac  # rounding to whole pixels
    assert min(hit) > 60  # both faces get occluded
    # no faces, no occluder; never the whole of a tiny face
    assert np.array_equal(_apply(RandomOccluder(1.0), bg, np.zeros((0, 4))), bg)
    tiny = [[10.0, 10.0, 12.0, 12.0]]
    for _ in range(20):
        out = _apply(RandomOccluder(1.0, (0.9, 0.99)), bg.copy(), tiny)
        assert (out[10:12, 10:12] == bg[10:12, 10:12]).all(2).any()
    with pytest.raises(ValueError, match=r"occluder size must satisfy 0 < lo <= hi < 1"):
        RandomOccluder(1.0, (0.2, 1.0))


def test_probability_zero_and_defaults_build_nothing():
    img = _photo()
    for aug in (RandomJPEG(0.0), RandomDownscale(0.0), RandomGreyscale(0.0), RandomGamma(0.0), RandomOccluder(0.0)):
        inp = T.AugInput(img, boxes=np.array([[0.0, 0.0, 50.0, 50.0]]))
        assert isinstance(aug(inp), T.NoOpTransform)
    cfg = tiny_cfg()
    assert build_wild_augmentations(cfg, True) == []
    cfg.INPUT.AUG.WILD.JPEG_PROB = 0.5
    cfg.INPUT.AUG.WILD.OCCLUDER_PROB = 0.5
    assert [type(a) for a in build_wild_augmentations(cfg, True)] == [RandomOccluder, RandomJPEG]
    assert build_wild_augmentations(cfg, False) == []  # training only


# --- the mapper ----------------------------------------------------------------------------------


def _record(tmp_path, i, color, h=120, w=100):
    img = np.full((h, w, 3), 90, np.uint8)
    img[30:90, 20:80] = color
    path = str(tmp_path / f"face{i}.png")
    cv2.imwrite(path, img)
    ann = {"bbox": [20.0, 30.0, 80.0, 90.0], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0, "age": 5.0 + i}
    return {"file_name": path, "image_id": i, "height": h, "width": w, "annotations": [ann], "dataset_name": "d"}, img


def _plain(cfg):
    for k, v in (("FLIP", False), ("SCALE_RANGE", [1.0, 1.0]), ("CROP_FRACTION", 1.0), ("ROTATION", 0.0)):
        cfg.INPUT.AUG[k] = v
    cfg.INPUT.AUG.COLOR_JITTER = 0.0
    cfg.INPUT.AUG.BLUR_PROB = 0.0
    return cfg


def test_defaults_leave_the_mapper_as_it_was(tmp_path):
    """All off: the mapper's image is what the pre-issue-16 pipeline (LimitMaxSide + the paper's
    augmentations) gives for the same seed, and no random draw is spent on the new ops."""
    rec, img = _record(tmp_path, 0, (200, 40, 40))
    cfg = tiny_cfg()
    cfg.INPUT.AUG.ROTATION = 10.0
    mapper = FOSSDatasetMapper(cfg, True)
    assert mapper.wild is None
    for seed in range(3):
        np.random.seed(seed)
        out = mapper(rec)
        after_mapper = np.random.get_state()
        np.random.seed(seed)
        inp = T.AugInput(img.copy())
        T.AugmentationList([LimitMaxSide(cfg.INPUT.MAX_SIDE)] + build_foss_augmentations(cfg, True))(inp)
        assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), inp.image)
        after_old = np.random.get_state()
        assert np.array_equal(after_mapper[1], after_old[1]) and after_mapper[2] == after_old[2]
    # tiled datasets: no per-image hook either
    cfg.INPUT.TILING.ENABLED = True
    mapper = FOSSDatasetMapper(cfg, True, pools={"d": [rec]})
    assert mapper.tilers["d"].augment is None


def test_wild_ops_on_an_untiled_picture_keep_the_labels(tmp_path):
    rec, img = _record(tmp_path, 0, (200, 40, 40))
    cfg = _plain(tiny_cfg())
    cfg.INPUT.AUG.WILD.GREY_PROB = 1.0
    out = FOSSDatasetMapper(cfg, True)(rec)
    image = out["image"].permute(1, 2, 0).numpy()
    assert np.array_equal(image, np.repeat(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None], 3, 2))
    assert out["instances"].gt_boxes.tensor.tolist() == [[20.0, 30.0, 80.0, 90.0]]
    assert out["instances"].gt_ages.tolist() == [5.0]
    # test-time mappers never augment
    assert np.array_equal(FOSSDatasetMapper(cfg, False)(rec)["image"].permute(1, 2, 0).numpy(), img)


def test_each_tile_draws_its_own_look(tmp_path):
    colors = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
    recs = [_record(tmp_path, i, c)[0] for i, c in enumerate(colors)]
    cfg = _plain(tiny_cfg())
    cfg.INPUT.TILING.ENABLED = True
    cfg.INPUT.TILING.NUM_TILES = [4]
    cfg.INPUT.TILING.PROBS = [1.0]
    cfg.INPUT.TILING.CANVAS_SIZE = 200
    cfg.INPUT.AUG.WILD.GREY_PROB = 0.5
    mapper = FOSSDatasetMapper(cfg, True, pools={"d": recs})
    np.random.seed(0)
    mixed = 0
    for _ in range(20):
        out = mapper(recs[0])
        image = out["image"].permute(1, 2, 0).numpy()
        grey = []
        for x1, y1, x2, y2 in out["instances"].gt_boxes.tensor.round().int().tolist():
            c = image[(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
            grey.append(int(c.max() - c.min()) <= 1)
        mixed += 0 < sum(grey) < len(grey)
    assert mixed >= 5  # grey and colour tiles on one canvas


def test_wild_ops_with_cached_images_and_colour_on_device(tmp_path):
    from foss_d2.data.cache import DecodedImageCache

    rec, img = _record(tmp_path, 0, (200, 40, 40))
    cache = DecodedImageCache.build([rec])
    cached = cache.images[rec["file_name"]]
    before = cached.copy()
    cfg = _plain(tiny_cfg())
    cfg.INPUT.AUG.COLOR_JITTER = 0.2
    cfg.INPUT.AUG.COLOR_ON_DEVICE = True
    for k in ("OCCLUDER_PROB", "GAMMA_PROB", "DOWNSCALE_PROB", "JPEG_PROB"):
        cfg.INPUT.AUG.WILD[k] = 1.0
    mapper = FOSSDatasetMapper(cfg, True, read_image=cache)
    np.random.seed(0)
    out = mapper(rec)
    assert len(out["color_jitter"]) == 3 and tuple(out["image"].shape) == (3, 120, 100)
    assert not np.array_equal(out["image"].permute(1, 2, 0).numpy(), img)
    assert np.array_equal(cached, before)  # the cache stays as decoded


# --- crop jitter and the zeroed feature ------------------------------------------------------------


def test_crop_jitter_zero_is_identity_and_bounded_otherwise():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 8.0, 4.0]])
    assert torch.equal(jitter_boxes(boxes, 0.0, 0.0, 0.0), boxes)
    big = boxes.repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    j = jitter_boxes(big, 0.1, 0.15, 0.1, generator=g)
    w0, h0 = big[:, 2] - big[:, 0], big[:, 3] - big[:, 1]
    w1, h1 = j[:, 2] - j[:, 0], j[:, 3] - j[:, 1]
    dx = ((j[:, 0] + j[:, 2]) - (big[:, 0] + big[:, 2])) / 2 / w0
    dy = ((j[:, 1] + j[:, 3]) - (big[:, 1] + big[:, 3])) / 2 / h0
    size = (w1 * h1 / (w0 * h0)).sqrt()
    aspect = (w1 / h1) / (w0 / h0)
    eps = 1e-5
    assert dx.abs().max() <= 0.1 + eps and dy.abs().max() <= 0.1 + eps
    assert size.min() >= 0.85 - eps and size.max() <= 1.15 + eps
    assert aspect.min() >= 0.9 - eps and aspect.max() <= 1.1 + eps
    # and it does use the range (uniform draws)
    assert dx.abs().max() > 0.09 and size.max() > 1.13 and aspect.min() < 0.92
    # each parameter alone touches only its own property
    only_shift = jitter_boxes(big, 0.1, 0.0, 0.0, generator=g)
    assert torch.allclose(only_shift[:, 2] - only_shift[:, 0], w0) and torch.allclose(
        only_shift[:, 3] - only_shift[:, 1], h0
    )


def _head(**kw):
    cfg = tiny_cfg(**{f"MODEL.AGE_HEAD.{k}": v for k, v in kw.items()})
    from detectron2.layers import ShapeSpec

    torch.manual_seed(0)
    return TResNetAgeHead(cfg, {"dla_up": ShapeSpec(channels=8, stride=4)})


def _inputs():
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, 120, 100), dtype=torch.uint8)
    inst = Instances((120, 100))
    inst.pred_boxes = Boxes(torch.tensor([[20.0, 30.0, 70.0, 100.0], [5.0, 5.0, 40.0, 45.0]]))
    features = {"dla_up": torch.randn(1, 8, 30, 25)}
    return image, inst, features, [(0.25, 0.25)]


def test_crop_jitter_cuts_crop_and_feature_from_one_box_in_training_only():
    head = _head(CROP_JITTER=[0.1, 0.15, 0.1])
    image, inst, features, scales = _inputs()
    head.train()
    torch.manual_seed(5)
    boxes, crops, feat = head.crops_and_features([image], [inst], features, scales)
    assert torch.equal(boxes[0], inst.pred_boxes.tensor)  # the losses match the detector's box
    torch.manual_seed(5)
    cut = sanitize_boxes(jitter_boxes(inst.pred_boxes.tensor, 0.1, 0.15, 0.1))
    assert not torch.allclose(cut, inst.pred_boxes.tensor)
    cb = expand_boxes_with_margins(cut, head.margins)
    assert torch.allclose(crops, crop_faces(image, cb, head.crop_hw).flip(1))
    rois = [cb * 0.25]
    # (roi_align_separable on CPU: torchvision's numbers to float rounding)
    assert torch.allclose(feat, roi_align(features["dla_up"], rois, head.feature_hw, 1.0, 2, True), atol=1e-6)
    # inference: the detector's box as it is
    head.eval()
    _, crops_eval, _ = head.crops_and_features([image], [inst], features, scales)
    cb0 = expand_boxes_with_margins(inst.pred_boxes.tensor, head.margins)
    assert torch.allclose(crops_eval, crop_faces(image, cb0, head.crop_hw).flip(1))
    with pytest.raises(ValueError, match="CROP_JITTER must be"):
        _head(CROP_JITTER=[0.1, 1.0, 0.1])


@pytest.mark.parametrize("training", [True, False])
def test_zero_feature_gives_zeros_where_the_feature_is_made(training):
    image, inst, features, scales = _inputs()
    off, on = _head(), _head(ZERO_FEATURE=True)
    for h in (off, on):
        h.train(training)
    _, crops_off, feat_off = off.crops_and_features([image], [inst], features, scales)
    _, crops_on, feat_on = on.crops_and_features([image], [inst], features, scales)
    assert feat_on.shape == feat_off.shape == (2, 8, 7, 5)
    assert feat_off.abs().sum() > 0 and torch.count_nonzero(feat_on) == 0
    assert torch.equal(crops_on, crops_off)
    if not training:  # the test-time mirror average (FOSSWithTTA) reads what crops_and_features gives
        with torch.no_grad():
            a, _ = on.predict(crops_on, feat_on, mirror=True)
            b, _ = on.predict(crops_on, torch.zeros_like(feat_off), mirror=True)
        assert torch.equal(a, b)


def test_zero_feature_reaches_the_built_model():
    from detectron2.modeling import build_model

    cfg = tiny_cfg(**{"MODEL.AGE_HEAD.ZERO_FEATURE": True, "MODEL.AGE_HEAD.CROP_JITTER": [0.1, 0.1, 0.1]})
    head = build_model(cfg).age_head
    assert head.zero_feature and head.crop_jitter == (0.1, 0.1, 0.1)
    head = build_model(tiny_cfg()).age_head
    assert not head.zero_feature and head.crop_jitter == (0.0, 0.0, 0.0)


# --- age balance -----------------------------------------------------------------------------------


def _rec(*ages):
    return {"annotations": [{"age": float(a)} for a in ages]}


def test_age_bands():
    assert len(AGE_BANDS) == 6
    assert [age_band(a) for a in (0, 2, 2.9, 3, 9, 10, 19, 20, 39, 40, 59, 60, 116)] == [
        0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5,
    ]  # fmt: skip


def test_age_balance_weights_by_hand():
    # 3 adults + 1 child, a = 1: each band gets half of the draws
    w = np.array(age_balance_weights([_rec(30), _rec(25), _rec(35), _rec(6)], 1.0))
    assert np.allclose(w / w.sum(), [1 / 6, 1 / 6, 1 / 6, 1 / 2])
    # a = 0.5: adults (1/3)^0.5 each, the child 1: child share 1 / (1 + 3 / sqrt(3)) = 0.366
    w = np.array(age_balance_weights([_rec(30), _rec(25), _rec(35), _rec(6)], 0.5))
    assert w[3] / w.sum() == pytest.approx(1 / (1 + np.sqrt(3)))
    # a = 0: uniform
    assert age_balance_weights([_rec(30), _rec(6), _rec(70)], 0.0) == [1.0, 1.0, 1.0]
    # unlabelled images keep weight 1 and the labelled ones keep their share (4 of 6)
    w = np.array(age_balance_weights([_rec(30), _rec(25), _rec(35), _rec(6), _rec(-1), {"annotations": []}], 1.0))
    assert w[4] == w[5] == 1.0 and w[:4].sum() == pytest.approx(4.0)
    assert w[3] / w.sum() == pytest.approx(2 / 6)
    # a two-face image (adult + child) weighs the mean of its faces: faces 30, 25, 6, (30, 6) ->
    # adult count 3, child count 2: face weights 1/3 and 1/2; image weights 1/3, 1/3, 1/2, 5/12
    w = np.array(age_balance_weights([_rec(30), _rec(25), _rec(6), _rec(30, 6)], 1.0))
    raw = np.array([1 / 3, 1 / 3, 1 / 2, 5 / 12])
    assert np.allclose(w / w.sum(), raw / raw.sum())
    with pytest.raises(ValueError, match=r"AGE_BALANCE must be in \[0, 1\], got 1.5"):
        age_balance_weights([_rec(3)], 1.5)


def test_sampler_keeps_dataset_probabilities_with_image_weights():
    # dataset 0: 3 adults + 1 child (a = 1); dataset 1: 2 images without weights; probabilities 0.5 each
    iw = [age_balance_weights([_rec(30), _rec(25), _rec(35), _rec(6)], 1.0), None]
    s = DatasetWeightedTrainingSampler([4, 2], weights=[1, 1], seed=0, image_weights=iw)
    assert torch.allclose(s._weights, torch.tensor([1 / 12, 1 / 12, 1 / 12, 1 / 4, 1 / 4, 1 / 4], dtype=torch.float64))
    it = iter(s)
    idx = np.array([next(it) for _ in range(40_000)])
    freq = np.bincount(idx, minlength=6) / len(idx)
    assert freq[:4].sum() == pytest.approx(0.5, abs=0.01) and freq[3] == pytest.approx(0.25, abs=0.01)
    # without image weights: as before
    s0 = DatasetWeightedTrainingSampler([4, 2], weights=[1, 1], seed=0)
    assert torch.allclose(s0._weights, torch.tensor([1 / 8] * 4 + [1 / 4] * 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="dataset 0: need 4 non-negative image weights"):
        DatasetWeightedTrainingSampler([4, 2], image_weights=[[1.0, 1.0], None])


def test_tiler_draws_its_extra_tiles_with_the_pool_weights():
    """Age balance reaches every tile of a canvas, not only the one the sampler picked."""
    from foss_d2.data import TilingAugmentation

    pool = [{"annotations": [{"bbox": [0, 0, 4, 4], "bbox_mode": BoxMode.XYXY_ABS, "age": float(i)}]} for i in range(5)]
    read = lambda r: np.zeros((8, 8, 3), np.uint8)  # noqa: E731
    tiler = TilingAugmentation(pool, read, num_tiles=[9], max_images=9, canvas_size=90, pool_weights=[0, 0, 1, 0, 0])
    for seed in range(5):
        _, annos = tiler(pool[0], np.random.default_rng(seed))
        ages = sorted(a["age"] for a in annos)
        assert ages.count(0.0) >= 1 and set(ages) <= {0.0, 2.0} and ages.count(2.0) >= 1
    # a = 1 weights of 3 adults + 1 child: half of the extra tiles are the child
    pool = [{"annotations": [{"bbox": [0, 0, 4, 4], "bbox_mode": BoxMode.XYXY_ABS, "age": a}]} for a in (30, 25, 35, 6)]
    tiler = TilingAugmentation(
        pool, read, num_tiles=[9], max_images=9, canvas_size=90, pool_weights=age_balance_weights(pool, 1.0)
    )
    rng = np.random.default_rng(0)
    children = [[a["age"] for a in tiler(pool[0], rng)[1]].count(6) for _ in range(300)]
    # the canvas holds its record (an adult) and 8 extra tiles, in shuffled cells
    assert abs(np.mean(children) / 8 - 0.5) < 0.03
    with pytest.raises(ValueError, match="non-negative pool weights"):
        TilingAugmentation(pool, read, pool_weights=[1.0])
