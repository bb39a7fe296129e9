"""bfloat16 inference of the age network (not in the paper; MODEL.AGE_HEAD.INFERENCE_DTYPE).

On a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX) oneDNN runs the TResNet's
convolutions in bfloat16 with float32 accumulation: 1.6x faster on this project's AMD EPYC, ages
within about half a year of float32's (docs/RESULTS.md at 58d4fa8, section 9, "The age network in bfloat16").
The detector stays float32, so scores and boxes do not change.
"""

import contextlib
import functools
import logging

import torch

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16")


def check_dtype(name: str) -> str:
    """``name`` if it is one of ``DTYPES``, else a ValueError."""
    if name not in DTYPES:
        raise ValueError(f"MODEL.AGE_HEAD.INFERENCE_DTYPE must be one of {DTYPES}, got {name!r}")
    return name


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` does bfloat16 arithmetic in hardware: the current CUDA GPU when it
    does without emulation (Ampere and later), or an x86 CPU that lists avx512_bf16 or amx_bf16
    (Linux's /proc/cpuinfo). Elsewhere bfloat16 would be emulated, slower than float32."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
