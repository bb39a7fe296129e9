"""tools/benchmark.py settings: the summary arithmetic, and a real run on the demo picture with the shipped model."""

import json
import os
import subprocess
import sys

import pytest

from foss_d2.apps import benchmark as bs

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_summary_medians_and_ratios_by_hand():
    times = {"a": [[1.0, 3.0, 2.0], [4.0, 4.0, 4.0]], "b": [[2.0, 2.0, 2.0], [2.0, 10.0, 6.0]]}
    s = bs.summarize(times, {"a": [3, 5], "b": [3, 6]})
    # per photo: a 2, 4; b 2, 6 -> medians 3 and 4; ratios to a: 1.0 and 1.5 -> median 1.25
    assert s["a"] == {"median_s": 3.0, "ratio_to_first": 1.0, "faces": 8}
    assert s["b"] == {"median_s": 4.0, "ratio_to_first": 1.25, "faces": 9}


def test_run_on_the_demo_picture_writes_both_reports(tmp_path):
    demo = os.path.join(ROOT, "demo", "family.jpg")
    out = tmp_path / "bench"
    subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "benchmark.py"),
            "settings",
            "--input",
            demo,
            "--repeats",
            "1",
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    report = json.loads((out / "settings.json").read_text())
    assert list(report["variants"]) == list(bs.VARIANTS)
    first = report["variants"]["shipped: one 512 px pass, mirror on"]
    assert first["ratio_to_first"] == pytest.approx(1.0) and first["faces"] >= 1
    # the mirror and the age network's precision only change ages, never which faces are found
    assert report["variants"]["mirror off"]["faces"] == first["faces"]
    assert report["variants"]["the fast preset: mirror off, age network in bfloat16"]["faces"] == first["faces"]
    assert all(len(t) == 1 and len(t[0]) == 1 for t in report["seconds"].values())
    assert "| an 800 px second pass added |" in (out / "settings.md").read_text()
