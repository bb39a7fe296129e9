"""Held-out single faces pasted into real group photos: the same face at the same size and place,
with the photo around it or with black around it.

The age network reads the face crop and, through the feature connection (paper 3.1), the
detector's feature of the photo around it ("still seeing surroundings"). Children in group photos
are read as adults (issue 16) while UTKFace children shown nine to a black canvas are read right
(RESULTS.md at 58d4fa8, section 10). ``evaluate_pasted`` asks whether the surroundings do it: each held-out
face is pasted over a face of a real group photo (scaled to that face's size, edges feathered),
and again at the same place on a black picture of the same size; the detection that overlaps the
pasted face best (IoU > 0.3, the paper's th_iou) is its answer. Only the surroundings differ
between the two.
"""

from typing import Callable, List, Optional, Sequence

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from detectron2.structures import BoxMode

from .tiled import gender_verdict, summarize_by_band

CONDITIONS = ("alone", "on_black", "in_photo")


def paste_face(dst: np.ndarray, src: np.ndarray, src_box, dst_box, margin: float = 0.25, feather: float = 0.5):
    """Paste ``src``'s face (``src_box``, XYXY) and ``margin`` x its size around it into ``dst``
    (in place), scaled to the area of ``dst_box`` with its own aspect kept and centred on it. The
    pasted region fades in over ``feather`` x its margin, so that no hard edge frames the face.
    Returns the pasted face's box in ``dst`` pixels."""
    bx1, by1, bx2, by2 = (float(v) for v in src_box)
    bw, bh = bx2 - bx1, by2 - by1
    dw, dh = float(dst_box[2] - dst_box[0]), float(dst_box[3] - dst_box[1])
    if min(bw, bh, dw, dh) <= 0:
        raise ValueError(f"empty box: source {list(src_box)}, destination {list(dst_box)}")
    s = float(np.sqrt(dw * dh / (bw * bh)))
    scx, scy = (bx1 + bx2) / 2, (by1 + by2) / 2
    dcx, dcy = (dst_box[0] + dst_box[2]) / 2, (dst_box[1] + dst_box[3]) / 2
    h, w = src.shape[:2]
    rx1, ry1 = max(0, int(np.floor(bx1 - margin * bw))), max(0, int(np.floor(by1 - margin * bh)))
    rx2, ry2 = min(w, int(np.ceil(bx2 + margin * bw))), min(h, int(np.ceil(by2 + margin * bh)))
    x1, y1 = int(round(dcx + (rx1 - scx) * s)), int(round(dcy + (ry1 - scy) * s))
    x2, y2 = int(round(dcx + (rx2 - scx) * s)), int(round(dcy + (ry2 - scy) * s))
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise ValueError(f"destination box {list(dst_box)} too small to paste into")
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    patch = cv2.resize(src[ry1:ry2, rx1:rx2], (x2 - x1, y2 - y1), interpolation=interp).astype(np.float32)
    ramp_x = _ramp(x2 - x1, max(1.0, feather * margin * bw * s))
    ramp_y = _ramp(y2 - y1, max(1.0, feather * margin * bh * s))
    alpha = (ramp_y[:, None] * ramp_x[None, :])[..., None]
    # the part of the region inside dst
    cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(dst.shape[1], x2), min(dst.shape[0], y2)
    if cx1 < cx2 and cy1 < cy2:
        p = patch[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
        a = alpha[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
        region = dst[cy1:cy2, cx1:cx2].astype(np.float32)
        dst[cy1:cy2, cx1:cx2] = np.clip(a * p + (1 - a) * region + 0.5, 0, 255).astype(dst.dtype)
    return [dcx + (bx1 - scx) * s, dcy + (by1 - scy) * s, dcx + (bx2 - scx) * s, dcy + (by2 - scy) * s]


def _ramp(n: int, width: float) -> np.ndarray:
    """0 -> 1 over ``width`` pixels from both ends of ``n`` pixels (pixel centres)."""
    i = np.arange(n, dtype=np.float32) + 0.5
    return np.clip(np.minimum(i, n - i) / width, 0.0, 1.0)


def iou(a, b) -> float:
    """IoU of two XYXY boxes (torchvision's box_iou)."""
    return float(box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))[0, 0])


def best_match(faces: List[dict], box, th_iou: float = 0.3) -> Optional[dict]:
    """The detected face that overlaps ``box`` most, if by more than ``th_iou``."""
    scored = [(iou(f["box"], box), f) for f in faces]
    scored = [(v, f) for v, f in scored if v > th_iou]
    return max(scored, key=lambda t: t[0])[1] if scored else None


