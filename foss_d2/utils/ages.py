"""Age bands of the true age, shared by the per-band evaluation and DATALOADER.AGE_BALANCE: babies,
children, teenagers, young adults, middle age, the old. Reported and balanced apart because an
overall MAE hides a model that reads every child as an adult (UTKFace has most faces in 20-39,
FG-NET in 3-19)."""

import numpy as np

# [low, high] in whole years; an age between two bands (2.5) belongs to the upper one.
AGE_BANDS = ((0, 2), (3, 9), (10, 19), (20, 39), (40, 59), (60, 200))


def age_band(age: float) -> int:
    """Index into AGE_BANDS of an age in years (>= 0)."""
    return int(np.searchsorted([low for low, _ in AGE_BANDS[1:]], age, side="right"))


def band_name(low: int, high: int) -> str:
    return f"{low}+" if high >= 200 else f"{low}-{high}"
