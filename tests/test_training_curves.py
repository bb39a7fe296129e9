"""Training draws its losses into OUTPUT_DIR/training_curves.png (engine/hooks.py)."""

import json
import logging

import cv2

from foss_d2.engine.hooks import TrainingCurves, curve_keys, plot_training_curves, read_metrics


def _write_metrics(path, rows, tail=""):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write(tail)


def test_metrics_rows_by_iteration_the_rerun_replacing_the_first_run(tmp_path):
    path = tmp_path / "metrics.json"
    rows = [
        {"iteration": 19, "total_loss": 3.0, "loss_age": 2.0, "lr": 0.1},
        {"iteration": 39, "total_loss": 2.0, "loss_age": 1.5, "lr": 0.1},
        {"iteration": 39, "age/MAE": 9.0},  # an evaluation's row: no loss
        {"iteration": 19, "total_loss": 2.5, "loss_heatmap": 1.0, "loss_age": 1.8, "lr": 0.1},  # --resume from 0
    ]
    _write_metrics(path, rows, tail='{"iteration": 59, "total_lo')  # a last line cut short
    got = read_metrics(str(path))
    assert [(r["iteration"], r["total_loss"]) for r in got] == [(19, 2.5), (39, 2.0)]
    assert curve_keys(got) == ["total_loss", "loss_age", "loss_heatmap", "lr"]
    assert curve_keys([{"iteration": 0, "total_loss": 1.0}]) == ["total_loss"]


def test_the_picture_has_a_panel_a_curve_and_is_replaced_whole(tmp_path):
    rows = [{"iteration": i, "total_loss": 10.0 / (i + 1), "loss_age": 1.0, "lr": 0.01} for i in range(0, 200, 20)]
    out = tmp_path / "training_curves.png"
    out.write_bytes(b"an older picture")
    plot_training_curves(rows, str(out), "run")
    img = cv2.imread(str(out))
    assert img is not None and img.shape[:2] == (300, 1200)  # three panels of 4 x 3 inches at 100 dpi
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training_curves.png"]  # no partial file left
    # each panel holds its curve: pixels of matplotlib's first line colour (#1f77b4; BGR here) in
    # each third of the picture, and none anywhere else (axes, labels and ticks are black or grey)
    b, g, r = (img[..., i].astype(int) for i in range(3))
    line = (b > 150) & (r < 100) & (g > 80) & (g < 160)
    assert all(line[:, k * 400 : (k + 1) * 400].sum() > 100 for k in range(3))
    plot_training_curves(rows[:0] + [{"iteration": 0, "total_loss": 1.0}], str(out), "no curve to speak of")
    assert ((lambda i: (i[..., 0] > 150) & (i[..., 2] < 100))(cv2.imread(str(out)).astype(int))).sum() < 30


class _Trainer:
    iter = 0
    max_iter = 100


def test_the_hook_draws_at_checkpoints_and_at_the_end_and_never_stops_training(tmp_path, caplog):
    _write_metrics(tmp_path / "metrics.json", [{"iteration": 9, "total_loss": 1.0}])
    hook = TrainingCurves(str(tmp_path), period=10)
    hook.trainer = _Trainer()
    picture = tmp_path / "training_curves.png"
    hook.trainer.iter = 8
    hook.after_step()
    assert not picture.exists()  # not a checkpoint's iteration
    hook.trainer.iter = 9
    hook.after_step()
    assert cv2.imread(str(picture)) is not None
    picture.unlink()
    hook.after_train()
    assert picture.exists()
    # a picture that cannot be written: one warning, the training goes on
    picture.unlink()
    picture.mkdir()
    with caplog.at_level(logging.WARNING):
        hook.after_step()
        hook.after_train()
    warned = [r for r in caplog.records if "could not draw" in r.getMessage()]
    assert len(warned) == 1 and "training_curves.png" in warned[0].getMessage()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "training_curves.png"]  # no temporary


def test_no_metrics_no_picture(tmp_path):
    hook = TrainingCurves(str(tmp_path), period=1)
    hook.trainer = _Trainer()
    hook.after_train()
    assert list(tmp_path.iterdir()) == []
