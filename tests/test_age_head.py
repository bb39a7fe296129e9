import math

import numpy as np
import pytest
import torch
from conftest import needs_shared_data, shared_data_path

from foss_d2.roi_heads import (
    TResNetAgeNet,
    age_gender_losses,
    crop_faces,
    expand_boxes_with_margins,
    mean_variance_terms,
    sanitize_boxes,
)
from foss_d2.roi_heads.crops import roi_align_separable

from detectron2.structures import Boxes, Instances

LAMBDAS = {"mean": 0.01, "var": 0.0025, "ce": 0.05, "gen": 0.1}  # paper 4.2


def test_margins_20_top_10_others():
    boxes = torch.tensor([[10.0, 20.0, 110.0, 220.0]])  # w 100, h 200
    out = expand_boxes_with_margins(boxes, (0.2, 0.1, 0.1, 0.1))
    assert out.tolist() == [[0.0, -20.0, 120.0, 240.0]]


def _ramp(h=100, w=200):
    img = np.zeros((3, h, w), np.uint8)
    img[0] = (np.arange(w) % 250 + 5)[None, :]  # channel 0 encodes x + 5
    img[1] = (np.arange(h) + 5)[:, None]  # channel 1 encodes y + 5
    return torch.from_numpy(img)


def test_crop_geometry_inside_and_at_border():
    img = _ramp()
    crops = crop_faces(img, torch.tensor([[50.0, 20.0, 130.0, 60.0], [-20.0, 0.0, 60.0, 40.0]]), (40, 80))
    assert crops.shape == (2, 3, 40, 80)
    # Inside: one sample per pixel, bin j reads pixel 50 + j exactly.
    assert torch.allclose(crops[0, 0, 0] * 255, torch.arange(50, 130).float() + 5, atol=1e-3)
    assert torch.allclose(crops[0, 1, :, 0] * 255, torch.arange(20, 60).float() + 5, atol=1e-3)
    # Left of the image: zero padding; sample at x = -1 is clamped to pixel 0 (ROIAlign's rule).
    row = crops[1, 0, 5] * 255
    assert torch.all(row[:19] == 0)
    assert torch.allclose(row[19:22], torch.tensor([5.0, 5.0, 6.0]), atol=1e-3)


def test_crop_shrinks_with_area_averaging():
    img = torch.zeros(3, 8, 8, dtype=torch.uint8)
    img[:, :, ::2] = 255  # 1-pixel stripes: a point sampler would alias to all-black or all-white
    crop = crop_faces(img, torch.tensor([[0.0, 0.0, 8.0, 8.0]]), (2, 2))
    assert torch.allclose(crop, torch.full_like(crop, 0.5), atol=1e-6)


def test_separable_roi_align_hand_computed():
    img = torch.tensor([[[0.0, 10.0], [20.0, 30.0]]])
    box = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    # one bin, one sample: the bilinear value at the box centre (0.5, 0.5)
    assert roi_align_separable(img, box, (1, 1), 1).item() == pytest.approx(15.0)
    # two bins a side: each sample falls on a pixel centre
    assert roi_align_separable(img, box, (2, 2), 1)[0, 0].tolist() == [[0.0, 10.0], [20.0, 30.0]]
    # a box half left of the image: samples at x = -1 read pixel 0 (ROIAlign's clamp), under -1 read 0
    left = roi_align_separable(img, torch.tensor([[-2.0, 0.0, 2.0, 2.0]]), (2, 4), 1)[0, 0]
    assert left.tolist() == [[0.0, 0.0, 0.0, 10.0], [0.0, 20.0, 20.0, 30.0]]


def _random_boxes(n: int, h: int, w: int) -> torch.Tensor:
    """Boxes inside, across the border of and outside an h x w image, 0.05 px to 1.2 times its size."""
    xy = torch.rand(n, 2) * torch.tensor([w, h]) * 1.6 - torch.tensor([w, h]) * 0.3
    return torch.cat([xy, xy + torch.rand(n, 2) * torch.tensor([w, h]) * 1.2 + 0.05], dim=1)


