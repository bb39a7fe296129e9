"""Age / gender evaluation on detected faces (paper section 4, Tables 1-5).

* Multi-person images (Images of Groups, WIDER FACE val with perceived groups): predictions are
  matched to ground-truth faces greedily by score at IoU >= 0.5. Age-group accuracy, 1-off
  accuracy, gender accuracy, the per-group table of the paper's Table 2 and a confusion matrix.
* Single-face datasets (evaluator_type "age_single": UTKFace, IMDB-WIKI, CLAP2016): the largest
  detected face is the target (paper 4.2). MAE, MAE on true ages 21-60 (Table 5), CS@5, gender.
  ``target_on_face``: how often that largest box overlaps the labelled face box (IoU >= 0.5), where
  one is known; "detected" alone only says that some box was found.
* Faces that are not detected are counted (``detection_rate``) and, in the ``*_strict`` figures,
  scored as wrong. A found face without an answer (NaN or null: a detector's predictions.json, a
  model without gender) is left out of the figures on the faces found and wrong in the strict
  ones; where no found face has one, there is no such figure.
* Whether the uncertainties can be read as such: ``age_in_1std`` / ``age_in_2std``, the found
  faces whose true age lies within one / two reported age_stds of the answer, ``std_scale_68``,
  the factor on the stds that would make the first 68.3% (MODEL.AGE_HEAD.AGE_STD_SCALE), and
  ``gender_ece``, the expected calibration error of P(female) in points.
* Multi-person: ``boxes_are_faces``, the share of the predicted boxes that are matched faces (boxes
  on faces marked invalid/crowd are left out), and ``by_threshold``: boxes, that share and the faces
  found when only boxes scoring at least 0.2, 0.3, ... 0.8 are kept: the score threshold chosen by
  measurement.
* Pictures beside ``age_results.md``: ``age_group_confusion.png`` (age groups of the found faces,
  each true group with how many of its faces were found, each predicted group with its ages),
  ``age_predicted_vs_true.png`` (true ages: each found face, and MAE per band of the true age),
  ``age_std.png`` (how often the true age lies within k age_stds, and the MAE per quarter of
  age_std) and ``boxes_by_threshold.png`` (multi-person: the share of boxes that are faces, and the
  faces found, for every score threshold from the model's own in steps of 0.05).
"""

import json
import logging
import math
import os
from collections import OrderedDict
from typing import List, Optional, Sequence

import numpy as np
import torch

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators
from detectron2.structures import Boxes, BoxMode, pairwise_iou
from detectron2.utils import comm

from ..data.utils import absolute_annotations
from ..utils.ages import AGE_BANDS, age_band, band_name, coverage
from ..utils.figures import pyplot, save_figure
from ..utils.json_io import nan_as_null, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)
_ABS_MODES = (BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)


def match_faces(
    pred_boxes: torch.Tensor, scores: torch.Tensor, gt_boxes: torch.Tensor, iou_thresh: float = 0.5
) -> List[int]:
    """For each GT face, the index of its matched prediction or -1 (greedy, highest score first)."""
    match = [-1] * len(gt_boxes)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return match
    iou = pairwise_iou(Boxes(pred_boxes), Boxes(gt_boxes))
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    for p in torch.argsort(scores, descending=True).tolist():
        row = iou[p].clone()
        row[taken] = -1
        g = int(row.argmax())
        if row[g] >= iou_thresh:
            match[g] = p
            taken[g] = True
    return match


SCORE_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
STD_QUARTERS = ["smallest 25%", "25-50%", "50-75%", "largest 25%"]  # MAE_by_std_quarter's columns


def box_precision(boxes: List[tuple], num_faces: int, thresholds: Sequence[float] = SCORE_THRESHOLDS) -> dict:
    """``boxes``: (score, is a matched face) per predicted box. The share of boxes that are faces,
    overall and per score threshold, with the boxes kept and the faces found (% of ``num_faces``)."""
    res = {}
    if boxes:
        res["boxes_are_faces"] = 100.0 * float(np.mean([face for _, face in boxes]))
    table = {}
    for t in thresholds:
        kept = [face for score, face in boxes if score >= t]
        if kept:
            table[f"{t:g}"] = {
                "boxes": len(kept),
                "are_faces": 100.0 * float(np.mean(kept)),
                "found": 100.0 * sum(kept) / max(num_faces, 1),
            }
    if table:
        res["by_threshold"] = table
    return res


