"""Training that diverges stops with a message naming the iteration, and saves no broken model."""

import os

import cv2
import numpy as np
import pytest
import torch
from conftest import cut_writes_short, tiny_cfg

from foss_d2.apps import export
from foss_d2.apps.train import Trainer
from foss_d2.engine.hooks import DivergenceGuard

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode


def _register_faces(tmp_path, name):
    rng = np.random.default_rng(0)
    records = []
    for i in range(4):
        path = str(tmp_path / f"face{i}.png")
        cv2.imwrite(path, rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
        box = [20.0, 16.0, 60.0, 70.0]
        anno = {"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0, "iscrowd": 0, "age": 20.0 + 10 * i}
        records.append(
            {"file_name": path, "image_id": i, "height": 96, "width": 96, "annotations": [anno | {"gender": i % 2}]}
        )
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).set(thing_classes=["face"])


def _cfg(tmp_path, name, lr, iters):
    cfg = tiny_cfg(
        **{
            "MODEL.FOSS.FREEZE_DETECTOR": False,
            "MODEL.FOSS.ADD_GT_BOXES": True,
            "DATASETS.TRAIN": (name,),
            "DATALOADER.NUM_WORKERS": 0,
            "SOLVER.IMS_PER_BATCH": 2,
            "SOLVER.BASE_LR": lr,
            "SOLVER.WARMUP_ITERS": 0,
            "SOLVER.STEPS": (),
            "SOLVER.MAX_ITER": iters,
            "SOLVER.CHECKPOINT_PERIOD": 1,
            "OUTPUT_DIR": str(tmp_path / "out"),
        }
    )
    return cfg


def test_learning_rate_1e6_stops_with_the_iteration_and_no_model_final(tmp_path):
    name = "foss_test_divergence_faces"
    _register_faces(tmp_path, name)
    torch.manual_seed(0)
    trainer = Trainer(_cfg(tmp_path, name, 1e6, 8))
    trainer.resume_or_load(resume=False)
    with pytest.raises(FloatingPointError, match=r"training diverged at iteration (\d+)") as e:
        trainer.train()
    it = int(str(e.value).split("iteration ")[1].split(":")[0])
    assert it < 7, str(e.value)  # stopped early, not at the end
    out = tmp_path / "out"
    assert not (out / "model_final.pth").exists()
    # the diverged iteration was not checkpointed: only earlier ones, all of them finite
    saved = sorted(f for f in os.listdir(out) if f.startswith("model_"))
    assert f"model_{it:07d}.pth" not in saved
    for f in saved:
        weights = torch.load(out / f, map_location="cpu", weights_only=False)["model"]
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()), f


def test_healthy_training_is_left_alone(tmp_path, monkeypatch):
    name = "foss_test_divergence_faces_ok"
    _register_faces(tmp_path, name)
    torch.manual_seed(0)
    trainer = Trainer(_cfg(tmp_path, name, 1e-4, 3))
    trainer.resume_or_load(resume=False)
    trainer.train()
    out = tmp_path / "out"
    final = out / "model_final.pth"
    assert final.exists() and (out / "last_checkpoint").read_text() == "model_final.pth"
    assert "trainer" in torch.load(final, map_location="cpu", weights_only=False)  # resumable: the trainer's state
    assert cv2.imread(str(out / "training_curves.png")) is not None  # the losses, drawn (engine/hooks.py)
    # a run stopped while it saves: fvcore wrote model_final.pth in place, and the truncated file was
    # taken for the model by --resume and train_cpu_route.sh; now the file is whole or as it was
    saved, names = final.read_bytes(), sorted(os.listdir(out))

    cut_writes_short(monkeypatch, export, 15, KeyboardInterrupt())  # stopped after the first bytes
    for name in ("model_final", "model_0000099"):
        with pytest.raises(KeyboardInterrupt):
            trainer.checkpointer.save(name)
    assert final.read_bytes() == saved and sorted(os.listdir(out)) == names
    assert (out / "last_checkpoint").read_text() == "model_final.pth"


class _Storage:
    def __init__(self, losses):
        self.losses = losses

    def history(self, key):
        values = self.losses

        class H:
            def latest(self):
                return values[-1]

        return H()


class _FakeTrainer:
    def __init__(self):
        self.model = torch.nn.Linear(2, 1)
        self.storage = _Storage([])
        self.iter = 0


def test_guard_thresholds_by_hand():
    guard = DivergenceGuard(loss_factor=100.0)
    guard.trainer = _FakeTrainer()
    guard.before_train()
    for it, loss in enumerate([2.0, 150.0, 199.0]):  # 199 < 100 x 2: still training
        guard.trainer.iter = it
        guard.trainer.storage.losses.append(loss)
        guard.after_step()
    guard.trainer.iter = 3
    guard.trainer.storage.losses.append(201.0)  # over 100 x the first loss (2.0)
    with pytest.raises(FloatingPointError, match="iteration 3: total loss 201 is over 100x the first non-zero one, 2"):
        guard.after_step()
    # batches without labelled faces (frozen detector, group photos) have a loss of 0: the first
    # non-zero one is the scale (0 was, before: 0.17 right after it stopped a healthy run)
    guard = DivergenceGuard(loss_factor=100.0)
    guard.trainer = _FakeTrainer()
    guard.before_train()
    for it, loss in enumerate([0.0, 0.17, 0.0, 1.2, 16.9]):  # 16.9 < 100 x 0.17
        guard.trainer.iter = it
        guard.trainer.storage.losses.append(loss)
        guard.after_step()
    guard.trainer.storage.losses.append(17.1)
    with pytest.raises(FloatingPointError, match="total loss 17.1 is over 100x the first non-zero one, 0.17"):
        guard.after_step()
    guard.trainer.storage.losses.append(float("inf"))
    with pytest.raises(FloatingPointError, match="total loss inf"):
        guard.after_step()
    guard = DivergenceGuard(loss_factor=0)  # loss check off; weights still checked
    guard.trainer = _FakeTrainer()
    guard.trainer.storage.losses += [1.0, 1e30]
    guard.after_step()
    guard.after_step()
    with torch.no_grad():
        guard.trainer.model.weight[0, 1] = float("inf")
    with pytest.raises(FloatingPointError, match="parameter weight holds NaN or Inf"):
        guard.after_step()
    # the first trained one that is not finite is named (all are checked in one reduction); a frozen
    # one is not checked
    with torch.no_grad():
        guard.trainer.model.weight.fill_(1.0)
        guard.trainer.model.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="parameter bias holds NaN or Inf"):
        guard.after_step()
    guard.trainer.model.bias.requires_grad_(False)
    guard.after_step()
