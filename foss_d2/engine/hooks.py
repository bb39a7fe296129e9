"""Training hooks of FOSS-D2."""

import json
import logging
import math
import os
from typing import Dict, List, Optional

import torch

from detectron2.engine import HookBase
from detectron2.utils import comm

from ..utils.figures import pyplot, save_figure
from ..utils.json_io import atomic_path


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
        trained = [(name, p) for name, p in self.trainer.model.named_parameters() if p.requires_grad]
        if not trained:
            return None
        # one answer for all of them: on a GPU each .all() read on its own waits for the device
        finite = torch.stack([torch.isfinite(p).all() for _, p in trained])
        if bool(finite.all()):
            return None
        return trained[int((~finite).nonzero()[0])][0]


def read_metrics(path: str) -> List[dict]:
    """The rows of detectron2's ``metrics.json`` that hold a loss, by iteration; after a
    ``--resume`` the rerun's rows replace the first run's. A last line cut short (a run stopped
    while writing it) is passed over."""
    rows: Dict[int, dict] = {}
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "iteration" in row and "total_loss" in row:
                rows[row["iteration"]] = row
    return [rows[i] for i in sorted(rows)]


def curve_keys(rows: List[dict]) -> List[str]:
    """What a training picture shows: the total loss, each loss the run logged (a frozen detector
    logs no detection losses) in name order, then the learning rate."""
    logged = {k for r in rows for k in r}
    losses = sorted(k for k in logged if k.startswith("loss_"))
    return ["total_loss"] + losses + (["lr"] if "lr" in logged else [])


def plot_training_curves(rows: List[dict], path: str, title: str = "") -> None:
    """One panel a key of ``curve_keys`` against the iteration (detectron2 logs each loss as the
    median of its last 20 iterations), written to ``path`` (PNG unless its suffix names another
    format) through a temporary file: a picture open in a viewer is never half written."""
    keys = curve_keys(rows)
    plt = pyplot()
    ncols = min(3, len(keys))
    nrows = (len(keys) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), sharex=True, squeeze=False)
    for ax in axes.ravel()[len(keys) :]:
        ax.set_visible(False)
    for ax, key in zip(axes.ravel(), keys):
        ax.plot(*zip(*[(r["iteration"], r[key]) for r in rows if key in r]), marker="." if len(rows) < 50 else None)
        ax.set_title("learning rate" if key == "lr" else key)
        ax.grid(alpha=0.3)
        ax.set_xlabel("iteration")
    fig.suptitle(title)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        save_figure(plt, fig, f, dpi=100, format=os.path.splitext(path)[1][1:] or "png")


class TrainingCurves(HookBase):
    """Draws the run's losses and learning rate from its ``metrics.json`` into
    ``OUTPUT_DIR/training_curves.png`` at each checkpoint (``period`` iterations) and when training
    ends, stopped or diverged included: a picture to look at without TensorBoard. It must run after
    detectron2's ``PeriodicWriter``, which writes ``metrics.json`` (``Trainer.build_hooks`` puts it
    last). A picture that cannot be drawn is a warning; training goes on."""

    def __init__(self, output_dir: str, period: int):
        self.output_dir = output_dir
        self.metrics = os.path.join(output_dir, "metrics.json")
        self.path = os.path.join(output_dir, "training_curves.png")
        self.period = int(period)
        self._warned = False

    def after_step(self):
        if self.period > 0 and (self.trainer.iter + 1) % self.period == 0:
            self.draw()

    def after_train(self):
        self.draw()

    def draw(self):
        if not comm.is_main_process() or not os.path.isfile(self.metrics):
            return
        try:
            rows = read_metrics(self.metrics)
            if rows:
                done = rows[-1]["iteration"] + 1
                plot_training_curves(rows, self.path, f"{self.output_dir}: iteration {done} of {self.trainer.max_iter}")
        except Exception as e:  # a picture is never worth a training
            if not self._warned:
                logging.getLogger(__name__).warning("could not draw %s: %s: %s", self.path, type(e).__name__, e)
                self._warned = True
