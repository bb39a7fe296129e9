"""MODEL.AGE_HEAD.AGE_READOUT: an age read off each face's distribution as its mean, median or mode,
and tools/research/age_readouts.py, which scores every readout on the same faces."""

import os
import sys

import pytest
import torch
from conftest import tiny_cfg

from foss_d2.evaluation import FaceAgeEvaluator
from foss_d2.utils.ages import read_age

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from detectron2.structures import Boxes, BoxMode, Instances

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "research"))
import age_readouts  # noqa: E402


def _dist(mass):
    """One row over 101 age classes from {age: probability}."""
    p = torch.zeros(101, dtype=torch.float64)
    for age, m in mass.items():
        p[age] = m
    return p


# (distribution, mean, median, mode), by hand; the median spreads class j evenly over [j - 0.5, j + 0.5]
CASES = [
    ({30: 1.0}, 30.0, 30.0, 30.0),
    ({20: 0.5, 21: 0.5}, 20.5, 20.5, 20.0),  # the median is where the two halves meet; a tie goes to the lower class
    ({10: 0.6, 60: 0.4}, 30.0, 10.0 - 0.5 + 0.5 / 0.6, 10.0),  # a child with a long adult tail: the mean in between
    ({5: 0.3, 40: 0.3, 70: 0.4}, 41.5, 40.0 - 0.5 + 0.2 / 0.3, 70.0),
    ({0: 0.7, 1: 0.3}, 0.3, -0.5 + 0.5 / 0.7, 0.0),
]


@pytest.mark.parametrize("how, column", [("mean", 1), ("median", 2), ("mode", 3)])
def test_readouts_by_hand(how, column):
    probs = torch.stack([_dist(c[0]) for c in CASES])
    got = read_age(probs, how)
    assert torch.allclose(got, torch.tensor([c[column] for c in CASES], dtype=torch.float64), atol=1e-9)


