"""CenterNet's heads at another width, distilled on the frozen backbone
(tools/research/distill_heads.py): pruning by hand, losses that vanish when the heads agree, and
the tool end to end on demo/family.jpg at toy size."""

import json
import os

import pytest
import torch
from conftest import load_script, tiny_cfg, toy_tool_inputs
from torch import nn

from foss_d2.engine.predictor import load_all_weights
from foss_d2.proposal_generator.centernet import _head, copy_hidden_channels

from detectron2.modeling import build_model

distill = load_script("tools/research/distill_heads.py")
FAMILY = os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")


def test_pruned_head_keeps_the_chosen_channels():
    """A 4-channel head whose channels 1 and 3 are never read (zero 1x1 weights) answers the same
    pruned to channels 0 and 2, and hidden_use ranks the unread channels last."""
    torch.manual_seed(0)
    teacher, student = _head(3, 4, 2), _head(3, 2, 2)
    with torch.no_grad():
        teacher[2].weight[:, [1, 3]] = 0
    x = torch.randn(2, 3, 6, 5)
    use = distill.hidden_use(teacher, [x])
    assert set(use.topk(2).indices.tolist()) == {0, 2} and use[1] == 0 and use[3] == 0
    copy_hidden_channels(student, teacher, torch.tensor([0, 2]))
    with torch.no_grad():
        assert torch.allclose(student(x), teacher(x), atol=1e-6)
        assert torch.equal(student[0].weight, teacher[0].weight[[0, 2]])


def test_shared_helpers_by_hand(tmp_path):
    """The tools' cosine schedule and their dataset listing (foss_d2.solver / foss_d2.data.utils)."""
    from foss_d2.data.utils import photo_paths
    from foss_d2.solver import cosine_schedule

    from detectron2.data import DatasetCatalog

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched, lrs = cosine_schedule(opt, 4, warmup=2), []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # step i: 2 * min(1, (i + 1) / 2) * (1 + cos(pi * i / 4)) / 2, and 0 from step 4 on
    expected = [2 * 0.5 * 1.0, 2 * (1 + 2**-0.5) / 2, 2 * 0.5, 2 * (1 - 2**-0.5) / 2, 0.0]
    assert lrs == pytest.approx(expected, abs=1e-9)
    DatasetCatalog.register("photo_paths_test", lambda: [{"file_name": f"p{i}.jpg"} for i in (5, 1, 3, 1, 2, 4, 0)])
    try:
        assert photo_paths(["photo_paths_test"]) == [f"p{i}.jpg" for i in range(6)]  # sorted, each file once
        assert photo_paths(["photo_paths_test:3"]) == ["p0.jpg", "p2.jpg", "p4.jpg"]  # every 6 // 3 = 2nd
        assert photo_paths(["photo_paths_test:2", "photo_paths_test:3"])[:2] == ["p0.jpg", "p3.jpg"]
    finally:
        DatasetCatalog.remove("photo_paths_test")


def _samples(model, n=2):
    torch.manual_seed(0)
    out = []
    for _ in range(n):
        img = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
        out.append(distill.harvest_one(model, img, min_heat=0.0))  # every pixel: sizes and offsets everywhere
    return out


def test_losses_vanish_when_the_heads_agree():
    """The student holding the teacher's own heads: heatmap KL 0 (the cross-entropy less the
    target's entropy), size and offset L1 0."""
    model = build_model(tiny_cfg()).eval()
    samples = _samples(model)
    assert samples[0]["pix"].numel() == samples[0]["feature"].shape[1] * samples[0]["feature"].shape[2]
    student = model.proposal_generator
    with torch.no_grad():
        # the cache holds the feature in float16: the teacher's answers on those very values
        for s in samples:
            x = s["feature"][None].float()
            s["heat"] = student.heatmap(x)[0].half()
        losses = distill.distill_losses(student, samples, 0.0, 0.1, heads=("heatmap", "size", "offset"))
    assert float(losses["heat"]) == pytest.approx(0.0, abs=1e-3)
    assert float(losses["size"]) < 1e-3 and float(losses["offset"]) < 1e-3


def test_tool_end_to_end(tmp_path):
    """A toy model's heads (32 hidden channels) distilled to 8 on one real photo: the losses fall,
    and the checkpoint loads whole into the config with HEAD_CONV 8 and finds faces' boxes."""
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():  # a heatmap that varies over the photo, as a trained one does
        for head in (model.proposal_generator.heatmap, model.proposal_generator.size):
            head[0].weight.mul_(4)
    name = "distill_test_photos"
    cfg_file, weights = toy_tool_inputs(tmp_path, cfg, model, name, [FAMILY])
    out = tmp_path / "out"

    def run(output, *extra):
        common = ["--config-file", cfg_file, "--head-conv", "8", "--datasets", name, "--epochs", "20"]
        distill.main([*common, "--lr", "1e-3", "--output", str(output), *extra, "MODEL.WEIGHTS", weights])

    run(out)
    log = json.load(open(out / "log.json"))
    assert log["photos"] == 1 and len(log["epochs"]) == 21
    first, last = log["epochs"][0], log["epochs"][-1]
    assert first["heat"] > 0.01 and last["heat"] < first["heat"] / 2
    assert set(last) == {"epoch", "heat"}  # the size and offset heads are not trained
    student = build_model(tiny_cfg(**{"MODEL.CENTERNET.HEATMAP_HEAD_CONV": 8})).eval()
    load_all_weights(student, str(out / "model_final.pth"))  # every tensor there: a ValueError otherwise
    conv = [m for m in student.proposal_generator.heatmap if isinstance(m, nn.Conv2d)][0]
    assert conv.weight.shape == (8, 32, 3, 3)
    # everything but the heatmap head is the teacher's, untouched (the size and offset heads too)
    for k, v in model.state_dict().items():
        if not k.startswith("proposal_generator.heatmap."):
            assert torch.equal(student.state_dict()[k], v), k
    # all three heads narrowed: HEAD_CONV, and the sizes' loss falls too
    run(tmp_path / "all", "--heads", "heatmap", "size", "offset")
    log = json.load(open(tmp_path / "all" / "log.json"))["epochs"]
    assert log[-1]["size"] < log[0]["size"]
    student = build_model(tiny_cfg(**{"MODEL.CENTERNET.HEAD_CONV": 8})).eval()
    load_all_weights(student, str(tmp_path / "all" / "model_final.pth"))
    assert student.proposal_generator.size[0].weight.shape == (8, 32, 3, 3)
    with pytest.raises(SystemExit) as e:  # size without offset: they share one width
        distill.main(["--heads", "heatmap", "size", "--output", str(tmp_path / "x")])
    assert e.value.code == 2