def box_outcomes(boxes, scores, match: List[int], crowd: torch.Tensor, iou_thresh: float) -> List[tuple]:
    """(score, is a matched face) for each predicted box, leaving out unmatched boxes on a crowd
    (invalid) face: COCO ignores those too."""
    matched = {m for m in match if m >= 0}
    on_crowd = torch.zeros(len(boxes), dtype=torch.bool)
    if len(crowd) and len(boxes):
        on_crowd = pairwise_iou(Boxes(boxes), Boxes(crowd)).max(dim=1).values >= iou_thresh
    return [(float(scores[i]), i in matched) for i in range(len(boxes)) if i in matched or not on_crowd[i]]


def age_to_group(age: float, lower_bounds: Sequence[float]) -> int:
    """Index of the group whose range [lower_i, lower_{i+1}) holds ``age``."""
    return int(np.searchsorted(np.asarray(lower_bounds, dtype=float), age, side="right") - 1)


def gender_right(row: dict) -> bool:
    """Whether a found face's predicted gender (P(female) over 0.5) is its labelled one."""
    return (row["p_female"] > 0.5) == (row["gender"] == 1)


def answered_age(row: dict) -> bool:
    """A found face with an age answer: a model without ages (a detector's predictions.json) gives
    NaN, which ``age_to_group`` would put in the oldest group."""
    return row["detected"] and _finite(row.get("pred_age"))


def answered_gender(row: dict) -> bool:
    """A found face with a gender answer (``MODEL.AGE_HEAD.GENDER_ON False`` gives NaN, which
    ``gender_right`` would read as male)."""
    return row["detected"] and _finite(row.get("p_female"))


def aged_answers(rows: List[dict]) -> List[dict]:
    """The rows of faces with a true age that were found and answered: the MAE's, the age
    pictures' and the age_std figures' faces."""
    return [r for r in rows if r["age"] >= 0 and answered_age(r)]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


