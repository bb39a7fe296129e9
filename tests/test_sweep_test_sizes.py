"""tools/research/sweep_test_sizes.py: its cached merge must report what the model itself reports."""

import os
import sys

import torch
from conftest import tiny_cfg

from foss_d2.meta_arch import FOSSWithTTA

from detectron2.modeling import build_model

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "research"))
import sweep_test_sizes as st  # noqa: E402


def test_combinations_by_hand():
    assert list(st.combinations([640, 800], [96, 160])) == [
        ((), None),
        ((640,), 96),
        ((640,), 160),
        ((800,), 96),
        ((800,), 160),
        ((640, 800), 96),
        ((640, 800), 160),
    ]


def tiny_tta(size_bias: float, **opts):
    """A tiny untrained model behind FOSSWithTTA, every peak a face, its boxes' size set by the bias."""
    cfg = tiny_cfg(**{"MODEL.FOSS.SCORE_THRESH_TEST": 0.0, "MODEL.FOSS.K_TEST": 8, **opts})
    model = build_model(cfg).eval()
    torch.nn.init.constant_(model.proposal_generator.size[-1].bias, size_bias)
    return FOSSWithTTA(cfg, model)


def test_cached_merge_equals_model_inference():
    tta = tiny_tta(4.0)
    torch.manual_seed(2)
    x = {"image": torch.randint(0, 256, (3, 150, 300), dtype=torch.uint8), "image_id": "a", "height": 300, "width": 600}
    rec = st.run_passes(tta, [x], [192, 256])
    assert sorted(rec["passes"]) == [128, 192, 256] and rec["hw"] == (300, 600)
    seen = set()
    for sizes, max_box in [((), None), ((256,), 160.0), ((192, 256), 40.0), ((192,), 12.0)]:
        got = st.merge_cached(tta, rec, sizes, max_box)
        tta.test_sizes, tta.test_sizes_max_box = sizes, max_box or 160.0
        ref = tta([x])[0]["instances"]
        assert got.image_size == ref.image_size == (300, 600)
        assert torch.allclose(got.pred_boxes.tensor, ref.pred_boxes.tensor) and torch.allclose(got.scores, ref.scores)
        seen.add(tuple(got.scores.tolist()))
    assert len(seen) > 1  # the combinations really differ: the check compares something


def test_cached_merge_runs_a_small_photo_at_its_own_size():
    """With MODEL.FOSS.DET_INPUT_FIT_SMALL (the shipped config's) a photo smaller than the detector
    input gets its first pass at its longest side rounded up to 32 (70 px -> 96), as the model runs
    it; the sweep ran it at DET_INPUT_SIZE (128) and reported other faces than the model."""
    tta = tiny_tta(2.0, **{"MODEL.FOSS.DET_INPUT_FIT_SMALL": True})
    torch.manual_seed(3)
    x = {"image": torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8), "image_id": "b", "height": 50, "width": 70}
    rec = st.run_passes(tta, [x], [192, 256])
    assert rec["first"] == 96 and sorted(rec["passes"]) == [96]  # not shrunk: no extra passes
    got = st.merge_cached(tta, rec, (192,), 40.0)
    tta.test_sizes, tta.test_sizes_max_box = (192,), 40.0
    ref = tta([x])[0]["instances"]
    assert len(ref) > 0 and torch.allclose(got.pred_boxes.tensor, ref.pred_boxes.tensor)
    assert torch.allclose(got.scores, ref.scores)
