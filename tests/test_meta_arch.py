import numpy as np
import pytest
import torch
from conftest import tiny_cfg

from foss_d2.engine import FOSSPredictor, load_image
from foss_d2.meta_arch import FOSSWithTTA

from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances


def _sample(h=160, w=200):
    torch.manual_seed(0)
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor([[20.0, 30.0, 80.0, 100.0], [120.0, 40.0, 170.0, 110.0]]))
    inst.gt_classes = torch.zeros(2, dtype=torch.long)
    inst.gt_ages = torch.tensor([25.0, -1.0])
    inst.gt_genders = torch.tensor([1.0, 0.0])
    return {"image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8), "instances": inst}


def _grads(params):
    return [p.grad for p in params]


def _adam_steps(model, opt, steps=3):
    """A few training steps on two toy samples of different sizes."""
    for _ in range(steps):
        losses = model([_sample(), _sample(120, 90)])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_detector_gets_no_gradient(frozen):
    cfg = tiny_cfg(**{"MODEL.FOSS.FREEZE_DETECTOR": frozen, "MODEL.FOSS.ADD_GT_BOXES": True})
    model = build_model(cfg)
    model.train()
    losses = model([_sample(), _sample(120, 90)])
    det_losses = {"loss_heatmap", "loss_size", "loss_offset"}
    assert det_losses.isdisjoint(losses) if frozen else det_losses <= set(losses)
    assert {"loss_age", "loss_gender"} <= set(losses)
    sum(losses.values()).backward()
    det_grads = _grads(model.detector_parameters())
    age_grads = _grads(model.age_head.parameters())
    if frozen:
        assert all(g is None for g in det_grads)
        assert not model.backbone.training  # BatchNorm statistics stay frozen too
    else:
        assert sum(float(g.abs().sum()) for g in det_grads if g is not None) > 0
        # the age loss alone reaches the detector through the intermediate feature connection
        model.zero_grad(set_to_none=True)
        model([_sample()])["loss_age"].backward()
        assert float(next(iter(model.backbone.dla_up.parameters())).grad.abs().sum()) > 0
    assert sum(float(g.abs().sum()) for g in age_grads if g is not None) > 0


def test_detector_only_mode_has_no_age_head():
    model = build_model(tiny_cfg(**{"MODEL.FOSS.DETECTOR_ONLY": True}))
    model.train()
    assert model.age_head is None
    assert set(model([_sample()])) == {"loss_heatmap", "loss_size", "loss_offset"}


def test_freeze_age_feature_trains_only_what_comes_after_dla_up():
    """MODEL.DLA.FREEZE_AGE_FEATURE: three Adam steps of a detector refit change the extra IDA-up and
    the CenterNet heads, and leave every parameter and BatchNorm statistic of the trunk and DLA-up,
    hence the ``dla_up`` feature the age network reads, exactly as they were."""
    from foss_d2.solver import build_foss_optimizer

    cfg = tiny_cfg(**{"MODEL.FOSS.DETECTOR_ONLY": True, "MODEL.DLA.FREEZE_AGE_FEATURE": True})
    model = build_model(cfg)
    backbone = model.backbone
    probe = (torch.rand(1, 3, 128, 128) - 0.5) * 2

    def frozen_state():  # parameters and BatchNorm buffers of the trunk and DLA-up
        return {k: v.clone() for k, v in backbone.state_dict().items() if k.startswith(("base.", "dla_up."))}

    def trained_params():  # the extra IDA-up and the CenterNet heads
        return [p.detach().clone() for p in [*backbone.ida_up.parameters(), *model.proposal_generator.parameters()]]

    frozen_before = frozen_state()
    trained_before = trained_params()
    model.eval()
    with torch.no_grad():
        feature_before = backbone(probe)["dla_up"]
    opt = build_foss_optimizer(cfg, model)
    model.train()
    assert not backbone.base.training and not backbone.dla_up.training and backbone.ida_up.training
    _adam_steps(model, opt)
    frozen_after = frozen_state()
    assert frozen_before.keys() == frozen_after.keys() and len(frozen_before) > 0
    assert all(torch.equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    trained_after = trained_params()
    assert sum(not torch.equal(a, b) for a, b in zip(trained_before, trained_after)) == len(trained_before)
    model.eval()
    with torch.no_grad():
        assert torch.equal(backbone(probe)["dla_up"], feature_before)


def test_frozen_age_parts_keep_every_gender_answer():
    """MODEL.AGE_HEAD.FROZEN_PARTS: three Adam steps with the trunk, the feature projection and the
    gender branch fixed change the age branch's parameters and ages, and leave every other age-network
    parameter and BatchNorm statistic, hence every P(female), exactly as they were."""
    from foss_d2.solver import build_foss_optimizer

    parts = ["body", "feature_proj", "gender_branch"]
    cfg = tiny_cfg(**{"MODEL.AGE_HEAD.FROZEN_PARTS": parts, "MODEL.FOSS.ADD_GT_BOXES": True})
    model = build_model(cfg)
    net = model.age_head.net
    assert net.feature_proj is not None  # the tiny detector feature has 64 channels, not 48
    state_before = {k: v.clone() for k, v in net.state_dict().items()}
    model.eval()
    model.proposal_generator.size[-1].bias.data.fill_(10.0)  # boxes of 10 cells from an untrained head
    probe = [{"image": _sample()["image"]}]
    model.score_thresh_test = -1.0
    with torch.no_grad():
        before = model(probe)[0]["instances"]
    opt = build_foss_optimizer(cfg, model)
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert trained == {id(p) for p in net.age_branch.parameters()}
    model.train()
    assert not net.body.training and not net.gender_branch.training and net.age_branch.training
    _adam_steps(model, opt)
    state_after = net.state_dict()
    changed = {k for k in state_before if not torch.equal(state_before[k], state_after[k])}
    assert changed == {k for k in state_before if k.startswith("age_branch.")}
    assert any(k.startswith("body.") and "running_mean" in k for k in state_before)  # BN statistics held
    model.eval()
    with torch.no_grad():
        after = model(probe)[0]["instances"]
    assert len(before) == len(after) > 0
    assert torch.equal(before.pred_boxes.tensor, after.pred_boxes.tensor)
    assert torch.equal(before.pred_female_probs, after.pred_female_probs)
    assert not torch.allclose(before.pred_ages, after.pred_ages)


def test_frozen_age_parts_errors_and_parts_not_built():
    with pytest.raises(ValueError, match="no part 'gender'.*age_branch"):
        build_model(tiny_cfg(**{"MODEL.AGE_HEAD.FROZEN_PARTS": ["gender"]}))
    with pytest.raises(ValueError, match="no part 'body.training'"):  # an attribute, not a part
        build_model(tiny_cfg(**{"MODEL.AGE_HEAD.FROZEN_PARTS": ["body.training"]}))
    with pytest.raises(ValueError, match="no part 'body.layer9'"):
        build_model(tiny_cfg(**{"MODEL.AGE_HEAD.FROZEN_PARTS": ["body.layer9"]}))
    # when the detector feature (64 channels here) is as wide as the block's reduction there is no
    # projection: nothing to freeze, no error
    cfg = tiny_cfg(
        **{"MODEL.AGE_HEAD.FROZEN_PARTS": ["feature_proj", "body.layer4"], "MODEL.AGE_HEAD.WIDTH_REDUCTION": 64}
    )
    head = build_model(cfg).age_head
    assert head.net.feature_proj is None and head.frozen_parts == [head.net.body.layer4]
    assert not any(p.requires_grad for p in head.net.body.layer4.parameters())
    assert all(p.requires_grad for p in head.net.body.layer3.parameters())


def test_inference_fields_k_and_empty():
    cfg = tiny_cfg(**{"MODEL.FOSS.K_TEST": 50, "MODEL.FOSS.SCORE_THRESH_TEST": 0.0})
    model = build_model(cfg)
    model.eval()
    # Untrained size heads predict ~0 sizes, i.e. empty boxes that post-processing drops; give them 10 cells.
    torch.nn.init.constant_(model.proposal_generator.size[-1].bias, 10.0)
    img = torch.randint(0, 256, (3, 90, 140), dtype=torch.uint8)
    inst = model([{"image": img, "height": 180, "width": 280}])[0]["instances"]
    n = len(inst)
    assert 0 < n <= 50  # K above the number of heatmap peaks: only real peaks come back
    model.k_test = 3
    assert len(model([{"image": img}])[0]["instances"]) == 3
    assert inst.image_size == (180, 280)
    assert float(inst.pred_boxes.tensor[:, 2].max()) <= 280 and float(inst.pred_boxes.tensor[:, 3].max()) <= 180
    assert inst.pred_age_probs.shape == (n, 101)
    assert torch.allclose(inst.pred_age_probs.sum(1), torch.ones(n), atol=1e-5)
    assert ((inst.pred_ages >= 0) & (inst.pred_ages <= 100)).all()
    assert ((inst.pred_female_probs >= 0) & (inst.pred_female_probs <= 1)).all()
    assert (inst.pred_age_stds >= 0).all()
    model.score_thresh_test = 1.0  # nothing passes: an empty result, not an error
    empty = model([{"image": img}])[0]["instances"]
    assert len(empty) == 0 and empty.has("pred_ages") and empty.has("pred_female_probs")


def test_age_on_detected_faces_only_matches_all_k():
    cfg = tiny_cfg(**{"MODEL.FOSS.SCORE_THRESH_TEST": 0.0, "MODEL.FOSS.K_TEST": 6})
    torch.manual_seed(0)  # a random picture and network can have fewer than 6 heatmap peaks
    model = build_model(cfg).eval()
    torch.nn.init.constant_(model.proposal_generator.size[-1].bias, 10.0)  # non-empty boxes
    img = torch.randint(0, 256, (3, 100, 100), dtype=torch.uint8)
    scores = model([{"image": img}])[0]["instances"].scores.sort(descending=True).values
    assert len(scores) == 6
    # a threshold between the 3rd and 4th score: three faces pass, three do not
    model.score_thresh_test = float(scores[2] + scores[3]) / 2
    batches = []
    model.age_head.net.register_forward_hook(lambda m, inp, out: batches.append(inp[0].shape[0]))
    a = model([{"image": img}])[0]["instances"]
    model.age_on_all_k = False
    b = model([{"image": img}])[0]["instances"]
    assert batches == [6, 3]  # the age network saw all K crops, then only the three above the threshold
    assert len(a) == len(b) == 3
    # the size and offset heads ran at the 3 peaks above the threshold instead of all 6: the same
    # boxes to float rounding
    assert torch.allclose(a.pred_boxes.tensor, b.pred_boxes.tensor, atol=1e-4)
    for field in ("pred_ages", "pred_age_stds", "pred_age_probs", "pred_female_probs"):
        assert torch.allclose(a.get(field), b.get(field), atol=1e-4), field


def test_load_image_bad_and_odd_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image(tmp_path / "missing.jpg")
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image(bad)
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = load_image(gray)
    assert out.shape == (3, 4, 3) and (out[:, :, 0] == gray).all() and (out[:, :, 2] == gray).all()
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 3] = 255
    assert load_image(rgba).shape == (2, 2, 3)
    assert load_image(np.full((2, 2, 3), 65535, np.uint16)).max() == 255
    with pytest.raises(ValueError, match="uint8 or uint16"):
        load_image(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="empty image"):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(TypeError, match="expected a path, a PIL image or a numpy array, got int"):
        load_image(42)


def test_predictor_tiny_and_huge_images():
    cfg = tiny_cfg(**{"MODEL.FOSS.SCORE_THRESH_TEST": 0.0, "INPUT.MAX_SIDE": 1024})
    pred = FOSSPredictor(cfg)
    torch.nn.init.constant_(pred.model.proposal_generator.size[-1].bias, 10.0)
    small = pred(np.random.randint(0, 256, (8, 8, 3), np.uint8))
    assert small.image_size == (8, 8) and len(small) == cfg.MODEL.FOSS.K_TEST
    huge = pred(np.zeros((4000, 6000, 3), np.uint8))  # downscaled to 1024 inside, boxes mapped back
    assert huge.image_size == (4000, 6000)
    b = huge.pred_boxes.tensor
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 6000).all() and (b[:, 3] <= 4000).all()


