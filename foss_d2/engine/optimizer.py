"""Optimizer of the paper (section 4.2: Adam, lr 1e-4), with detectron2's SGD still available."""
import torch

from detectron2.solver import build_optimizer as build_d2_optimizer
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping


def build_foss_optimizer(cfg, model):
    """``SOLVER.OPTIMIZER``: "ADAM" (paper), "ADAMW" or "SGD". Frozen parameters are left out."""
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name == "SGD":
        return build_d2_optimizer(cfg, model)
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    cls = {"ADAM": torch.optim.Adam, "ADAMW": torch.optim.AdamW}.get(name)
    if cls is None:
        raise ValueError(f"SOLVER.OPTIMIZER must be ADAM, ADAMW or SGD, got {cfg.SOLVER.OPTIMIZER!r}")
    return maybe_add_gradient_clipping(cfg, cls)(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