class FaceAgeEvaluator(DatasetEvaluator):
    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        iou_thresh: float = 0.5,
        single_face: Optional[bool] = None,
    ):
        self.dataset_name = dataset_name
        meta = MetadataCatalog.get(dataset_name)
        self.single_face = meta.get("evaluator_type", "") == "age_single" if single_face is None else single_face
        self.group_names = list(meta.get("age_groups", []))
        self.group_lower = list(meta.get("age_group_lower", []))
        self.iou_thresh = iou_thresh
        self.output_dir = output_dir
        self._gt = {}
        for d in DatasetCatalog.get(dataset_name):
            annos = d.get("annotations", [])
            if "height" in d and "width" in d:
                annos = absolute_annotations(annos, d["height"], d["width"])
            crowd = [
                BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
                for a in annos
                if a.get("iscrowd", 0) and a["bbox_mode"] in _ABS_MODES
            ]
            annos = [a for a in annos if a.get("iscrowd", 0) == 0]
            # Relative boxes of an image of unknown size stay unresolved: only the single-face
            # protocol, which does not match boxes, can evaluate such datasets.
            boxes = [
                BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
                if a["bbox_mode"] in _ABS_MODES
                else [0.0] * 4
                for a in annos
            ]
            self._gt[d["image_id"]] = (
                torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                annos,
                torch.tensor(crowd, dtype=torch.float32).reshape(-1, 4),
            )
        if self.single_face:
            several = sum(len(annos) > 1 for _, annos, _ in self._gt.values())
            if several:
                logger.warning(
                    "%s is evaluated as single faces (evaluator type age_single: each image's largest box "
                    "against its first face), but %d of its %d images hold several faces: register it as "
                    "age_group (or face_detection) to match every face",
                    dataset_name,
                    several,
                    len(self._gt),
                )
        self.reset()

    def reset(self):
        self._rows = []
        self._boxes = []  # (score, is a matched face) per predicted box, multi-person only

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            gt_boxes, annos, crowd = self._gt[inp["image_id"]]
            inst = out["instances"].to("cpu")
            boxes, scores = inst.pred_boxes.tensor, inst.scores
            if self.single_face:
                match = ([int(inst.pred_boxes.area().argmax())] if len(inst) else [-1])[: len(annos)]
            else:
                match = match_faces(boxes, scores, gt_boxes, self.iou_thresh)
                self._boxes += box_outcomes(boxes, scores, match, crowd, self.iou_thresh)
            for a, m in zip(annos, match):
                row = {
                    "image_id": inp["image_id"],
                    "age": float(a.get("age", -1)),
                    "gender": int(a.get("gender", -1)),
                    "age_group": int(a.get("age_group", -1)),
                    "detected": m >= 0,
                }
                if m >= 0:
                    row.update(
                        pred_age=float(inst.pred_ages[m]),
                        p_female=float(inst.pred_female_probs[m]),
                        score=float(scores[m]),
                    )
                    if inst.has("pred_age_stds"):
                        row["pred_age_std"] = float(inst.pred_age_stds[m])
                    if self.single_face and len(gt_boxes) and float(gt_boxes[0].abs().sum()) > 0:
                        row["target_iou"] = float(pairwise_iou(Boxes(boxes[m : m + 1]), Boxes(gt_boxes[:1]))[0, 0])
                self._rows.append(row)

    def evaluate(self):
        rows = [r for part in comm.gather(self._rows) for r in part]
        boxes = [b for part in comm.gather(self._boxes) for b in part]
        if not comm.is_main_process():
            return {}
        res = summarize_rows(rows, self.group_lower)
        if not self.single_face:
            res.update(box_precision(boxes, len(rows)))
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            with open(os.path.join(self.output_dir, "face_predictions.json"), "w") as f:
                json.dump(rows, f)
            # every figure, the tables included (the csv printout below keeps the numbers only)
            write_json_atomic(os.path.join(self.output_dir, "age_results.json"), nan_as_null(res), indent=1)
            write_text_atomic(
                os.path.join(self.output_dir, "age_results.md"), format_table(res, self.group_names) + "\n"
            )
            if res.get("per_band"):
                save_age_png(
                    rows,
                    res["per_band"],
                    os.path.join(self.output_dir, "age_predicted_vs_true.png"),
                    title=self.dataset_name,
                )
            if res.get("MAE_by_std_quarter"):
                save_std_png(rows, res, os.path.join(self.output_dir, "age_std.png"), title=self.dataset_name)
            if boxes and not self.single_face:
                curve = box_precision(boxes, len(rows), plot_thresholds([score for score, _ in boxes]))
                if curve.get("by_threshold"):
                    save_threshold_png(
                        curve["by_threshold"],
                        os.path.join(self.output_dir, "boxes_by_threshold.png"),
                        num_faces=len(rows),
                        title=self.dataset_name,
                    )
            if self.group_lower and res.get("confusion") is not None:
                save_confusion_png(
                    np.array(res["confusion"]),
                    self.group_names,
                    os.path.join(self.output_dir, "age_group_confusion.png"),
                    lower=self.group_lower,
                    per_group=res.get("per_group"),
                    title=self.dataset_name,
                )
        logger.info("Age/gender evaluation on %s:\n%s", self.dataset_name, format_table(res, self.group_names))
        flat = {k: v for k, v in res.items() if isinstance(v, (int, float))}
        # detectron2's csv printout leaves out keys with "-": MAE_0_2 ... MAE_60_up
        flat.update(
            {"MAE_" + b.replace("-", "_").replace("+", "_up"): t["MAE"] for b, t in res.get("per_band", {}).items()}
        )
        return OrderedDict([("age", flat)])


