"""Refitting the feature connection's projection to a changed detector
(tools/research/fit_feature_adapter.py): the closed form by hand, and on a real photo a detector whose
feature is the old one with its channels rescaled, which the refit must undo exactly."""

import os

import numpy as np
import pytest
import torch
from conftest import load_script, tiny_cfg

from foss_d2.config import get_foss_cfg
from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.utils.image_io import read_image_file

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

adapter = load_script("tools/research/fit_feature_adapter.py")
FAMILY = os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")


def test_fit_projection_hand_computed():
    # One channel, one output: x = (1, 2), y = (2, 4); X^T X = 5, X^T Y = 10, old W = 0.
    # ridge 1: lambda = 1 * 5 / 1 = 5, W' = (10 + 5 * 0) / (5 + 5) = 1.0; ridge 0: 10 / 5 = 2.0.
    xtx, xty, w0 = np.array([[5.0]]), np.array([[10.0]]), np.array([[0.0]])
    assert adapter.fit_projection(xtx, xty, w0, 1.0)[0, 0] == pytest.approx(1.0)
    assert adapter.fit_projection(xtx, xty, w0, 0.0)[0, 0] == pytest.approx(2.0)
    # With old W = 3 and ridge 1 it is pulled half-way: (10 + 5 * 3) / 10 = 2.5.
    assert adapter.fit_projection(xtx, xty, np.array([[3.0]]), 1.0)[0, 0] == pytest.approx(2.5)
    # ||x W^T - y||^2 / ||y||^2 with W = 1: (1 + 4) / (4 + 16) = 0.25.
    x, y = np.array([[1.0], [2.0]]), np.array([[2.0], [4.0]])
    assert adapter.projection_error(x, y, np.array([[1.0]])) == pytest.approx(0.25)


def test_fit_projection_recovers_a_linear_change():
    rng = np.random.default_rng(1)
    x_old = rng.normal(size=(500, 6))
    w_old = rng.normal(size=(4, 6))
    a = rng.normal(size=(6, 6))  # new features: x_new = x_old A^T, so W' = W A^-1
    x_new = x_old @ a.T
    y = x_old @ w_old.T
    w = adapter.fit_projection(x_new.T @ x_new, x_new.T @ y, w_old, 0.0)
    np.testing.assert_allclose(w, w_old @ np.linalg.inv(a), atol=1e-8)
    assert adapter.projection_error(x_new, y, w) < 1e-12


def _last_dla_up_norm(model):
    """The BatchNorm right before the ReLU that ends ``dla_up`` (the age network's feature)."""
    up = model.backbone.dla_up
    ida = getattr(up, f"ida_{up.n - 1}")
    last = max(int(n.split("_")[1]) for n, _ in ida.named_children() if n.startswith("node_"))
    return getattr(ida, f"node_{last}").norm


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapter")
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    ref = str(tmp / "reference.pth")
    torch.save({"model": model.state_dict()}, ref)
    # ReLU(d * z) = d * ReLU(z) for d > 0: scaling the last BatchNorm scales the feature per channel.
    norm = _last_dla_up_norm(model)
    d = torch.linspace(0.5, 2.0, norm.weight.numel())
    with torch.no_grad():
        norm.weight.mul_(d)
        norm.bias.mul_(d)
    new = str(tmp / "new.pth")
    torch.save({"model": model.state_dict(), "iteration": 7}, new)
    w_old = model.age_head.net.feature_proj.weight.detach().flatten(1).double().numpy()
    boxes = [[100, 60, 160, 140], [300, 80, 340, 130], [500, 100, 580, 200]]
    annos = [{"bbox": b, "bbox_mode": 0, "category_id": 0, "iscrowd": 0, "age": -1, "gender": -1} for b in boxes]
    h, w = read_image_file(FAMILY).shape[:2]
    recs = [
        {"file_name": os.path.abspath(FAMILY), "image_id": i, "height": h, "width": w, "annotations": annos}
        for i in range(5)
    ]
    recs.append({"file_name": str(tmp / "missing.jpg"), "image_id": 9, "height": h, "width": w, "annotations": annos})
    coco = str(tmp / "faces.json")
    save_coco(dataset_to_coco(recs), coco)
    cfg_file = str(tmp / "tiny.yaml")
    with open(cfg_file, "w") as f:
        f.write(cfg.dump())
    return tmp, cfg_file, ref, new, coco, w_old


