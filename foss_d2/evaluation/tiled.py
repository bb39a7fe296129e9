"""Held-out single faces shown at group-photo scale: n x n grids of faces on one canvas.

The single-face protocol (paper 4.2) shows each face filling the picture; in the multi-person
photos FOSS is for, faces are a fraction of it. ``evaluate_grid`` pastes the same faces into square
canvases of 1, 4 or 9 cells (as the tiling augmentation of paper 3.3 does at training time) and,
in each cell, takes the highest-scoring detected face whose centre lies inside as the answer.
"""

from typing import Callable, List, Optional

import cv2
import numpy as np

from ..utils.ages import AGE_BANDS, age_band, band_name, coverage


def grid_canvas(images: List[np.ndarray], grid: int, canvas: int = 480) -> np.ndarray:
    """``grid`` x ``grid`` cells of ``canvas // grid`` pixels, row-major, each image stretched to its cell."""
    cell = canvas // grid
    out = np.zeros((canvas, canvas, 3), np.uint8)
    for i, img in enumerate(images):
        y, x = divmod(i, grid)
        out[y * cell : (y + 1) * cell, x * cell : (x + 1) * cell] = cv2.resize(img, (cell, cell))
    return out


def evaluate_grid(estimate: Callable, records: List[dict], grid: int, canvas: int = 480, read=cv2.imread) -> dict:
    """Faces found, MAE, Pearson correlation of predicted and true age and gender accuracy, for
    single-face ``records`` (detectron2 dicts with one annotation carrying ``age`` / ``gender``)
    shown ``grid * grid`` to a canvas, overall and per AGE_BANDS band of the true age (``per_band``:
    faces, found, MAE, gender accuracy, mean predicted age). ``estimate(image)`` returns faces as
    ``FaceAgeEstimator``."""
    cell = canvas // grid
    per = grid * grid
    ages, preds, gender_ok, shown, stds = [], [], [], [], []
    for start in range(0, len(records) - per + 1, per):
        group = records[start : start + per]
        faces = estimate(grid_canvas([read(r["file_name"]) for r in group], grid, canvas))
        for i, r in enumerate(group):
            shown.append(r["annotations"][0]["age"])
            y, x = divmod(i, grid)
            inside = [
                f
                for f in faces
                if x * cell <= (f["box"][0] + f["box"][2]) / 2 < (x + 1) * cell
                and y * cell <= (f["box"][1] + f["box"][3]) / 2 < (y + 1) * cell
            ]
            if inside:
                f = max(inside, key=lambda f: f["score"])
                ann = r["annotations"][0]
                ages.append(ann["age"])
                preds.append(f["age"])
                stds.append(f.get("age_std"))
                gender_ok.append(gender_verdict(f, ann["gender"]))
    res = summarize_by_band(ages, preds, gender_ok, shown, stds)
    return {"tiles": per, "faces": (len(records) // per) * per, **res}


def gender_verdict(face: dict, label: int) -> Optional[bool]:
    """Whether an answer's gender is the label's; None (not scored) where the face has no label or
    the model gave no gender (``MODEL.AGE_HEAD.GENDER_ON False``), which would read as male."""
    if label not in (0, 1) or face.get("gender") not in ("female", "male"):
        return None
    return (face["gender"] == "female") == (label == 1)


def summarize_by_band(ages, preds, gender_ok, shown, stds=None) -> dict:
    """Figures of faces shown (true ages ``shown``) of which those found have true ``ages``,
    predicted ``preds`` and ``gender_ok`` (None where the face has no gender label): found, MAE,
    Pearson correlation, gender accuracy, and per AGE_BANDS band of the true age (faces, found,
    MAE, gender accuracy, mean predicted age); with the found faces' reported ``stds`` (None
    where one has none), how often they hold the true age (``coverage``)."""
    a, p = np.array(ages, float), np.array(preds, float)
    g = np.array([np.nan if x is None else float(x) for x in gender_ok], float)
    bands = np.array([age_band(x) for x in a], int)
    shown_bands = np.array([age_band(x) for x in shown], int)
    per_band = {}
    for b, (low, high) in enumerate(AGE_BANDS):
        n = int((shown_bands == b).sum())
        if n:
            m = bands == b
            per_band[band_name(low, high)] = {
                "faces": n,
                "found": int(m.sum()),
                "MAE": float(np.abs(a[m] - p[m]).mean()) if m.any() else None,
                "gender_acc": _percent(g[m]),
                "mean_pred_age": float(p[m].mean()) if m.any() else None,
            }
    res = {
        "found": len(a),
        "MAE": float(np.abs(a - p).mean()) if len(a) else None,
        "corr": float(np.corrcoef(a, p)[0, 1]) if len(a) > 2 else None,
        "gender_acc": _percent(g),
        "per_band": per_band,
    }
    if stds is not None and all(isinstance(v, (int, float)) for v in stds):  # (None: an answer without one)
        res.update(coverage(p - a, stds))
    return res


def _percent(right: np.ndarray):
    """Percentage of 1s among the labelled entries (not NaN); None when there are none."""
    right = right[~np.isnan(right)]
    return 100.0 * float(right.mean()) if len(right) else None