@pytest.mark.parametrize("layout", ["uint8", "float", "channels_last"])
def test_separable_roi_align_is_torchvisions(layout):
    from torchvision.ops import roi_align

    torch.manual_seed(0)
    for _ in range(60):
        c, h, w = int(torch.randint(1, 6, ())), int(torch.randint(1, 50, ())), int(torch.randint(1, 50, ()))
        img = torch.randint(0, 256, (1, c, h, w), dtype=torch.uint8) if layout == "uint8" else torch.randn(1, c, h, w)
        if layout == "channels_last":
            img = img.contiguous(memory_format=torch.channels_last)
        boxes = _random_boxes(int(torch.randint(1, 12, ())), h, w)  # boxes of several window sizes
        out = (int(torch.randint(1, 9, ())), int(torch.randint(1, 9, ())))
        ratio = int(torch.randint(1, 5, ()))
        ref = roi_align(img.float(), [boxes], out, 1.0, ratio, True)
        tol = 1e-4 if layout == "uint8" else 1e-5  # (pixel values up to 255)
        assert torch.allclose(roi_align_separable(img[0], boxes, out, ratio), ref, atol=tol)


def test_separable_roi_align_in_batches_and_edge_cases(monkeypatch):
    from torchvision.ops import roi_align

    import foss_d2.roi_heads.crops as crops

    torch.manual_seed(2)
    img = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    boxes = _random_boxes(9, 40, 50)
    whole = crops.roi_align_separable(img, boxes, (6, 4), 2)
    one_group = torch.tensor([[3.0, 4.0, 20.0, 24.0], [10.0, 8.0, 27.0, 28.0]])  # boxes of one size
    assert whole.is_contiguous() and crops.roi_align_separable(img, one_group, (6, 4), 2).is_contiguous()
    monkeypatch.setattr(crops, "WINDOW_FLOATS", 1)  # one box a batch
    assert torch.equal(crops.roi_align_separable(img, boxes, (6, 4), 2), whole)
    assert torch.allclose(whole, roi_align(img[None].float(), [boxes], (6, 4), 1.0, 2, True), atol=1e-4)
    assert crops.roi_align_separable(img[:, :0], boxes, (6, 4), 2).eq(0).all()  # an empty image: zeros
    with pytest.raises(ValueError, match="sampling ratio"):
        crops.roi_align_separable(img, boxes, (6, 4), 0)


def test_separable_roi_align_gradient_is_torchvisions():
    from torchvision.ops import roi_align

    torch.manual_seed(1)
    fmap = torch.randn(1, 8, 30, 25).contiguous(memory_format=torch.channels_last)
    boxes = _random_boxes(9, 30, 25)
    a, b = fmap.clone().requires_grad_(), fmap.clone().requires_grad_()
    g = torch.randn(9, 8, 7, 5)
    roi_align(a, [boxes], (7, 5), 1.0, 2, True).backward(g)
    roi_align_separable(b[0], boxes, (7, 5), 2).backward(g)
    assert b.grad.abs().sum() > 0
    assert torch.allclose(a.grad, b.grad, atol=1e-5)


def test_torchvision_roi_align_within_its_context(monkeypatch):
    """``torchvision_roi_align`` (the benchmark's "as trained"): torchvision's kernel in this thread
    within it, ``roi_align_separable`` outside, the same crops either way."""
    import foss_d2.roi_heads.crops as crops

    calls = []
    real = crops.roi_align_separable
    monkeypatch.setattr(crops, "roi_align_separable", lambda *a: calls.append(1) or real(*a))
    img, boxes = _ramp(), torch.tensor([[50.0, 20.0, 130.0, 60.0], [-20.0, 0.0, 60.0, 40.0]])
    with crops.torchvision_roi_align():
        with crops.torchvision_roi_align():
            pass
        old = crop_faces(img, boxes, (40, 80))  # still inside after the nested one
    assert calls == []
    new = crop_faces(img, boxes, (40, 80))
    assert calls == [1]
    assert torch.allclose(old, new, atol=1e-6)


def test_sanitize_boxes():
    b = sanitize_boxes(torch.tensor([[5.0, 5.0, 3.0, float("nan")]]))
    assert b.tolist() == [[5.0, 5.0, 6.0, 6.0]]


