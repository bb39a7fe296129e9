"""tools/benchmark.py settings: the summary arithmetic, and a real run on the demo picture with the shipped model."""

import json
import os
import resource
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
    # the mirror and the age network's precision only change ages, never which faces are found; the
    # backbone in bfloat16 finds the demo photo's faces too (test_fast_inference)
    variants = report["variants"]
    assert variants["mirror off"]["faces"] == first["faces"]
    assert variants["the fast preset: mirror off, age network and backbone in bfloat16"]["faces"] == first["faces"]
    assert all(len(t) == 1 and len(t[0]) == 1 for t in report["seconds"].values())
    assert "| an 800 px second pass added |" in (out / "settings.md").read_text()


def _two_demo_photos(tmp_path):
    """Two copies of demo/family.jpg (8 faces each), as paths."""
    import shutil

    photos = [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    for p in photos:
        shutil.copy(os.path.join(ROOT, "demo", "family.jpg"), p)
    return photos


def test_batch_run_on_the_demo_picture(tmp_path):
    """benchmark batch, the shipped model on two copies of demo/family.jpg over 2 rounds: the three ways give
    the loop's answers (8 faces a photo), photos/s is photos over the median round, and "x the loop"
    the median of the per-round ratios."""
    import statistics

    photos = _two_demo_photos(tmp_path)
    out = tmp_path / "batch"
    bs.main(["batch", "--input", *photos, "--rounds", "2", "--output", str(out)])
    report = json.loads((out / "batch.json").read_text())
    assert list(report["runs"]) == list(bs.BATCH_RUNS) and report["photos"] == photos
    loop = report["seconds"]["a loop over est(photo)"]
    for name, run in report["runs"].items():
        seconds = report["seconds"][name]
        assert len(seconds) == 2 and run["faces"] == 16 and run["same_answers_as_loop"]
        assert run["photos_per_s"] == pytest.approx(2 / statistics.median(seconds))
        assert run["x_loop"] == pytest.approx(statistics.median([loop[0] / seconds[0], loop[1] / seconds[1]]))
    assert "| est.map(photos): + one photo per thread |" in (out / "batch.md").read_text()


def test_flop_count_takes_the_peaks_each_pass_decoded():
    """The size and offset heads run at the peaks a pass decoded (the stage clock records them):
    with a score floor fewer than K_TEST, so each point costs the heads' weights once."""
    import torch
    from conftest import tiny_cfg

    from detectron2.modeling import build_model

    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.FOSS.K_TEST": 50, "MODEL.FOSS.AGE_ON_ALL_K": False})).eval()
    clock, macs = bs.StageClock(model), bs.MacCounter(model)
    pg = model.proposal_generator
    torch.nn.init.constant_(pg.size[-1].bias, 10.0)  # non-empty boxes: every decoded peak above the floor is kept
    per_point = sum(m.weight.numel() for h in (pg.size, pg.offset) for m in h if isinstance(m, torch.nn.Conv2d))
    assert macs.head_macs == per_point
    hw = (64, 64)
    assert macs.detector(hw, True, 3) - macs.detector(hw, True, 0) == pytest.approx(3 * per_point)
    assert macs.detector(hw, True) - macs.detector(hw, True, 0) == pytest.approx(50 * per_point)  # K_TEST
    img = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    scores = model([{"image": img}])[0]["instances"].scores  # those above SCORE_THRESH_TEST
    assert clock.peaks == [max(len(scores), 1)] and clock.det_sizes and len(clock.peaks) == len(clock.det_sizes)
    model.age_on_all_k = True
    clock.reset()
    model([{"image": img}])
    assert clock.peaks == [50]


@pytest.mark.parametrize("flip", [False, True])
def test_stage_clock_times_the_crops_with_and_without_the_mirror(flip, monkeypatch):
    """The crops stage is timed on both test paths (the plain forward and the mirror average's):
    cutting the crops made 50 ms slower shows in "crops", not in what is left for "post"."""
    import time

    import torch
    from conftest import tiny_cfg

    from foss_d2.meta_arch.test_time_augmentation import FOSSWithTTA

    from detectron2.modeling import build_model

    torch.manual_seed(0)
    cfg = tiny_cfg(**{"MODEL.AGE_HEAD.TEST_FLIP": flip})
    model = build_model(cfg).eval()
    head = type(model.age_head)
    slow = head._inputs
    monkeypatch.setattr(head, "_inputs", lambda self, *a: time.sleep(0.05) or slow(self, *a))
    clock = bs.StageClock(model)
    run = FOSSWithTTA(cfg, model) if flip else model
    img = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        run([{"image": img}])
    assert clock.crops and 0.05 <= clock.t["crops"] < 1.0


def test_flop_count_of_a_bounded_heatmap_head():
    """A heatmap head that splits as BoundedHeatmapHead is counted as its upper part at every pixel
    plus its rest where it ran: at every pixel that is the whole head's count. The stage clock
    records, each pass, the pixels whose bound cleared the floor (counted here from the bound)."""
    import math

    import torch
    from conftest import tiny_cfg

    from foss_d2.proposal_generator.centernet import BoundedHeatmapHead

    from detectron2.modeling import build_model

    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.FOSS.AGE_ON_ALL_K": False})).eval()
    pg = model.proposal_generator
    macs = bs.MacCounter(model)
    whole = macs._count(bs._DetectorCount(model.backbone, pg.in_feature, pg.heatmap), (torch.zeros(1, 3, 128, 128),))
    hw, grid = (128, 128), 32 * 32
    assert macs.rest_macs > 0
    assert macs.detector(hw, True, 0) == pytest.approx(whole)  # the rest at every pixel
    assert macs.detector(hw, True, 0, 10) == pytest.approx(whole - (grid - 10) * macs.rest_macs)
    pg.heatmap = BoundedHeatmapHead(pg.heatmap, block=1)
    pg.heatmap.dense_above = 1.0
    bounds = []
    pg.heatmap.upper.register_forward_hook(lambda m, i, out: bounds.append(out.detach().clone()))
    img = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    floor = math.log(0.2 / 0.8) - BoundedHeatmapHead.floor_margin
    with torch.no_grad():
        model([{"image": img}])
        pg.heatmap.upper[2].bias += floor - bounds[0].median()  # about half the pixels clear the floor
    clock = bs.StageClock(model)
    bounds.clear()
    with torch.no_grad():
        model([{"image": img}])
    cleared = int((bounds[0] > floor).sum())
    assert 100 < cleared < grid - 100
    assert clock.rest_points == [cleared]
    assert macs.detector(hw, True, 0, cleared) < macs.detector(hw, True, 0)
    pg.heatmap.dense_above = 0.1  # more than a tenth clear it: the rest runs at every pixel
    clock.reset()
    with torch.no_grad():
        model([{"image": img}])
    assert clock.rest_points == [grid]


def test_memory_passes_hand_computed():
    """Per pass the peak of the samples within it and the last sample at or before its end; a pass
    with no sample inside takes the level before its end."""
    samples = [(0.0, 100.0), (0.5, 180.0), (1.0, 150.0), (1.5, 260.0), (2.0, 160.0), (2.6, 170.0)]
    passes = bs.memory_passes(samples, [1.2, 2.2, 2.3])
    assert passes == [
        {"peak_mib": 180.0, "end_mib": 150.0},
        {"peak_mib": 260.0, "end_mib": 160.0},
        {"peak_mib": 160.0, "end_mib": 160.0},
    ]


LINUX_PROC = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the resident set from /proc")


@LINUX_PROC
def test_resident_set_is_the_kernels_count():
    """resident_mib reads /proc/self/statm: the same as /proc/self/status's VmRSS, which counts in
    KiB, to within what the interpreter allocates between the two reads."""
    with open("/proc/self/status") as f:
        vmrss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    assert bs.resident_mib() == pytest.approx(vmrss, abs=2)


@LINUX_PROC
def test_memory_run_on_the_demo_picture(tmp_path):
    """benchmark memory, the shipped model on two copies of demo/family.jpg, two passes: every
    photo is counted, the resident set read is this process's (never above the kernel's count of
    its peak), and the report's figures follow from its own samples."""
    photos = _two_demo_photos(tmp_path)
    out = tmp_path / "memory"
    bs.main(["memory", "--input", *photos, "--passes", "2", "--output", str(out)])
    report = json.loads((out / "memory.json").read_text())
    assert report["passes"] == 2 and report["faces_per_pass"] == 8 * 2
    assert [n for _, n in report["photos_done"]] == [1, 2, 3, 4]
    assert report["largest_photo"] == [1024, 1281]
    ends = report["pass_ends_s"]  # each after its pass's last photo, before the next one's first
    assert report["photos_done"][1][0] <= ends[0] <= report["photos_done"][2][0] <= ends[1]
    expected = bs.memory_passes([tuple(s) for s in report["samples"]], ends)
    assert [{k: p[k] for k in ("peak_mib", "end_mib")} for p in report["per_pass"]] == expected
    assert [p["seconds"] for p in report["per_pass"]] == pytest.approx([ends[0], ends[1] - ends[0]])
    assert report["release_every"] == 32 and "handed back every 32 photos" in (out / "memory.md").read_text()
    # this process's resident set: never above its peak as the kernel counts it (ru_maxrss, KiB)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 0 < min(m for _, m in report["samples"]) and max(m for _, m in report["samples"]) <= peak + 1
    assert all(p["peak_mib"] >= p["end_mib"] for p in report["per_pass"])
    assert report["growth_after_first_pass_mib"] == pytest.approx(
        report["per_pass"][1]["end_mib"] - report["per_pass"][0]["end_mib"]
    )
    assert (out / "memory.png").stat().st_size > 10_000
    assert "| pass 2 |" in (out / "memory.md").read_text()


def test_memory_says_where_it_cannot_read_the_resident_set(monkeypatch, capsys):
    """Without /proc (macOS, Windows) benchmark memory says so in one line before building a model."""
    monkeypatch.setattr(bs, "STATM", "/nonexistent/statm")
    with pytest.raises(SystemExit) as e:
        bs.main(["memory"])
    assert e.value.code == 2 and "Linux only" in capsys.readouterr().err


def test_records_run_and_the_survey_over_them(tmp_path):
    """benchmark records, 60 frames of 2 faces with checkpoints every 30: each checkpoint's figures,
    and survey --per-frame and a --resume over the records at the first checkpoint (a copy) and at
    the end, in processes of their own; the survey counts every face written (the made-up faces all
    have an age)."""
    out = tmp_path / "records"
    bs.main(["records", "--frames", "60", "--faces", "2", "--checkpoint-every", "30", "--output", str(out)])
    report = json.loads((out / "records.json").read_text())
    assert [(r["frames"], r["faces"]) for r in report["checkpoints"]] == [(30, 60), (60, 120)]
    assert [(s["frames"], s["faces"]) for s in report["surveys"]] == [(30, 60), (60, 120)]
    assert [(s["frames"], s["faces"]) for s in report["resumes"]] == [(30, 60), (60, 120)]
    runs = report["surveys"] + report["resumes"]
    assert all(s["seconds"] > 0 and s["peak_mib"] > 100 for s in runs)  # (Python with PyTorch)
    survey = json.loads((out / "survey" / "survey.json").read_text())  # the last one's
    assert survey["total_faces"] == 120 and len(survey["timeline"]) == 1  # 60 frames at 25 fps: one 10 s window
    assert not (out / "run").exists()
    assert "| 60 frames (120 faces) |" in (out / "records.md").read_text()
