"""Optimizer of the paper (section 4.2: Adam, lr 1e-4), with detectron2's SGD still available."""

import logging
import math
from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Tuple

import torch
from torch import nn

from detectron2.solver import build_optimizer as build_d2_optimizer
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping


def build_foss_optimizer(cfg, model):
    """``SOLVER.OPTIMIZER``: "ADAM" (paper), "ADAMW" or "SGD". Frozen parameters are left out.

    ``SOLVER.AGE_HEAD_LR_FACTOR`` scales the age network's learning rate (1.0 in the paper): an age
    network trained from scratch next to an already trained detector can take larger steps.
    """
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name == "SGD":
        return build_d2_optimizer(cfg, model)
    factor = cfg.SOLVER.AGE_HEAD_LR_FACTOR
    age_head = getattr(model, "age_head", None)
    if factor <= 0:
        raise ValueError(f"SOLVER.AGE_HEAD_LR_FACTOR must be > 0, got {factor}")
    common = dict(
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    if factor == 1.0 or age_head is None:
        params = get_default_optimizer_params(model, base_lr=cfg.SOLVER.BASE_LR, **common)
    else:
        params = get_default_optimizer_params(age_head, base_lr=cfg.SOLVER.BASE_LR * factor, **common)
        rest = nn.Module()
        # A container of the other top-level modules, so that the helper sees each parameter once.
        for child_name, child in model.named_children():
            if child is not age_head:
                rest.add_module(child_name, child)
        params += get_default_optimizer_params(rest, base_lr=cfg.SOLVER.BASE_LR, **common)
    cls = {"ADAM": torch.optim.Adam, "ADAMW": torch.optim.AdamW}.get(name)
    if cls is None:
        raise ValueError(f"SOLVER.OPTIMIZER must be ADAM, ADAMW or SGD, got {cfg.SOLVER.OPTIMIZER!r}")
    return maybe_add_gradient_clipping(cfg, cls)(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)


def cosine_schedule(optimizer, steps: int, warmup: int = 0):
    """A LambdaLR that takes the learning rate from its value to 0 along half a cosine over
    ``steps`` steps, after a linear warmup from 1/``warmup`` of it over the first ``warmup``."""

    def rate(i):
        ramp = min(1.0, (i + 1) / warmup) if warmup else 1.0
        return ramp * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, rate)


def distill_epochs(
    epochs: int,
    batches: Callable[[int], Iterable],
    losses_of: Callable[[object], Tuple[Dict[str, torch.Tensor], int]],
    optimizer,
    scheduler,
    logger: logging.Logger,
    digits: int = 4,
) -> List[dict]:
    """The research tools' training loop over a cache (tools/research/distill_*.py): epoch 0
    measures the losses of the model as it starts, epochs 1 to ``epochs`` train on their sum.
    ``batches(epoch)`` gives an epoch's batches, ``losses_of(batch)`` its named losses and its size.
    Returns each epoch's size-weighted mean losses ({"epoch": i, name: mean}), also logged."""
    log = []
    for epoch in range(epochs + 1):
        sums, seen = defaultdict(float), 0
        for batch in batches(epoch):
            with torch.set_grad_enabled(epoch > 0):
                losses, count = losses_of(batch)
            if epoch > 0:
                optimizer.zero_grad()
                sum(losses.values()).backward()
                optimizer.step()
                scheduler.step()
            for k, v in losses.items():
                sums[k] += float(v.detach()) * count
            seen += count
        means = {k: v / seen for k, v in sums.items()}
        log.append({"epoch": epoch, **means})
        logger.info("epoch %d: %s", epoch, ", ".join(f"{k} {v:.{digits}f}" for k, v in means.items()))
    return log