def summarize_rows(rows: List[dict], group_lower: Sequence[float] = ()) -> dict:
    """All figures from per-face rows (see the module docstring); hand-checkable in tests."""
    res = {"num_faces": len(rows)}
    if not rows:
        return res
    res["detection_rate"] = 100.0 * float(np.mean([r["detected"] for r in rows]))
    res["undetected"] = int(sum(not r["detected"] for r in rows))
    located = [r["target_iou"] >= 0.5 for r in rows if r["detected"] and "target_iou" in r]
    if located:
        res["target_on_face"] = 100.0 * float(np.mean(located))
    warn_unanswered(rows)
    aged = [r for r in rows if r["age"] >= 0]
    hit = aged_answers(rows)
    if hit:
        err = np.abs([r["pred_age"] - r["age"] for r in hit])
        res["MAE"] = float(err.mean())
        res["CS@5"] = 100.0 * float((err <= 5).mean())
        mid = [abs(r["pred_age"] - r["age"]) for r in hit if 21 <= r["age"] <= 60]
        if mid:
            res["MAE_21_60"] = float(np.mean(mid))
        res["per_band"] = age_band_table(aged)
        res.update(std_coverage(hit))
    # a found face without an answer: left out of the figures on the faces found, wrong in the
    # strict ones; faces found but none answered (a detector, a model without gender): no figure
    gendered = [r for r in rows if r["gender"] >= 0]
    judged = [r for r in gendered if answered_gender(r)]
    if gendered and (judged or not any(r["detected"] for r in gendered)):
        res["gender_acc_strict"] = 100.0 * float(np.mean([answered_gender(r) and gender_right(r) for r in gendered]))
    if judged:
        res["gender_acc"] = 100.0 * float(np.mean([gender_right(r) for r in judged]))
        res["gender_ece"] = calibration_error([r["p_female"] for r in judged], [gender_right(r) for r in judged])
    grouped = [r for r in rows if r["age_group"] >= 0]
    if group_lower and grouped and (any(map(answered_age, grouped)) or not any(r["detected"] for r in grouped)):
        n = len(group_lower)
        conf = np.zeros((n, n), dtype=int)
        exact, one_off, per_group = [], [], {}
        for r in grouped:
            if answered_age(r):
                g = age_to_group(r["pred_age"], group_lower)
                conf[r["age_group"], g] += 1
                exact.append(g == r["age_group"])
                one_off.append(abs(g - r["age_group"]) <= 1)
            else:
                exact.append(False)
                one_off.append(False)
            per_group.setdefault(r["age_group"], []).append((exact[-1], one_off[-1], r))
        answered = [(e, o) for e, o, r in zip(exact, one_off, grouped) if answered_age(r)]
        if answered:
            res["group_acc"] = 100.0 * float(np.mean([e for e, _ in answered]))
            res["group_1off"] = 100.0 * float(np.mean([o for _, o in answered]))
        res["group_acc_strict"] = 100.0 * float(np.mean(exact))
        res["group_1off_strict"] = 100.0 * float(np.mean(one_off))
        res["confusion"] = conf.tolist()
        table = {}
        for g, items in sorted(per_group.items()):
            aged_g = [(e, o) for e, o, r in items if answered_age(r)]
            gen = [r for _, _, r in items if r["gender"] >= 0 and answered_gender(r)]
            table[g] = {
                "faces": len(items),
                "detected": sum(r["detected"] for _, _, r in items),
                "age": 100.0 * float(np.mean([e for e, _ in aged_g])) if aged_g else float("nan"),
                "1-off": 100.0 * float(np.mean([o for _, o in aged_g])) if aged_g else float("nan"),
                "gender": 100.0 * float(np.mean([gender_right(r) for r in gen])) if gen else float("nan"),
            }
        res["per_group"] = table
    return res


def warn_unanswered(rows: List[dict]):
    """A warning when some found faces have an age or gender answer and others not (a
    predictions.json with nulls): the figures on the faces found leave those out."""
    found = [r for r in rows if r["detected"]]
    for what, answered in (("age", answered_age), ("gender", answered_gender)):
        n = sum(not answered(r) for r in found)
        if 0 < n < len(found):
            logger.warning(
                "%d of the %d found faces have no %s answer: left out of the %s figures on the faces found, "
                "wrong in the strict ones",
                n,
                len(found),
                what,
                what,
            )


def std_coverage(hit: List[dict]) -> dict:
    """``coverage`` of the found faces' rows, when every one has a ``pred_age_std`` (older files
    and answers without one give nothing rather than figures over some of the faces)."""
    if not hit or any(r.get("pred_age_std") is None for r in hit):
        return {}
    return coverage([r["pred_age"] - r["age"] for r in hit], [r["pred_age_std"] for r in hit])