@needs_shared_data
def test_crop_real_photo_at_border():
    import cv2

    path = shared_data_path("widerface", "WIDER_val", "images", "0--Parade", "0_Parade_Parade_0_125.jpg")
    bgr = cv2.imread(path)
    h, w = bgr.shape[:2]
    img = torch.from_numpy(bgr).permute(2, 0, 1).contiguous()
    # Face box 519 337 26 38 (XYWH) from wider_face_val_bbx_gt.txt, then a box touching the top-left corner.
    face = torch.tensor([[519.0, 337.0, 545.0, 375.0]])
    corner = torch.tensor([[0.0, 0.0, 40.0, 50.0]])
    boxes = expand_boxes_with_margins(torch.cat([face, corner]), (0.2, 0.1, 0.1, 0.1))
    crops = crop_faces(img, boxes, (224, 160))
    # Inside the image, the crop matches OpenCV's resize of the same pixels.
    x1, y1, x2, y2 = boxes[0].round().int().tolist()
    ref = cv2.resize(bgr[y1:y2, x1:x2], (160, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    got = crops[0].permute(1, 2, 0).numpy()
    assert np.abs(got - ref).mean() < 0.03
    # Corner box [0, 0, 40, 50] becomes [-4, -10, 44, 55]: the top 224 * 10/65 ≈ 34 rows and the
    # first 160 * 4/48 ≈ 13 columns lie outside the image and are padding.
    top_rows = int(224 * 10 / 65)
    left_cols = int(160 * 4 / 48)
    assert float(crops[1, :, : top_rows - 3].abs().max()) == 0.0
    assert float(crops[1, :, :, : left_cols - 2].abs().max()) == 0.0
    assert float(crops[1, :, top_rows + 3 :, left_cols + 3 :].mean()) > 0.05


def test_mean_variance_terms_match_direct_formula():
    torch.manual_seed(0)
    logits = torch.randn(3, 101)
    ages = torch.tensor([0.0, 37.4, 100.0])
    l_mean, l_var, l_ce = mean_variance_terms(logits, ages)
    p = torch.softmax(logits.double(), 1).numpy()
    j = np.arange(101)
    for i in range(3):
        m = (p[i] * j).sum()
        v = (p[i] * (j - m) ** 2).sum()
        assert float(l_mean[i]) == pytest.approx((m - ages[i].item()) ** 2 / 2, rel=1e-4)
        assert float(l_var[i]) == pytest.approx(v, rel=1e-4)
        assert float(l_ce[i]) == pytest.approx(-math.log(p[i][int(round(ages[i].item()))]), rel=1e-4)


def _target(boxes, ages, genders):
    t = Instances((200, 200))
    t.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    t.gt_classes = torch.zeros(len(boxes), dtype=torch.long)
    t.gt_ages = torch.tensor(ages, dtype=torch.float32)
    t.gt_genders = torch.tensor(genders, dtype=torch.float32)
    return t


def test_age_loss_hand_computed_and_iou_masking():
    # Uniform age distribution: mean 50, variance Σ(j-50)²/101 = 2·42925/101 = 850, CE = log 101.
    # Face with age 30: 0.01·(20²/2) + 0.0025·850 + 0.05·log(101).
    expected_age = 0.01 * 200 + 0.0025 * 850 + 0.05 * math.log(101)
    expected_gen = 0.1 * math.log(2)  # gender logit 0, label female
    tgt = _target([[0, 0, 100, 100], [150, 150, 200, 200]], [30.0, -1.0], [1.0, -1.0])
    # Box 1 matches face 1 (IoU 0.81); box 2 overlaps nothing (IoU 0); box 3 matches the face without labels.
    boxes = torch.tensor([[0.0, 0.0, 90.0, 90.0], [100.0, 0.0, 140.0, 40.0], [150.0, 150.0, 200.0, 200.0]])
    age_logits = torch.zeros(3, 101, requires_grad=True)
    gender_logits = torch.zeros(3, requires_grad=True)
    losses = age_gender_losses(age_logits, gender_logits, [boxes], [tgt], 0.3, LAMBDAS)
    assert float(losses["loss_age"]) == pytest.approx(expected_age, rel=1e-5)  # N_a = 1, not 3
    assert float(losses["loss_gender"]) == pytest.approx(expected_gen, rel=1e-5)
    (losses["loss_age"] + losses["loss_gender"]).backward()
    assert age_logits.grad[0].abs().sum() > 0
    assert age_logits.grad[1:].abs().sum() == 0  # masked boxes give no gradient
    assert gender_logits.grad[1:].abs().sum() == 0


def test_ages_past_the_last_class_carry_no_age_label():
    """The paper trains on ages 0-100 (4.1); UTKFace's 101-116 were trained with the CE class cut to
    100 and a mean loss pulling towards an age the 101 classes cannot reach. Now they count as
    faces without an age (their gender still trains)."""
    tgt = _target([[0, 0, 100, 100]], [116.0], [1.0])
    boxes = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    losses = age_gender_losses(torch.zeros(1, 101), torch.zeros(1), [boxes], [tgt], 0.3, LAMBDAS)
    assert float(losses["loss_age"]) == 0.0 and float(losses["loss_gender"]) == pytest.approx(0.1 * math.log(2))
    tgt.gt_ages = torch.tensor([100.0])  # the last class: an age label as before
    expected = 0.01 * 50**2 / 2 + 0.0025 * 850 + 0.05 * math.log(101)
    losses = age_gender_losses(torch.zeros(1, 101), torch.zeros(1), [boxes], [tgt], 0.3, LAMBDAS)
    assert float(losses["loss_age"]) == pytest.approx(expected, rel=1e-5)


def test_box_under_threshold_gives_no_loss():
    tgt = _target([[0, 0, 100, 100]], [30.0], [0.0])
    boxes = torch.tensor([[50.0, 50.0, 150.0, 150.0]])  # IoU 2500/17500 = 0.143 < 0.3
    logits = torch.randn(1, 101, requires_grad=True)
    losses = age_gender_losses(logits, torch.randn(1, requires_grad=True), [boxes], [tgt], 0.3, LAMBDAS)
    assert float(losses["loss_age"]) == 0.0 and float(losses["loss_gender"]) == 0.0
    losses["loss_age"].backward()  # still part of the graph
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


def test_all_masked_is_zero_and_finite():
    empty = _target(np.zeros((0, 4)).tolist(), [], [])
    logits = torch.randn(2, 101)
    losses = age_gender_losses(
        logits, torch.randn(2), [torch.rand(2, 4) * 10 + torch.tensor([0, 0, 20, 20])], [empty], 0.3, LAMBDAS
    )
    assert all(torch.isfinite(v) and float(v) == 0.0 for v in losses.values())


def test_feature_concat_point_and_width():
    net = TResNetAgeNet(
        layers=(1, 1, 2, 1), width_factor=0.5, crop_hw=(224, 160), feature_hw=(14, 10), feature_channels=48
    )
    assert net.concat_stage == "layer3"  # 224/16 x 160/16 = 14 x 10
    block = net.body.layer3[0]
    assert block.conv3.conv.out_channels == 32 * 4 * 4 - 48  # narrowed by the 48 concatenated channels
    seen = {}

    def record_input(module, inputs, output):
        seen["in"] = inputs[0].shape

    net.body.layer3[1].register_forward_hook(record_input)
    age, gender = net(torch.rand(2, 3, 224, 160), torch.randn(2, 48, 14, 10))
    assert seen["in"] == (2, 512, 14, 10)  # 464 + 48: the stage width is unchanged
    assert age.shape == (2, 101) and gender.shape == (2,)
    with pytest.raises(ValueError, match="No TResNet stage"):
        TResNetAgeNet(
            layers=(1, 1, 1, 1), width_factor=0.5, crop_hw=(224, 160), feature_hw=(10, 10), feature_channels=48
        )


def test_tresnet_s_parameter_count():
    """Paper 4.2: TResNet-S ≈ 19.2M parameters; the feature connection makes it slightly smaller."""
    count = lambda m: sum(p.numel() for p in m.body.parameters())  # noqa: E731
    base = TResNetAgeNet()
    with_feat = TResNetAgeNet(feature_channels=48)
    assert count(base) == 19_286_619
    assert 19_100_000 < count(with_feat) < count(base)


def _tiny_tta(test_flip: bool):
    """A tiny FOSS in FOSSWithTTA, which holds MODEL.AGE_HEAD.TEST_FLIP; no feature connection, so
    the age head reads the crops alone."""
    from conftest import tiny_cfg

    from foss_d2.meta_arch import FOSSWithTTA
    from foss_d2.roi_heads import TResNetAgeHead

    from detectron2.modeling import build_model

    cfg = tiny_cfg(**{"MODEL.AGE_HEAD.TEST_FLIP": test_flip, "MODEL.AGE_HEAD.INTERMEDIATE_FEATURE": False})
    model = build_model(cfg)
    torch.manual_seed(0)  # the same age network whatever the rest of the model drew
    model.age_head = TResNetAgeHead(cfg)
    return FOSSWithTTA(cfg, model.eval())


def _faces(box, hw):
    inst = Instances(hw)
    inst.pred_boxes = Boxes(torch.tensor([box], dtype=torch.float32))
    return inst


@torch.no_grad()
def test_test_flip_averages_the_crop_and_its_mirror():
    tta = _tiny_tta(True)
    head = tta.model.age_head
    image = torch.randint(0, 256, (3, 120, 100), dtype=torch.uint8)
    box = [20.0, 30.0, 70.0, 100.0]
    out = tta.estimate_ages([image], [_faces(box, (120, 100))], None, None)[0]
    # By hand: the margin-enlarged crop in RGB, through the network as it is and mirrored.
    crop = crop_faces(image, expand_boxes_with_margins(torch.tensor([box]), head.margins), head.crop_hw).flip(1)
    (a1, g1), (a2, g2) = head.net(crop), head.net(crop.flip(-1))
    probs = (a1.softmax(1) + a2.softmax(1)) / 2
    ages = (probs * torch.arange(101.0)).sum(1)
    assert torch.allclose(out.pred_age_probs, probs, atol=1e-6)
    assert torch.allclose(out.pred_ages, ages, atol=1e-4)
    assert torch.allclose(out.pred_female_probs, (g1.sigmoid() + g2.sigmoid()) / 2, atol=1e-6)
    single = (a1.softmax(1) * torch.arange(101.0)).sum(1)
    assert not torch.allclose(out.pred_ages, single, atol=1e-3)  # the mirror did change the answer


@torch.no_grad()
def test_test_flip_gives_a_mirrored_photo_the_same_answer():
    image = torch.randint(0, 256, (3, 120, 100), dtype=torch.uint8)
    mirrored = image.flip(-1)
    box, mirrored_box = [20.0, 30.0, 70.0, 100.0], [30.0, 30.0, 80.0, 100.0]  # x -> 100 - x
    for test_flip in (False, True):
        tta = _tiny_tta(test_flip)
        a = tta.estimate_ages([image], [_faces(box, (120, 100))], None, None)[0]
        b = tta.estimate_ages([mirrored], [_faces(mirrored_box, (120, 100))], None, None)[0]
        same = torch.allclose(a.pred_ages, b.pred_ages, atol=1e-4) and torch.allclose(
            a.pred_female_probs, b.pred_female_probs, atol=1e-5
        )
        assert same == test_flip, f"TEST_FLIP {test_flip}: ages {a.pred_ages} vs {b.pred_ages}"


@torch.no_grad()
def test_forward_reads_each_face_from_its_own_crop_and_handles_no_faces():
    """``forward`` on two images' faces equals, face by face, the margin-enlarged crop through the
    network by hand: softmax, its mean and standard deviation, sigmoid of the gender logit."""
    head = _tiny_tta(False).model.age_head
    torch.manual_seed(1)
    images = [torch.randint(0, 256, (3, 120, 100), dtype=torch.uint8) for _ in range(2)]
    boxes = [[20.0, 30.0, 70.0, 100.0], [0.0, 0.0, 40.0, 50.0]]
    out = head(images, [_faces(b, (120, 100)) for b in boxes])
    ages = torch.arange(101.0)
    for image, box, inst in zip(images, boxes, out):
        crop = crop_faces(image, expand_boxes_with_margins(torch.tensor([box]), head.margins), head.crop_hw).flip(1)
        age_logits, gender_logits = head.net(crop)
        probs = age_logits.softmax(1)
        mean = (probs * ages).sum(1)
        std = (probs * (ages - mean[:, None]) ** 2).sum(1).sqrt()
        assert torch.allclose(inst.pred_age_probs, probs, atol=1e-6)
        assert torch.allclose(inst.pred_ages, mean, atol=1e-4)
        assert torch.allclose(inst.pred_age_stds, std, atol=1e-4)
        assert torch.allclose(inst.pred_female_probs, gender_logits.sigmoid(), atol=1e-6)
    assert not torch.allclose(out[0].pred_age_probs, out[1].pred_age_probs)  # two faces, two answers
    empty = Instances((120, 100))
    empty.pred_boxes = Boxes(torch.zeros(0, 4))
    (e,) = head([images[0]], [empty])
    assert e.pred_age_probs.shape == (0, 101) and len(e.pred_ages) == 0 and len(e.pred_female_probs) == 0


def test_attach_reads_mean_and_standard_deviation_by_hand():
    """``pred_ages`` and ``pred_age_stds`` (the JSON's ``age`` and ``age_std``) of distributions
    worked out by hand: half at 20 and half at 40 is 30 +- 10; all at 30 is 30 +- 0; no gender
    branch gives NaN P(female)."""
    head = _tiny_tta(False).model.age_head
    probs = torch.zeros(3, 101)
    probs[0, 20] = probs[0, 40] = 0.5
    probs[1, 30] = 1.0
    probs[2, 0], probs[2, 100] = 0.75, 0.25  # mean 25, variance 0.75 * 625 + 0.25 * 5625 = 1875
    a, b = _faces([0.0, 0.0, 10.0, 10.0], (20, 20)), Instances((20, 20))
    b.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 5.0, 5.0], [1.0, 1.0, 6.0, 6.0]]))
    head.attach([a, b], probs, torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(a.pred_ages, torch.tensor([30.0])) and torch.allclose(a.pred_age_stds, torch.tensor([10.0]))
    assert torch.allclose(b.pred_ages, torch.tensor([30.0, 25.0]))
    assert torch.allclose(b.pred_age_stds, torch.tensor([0.0, 1875**0.5]))
    assert torch.allclose(b.pred_female_probs, torch.tensor([0.2, 0.3]))
    c = _faces([0.0, 0.0, 10.0, 10.0], (20, 20))
    head.attach([c], probs[:1], None)
    assert torch.isnan(c.pred_female_probs).all()


@torch.no_grad()
def test_test_crops_per_call_splits_the_crowd_into_calls_with_the_same_answers():
    """7 crops at 3 a call: calls of 3, 3 and 1 whose answers are the single call's, in order;
    0 is one call. Training ignores the limit; a negative one is refused."""
    from conftest import tiny_cfg

    from foss_d2.roi_heads import TResNetAgeHead

    torch.manual_seed(0)
    head = TResNetAgeHead(tiny_cfg(**{"MODEL.AGE_HEAD.INTERMEDIATE_FEATURE": False})).eval()
    crops = torch.rand(7, 3, *head.crop_hw)
    whole = head.net(crops)
    calls = []
    head.net.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    head.test_crops_per_call = 3
    age, gender = head.run_net(crops, None)
    assert calls == [3, 3, 1]
    assert torch.allclose(age, whole[0], atol=1e-5) and torch.allclose(gender, whole[1], atol=1e-5)
    calls.clear()
    head.test_crops_per_call = 0
    head.run_net(crops, None)
    assert calls == [7]
    calls.clear()
    head.test_crops_per_call = 3
    head.train()
    head.run_net(crops, None)
    assert calls == [7]
    with pytest.raises(ValueError, match="TEST_CROPS_PER_CALL must be >= 0"):
        TResNetAgeHead(
            tiny_cfg(**{"MODEL.AGE_HEAD.INTERMEDIATE_FEATURE": False, "MODEL.AGE_HEAD.TEST_CROPS_PER_CALL": -1})
        )
