"""tools/benchmark_train.py: the training step as before (CenterNet's size and offset heads dense,
channels-first) against the heads at the faces' centres and channels-last weights, on the real
architecture (DLA, CenterNet, the age network end-to-end): the same losses and gradients."""

import json

import torch
from conftest import SHARED_DATA, needs_shared_data

from foss_d2.apps import benchmark_train
from foss_d2.config import get_foss_cfg

from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances


def test_both_variants_train_the_same_losses_and_gradients():
    torch.manual_seed(0)
    cfg = get_foss_cfg(
        "configs/quick_schedules/FOSS-CPU-quick.yaml", opts=["MODEL.DEVICE", "cpu", "MODEL.FOSS.DET_INPUT_SIZE", "128"]
    )
    model = build_model(cfg)
    batch = []
    for boxes in ([[10.0, 12.0, 60.0, 80.0], [100.0, 20.0, 150.0, 90.0]], [[0.0, 0.0, 30.0, 40.0]]):
        inst = Instances((120, 160))
        inst.gt_boxes = Boxes(torch.tensor(boxes))
        inst.gt_classes = torch.zeros(len(boxes), dtype=torch.long)
        inst.gt_ages = torch.full((len(boxes),), 30.0)
        inst.gt_genders = torch.ones(len(boxes))
        batch.append({"image": torch.randint(0, 256, (3, 120, 160), dtype=torch.uint8), "instances": inst})
    times, losses = benchmark_train.run(model, [batch], rounds=2)
    before, *after = (losses[n] for n in benchmark_train.VARIANTS)
    assert set(before) >= {"loss_heatmap", "loss_size", "loss_offset", "loss_age"} and before["loss_size"] > 0
    for variant in after:  # lr 0: every variant sees the same weights, so the same losses
        for k in before:
            assert abs(variant[k] - before[k]) <= 1e-5 * max(1.0, abs(before[k])), k
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())
    # the gradients too: one backward per variant on the same weights and dropout draws
    grads = {}
    for name in benchmark_train.VARIANTS:
        benchmark_train.set_variant(model, name)
        model.zero_grad()
        torch.manual_seed(1)
        sum(model(batch).values()).backward()
        grads[name] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    g_dense, g_sparse, g_last = grads.values()
    assert "proposal_generator.size.0.weight" in g_dense
    assert g_last["backbone.base.base_layer.0.weight"].is_contiguous(memory_format=torch.channels_last)
    for n in g_dense:
        # the heads at the centres: the dense heads' sums, the same up to rounding
        assert (g_sparse[n] - g_dense[n]).norm() <= 1e-4 * g_dense[n].norm() + 1e-7, n
        # channels-last: other convolution kernels, so fp32's own noise (the next test measures it)
        assert (g_last[n] - g_sparse[n]).norm() <= 0.05 * g_sparse[n].norm() + 1e-7, n


def test_channels_last_gradients_are_within_fp32_noise():
    """Against float64 gradients of the same detector, channels-last fp32 stays at float32's
    distance: a broken layout would be off by O(1). How far float32 is depends on the host's oneDNN
    kernels (BatchNorm's batch sums over a tiny batch): on an AVX2-only EPYC (2026-12-03, 1 and 2
    threads) channels-first 0.07-0.3% at the median, channels-last 1.0-1.5% and 3.6% at worst (the
    largest on BatchNorm parameters); on the host of the sessions before,
    channels-last was within 3x of channels-first. Both far under what a batch of 8 moves a
    gradient."""
    torch.manual_seed(0)
    opts = ["MODEL.DEVICE", "cpu", "MODEL.FOSS.DET_INPUT_SIZE", "128", "MODEL.FOSS.DETECTOR_ONLY", "True"]
    model = build_model(get_foss_cfg("configs/quick_schedules/FOSS-CPU-quick.yaml", opts=opts)).train()
    inst = Instances((120, 160))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 80.0], [100.0, 20.0, 150.0, 90.0]]))
    inst.gt_classes = torch.zeros(2, dtype=torch.long)
    batch = [{"image": torch.randint(0, 256, (3, 120, 160), dtype=torch.uint8), "instances": inst}] * 2

    def grads(dtype, memory_format):
        model.to(dtype=dtype, memory_format=memory_format)
        model.zero_grad()
        sum(model(batch).values()).backward()
        return {n: p.grad.double().clone() for n, p in model.named_parameters()}

    ref = grads(torch.float64, torch.contiguous_format)
    errors = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        g = grads(torch.float32, fmt)
        errors[fmt] = sorted(float((g[n] - ref[n]).norm() / ref[n].norm()) for n in ref)
    first, last = (e[len(e) // 2] for e in errors.values())
    worst_last = errors[torch.channels_last][-1]
    assert 0 < first < 0.01 and 0 < last < 0.03 and worst_last < 0.1, (first, last, worst_last)


def test_write_report_writes_json_markdown_and_stdout(tmp_path, capsys):
    from foss_d2.utils.json_io import write_report

    write_report(str(tmp_path / "out"), "train", {"x_before": {"a": 2.0}}, ["| a | b |", "|---|---|"])
    assert json.loads((tmp_path / "out" / "train.json").read_text()) == {"x_before": {"a": 2.0}}
    assert (tmp_path / "out" / "train.md").read_text() == "| a | b |\n|---|---|\n"
    assert capsys.readouterr().out == "| a | b |\n|---|---|\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.json", "train.md"]  # no .tmp left


@needs_shared_data
def test_command_on_real_training_batches(tmp_path):
    """The whole command on two real UTKFace / WIDER FACE batches of the quick schedule: a report of
    every variant, whose first-batch losses agree."""
    out = tmp_path / "bench"
    benchmark_train.main(
        [
            "--config-file",
            "configs/quick_schedules/FOSS-CPU-quick.yaml",
            "--batches",
            "1",
            "--rounds",
            "1",
            "--output",
            str(out),
            "DATASETS.ROOT",
            SHARED_DATA,
            "SOLVER.IMS_PER_BATCH",
            "2",
            "MODEL.FOSS.DET_INPUT_SIZE",
            "128",
        ]
    )
    report = json.loads((out / "train.json").read_text())
    assert list(report["cpu_s_per_step"]) == list(benchmark_train.VARIANTS) and report["batch"] == 2
    totals = [sum(v.values()) for v in report["first_batch_losses"].values()]
    assert totals[0] > 0 and max(totals) - min(totals) <= 1e-4 * totals[0]
    assert report["x_before"][next(iter(benchmark_train.VARIANTS))] == 1.0
    assert "| heads at the centres, channels-last |" in (out / "train.md").read_text()