def calibration_error(p_female: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error of the gender answers, in points: the confidence max(p, 1 - p)
    binned into ``bins`` equal steps of [0.5, 1], each bin's |accuracy - mean confidence| weighted
    by its share of the faces. 0 when "p_female 0.8" is right 80% of the time."""
    p = np.asarray(p_female, dtype=float)
    conf = np.maximum(p, 1.0 - p)
    ok = np.asarray(right, dtype=float)
    # (the nudge keeps a confidence on a bin's edge, 0.6 or 0.7, out of the bin below it)
    which = np.minimum(np.floor((conf - 0.5) * 2 * bins + 1e-9).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() / len(p) * abs(ok[m].mean() - conf[m].mean())
    return 100.0 * float(total)


def age_band_table(aged: List[dict]) -> dict:
    """Per AGE_BANDS band of the true age: faces, detected, MAE and gender accuracy of the detected."""
    table = {}
    for band, (low, high) in enumerate(AGE_BANDS):
        rows = [r for r in aged if age_band(r["age"]) == band]
        if not rows:
            continue
        answered = [r for r in rows if answered_age(r)]
        gen = [r for r in rows if r["gender"] >= 0 and answered_gender(r)]
        table[band_name(low, high)] = {
            "faces": len(rows),
            "detected": sum(r["detected"] for r in rows),
            "MAE": float(np.mean([abs(r["pred_age"] - r["age"]) for r in answered])) if answered else float("nan"),
            "gender": 100.0 * float(np.mean([gender_right(r) for r in gen])) if gen else float("nan"),
        }
    return table


def format_table(res: dict, group_names: Sequence[str] = ()) -> str:
    """Markdown: the headline figures, then the per-group table (paper Table 2) when groups exist."""
    keys = [
        k
        for k in (
            "num_faces",
            "detection_rate",
            "target_on_face",
            "MAE",
            "MAE_21_60",
            "CS@5",
            "age_in_1std",
            "age_in_2std",
            "std_scale_68",
            "gender_acc",
            "gender_acc_strict",
            "gender_ece",
            "group_acc",
            "group_1off",
            "group_acc_strict",
            "group_1off_strict",
            "boxes_are_faces",
        )
        if k in res
    ]
    lines = [
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
        "| " + " | ".join(_cell(res[k], 2) for k in keys) + " |",
    ]
    if "per_group" in res:
        names = [group_names[g] if g < len(group_names) else str(g) for g in res["per_group"]]
        lines += _transposed(
            "group", names, list(res["per_group"].values()), ("faces", "detected", "age", "1-off", "gender"), 1
        )
    if res.get("by_threshold"):
        t = res["by_threshold"]
        lines += _transposed("score >=", list(t), list(t.values()), ("boxes", "are_faces", "found"), 1)
    if res.get("per_band"):
        b = res["per_band"]
        lines += _transposed("true age", list(b), list(b.values()), ("faces", "detected", "MAE", "gender"), 2)
    if res.get("MAE_by_std_quarter"):
        cells = [{"MAE": v} for v in res["MAE_by_std_quarter"]]
        lines += _transposed("faces by their age_std", STD_QUARTERS, cells, ("MAE",), 2)
    return "\n".join(lines)


def _cell(v, digits: int) -> str:
    """A markdown table's cell: floats to ``digits``, a figure with nothing to measure (NaN) "-"."""
    if isinstance(v, float):
        return "-" if np.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _transposed(title: str, columns: List[str], cells: List[dict], fields: Sequence[str], digits: int) -> List[str]:
    """A markdown table with one column per entry of ``cells`` and one row per field; a field
    that no column measures (FG-NET's gender: no labels) is left out."""
    lines = ["", f"| {title} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for field in fields:
        vals = [c[field] for c in cells]
        if all(isinstance(v, float) and np.isnan(v) for v in vals):
            continue
        lines.append(f"| {field} | " + " | ".join(_cell(v, digits) for v in vals) + " |")
    return lines


def _label_above(ax, text: str, xy, points: float, fontsize: float):
    """``text`` centred ``points`` above the data point ``xy``."""
    ax.annotate(text, xy, textcoords="offset points", xytext=(0, points), ha="center", fontsize=fontsize)


def plot_thresholds(scores: Sequence[float], step: float = 0.05) -> List[float]:
    """Thresholds from the lowest score (the model's own threshold: it returns nothing below it),
    rounded down to ``step``, up to the highest score."""
    low, high = min(scores), max(scores)
    first = round(float(np.floor(low / step + 1e-6) * step), 4)
    if first > low:  # a score a hair under a step (0.19999) keeps its box in the first point
        first = round(first - step, 4)
    return [round(float(t), 4) for t in np.arange(first, high + 1e-9, step)]


def save_threshold_png(by_threshold: dict, path: str, num_faces: Optional[int] = None, title: str = ""):
    """The share of boxes that are faces and the faces found, against the score threshold; the
    boxes kept at each threshold in a row along the top, clear of both curves."""
    plt = pyplot()
    ts = [float(t) for t in by_threshold]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(ts, [v["are_faces"] for v in by_threshold.values()], "o-", label="boxes that are faces (% of boxes kept)")
    of = f"the {num_faces:,} labelled faces" if num_faces else "the labelled faces"
    ax.plot(ts, [v["found"] for v in by_threshold.values()], "s-", label=f"faces found (% of {of})")
    for t, v in by_threshold.items():
        ax.text(float(t), 112, str(v["boxes"]), ha="center", va="bottom", fontsize=7, rotation=90)
    ax.text(ts[0], 104, "boxes kept:", ha="left", va="bottom", fontsize=7, style="italic")
    ax.set_xlabel("score threshold (a box is kept if its score >= it)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 130)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    save_figure(plt, fig, path)


def save_age_png(rows: List[dict], per_band: dict, path: str, title: str = ""):
    """Left: each found face's predicted age against its true one. Right: MAE per band of the true age."""
    plt = pyplot()
    hit = aged_answers(rows)
    true = np.array([r["age"] for r in hit], dtype=float)
    pred = np.array([r["pred_age"] for r in hit], dtype=float)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.6))
    top = max(float(true.max(initial=0)), float(pred.max(initial=0)), 10.0) + 5
    ax.scatter(true, pred, s=6, alpha=min(1.0, 300.0 / max(len(hit), 1)), edgecolors="none")
    ax.plot([0, top], [0, top], "k-", lw=1, label="predicted = true")
    for d in (-5, 5):
        ax.plot([0, top], [d, top + d], "k--", lw=0.6, label="+-5 years" if d < 0 else None)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("true age")
    ax.set_ylabel("predicted age")
    mae = float(np.abs(pred - true).mean()) if len(hit) else float("nan")
    ax.set_title(f"{len(hit)} faces found, MAE {mae:.2f}")
    ax.legend(loc="upper left", fontsize=8)
    names = list(per_band)
    # a band without a found face gets a bar of height 0 (a NaN one dropped its category from the
    # axis when it stood at an end)
    labels = [
        (f"{per_band[n]['MAE']:.1f}" if per_band[n]["detected"] else "-")
        + f"\n{per_band[n]['detected']}/{per_band[n]['faces']}"
        for n in names
    ]
    maes = [float(np.nan_to_num(per_band[n]["MAE"])) for n in names]
    _mae_bars(bx, names, maes, labels, "true age (band)", "MAE per band (under it: faces found / faces)", 0.25)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(plt, fig, path)


def _mae_bars(ax, names: List[str], maes: List[float], labels: List[str], xlabel: str, title: str, margin: float):
    """A panel of MAE bars, each labelled above."""
    bars = ax.bar(names, maes, color="tab:orange")
    for bar, v, label in zip(bars, maes, labels):
        _label_above(ax, label, (bar.get_x() + bar.get_width() / 2, v), 3, 8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("MAE, years")
    ax.set_title(title)
    ax.margins(y=margin)


def save_std_png(rows: List[dict], res: dict, path: str, title: str = ""):
    """Whether the age_std is an error bar. Left: the share of found faces whose true age lies
    within k of their age_stds, for k from 0 to 3, beside a normal error's share (68.3% at 1).
    Right: the MAE of each quarter of the faces ranked by their age_std."""
    plt = pyplot()
    hit = aged_answers(rows)
    err = np.abs([r["pred_age"] - r["age"] for r in hit])
    std = np.array([r["pred_age_std"] for r in hit], dtype=float)
    ks = np.linspace(0, 3, 61)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4))
    ax.plot(ks, [100.0 * float((err <= k * std).mean()) for k in ks], "-", label="the model's answers")
    ax.plot(ks, [100.0 * math.erf(k / math.sqrt(2)) for k in ks], "k--", lw=1, label="a normal error")
    for k, key in ((1, "age_in_1std"), (2, "age_in_2std")):
        ax.plot([k], [res[key]], "o", color="tab:blue")
        _label_above(ax, f"{res[key]:.1f}%", (k, res[key]), -14, 8)
    ax.set_xlabel("k: the true age within k age_stds of the answer")
    ax.set_ylabel("% of the faces found")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{len(hit)} faces found; one std would need x{res['std_scale_68']:.2f} for 68.3%")
    maes = res["MAE_by_std_quarter"]
    _mae_bars(
        bx,
        STD_QUARTERS,
        maes,
        [f"{v:.1f}" for v in maes],
        "faces ranked by their age_std",
        "MAE per quarter of age_std",
        0.2,
    )
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(plt, fig, path)


