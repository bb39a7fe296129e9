"""Age bands of the true age, shared by the per-band evaluation and DATALOADER.AGE_BALANCE: babies,
children, teenagers, young adults, middle age, the old. Reported and balanced apart because an
overall MAE hides a model that reads every child as an adult (UTKFace has most faces in 20-39,
FG-NET in 3-19)."""

import numpy as np
import torch

# [low, high] in whole years; an age between two bands (2.5) belongs to the upper one.
AGE_BANDS = ((0, 2), (3, 9), (10, 19), (20, 39), (40, 59), (60, 200))


def age_band(age: float) -> int:
    """Index into AGE_BANDS of an age in years (>= 0)."""
    return int(np.searchsorted([low for low, _ in AGE_BANDS[1:]], age, side="right"))


def band_name(low: int, high: int) -> str:
    return f"{low}+" if high >= 200 else f"{low}-{high}"


# How one age in years is read off a face's distribution over the age classes (class j = j years).
AGE_READOUTS = ("mean", "median", "mode")


def check_readout(how: str) -> str:
    """``how`` if it names one of AGE_READOUTS, else a ValueError naming the config key."""
    if how not in AGE_READOUTS:
        raise ValueError(f"MODEL.AGE_HEAD.AGE_READOUT must be one of {AGE_READOUTS}, got {how!r}")
    return how


def read_age(probs, how: str = "mean"):
    """Ages [N] from distributions ``probs`` [N, C] (a torch tensor, rows summing to 1).

    "mean" (paper Sec. 3.2: the mean-variance loss trains the mean); "median", the age that
    minimises the expected absolute error under the distribution, each class j spread evenly over
    [j - 0.5, j + 0.5] so that the median moves smoothly with the probabilities; "mode", the most
    probable class.
    """
    check_readout(how)
    if how == "mean":
        j = torch.arange(probs.shape[1], dtype=probs.dtype, device=probs.device)
        return (probs * j).sum(1)
    if how == "mode":
        return probs.argmax(1).to(probs.dtype)
    if probs.shape[0] == 0:  # median
        return probs.new_zeros(0)
    cdf = probs.cumsum(1)
    half = 0.5 * cdf[:, -1:]  # rows that sum to 1 up to rounding
    k = torch.searchsorted(cdf.contiguous(), half).clamp(max=probs.shape[1] - 1)  # first class reaching it
    below = torch.where(k > 0, cdf.gather(1, (k - 1).clamp(min=0)), torch.zeros_like(half))
    p_k = probs.gather(1, k).clamp(min=torch.finfo(probs.dtype).tiny)
    return (k.to(probs.dtype) - 0.5 + (half - below) / p_k).squeeze(1)


def coverage(errors, stds) -> dict:
    """Whether reported age_stds are error bars (MODEL.AGE_HEAD.AGE_STD_SCALE): the share of faces
    whose true age lies within one and two of their stds of the answer (``errors``: answer - true
    age), and ``std_scale_68``, the factor on the stds that would put 68.3% within one (a normal
    error's share; 1.0 when they are right). ``MAE_by_std_quarter``: the MAE of each quarter of
    the faces ranked by their std, smallest first (with 4 faces or more). Nothing when there are
    no faces or an error or std is not a number."""
    err = np.abs(np.asarray(errors, dtype=float))
    std = np.asarray(stds, dtype=float)
    if not len(err) or not (np.isfinite(err).all() and np.isfinite(std).all()):
        return {}
    res = {
        "age_in_1std": 100.0 * float((err <= std).mean()),
        "age_in_2std": 100.0 * float((err <= 2 * std).mean()),
        "std_scale_68": float(np.quantile(err / np.maximum(std, 1e-6), 0.6827)),
    }
    if len(err) >= 4:
        res["MAE_by_std_quarter"] = [float(q.mean()) for q in np.array_split(err[np.argsort(std, kind="stable")], 4)]
    return res
