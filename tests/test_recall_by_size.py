"""tools/research/recall_by_size.py: face sizes at the detector's input, matching and the per-size
tally, by hand."""

import numpy as np
import pytest
from conftest import load_script

rbs = load_script("tools/research/recall_by_size.py")


def test_input_sizes_scale_each_side_on_its_own():
    gt = np.array([[0, 0, 20, 10], [5, 5, 15, 45]], np.float32)  # 20x10 and 10x40 in the photo
    # a 960x480 photo resized to 480x480: x halved, y kept
    assert rbs.input_sizes(gt, 0.5, 1.0).tolist() == [10.0, 40.0]


def test_found_mask_needs_iou_half():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    boxes = np.array([[0, 0, 10, 5], [20, 20, 30, 28]], np.float32)  # IoU 0.5 and 0.8; none on the third
    assert rbs.found_mask(gt, boxes).tolist() == [True, True, False]
    assert rbs.found_mask(gt, np.zeros((0, 4), np.float32)).tolist() == [False] * 3


def test_tally_bins_faces_by_size():
    rows = [(3.0, False, False), (9.0, True, False), (11.0, False, False), (70.0, True, True)]
    bins = {b["bin"]: b for b in rbs.tally(rows)}
    assert bins["0-4"]["faces"] == 1 and bins["0-4"]["recall_k"] == 0.0
    assert bins["8-12"]["faces"] == 2 and bins["8-12"]["recall_k"] == 0.5 and bins["8-12"]["recall_shown"] == 0.0
    assert bins[">= 64"]["recall_shown"] == 1.0 and bins[">= 64"]["share"] == pytest.approx(0.25)
    assert bins["16-24"]["faces"] == 0 and bins["16-24"]["recall_k"] is None
    assert "| 8-12 | 2 | 50.0% | 50.0% | 0.0% |" in rbs.markdown({"d": rbs.tally(rows)}, 0.2)