def group_ranges(lower: Sequence[float]) -> List[str]:
    """The predicted ages each group takes (``age_to_group``: [low, next low)), as axis labels:
    [0, 30, 45, 65] -> ["<30", "30-45", "45-65", "65+"]."""
    out = []
    for i, low in enumerate(lower):
        if i + 1 == len(lower):
            out.append(f"{low:g}+")
        elif i == 0 and low <= 0:
            out.append(f"<{lower[1]:g}")
        else:
            out.append(f"{low:g}-{lower[i + 1]:g}")
    return out


def confusion_labels(names: Sequence[str], lower: Sequence[float], per_group: dict):
    """(true-group labels with the faces found of each, predicted-group labels with their age
    ranges): the matrix counts found faces only, so each row says how many that is."""
    true = []
    for g, name in enumerate(names):
        t = per_group.get(g)
        true.append(f"{name}\n{t['detected']} of {t['faces']} found" if t else name)
    ranges = group_ranges(lower) if len(lower) == len(names) else [""] * len(names)
    pred = [f"{name}\n({r})" if r else name for name, r in zip(names, ranges)]
    return true, pred


def save_confusion_png(
    conf: np.ndarray,
    names: Sequence[str],
    path: str,
    lower: Sequence[float] = (),
    per_group: Optional[dict] = None,
    title: str = "",
):
    """The found faces' true age group against the group of their predicted age: counts, shaded by
    their share of the row."""
    plt = pyplot()
    true, pred = confusion_labels(names, lower, per_group or {})
    fig, ax = plt.subplots(figsize=(2.4 + 1.1 * len(names), 1.6 + 0.8 * len(names)))
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("share of the row's found faces", fontsize=8)
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(
                j,
                i,
                str(conf[i, j]),
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(names)), pred, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), true, fontsize=8)
    ax.set_xlabel("predicted group (predicted age, years)")
    ax.set_ylabel("true group")
    found = int(conf.sum())
    ax.set_title((title + "\n" if title else "") + f"{found} found faces", fontsize=10)
    save_figure(plt, fig, path)


def build_foss_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None):
    """Age/gender evaluation, plus face-detection AP (COCO, crowd faces ignored) where boxes are real."""
    etype = MetadataCatalog.get(dataset_name).get("evaluator_type", "")
    evaluators = []
    if not cfg.MODEL.FOSS.DETECTOR_ONLY:
        evaluators.append(FaceAgeEvaluator(dataset_name, output_folder))
    if etype in ("age_group", "face_detection"):
        evaluators.append(
            COCOEvaluator(
                dataset_name,
                tasks=("bbox",),
                output_dir=output_folder,
                use_fast_impl=False,
                max_dets_per_image=cfg.MODEL.FOSS.K_TEST,
            )
        )
        # its conversion of the ground truth to COCO's format leaves iopath's empty lock file behind
        lock = os.path.join(output_folder or "", f"{dataset_name}_coco_format.json.lock")
        if output_folder and os.path.isfile(lock) and os.path.getsize(lock) == 0:
            os.remove(lock)
    if not evaluators:
        raise ValueError(f"nothing to evaluate on {dataset_name}: a detector-only model on a single-face dataset")
    return DatasetEvaluators(evaluators)
