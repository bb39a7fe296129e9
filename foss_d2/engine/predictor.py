"""Single-image inference, in the shape of detectron2's ``DefaultPredictor``."""

import logging
import os
import warnings
from typing import Iterable, Iterator, Optional, Tuple

import numpy as np
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from ..config import check_device
from ..data.augmentation import LimitMaxSide
from ..meta_arch import FOSSWithTTA
from ..utils.image_io import load_image, read_image_file
from .fusion import optimize_for_inference

BACKENDS = ("pytorch", "onnxruntime")
logger = logging.getLogger(__name__)


def inference_tensor(img: np.ndarray, limit: LimitMaxSide) -> torch.Tensor:
    """An HxWx3 uint8 image as the model reads it: at most ``limit``'s side (INPUT.MAX_SIDE), uint8 CHW."""
    img = limit.get_transform(img).apply_image(img)
    return torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))


def read_photos(paths: Iterable[str], input_format: str, max_side: int) -> Iterator[Tuple[str, torch.Tensor]]:
    """(path, ``inference_tensor``) for each photo that can be read; the others are skipped with a
    warning (the research tools' harvests over a dataset's photos)."""
    limit = LimitMaxSide(max_side)
    for path in paths:
        try:
            img = read_image_file(path, input_format)
        except (FileNotFoundError, ValueError) as e:
            logger.warning("skipping %s: %s", path, e)
            continue
        yield path, inference_tensor(img, limit)


class RecordingCheckpointer(DetectionCheckpointer):
    """detectron2's checkpointer, keeping the model's tensors that the checkpoint did not fill (and
    those of them it holds in another shape)."""

    missing, other_shapes = (), ()  # names of the model's tensors

    def _load_model(self, checkpoint):
        incompatible = super()._load_model(checkpoint)
        if incompatible is not None:
            self.missing = tuple(incompatible.missing_keys)
            self.other_shapes = tuple(k for k, _, _ in incompatible.incorrect_shapes)
        return incompatible

    def _log_incompatible_keys(self, incompatible):
        # with tensors missing, load_all_weights raises one error naming them; fvcore's list of
        # every name (hundreds of lines for another config's model) would bury it
        if not incompatible.missing_keys:
            super()._log_incompatible_keys(incompatible)


class IncompleteWeightsError(ValueError):
    """MODEL.WEIGHTS leaves tensors of the model untrained; ``parts``: the model's top-level
    modules they belong to (["age_head"] for a detector-only checkpoint)."""

    def __init__(self, message: str, parts):
        super().__init__(message)
        self.parts = list(parts)