def photo_slots(record: dict, min_side: float, margin: float, rng: np.random.Generator, limit: int) -> List[list]:
    """Up to ``limit`` face boxes (XYXY) of a photo record whose longer side is at least
    ``min_side`` pixels, not crowd, and whose regions grown by ``margin`` do not overlap: each
    pasted face then covers one real face and no neighbour's."""
    boxes = []
    for a in record["annotations"]:
        if a.get("iscrowd", 0):
            continue
        b = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
        if max(b[2] - b[0], b[3] - b[1]) >= min_side:
            boxes.append(b)
    chosen, grown = [], []
    for i in rng.permutation(len(boxes)):
        b = boxes[i]
        mw, mh = margin * (b[2] - b[0]), margin * (b[3] - b[1])
        g = [b[0] - mw, b[1] - mh, b[2] + mw, b[3] + mh]
        if all(iou(g, o) == 0.0 for o in grown):
            chosen.append(b)
            grown.append(g)
        if len(chosen) == limit:
            break
    return chosen


def evaluate_pasted(
    estimate: Callable,
    faces: Sequence[dict],
    photos: Sequence[dict],
    per_photo: int = 4,
    min_side: float = 40.0,
    margin: float = 0.25,
    seed: int = 0,
    read=cv2.imread,
    on_photo: Optional[Callable] = None,
):
    """Age and gender of single-face ``faces`` (records with one annotation carrying ``age`` and
    ``gender``, -1 when unknown) alone, pasted on black and pasted into ``photos`` (multi-face records), up to
    ``per_photo`` to a photo over its faces of at least ``min_side`` px. Returns
    {condition: summarize_by_band(...)} for CONDITIONS, each with ``faces`` (shown) added.
    ``on_photo(index, pasted picture, pasted boxes, faces found)`` sees each pasted photo."""
    rng = np.random.default_rng(seed)
    slots = [(p, s) for p in photos for s in [photo_slots(p, min_side, margin, rng, per_photo)] if s]
    if not slots:
        raise ValueError(f"no photo has a face of at least {min_side} px to paste over")
    order = rng.permutation(len(slots))
    results = {c: ([], [], [], [], []) for c in CONDITIONS}  # true ages, answers, gender right, shown, stds
    start, k = 0, 0
    while start < len(faces):
        photo, boxes = slots[order[k % len(order)]]
        group = faces[start : start + len(boxes)]
        start += len(group)
        img = read(photo["file_name"])
        if img is None:
            raise FileNotFoundError(f"cannot read {photo['file_name']}")
        pictures = {"on_black": np.zeros_like(img), "in_photo": img.copy()}
        pasted, alone = [], []
        for r, box in zip(group, boxes):
            src = read(r["file_name"])
            if src is None:
                raise FileNotFoundError(f"cannot read {r['file_name']}")
            a = r["annotations"][0]
            src_box = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
            for pic in pictures.values():
                at = paste_face(pic, src, src_box, box, margin)
            pasted.append(at)
            found = estimate(src)
            alone.append(max(found, key=lambda f: f["score"]) if found else None)
        answers = {"alone": alone}
        for c, pic in pictures.items():
            found = estimate(pic)
            answers[c] = [best_match(found, at) for at in pasted]
            if c == "in_photo" and on_photo is not None:
                on_photo(k, pic, pasted, found)
        for c in CONDITIONS:
            ages, preds, gender_ok, shown, stds = results[c]
            for r, f in zip(group, answers[c]):
                a = r["annotations"][0]
                shown.append(a["age"])
                if f is not None:
                    ages.append(a["age"])
                    preds.append(f["age"])
                    stds.append(f.get("age_std"))
                    gender_ok.append(gender_verdict(f, a["gender"]))
        k += 1
    return {c: {"faces": len(results[c][3]), **summarize_by_band(*results[c])} for c in CONDITIONS}


def stratified_faces(records: Sequence[dict], per_band: int, seed: int = 0) -> List[dict]:
    """Up to ``per_band`` records of each age band (seeded draw), in a seeded random order."""
    from ..utils.ages import AGE_BANDS, age_band

    rng = np.random.default_rng(seed)
    by_band = [[] for _ in AGE_BANDS]
    for r in records:
        by_band[age_band(r["annotations"][0]["age"])].append(r)
    picked = [band[i] for band in by_band for i in rng.permutation(len(band))[:per_band]]
    return [picked[i] for i in rng.permutation(len(picked))]
