"""Scale-out: the model under DistributedDataParallel, 2 CPU processes with gloo.

detectron2's ``launch`` spawns one process per GPU and wraps the model the same way
(``create_ddp_model``); gloo on CPU exercises the same gradient all-reduce.
"""

import os
import sys

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(__file__))


def _worker(rank, world, init_file, frozen, out_dir):
    import torch.distributed as dist
    from conftest import tiny_cfg
    from test_meta_arch import _sample
    from torch.nn.parallel import DistributedDataParallel

    from detectron2.modeling import build_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.FOSS.FREEZE_DETECTOR": frozen, "MODEL.FOSS.ADD_GT_BOXES": True}))
    model.train()
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, os.path.join(out_dir, f"init{rank}.pt"))
    ddp = DistributedDataParallel(model, broadcast_buffers=False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for it in range(3):
        torch.manual_seed(100 * rank + it)  # each replica sees different data
        batch = [_sample(120 + 10 * rank, 100)]
        losses = ddp(batch)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    torch.save({n: p.detach().clone() for n, p in model.named_parameters()}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.parametrize("frozen", [True, False])
def test_ddp_two_processes_identical_weights(tmp_path, frozen):
    init_file = tmp_path / "dist_init"
    mp.spawn(_worker, args=(2, str(init_file), frozen, str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    init = torch.load(tmp_path / "init0.pt")
    assert w0.keys() == w1.keys()
    for name in w0:
        assert torch.equal(w0[name], w1[name]), name
    changed = [n for n in w0 if not torch.equal(w0[n], init[n])]
    assert any(n.startswith("age_head.") for n in changed)
    det_changed = any(n.startswith(("backbone.", "proposal_generator.")) for n in changed)
    assert det_changed == (not frozen)
