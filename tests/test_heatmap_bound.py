"""tools/research/heatmap_bound.py: the shipped detector's heatmap head, bounded, on
demo/family.jpg (the shipped weights ship with the repository; no data needed)."""

import json
import os

from conftest import load_script

from detectron2.data import DatasetCatalog

tool = load_script("tools/research/heatmap_bound.py")
FAMILY = os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")


def test_heatmap_bound_on_the_demo_photo(tmp_path):
    """The demo photo's 8 faces above 0.2 (tools/demo.py's) are the peaks of both heads, the other
    128 channels ran at a few percent of the pixels, never fewer than those truly above 0.2; a
    photo that cannot be read is skipped."""
    name = "heatmap_bound_test_photos"
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [{"file_name": FAMILY}, {"file_name": str(tmp_path / "missing.jpg")}])
    summary = tool.main(["--datasets", name, "--output", str(tmp_path / "out")])
    assert summary["photos"] == 1 and summary["threshold"] == 0.2
    assert summary["hidden_channels"] == {"upper": 128, "rest": 128} and summary["positive_weights"] == 118
    assert summary["peaks"] == 8 and summary["photos_with_other_peaks"] == 0
    assert 0 < summary["logit_clears_mean"] <= summary["bound_clears_mean"] < 0.05
    saved = json.load(open(tmp_path / "out" / "heatmap_bound.json"))
    (photo,) = saved["photos"].values()
    assert photo["same_peaks"] and photo["max_score_difference"] < 1e-5 and photo["input"] == 512
