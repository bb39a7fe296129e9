"""bfloat16 inference (not in the paper): the age network (MODEL.AGE_HEAD.INFERENCE_DTYPE) and the
detector's backbone and heatmap head's 3x3 conv (MODEL.FOSS.DET_INFERENCE_DTYPE), both in the
``fast`` preset.

On a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX) oneDNN runs the convolutions in
bfloat16 with float32 accumulation: the age network 1.6x faster on this project's AMD EPYC, ages
within about half a year of float32's (docs/RESULTS.md at 58d4fa8, section 9, "The age network in
bfloat16"). The backbone's features are float32 again before CenterNet's heads read them, and the
heatmap's hidden channels before its 1x1 conv, so the logits, their bound and the boxes are
computed in float32 from slightly different numbers (docs/RESULTS.md section 1 has what that
changes).
"""

import contextlib
import functools
import logging
from typing import Callable, Optional

import torch

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16")


def check_dtype(name: str, key: str = "MODEL.AGE_HEAD.INFERENCE_DTYPE") -> str:
    """``name`` if it is one of ``DTYPES``, else a ValueError naming the config ``key``."""
    if name not in DTYPES:
        raise ValueError(f"{key} must be one of {DTYPES}, got {name!r}")
    return name


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` does bfloat16 arithmetic in hardware: the current CUDA GPU when it
    does without emulation (Ampere and later), or an x86 CPU that lists avx512_bf16 or amx_bf16
    (Linux's /proc/cpuinfo). Elsewhere bfloat16 would be emulated, slower than float32."""
    if device_type == "cuda":
        if not torch.cuda.is_available():
            return False
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch before 2.3 has no including_emulation: native from Ampere (8.0) on
            return torch.cuda.get_device_capability() >= (8, 0)
    if device_type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def effective_dtype(dtype: str, device_type: str, backend: str = "pytorch") -> str:
    """The dtype a network's convolutions run in: bfloat16 where ``dtype`` asks for it on a device
    that has it natively, with PyTorch (onnxruntime's graphs are float32); else float32."""
    return "bfloat16" if dtype == "bfloat16" and backend == "pytorch" and native_bf16(device_type) else "float32"


@functools.lru_cache(maxsize=None)
def _warn_emulated(device_type: str):
    logger.warning("INFERENCE_DTYPE bfloat16: this %s has no native bfloat16 arithmetic; running float32", device_type)


def inference_autocast(dtype: str, device: torch.device):
    """The context a network runs in at test time: bfloat16 autocast when ``dtype`` asks for it and
    ``device`` has native bfloat16, else nothing (float32)."""
    if dtype != "bfloat16":
        return contextlib.nullcontext()
    if not native_bf16(device.type):
        _warn_emulated(device.type)
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def run_in(dtype: str, device: torch.device, fn: Callable, *args):
    """``fn(*args)`` at test time in ``dtype`` (``inference_autocast``), its tensors (alone, in a
    tuple or in a dict; None kept) handed back in float32 for what reads them next."""
    if dtype == "float32":
        return fn(*args)
    with inference_autocast(dtype, device):
        out = fn(*args)
    if isinstance(out, dict):
        return {k: v.float() for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(None if v is None else v.float() for v in out)
    return out.float()


def cpu_autocast_dtype() -> Optional[torch.dtype]:
    """The dtype of the CPU autocast in force in this thread, None without one."""
    try:
        on, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
    except (TypeError, AttributeError):  # torch < 2.4 takes no device
        on, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
    return dtype if on else None


def in_float32(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn(x)``; on CPU under a bfloat16 autocast, in float32 outside it: for ops whose CPU kernel
    in bfloat16 is slow (DLA's depthwise transposed convolutions: half the backbone's time) or
    missing (torchvision's deformable convolution). Training, CUDA and float32 run ``fn(x)`` as is."""
    if x.device.type != "cpu" or cpu_autocast_dtype() != torch.bfloat16:
        return fn(x)
    with torch.autocast("cpu", enabled=False):
        return fn(x.float())