def load_all_weights(model, path: str):
    """Loads ``path`` into ``model`` for inference. A ValueError when it is not a checkpoint, or
    when it leaves tensors of the model untrained (detectron2 only logs those): e.g. a
    ``--detector-only`` export would give every face the answers of a random age network."""
    checkpointer = RecordingCheckpointer(model)
    try:
        checkpointer.load(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001  (torch.load fails on a non-checkpoint in many ways)
        if "://" in path and isinstance(e, OSError):  # URLError, HTTPError: the download, not the file
            raise ValueError(f"MODEL.WEIGHTS {path} could not be downloaded ({type(e).__name__}: {e})") from None
        raise ValueError(f"MODEL.WEIGHTS {path} is not a model checkpoint ({type(e).__name__})") from None
    missing = checkpointer.missing
    if missing:
        parts = sorted({k.split(".")[0] for k in missing})
        hint = (
            " (a detector-only checkpoint? Its boxes need an age network: `foss-d2 export ... --age-head-from`)"
            if parts == ["age_head"]
            else ""
        )
        shapes = f" ({len(checkpointer.other_shapes)} of them in another shape)" if checkpointer.other_shapes else ""
        raise IncompleteWeightsError(
            f"MODEL.WEIGHTS {path} has no weights for {len(missing)} of the model's tensors{shapes}, in "
            f"{', '.join(parts)}{hint}: is it a checkpoint of this config?",
            parts,
        )


def load_model(cfg):
    """``cfg``'s model with MODEL.WEIGHTS loaded whole (``load_all_weights``), in eval mode, as
    trained (no ``optimize_for_inference``): what the export and the research tools read."""
    model = build_model(cfg)
    load_all_weights(model, cfg.MODEL.WEIGHTS)
    return model.eval()


class FOSSPredictor:
    """Loads ``cfg.MODEL.WEIGHTS`` and returns detectron2 ``Instances`` for one image.

    Fields: ``pred_boxes`` (original-image pixels), ``scores``, ``pred_ages``, ``pred_age_stds``,
    ``pred_age_probs`` (101 classes) and ``pred_female_probs``.

    ``backend="pytorch"`` folds the BatchNorms into the convolutions, stores the weights
    channels-last and keeps the age network's weights prepacked for oneDNN (MODEL.AGE_HEAD.PREPACK;
    ``optimize=False`` keeps the model as trained, e.g. to train it further);
    ``backend="onnxruntime"`` runs the detector and the age network as ONNX graphs
    (onnx_backend.py), exported to a cache folder when missing; an ``onnx_dir`` must hold graphs
    exported from the same weights (``foss-d2 export --format onnx``, with ``--int8`` the int8
    ones; a ValueError otherwise). Both run on
    ``torch.get_num_threads()`` threads, by default the physical cores; ``threads`` sets the
    onnxruntime sessions' count instead (one thread per call when several calls run at once).
    Calls from several threads at once are safe: the model keeps no state between calls (the
    prepacked weights are only redone, to the same values, after the weights themselves change).
    """

    def __init__(
        self,
        cfg,
        backend: str = "pytorch",
        optimize: bool = True,
        onnx_dir: Optional[str] = None,
        threads: Optional[int] = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        check_device(cfg.MODEL.DEVICE)  # get_foss_cfg checks its name only
        self.cfg = cfg.clone()
        self.backend = backend
        self.onnx_dir = os.path.abspath(onnx_dir) if onnx_dir else None  # graphs of one's own (int8, say)
        self.model = build_model(self.cfg)
        self.model.eval()
        if cfg.MODEL.WEIGHTS:
            load_all_weights(self.model, cfg.MODEL.WEIGHTS)
        else:  # the shipped YAML names no weights: merged alone, it gives random answers that vary run to run
            warnings.warn(
                "FOSSPredictor: MODEL.WEIGHTS is empty, the model is untrained (random weights): its answers mean "
                "nothing. The shipped model: foss_d2.model_zoo.DEFAULT_WEIGHTS, or FaceAgeEstimator()",
                stacklevel=2,
            )
        if backend == "onnxruntime":
            if not str(cfg.MODEL.DEVICE).startswith("cpu"):  # (cpu:0 too, as check_device takes it)
                raise ValueError("the onnxruntime backend runs on CPU: set MODEL.DEVICE cpu")
            from .onnx_backend import default_onnx_dir, use_onnxruntime

            cache = onnx_dir is None
            use_onnxruntime(self.model, onnx_dir or default_onnx_dir(self.cfg), threads=threads, cache=cache)
        elif onnx_dir is not None:
            raise ValueError("onnx_dir is for the onnxruntime backend")
        elif optimize:
            optimize_for_inference(self.model)
        # The test-time options that are not in the paper (TEST_SIZES, TEST_FLIPs) wrap its single pass.
        self.inference_model = FOSSWithTTA(self.cfg, self.model) if FOSSWithTTA.enabled(self.cfg) else self.model
        self.input_format = cfg.INPUT.FORMAT
        self.limit = LimitMaxSide(cfg.INPUT.MAX_SIDE)

    @torch.inference_mode()
    def __call__(self, image):
        img = load_image(image, self.input_format)
        h, w = img.shape[:2]
        tensor = inference_tensor(img, self.limit)
        return self.inference_model([{"image": tensor, "height": h, "width": w}])[0]["instances"].to("cpu")
