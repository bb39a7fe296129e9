"""A few real training iterations through tools/train_net.py on ../shared/data (skipped without it)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import SHARED_DATA, needs_shared_data

ROOT = os.path.join(os.path.dirname(__file__), "..")


@needs_shared_data
def test_train_net_runs_on_real_data_and_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "tools", "train_net.py"),
        "--config-file",
        os.path.join(ROOT, "configs", "quick_schedules", "FOSS-CPU-quick.yaml"),
        "DATASETS.ROOT",
        SHARED_DATA,
        "OUTPUT_DIR",
        str(out),
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.CHECKPOINT_PERIOD",
        "2",
        "DATALOADER.NUM_WORKERS",
        "0",
        "MODEL.FOSS.DET_INPUT_SIZE",
        "128",
        "SOLVER.IMS_PER_BATCH",
        "2",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "model_final.pth").exists() and (out / "model_0000001.pth").exists()
    import torch

    # a checkpoint holds what --resume needs to go on as if never stopped: Adam's moments and the
    # schedule's position (detectron2 0.6's DefaultTrainer kept neither)
    state = torch.load(out / "model_0000001.pth", map_location="cpu", weights_only=False)["trainer"]
    assert state["iteration"] == 1 and state["hooks"]["LRScheduler"]["last_epoch"] == 2
    assert state["_trainer"]["optimizer"]["state"]  # per-parameter moments, not an empty dict
    rows = [json.loads(line) for line in open(out / "metrics.json")]
    last = rows[-1]
    for k in ("total_loss", "loss_age", "loss_gender", "loss_heatmap"):
        assert k in last and last[k] == last[k]  # present and not NaN
    # --resume continues from the last checkpoint instead of starting over
    r = subprocess.run(
        cmd[:4] + ["--resume"] + cmd[4:] + ["SOLVER.MAX_ITER", "4"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    log = open(out / "log.txt").read()
    assert "Loading trainer from" in log and "Starting training from iteration 3" in log
    # a new run into that OUTPUT_DIR without --resume: detectron2 appends to metrics.json, so the
    # earlier run's lines are moved aside first, not mixed with the new run's
    earlier = open(out / "metrics.json").read()
    r = subprocess.run(cmd + ["SOLVER.MAX_ITER", "1"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "its metrics.json is now metrics.before1.json" in r.stdout + r.stderr
    assert open(out / "metrics.before1.json").read() == earlier
    assert [json.loads(line)["iteration"] for line in open(out / "metrics.json")] == [0]

    # --eval-only on the real WIDER val photos: tables printed and written to eval_results.json
    ev = tmp_path / "eval"
    r = subprocess.run(
        cmd[:4]
        + ["--eval-only"]
        + cmd[4:]
        + [
            "MODEL.WEIGHTS",
            str(out / "model_final.pth"),
            "DATASETS.TEST",
            "('wider_face_val',)",
            "OUTPUT_DIR",
            str(ev),
            "MODEL.FOSS.K_TEST",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.load(open(ev / "eval_results.json"))
    # 1,474 boxes in the val subset, of which 66 are marked invalid (ignored); a 4-iteration model
    # detects next to nothing (COCO AP is then NaN), but every figure is there.
    ap50 = res["bbox"]["AP50"]
    assert set(res["bbox"]) >= {"AP", "AP50"} and (ap50 is None or 0 <= ap50 <= 100)  # NaN written as null
    # the figures are those of the per-face rows it wrote: one row per valid WIDER val face
    rows = json.load(open(ev / "inference" / "wider_face_val" / "face_predictions.json"))
    found = sum(r["detected"] for r in rows)
    assert len(rows) == res["age"]["num_faces"] == 1408 and len({r["image_id"] for r in rows}) == 130
    assert res["age"]["detection_rate"] == pytest.approx(100.0 * found / 1408)
    assert res["age"]["undetected"] == 1408 - found
    assert all(("pred_age" in r) == r["detected"] for r in rows)