def _run(setup, checkpoint, name, out):
    tmp, cfg_file, ref, _, coco, _ = setup
    return adapter.main(
        ["--config-file", cfg_file, "--checkpoint", checkpoint, "--reference", ref, "--output", str(tmp / out)]
        + ["--datasets", name, "--photos", "6", "--sizes", "128", "160", "--ridge", "1e-9", "--min-height", "20"]
        + ["DATASETS.COCO", f"(('{name}', '{coco}', ''),)"]
    )


def test_refit_undoes_rescaled_feature_channels_on_a_real_photo(setup):
    tmp, _, ref, new, _, _ = setup
    summary = _run(setup, new, "test_adapter_scaled", "adapted.pth")
    assert summary["faces"] == 15 and len(summary["unreadable"]) == 1  # five readable copies, three faces each
    assert summary["held_out_error_before"] > 0.05
    assert summary["held_out_error_after"] < 1e-6
    out = torch.load(str(tmp / "adapted.pth"), weights_only=False)
    assert out["iteration"] == 7
    # everything else is the checkpoint's
    src = torch.load(new, weights_only=False)["model"]
    assert all(torch.equal(out["model"][k], v) for k, v in src.items() if k != adapter.PROJ)
    # The age network on the new detector with the refit projection answers as on the old detector,
    # at a size the fit never saw; with the old projection it does not.
    img = torch.from_numpy(np.ascontiguousarray(read_image_file(FAMILY))).permute(2, 0, 1)
    boxes = torch.tensor([[120.0, 70.0, 170.0, 135.0], [420.0, 90.0, 470.0, 160.0]])
    cfg = get_foss_cfg(setup[1], device="cpu")
    answers = {}
    for name, path in (("reference", ref), ("new", new), ("adapted", str(tmp / "adapted.pth"))):
        model = build_model(cfg).eval()
        DetectionCheckpointer(model).load(path)
        answers[name] = _age_logits(model, img, boxes, 192)
    off_adapted = (answers["adapted"] - answers["reference"]).abs().max()
    off_new = (answers["new"] - answers["reference"]).abs().max()
    assert off_adapted < 1e-4 and off_new > 1e-3 and off_new > 100 * off_adapted


@torch.no_grad()
def _age_logits(model, img, boxes, size):
    feats = model.backbone(model.preprocess_detector([img], size))
    p = Instances(tuple(img.shape[1:]))
    p.pred_boxes = Boxes(boxes)
    scales = model.feature_scales([(size / img.shape[2], size / img.shape[1])])
    _, crops, feat = model.age_head.crops_and_features([img], [p], feats, scales)
    age, gender = model.age_head.net(crops, feat)
    return torch.cat([age, gender[:, None]], 1)


def test_refit_of_an_unchanged_detector_changes_nothing(setup):
    tmp, _, ref, _, _, w_old = setup
    summary = _run(setup, ref, "test_adapter_same", "same.pth")
    assert summary["held_out_error_before"] == 0 and summary["held_out_error_after"] < 1e-9
    w = torch.load(str(tmp / "same.pth"), weights_only=False)["model"][adapter.PROJ].flatten(1).double().numpy()
    np.testing.assert_allclose(w, w_old, atol=1e-6)


def test_face_boxes_leave_out_crowd_small_and_empty_boxes():
    def anno(box, crowd=0):
        return {"bbox": box, "bbox_mode": 1, "category_id": 0, "iscrowd": crowd}  # XYWH_ABS

    record = {
        "height": 100,
        "width": 100,
        "annotations": [
            anno([10, 10, 20, 30]),  # kept: 30 px high
            anno([40, 10, 20, 30], crowd=1),  # an invalid WIDER face: left out, as in training
            anno([70, 10, 10, 5]),  # 5 px high: under min_height
            anno([0, 50, 0, 30]),  # no width
        ],
    }
    boxes = adapter.face_boxes(record, 8.0, 20, np.random.default_rng(0))
    assert boxes.tolist() == [[10.0, 10.0, 30.0, 40.0]]
