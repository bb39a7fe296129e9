"""tools/benchmark_train.py: the training step with CenterNet's size and offset heads at the faces'
centres against dense, on the real architecture (DLA, CenterNet, the age network end-to-end)."""

import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from foss_d2.apps import benchmark_train
from foss_d2.config import get_foss_cfg


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
    dense, sparse = (losses[n] for n in benchmark_train.VARIANTS)
    assert set(dense) >= {"loss_heatmap", "loss_size", "loss_offset"} and dense["loss_size"] > 0
    for k in dense:  # lr 0: both variants see the same weights, so the same losses
        assert abs(sparse[k] - dense[k]) <= 1e-5 * max(1.0, abs(dense[k])), k
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())
    # the gradients too: one backward per variant on the same weights
    grads = {}
    for name, flag in benchmark_train.VARIANTS.items():
        model.proposal_generator.sparse_train = flag
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout draws
        sum(model(batch).values()).backward()
        grads[name] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    g_dense, g_sparse = (grads[n] for n in benchmark_train.VARIANTS)
    assert g_dense.keys() == g_sparse.keys() and "proposal_generator.size.0.weight" in g_dense
    for n in g_dense:  # float noise only: summation orders differ through the backbone's backward
        assert (g_sparse[n] - g_dense[n]).norm() <= 1e-4 * g_dense[n].norm() + 1e-7, n