def test_median_moves_smoothly_and_handles_float32_rounding():
    # mass moving from 10 to 11 moves the median from 10 to 11 through every value in between
    medians = [float(read_age(_dist({10: 1 - t, 11: t})[None], "median")) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert medians == pytest.approx([10.0, 10.1666667, 10.5, 10.8333333, 11.0])
    # softmax rows in float32 sum to 1 only up to rounding: still a finite age inside the classes
    probs = torch.softmax(torch.randn(64, 101), dim=1)
    med = read_age(probs, "median")
    assert torch.isfinite(med).all() and (med >= -0.5).all() and (med <= 100.5).all()
    assert read_age(torch.zeros(0, 101), "median").shape == (0,)


def test_unknown_readout_is_a_clear_error():
    with pytest.raises(ValueError, match="AGE_READOUT"):
        read_age(torch.ones(1, 101) / 101, "average")
    with pytest.raises(ValueError, match="AGE_READOUT"):
        build_model(tiny_cfg(**{"MODEL.AGE_HEAD.AGE_READOUT": "average"}))


def head_answers(image, key, value):
    """Two faces of ``image`` through a tiny age head (seeded: the same network for every ``value``),
    built with config ``key`` set to ``value``."""
    torch.manual_seed(0)
    head = build_model(tiny_cfg(**{key: value, "MODEL.AGE_HEAD.INTERMEDIATE_FEATURE": False})).eval().age_head
    faces = Instances((120, 100))
    faces.pred_boxes = Boxes(torch.tensor([[20.0, 30.0, 70.0, 100.0], [0.0, 0.0, 40.0, 50.0]]))
    with torch.no_grad():
        (out,) = head([image], [faces])
    return out


def test_head_reads_ages_as_configured():
    """The same network and crops: distributions and genders unchanged, ages read the configured way."""
    image = torch.randint(0, 256, (3, 120, 100), dtype=torch.uint8)
    outs = {how: head_answers(image, "MODEL.AGE_HEAD.AGE_READOUT", how) for how in ("mean", "median", "mode")}
    for how in ("median", "mode"):
        assert torch.equal(outs[how].pred_age_probs, outs["mean"].pred_age_probs)
        assert torch.equal(outs[how].pred_female_probs, outs["mean"].pred_female_probs)
        assert torch.allclose(outs[how].pred_ages, read_age(outs["mean"].pred_age_probs, how))
    j = torch.arange(101.0)
    assert torch.allclose(outs["mean"].pred_ages, (outs["mean"].pred_age_probs * j).sum(1))
    assert not torch.allclose(outs["median"].pred_ages, outs["mean"].pred_ages)  # the readouts really differ


def test_research_tool_scores_each_readout_on_the_same_faces(tmp_path):
    """One labelled face (age 10) found with the distribution {10: 0.6, 60: 0.4}: MAE 20 by the
    mean, 1/3 by the median, 0 by the mode."""
    name = "readout_test_one_face"
    if name not in DatasetCatalog.list():
        record = {
            "file_name": "x.jpg",
            "image_id": "x",
            "height": 100,
            "width": 100,
            "annotations": [{"bbox": [10, 10, 50, 60], "bbox_mode": BoxMode.XYXY_ABS, "age": 10.0, "gender": 0}],
        }
        DatasetCatalog.register(name, lambda: [record])
        MetadataCatalog.get(name).set(evaluator_type="age")
    inst = Instances((100, 100))
    inst.pred_boxes = Boxes(torch.tensor([[11.0, 10.0, 50.0, 61.0]]))
    inst.scores = torch.tensor([0.9])
    inst.pred_age_probs = _dist({10: 0.6, 60: 0.4})[None].float()
    inst.pred_ages = torch.tensor([-1.0])  # overwritten by each readout
    inst.pred_female_probs = torch.tensor([0.2])
    fan = age_readouts.ReadoutEvaluators(
        {h: FaceAgeEvaluator(name, str(tmp_path / h)) for h in ("mean", "median", "mode")}
    )
    fan.reset()
    fan.process([{"image_id": "x"}], [{"instances": inst}])
    res = fan.evaluate()
    assert res["mean"]["MAE"] == pytest.approx(20.0)
    assert res["median"]["MAE"] == pytest.approx(1 / 3, abs=1e-5)
    assert res["mode"]["MAE"] == pytest.approx(0.0)
    assert float(inst.pred_ages[0]) == -1.0  # the model's own output is left as it was
    assert all(res[h]["gender_acc"] == 100.0 for h in res)
    assert os.path.isfile(tmp_path / "median" / "age_results.json")
    text = age_readouts.table({name: res}, ["mean", "median", "mode"])
    assert "| MAE | 20.00 | 0.33 | 0.00 |" in text


def test_reported_std_is_the_distributions_times_the_scale():
    """MODEL.AGE_HEAD.AGE_STD_SCALE widens pred_age_stds only: the same distributions, ages and
    genders; the std is the distribution's (sqrt of sum p_j (j - mean)^2) times the factor."""
    image = torch.randint(0, 256, (3, 120, 100), dtype=torch.uint8)
    a, b = (head_answers(image, "MODEL.AGE_HEAD.AGE_STD_SCALE", scale) for scale in (1.0, 1.6))
    for field in ("pred_age_probs", "pred_ages", "pred_female_probs"):
        assert torch.equal(a.get(field), b.get(field)), field
    j = torch.arange(101.0)
    own = ((a.pred_age_probs * (j - a.pred_ages[:, None]) ** 2).sum(1)).sqrt()
    assert torch.allclose(a.pred_age_stds, own, atol=1e-4)
    assert torch.allclose(b.pred_age_stds, 1.6 * own, atol=1e-4)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="MODEL.AGE_HEAD.AGE_STD_SCALE"):
            build_model(tiny_cfg(**{"MODEL.AGE_HEAD.AGE_STD_SCALE": bad}))
