"""Training hooks of FOSS-D2."""

import math
from typing import Optional

import torch
from detectron2.engine import HookBase


class DivergenceGuard(HookBase):
    """Stops training, before anything is checkpointed, when it has diverged.

    detectron2 stops only on a non-finite loss; a run with far too high a learning rate can instead
    reach a finite loss of 1e17 and weights of Inf, and still save a ``model_final.pth`` that finds
    nothing. After every step this hook checks that every trained parameter is finite and that the
    total loss stays below ``loss_factor`` times the first non-zero loss (a batch without labelled
    faces, e.g. group photos when the detector is frozen, has a loss of 0: no scale to measure
    divergence by). It must run before the checkpointer (``Trainer.build_hooks`` puts it first).
    """

    def __init__(self, loss_factor: float = 100.0):
        self.loss_factor = float(loss_factor)
        self._first_loss: Optional[float] = None

    def before_train(self):
        self._first_loss = None

    def after_step(self):
        it = self.trainer.iter
        loss = self._latest_loss()
        if loss is not None and loss > 0:
            first = self._first_loss
            if math.isinf(loss) or (first is not None and self.loss_factor > 0 and loss > self.loss_factor * first):
                raise FloatingPointError(
                    f"training diverged at iteration {it}: total loss {loss:.4g} is over "
                    f"{self.loss_factor:g}x the first non-zero one, {first or float('nan'):.4g} "
                    f"(SOLVER.DIVERGENCE_LOSS_FACTOR); lower SOLVER.BASE_LR. No checkpoint was written "
                    f"for this iteration."
                )
            if first is None:
                self._first_loss = loss
        bad = self._first_non_finite_parameter()
        if bad is not None:
            raise FloatingPointError(
                f"training diverged at iteration {it}: parameter {bad} holds NaN or Inf; lower "
                f"SOLVER.BASE_LR. No checkpoint was written for this iteration."
            )

    def _latest_loss(self) -> Optional[float]:
        try:
            value = self.trainer.storage.history("total_loss").latest()
        except KeyError:  # metrics are written by the main process only
            return None
        return float(value) if math.isfinite(value) else float("inf")

    def _first_non_finite_parameter(self) -> Optional[str]:
        for name, p in self.trainer.model.named_parameters():
            if p.requires_grad and not torch.isfinite(p).all():
                return name
        return None
