"""MODEL.AGE_HEAD.LAMBDA_FLIP (issue 16): each training crop also goes through the age network
mirrored, and the two answers are pulled together by a Jensen-Shannon term. Checked by hand on
two-class distributions, against the plain losses on both halves, and by training it alone."""

import math

import pytest
import torch
from conftest import load_script, tiny_cfg

from foss_d2.roi_heads.losses import flip_consistency_loss

from detectron2.modeling import build_model

hold_batchnorm = load_script("tools/research/train_age_cached.py").hold_batchnorm


def _js_by_hand(p, q):
    m = [(a + b) / 2 for a, b in zip(p, q)]
    kl = lambda x: sum(a * math.log(a / c) for a, c in zip(x, m))  # noqa: E731
    return (kl(p) + kl(q)) / 2


def test_flip_loss_by_hand():
    # row 0: ages (two classes) [0.5, 0.5] against softmax([log 3, 0]) = [0.75, 0.25]; P(female)
    # sigmoid(0) = 0.5 against sigmoid(log 3) = 0.75: the same JS twice. Row 1 is no face.
    age = torch.tensor([[0.0, 0.0], [5.0, -5.0]])
    mirror_age = torch.tensor([[math.log(3), 0.0], [-5.0, 5.0]])
    gender, mirror_gender = torch.tensor([0.0, 4.0]), torch.tensor([math.log(3), -4.0])
    valid = torch.tensor([True, False])
    js = _js_by_hand([0.5, 0.5], [0.75, 0.25])
    assert js == pytest.approx(0.03382, abs=1e-5)  # (0.03227 + 0.03537) / 2
    out = flip_consistency_loss(age, mirror_age, gender, mirror_gender, valid, weight=2.0)
    assert out["loss_flip"].item() == pytest.approx(2.0 * (js + js), rel=1e-5)
    # without the gender branch only the ages count; both rows: their mean
    out = flip_consistency_loss(age, mirror_age, None, None, torch.tensor([True, True]), weight=1.0)
    js1 = _js_by_hand(
        [1 / (1 + math.exp(-10)), 1 / (1 + math.exp(10))], [1 / (1 + math.exp(10)), 1 / (1 + math.exp(-10))]
    )
    assert out["loss_flip"].item() == pytest.approx((js + js1) / 2, rel=1e-4)
    # the same answers: 0; no matched face: an exact 0 in the graph
    assert flip_consistency_loss(age, age, gender, gender, valid, 1.0)["loss_flip"].item() == pytest.approx(0, abs=1e-7)
    age.requires_grad_(True)
    none = flip_consistency_loss(age, mirror_age, None, None, torch.tensor([False, False]), 1.0)["loss_flip"]
    assert none.item() == 0.0 and none.requires_grad


def test_flip_loss_of_fp16_logits_is_taken_in_float32():
    """Under fp16 autocast (SOLVER.AMP on a GPU) a gender logit of 12 has a sigmoid of exactly 1 in
    fp16, and the clamp to 1e-12 is 0 there: 0 x log(0) gave NaN. The same loss as from float32."""
    age = torch.tensor([[0.0, 2.0, -1.0]])
    mirror_age = torch.tensor([[1.0, 0.5, -1.0]])
    gender, mirror_gender = torch.tensor([12.0]), torch.tensor([11.0])
    assert gender.half().sigmoid() == 1.0
    valid = torch.tensor([True])
    want = flip_consistency_loss(age, mirror_age, gender, mirror_gender, valid, 1.0)["loss_flip"]
    got = flip_consistency_loss(age.half(), mirror_age.half(), gender.half(), mirror_gender.half(), valid, 1.0)
    assert torch.isfinite(got["loss_flip"]) and got["loss_flip"].item() == pytest.approx(want.item(), rel=1e-3)