def test_dla_with_deformable_convs_trains_on_cpu():
    from foss_d2.backbone import DLASeg

    torch.manual_seed(0)
    net = DLASeg(arch="dla34", out_channels=32, dcn=True)
    out = net(torch.randn(1, 3, 64, 64))
    assert out["dla_out"].shape == (1, 32, 16, 16) and out["dla_up"].shape == (1, 64, 16, 16)
    (out["dla_out"].mean() + out["dla_up"].mean()).backward()
    offset_conv = net.ida_up.proj_1.conv.offset_mask
    assert offset_conv.weight.grad is not None and float(offset_conv.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("frozen", [True, False])
def test_age_head_lr_factor_groups(frozen):
    from foss_d2.solver import build_foss_optimizer

    cfg = tiny_cfg()
    cfg.MODEL.FOSS.FREEZE_DETECTOR = frozen
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.AGE_HEAD_LR_FACTOR = 5.0
    model = build_model(cfg)
    opt = build_foss_optimizer(cfg, model)
    age_ids = {id(p) for p in model.age_head.parameters()}
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    # Every trainable parameter exactly once; frozen detector parameters not at all.
    assert sorted(seen) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    for g in opt.param_groups:
        expected = 5e-3 if id(g["params"][0]) in age_ids else 1e-3
        assert all((id(p) in age_ids) == (expected == 5e-3) for p in g["params"])
        assert g["lr"] == pytest.approx(expected)
    assert any(id(g["params"][0]) not in age_ids for g in opt.param_groups) != frozen

    cfg.SOLVER.AGE_HEAD_LR_FACTOR = 0.0
    with pytest.raises(ValueError, match="AGE_HEAD_LR_FACTOR"):
        build_foss_optimizer(cfg, model)


class _MarkerAgeHead(torch.nn.Module):
    """Stands in for the age head: each face's 'age' is the marker of the feature it was given."""

    def forward(self, images, proposals, features, feature_scales):
        for p in proposals:
            n = len(p)
            p.pred_ages = torch.full((n,), float(features["marker"]))
            p.pred_age_stds = torch.zeros(n)
            p.pred_age_probs = torch.zeros(n, 101)
            p.pred_female_probs = torch.zeros(n)
        return proposals


def _faces(hw, boxes, scores):
    inst = Instances(hw)
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.tensor(scores)
    inst.pred_classes = torch.zeros(len(scores), dtype=torch.long)
    return inst


def test_test_sizes_merge_filter_and_feature_routing():
    """Two detector passes on a 600x900 photo (480 and 960 px), with the passes' detections fixed
    by hand (full-resolution pixels):
      480 px: A [100,100,300,340] 0.9, B [500,200,530,236] 0.3
      960 px: A' [105,100,300,345] 0.8: 208 x 392 px of its input (x 960/900, y 960/600), over the
              160 px limit: dropped; B' [502,201,531,237] 0.6: IoU with B = 28*35/(30*36+29*36-28*35)
              = 0.86 > 0.5, so NMS keeps B' (higher score) instead of B; C [700,400,720,424] 0.5,
              21 x 38 px: kept.
    Expected: A, B', C with scores 0.9, 0.6, 0.5; ages 10, 20, 20 (the marker of each face's pass)."""
    cfg = tiny_cfg(**{"MODEL.FOSS.DET_INPUT_SIZE": 480, "MODEL.FOSS.TEST_SIZES": [960], "MODEL.FOSS.K_TEST": 10})
    model = build_model(cfg).eval()
    model.age_head = _MarkerAgeHead()
    tta = FOSSWithTTA(cfg, model)
    hw = (600, 900)
    by_size = {
        480: [[100, 100, 300, 340], [500, 200, 530, 236]],
        960: [[105, 100, 300, 345], [502, 201, 531, 237], [700, 400, 720, 424]],
    }
    scores = {480: [0.9, 0.3], 960: [0.8, 0.6, 0.5]}
    calls = []

    def detect(images, size):
        calls.append((size, [tuple(im.shape[1:]) for im in images]))
        props = [
            _faces(tuple(im.shape[1:]), *((by_size[size], scores[size]) if im.shape[1:] == hw else ([], [])))
            for im in images
        ]
        return {"marker": 10 if size == 480 else 20}, props, [(size / im.shape[2], size / im.shape[1]) for im in images]

    tta.detect_pass = detect
    big = torch.zeros((3, *hw), dtype=torch.uint8)
    small = torch.zeros((3, 300, 400), dtype=torch.uint8)  # longer side 400 <= 480: one pass only
    out_big, out_small = [r["instances"] for r in tta([{"image": big}, {"image": small}])]
    assert calls == [(480, [hw, (300, 400)]), (960, [hw])]
    assert out_big.pred_boxes.tensor.tolist() == [[100, 100, 300, 340], [502, 201, 531, 237], [700, 400, 720, 424]]
    assert torch.allclose(out_big.scores, torch.tensor([0.9, 0.6, 0.5]))
    assert out_big.pred_ages.tolist() == [10.0, 20.0, 20.0]
    assert not out_big.has("det_pass") and len(out_small) == 0


def test_test_sizes_leave_small_images_alone_and_run_on_large_ones():
    cfg = tiny_cfg(**{"MODEL.FOSS.SCORE_THRESH_TEST": 0.0, "MODEL.FOSS.K_TEST": 8, "MODEL.FOSS.TEST_SIZES": [256]})
    model = build_model(cfg).eval()
    torch.nn.init.constant_(model.proposal_generator.size[-1].bias, 4.0)
    torch.manual_seed(1)
    small = torch.randint(0, 256, (3, 100, 120), dtype=torch.uint8)  # longer side 120 <= 128
    large = torch.randint(0, 256, (3, 150, 300), dtype=torch.uint8)
    one = [model([{"image": im}])[0]["instances"] for im in (small, large)]  # FOSS alone: the paper's single pass
    tta = FOSSWithTTA(cfg, model)
    two = [tta([{"image": im}])[0]["instances"] for im in (small, large)]
    assert torch.equal(one[0].pred_boxes.tensor, two[0].pred_boxes.tensor)
    assert torch.allclose(one[0].pred_ages, two[0].pred_ages)
    # On the large image the second pass adds boxes of at most 160 px of its 256 px input, each with
    # an age from its own pass's feature, and no two kept boxes overlap above the NMS threshold.
    merged = two[1]
    assert len(merged) <= 8 and merged.has("pred_age_probs") and not merged.has("det_pass")
    assert (merged.scores[:-1] >= merged.scores[1:]).all()
    from detectron2.structures import pairwise_iou

    iou = pairwise_iou(merged.pred_boxes, merged.pred_boxes).fill_diagonal_(0)
    assert float(iou.max()) <= 0.5
    assert any(not torch.isclose(one[1].pred_boxes.tensor, b).all(1).any() for b in merged.pred_boxes.tensor)


def test_detector_flip_test_is_mirror_symmetric_and_leaves_the_age_feature():
    """MODEL.CENTERNET.TEST_FLIP: the heatmap and sizes of a photo and of its mirror image are each
    other's mirror (up to rounding), so both give the same scores and box sizes; without it a
    randomly initialised detector does not. The feature handed to the age network is the unmirrored
    input's, the same as without the flip test."""
    cfg = tiny_cfg(**{"MODEL.FOSS.SCORE_THRESH_TEST": 0.0, "MODEL.FOSS.K_TEST": 6, "MODEL.CENTERNET.TEST_FLIP": True})
    model = build_model(cfg).eval()
    torch.nn.init.constant_(model.proposal_generator.size[-1].bias, 4.0)
    tta = FOSSWithTTA(cfg, model)
    torch.manual_seed(3)
    image = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    mirror = image.flip(-1).contiguous()

    def top(detect_pass, im):
        with torch.no_grad():
            feats, (p,), _ = detect_pass([im], 128)
        wh = p.pred_boxes.tensor[:, 2:] - p.pred_boxes.tensor[:, :2]
        return feats, torch.cat([p.scores[:, None], wh], 1)

    feats_off, off = top(model.detect_pass, image)
    _, off_mirror = top(model.detect_pass, mirror)
    feats_on, on = top(tta.detect_pass, image)
    _, on_mirror = top(tta.detect_pass, mirror)
    assert torch.allclose(on, on_mirror, atol=1e-5)
    assert not torch.allclose(off, off_mirror, atol=1e-3)
    assert not torch.allclose(on, off, atol=1e-3)
    for name in feats_off:
        assert torch.allclose(feats_on[name], feats_off[name], atol=1e-5)
    # and the whole model still answers with ages for every face
    out = tta([{"image": image}])[0]["instances"]
    assert len(out) == 6 and out.has("pred_ages")


FIELDS = ("pred_boxes", "scores", "pred_classes", "pred_ages", "pred_age_stds", "pred_age_probs", "pred_female_probs")


@pytest.mark.parametrize("age_on_all_k", [True, False])
def test_tta_with_every_option_off_is_foss_inference(age_on_all_k):
    """One code path: FOSSWithTTA with no test-time option gives exactly FOSS.inference's answer, on
    a batch with an image the detector input shrinks and one it enlarges."""
    opts = {"MODEL.FOSS.SCORE_THRESH_TEST": 0.1, "MODEL.FOSS.K_TEST": 8, "MODEL.FOSS.AGE_ON_ALL_K": age_on_all_k}
    cfg = tiny_cfg(**opts)
    assert not FOSSWithTTA.enabled(cfg)
    torch.manual_seed(4)
    model = build_model(cfg).eval()
    torch.nn.init.constant_(model.proposal_generator.size[-1].bias, 4.0)
    inputs = [
        {"image": torch.randint(0, 256, (3, 150, 300), dtype=torch.uint8), "height": 300, "width": 600},
        {"image": torch.randint(0, 256, (3, 90, 100), dtype=torch.uint8)},
    ]
    ref = [r["instances"] for r in model(inputs)]
    got = [r["instances"] for r in FOSSWithTTA(cfg, model)(inputs)]
    assert sum(len(r) for r in ref) > 0
    for a, b in zip(ref, got):
        assert a.image_size == b.image_size and set(a.get_fields()) == set(b.get_fields()) == set(FIELDS)
        for f in FIELDS:
            x, y = a.get(f), b.get(f)
            x, y = (x.tensor, y.tensor) if f == "pred_boxes" else (x, y)
            assert torch.equal(x, y), f


def test_tta_enabled_by_each_option():
    assert not FOSSWithTTA.enabled(tiny_cfg())
    options = {"MODEL.FOSS.TEST_SIZES": [800], "MODEL.CENTERNET.TEST_FLIP": True, "MODEL.AGE_HEAD.TEST_FLIP": True}
    for key, value in options.items():
        assert FOSSWithTTA.enabled(tiny_cfg(**{key: value})), key


def test_predictor_wraps_only_when_an_option_is_on():
    plain = FOSSPredictor(tiny_cfg())
    assert plain.inference_model is plain.model
    wrapped = FOSSPredictor(tiny_cfg(**{"MODEL.AGE_HEAD.TEST_FLIP": True}))
    assert isinstance(wrapped.inference_model, FOSSWithTTA) and wrapped.inference_model.model is wrapped.model


def test_registries_build_from_the_config_names():
    from foss_d2.proposal_generator import FACE_DETECTOR_REGISTRY, CenterNet, build_face_detector
    from foss_d2.roi_heads import TResNetAgeHead, build_age_head

    from detectron2.modeling import build_backbone

    cfg = tiny_cfg()
    assert (cfg.MODEL.FOSS.FACE_DETECTOR, cfg.MODEL.AGE_HEAD.NAME) == ("CenterNet", "TResNetAgeHead")
    shapes = build_backbone(cfg).output_shape()
    assert type(build_face_detector(cfg, shapes)) is CenterNet
    assert type(build_age_head(cfg, shapes)) is TResNetAgeHead

    @FACE_DETECTOR_REGISTRY.register()
    class _TestOnlyFaceDetector(CenterNet):
        pass

    try:
        model = build_model(tiny_cfg(**{"MODEL.FOSS.FACE_DETECTOR": "_TestOnlyFaceDetector"}))
        assert type(model.proposal_generator) is _TestOnlyFaceDetector
    finally:
        FACE_DETECTOR_REGISTRY._obj_map.pop("_TestOnlyFaceDetector")


@pytest.mark.parametrize(
    "key, message",
    [
        (
            "MODEL.FOSS.FACE_DETECTOR",
            r"FACE_DETECTOR='NoSuchThing' is not a registered face detector \(known: .*CenterNet",
        ),
        ("MODEL.AGE_HEAD.NAME", r"NAME='NoSuchThing' is not a registered age head \(known: .*TResNetAgeHead"),
    ],
)
def test_unknown_registry_name_is_a_clear_error(key, message):
    with pytest.raises(KeyError, match=message):
        build_model(tiny_cfg(**{key: "NoSuchThing"}))


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_key_sets_the_layout_of_every_4d_weight(channels_last):
    """MODEL.FOSS.CHANNELS_LAST: every conv weight (detector and age network) in that layout from
    construction, kept by loading a checkpoint saved in the other layout and by training."""
    model = build_model(tiny_cfg(**{"MODEL.FOSS.CHANNELS_LAST": channels_last}))
    other = build_model(tiny_cfg(**{"MODEL.FOSS.CHANNELS_LAST": not channels_last}))
    model.load_state_dict(other.state_dict())
    model.train()
    sum(model([_sample()]).values()).backward()
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert len(convs) > 50 and any(n.startswith("age_head") for n, p in model.named_parameters() if p.dim() == 4)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert all(p.is_contiguous(memory_format=fmt) for p in convs)
    assert torch.equal(model.backbone.base.base_layer[0].weight, other.backbone.base.base_layer[0].weight)


def test_det_input_sizes_train_draws_one_side_per_step_and_scales_the_boxes():
    """DET_INPUT_SIZES_TRAIN: each training step resizes its whole batch to one drawn side, the
    detector's targets scaled with it (a 200 px wide image at 96 px: x * 0.48); test time keeps
    DET_INPUT_SIZE."""
    cfg = tiny_cfg(**{"MODEL.FOSS.FREEZE_DETECTOR": False, "MODEL.FOSS.DET_INPUT_SIZES_TRAIN": [96, 160]})
    model = build_model(cfg)
    seen = []

    def spy(size, features, k, targets=None, min_score=None):
        if targets is None:  # inference
            return real(size, features, k, min_score=min_score)
        feat = next(iter(features.values()))
        seen.append((size, tuple(feat.shape[-2:]), targets[0].gt_boxes.tensor.clone()))
        return real(size, features, k, targets)

    real = model.proposal_generator.forward
    model.proposal_generator.forward = spy
    model.train()
    batches = [[_sample(), _sample(120, 90)] for _ in range(8)]  # _sample() seeds torch itself
    torch.manual_seed(0)
    for batch in batches:
        model(batch)
    sides = {size[0] for size, _, _ in seen}
    assert sides == {96, 160}
    for (h, w), feat_hw, boxes in seen:
        assert h == w and feat_hw == (h // 4, w // 4)
        sx, sy = w / 200, h / 160
        expected = torch.tensor(
            [[20.0 * sx, 30.0 * sy, 80.0 * sx, 100.0 * sy], [120.0 * sx, 40.0 * sy, 170.0 * sx, 110.0 * sy]]
        )
        assert torch.allclose(boxes, expected)
    inputs = []
    model.backbone.register_forward_hook(lambda module, args, out: inputs.append(tuple(args[0].shape[-2:])))
    model.eval()
    with torch.no_grad():
        model([{"image": _sample()["image"]}])
    assert inputs == [(128, 128)]


def test_a_training_step_under_fp16_autocast():
    """What SOLVER.AMP runs on a GPU (the GPU recipe turns it on), as close as a CPU comes: the
    forward under fp16 autocast. Every loss is a finite float32 (the heatmap's focal loss and the
    flip term were NaN when taken in fp16) and the backward reaches the trained parts."""
    cfg = tiny_cfg(
        **{"MODEL.FOSS.FREEZE_DETECTOR": False, "MODEL.FOSS.ADD_GT_BOXES": True, "MODEL.AGE_HEAD.LAMBDA_FLIP": 1.0}
    )
    model = build_model(cfg)
    model.train()
    with torch.autocast("cpu", dtype=torch.float16):
        losses = model([_sample(), _sample(120, 90)])
    assert {"loss_heatmap", "loss_age", "loss_gender", "loss_flip"} <= set(losses)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    trained = list(model.age_head.parameters()) + list(model.detector_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained if p.requires_grad)