def _head(lambda_flip, seed=0):
    torch.manual_seed(seed)
    cfg = tiny_cfg(**{"MODEL.AGE_HEAD.LAMBDA_FLIP": lambda_flip, "MODEL.AGE_HEAD.DROPOUT": 0.0})
    head = build_model(cfg).age_head
    head.train()
    hold_batchnorm(head)  # the same network for one crop whatever the batch around it
    return head


def _faces(head, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    crops = torch.rand(n, 3, 112, 80, generator=g)
    feat = torch.randn(n, head.net.feature_proj.in_channels, 7, 5, generator=g)
    ages = torch.tensor([3.0, 40.0, -1.0, 70.0])[:n]
    genders = torch.tensor([1.0, -1.0, 0.0, 0.0])[:n]
    return crops, feat, (ages, genders, torch.tensor([True, True, True, False])[:n])


def test_train_losses_are_both_halves_plus_the_flip_term():
    head = _head(0.5)
    plain = _head(0.0)
    plain.load_state_dict(head.state_dict())
    crops, feat, matches = _faces(head)
    out = head.train_losses(crops, feat, matches)
    assert set(out) == {"loss_age", "loss_gender", "loss_flip"}
    a = plain.train_losses(crops, feat, matches)
    b = plain.train_losses(crops.flip(-1), feat.flip(-1), matches)
    # each half has the same labelled faces, so the loss over both is the mean of the two
    for k in ("loss_age", "loss_gender"):
        assert out[k].item() == pytest.approx((a[k].item() + b[k].item()) / 2, rel=1e-4), k
    age, gen = plain.net(crops, feat)
    m_age, m_gen = plain.net(crops.flip(-1), feat.flip(-1))
    # the flip term counts the three matched faces (one without any label), not the unmatched one
    want = flip_consistency_loss(age, m_age, gen, m_gen, matches[2], 0.5)["loss_flip"]
    assert out["loss_flip"].item() == pytest.approx(want.item(), rel=1e-4) and want.item() > 0
    with pytest.raises(ValueError, match="LAMBDA_FLIP"):
        build_model(tiny_cfg(**{"MODEL.AGE_HEAD.LAMBDA_FLIP": -1.0}))


def test_the_flip_term_alone_brings_the_two_readings_together():
    """A network first taught to read four crops as 5, 30, 55 and 80 years and their mirror images
    the other way round, then trained on the flip term alone (no labels): each crop's two readings
    come together. (Alone, the term would in the end flatten the network to one answer for every
    crop; in training the labels weigh against that.)"""
    head = _head(0.0, seed=3)
    crops, feat, _ = _faces(head, 4, seed=1)
    both, both_feat = torch.cat([crops, crops.flip(-1)]), torch.cat([feat, feat.flip(-1)])
    ages = torch.tensor([5.0, 30.0, 55.0, 80.0])
    taught = (torch.cat([ages, ages.flip(0)]), torch.full((8,), -1.0), torch.ones(8, dtype=torch.bool))
    no_labels = (torch.full((4,), -1.0), torch.full((4,), -1.0), torch.ones(4, dtype=torch.bool))
    j = torch.arange(101.0)

    def readings():
        with torch.no_grad():
            a = head.net(crops, feat)[0].softmax(1) @ j
            b = head.net(crops.flip(-1), feat.flip(-1))[0].softmax(1) @ j
        return (a - b).abs().mean().item()

    def steps(n, lr, *args):
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        for _ in range(n):
            loss = sum(head.train_losses(*args).values())
            opt.zero_grad()
            loss.backward()
            opt.step()

    head.lambdas = dict(head.lambdas, mean=0.1)
    steps(40, 1e-3, both, both_feat, taught)
    taught_gap = readings()
    head.lambda_flip = 1.0
    head.lambdas = {k: 0.0 for k in head.lambdas}
    steps(5, 1e-3, crops, feat, no_labels)
    assert taught_gap > 20 and readings() < taught_gap / 3, (taught_gap, readings())
