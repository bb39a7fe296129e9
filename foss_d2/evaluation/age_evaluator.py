"""Age / gender evaluation on detected faces (paper section 4).

Multi-person images: predictions are matched to ground-truth faces greedily by score at IoU >= 0.5.
Single-face datasets (evaluator_type "age_single"): the largest detected face is the target
(paper 4.2). Faces that are not detected are counted (``detection_rate``) and, in the ``strict``
figures, scored as wrong.
"""
import json
import logging
import os
from collections import OrderedDict
from typing import List, Optional

import numpy as np
import torch

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import Boxes, BoxMode, pairwise_iou
from detectron2.utils import comm

logger = logging.getLogger(__name__)


def match_faces(pred_boxes: torch.Tensor, scores: torch.Tensor, gt_boxes: torch.Tensor, iou_thresh: float = 0.5) -> List[int]:
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


class FaceAgeEvaluator(DatasetEvaluator):
    def __init__(self, dataset_name: str, output_dir: Optional[str] = None, iou_thresh: float = 0.5, single_face: Optional[bool] = None):
        self.dataset_name = dataset_name
        meta = MetadataCatalog.get(dataset_name)
        self.single_face = meta.get("evaluator_type", "") == "age_single" if single_face is None else single_face
        self.iou_thresh = iou_thresh
        self.output_dir = output_dir
        self._gt = {}
        for d in DatasetCatalog.get(dataset_name):
            annos = [a for a in d.get("annotations", []) if a.get("iscrowd", 0) == 0]
            boxes = [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
            self._gt[d["image_id"]] = (torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), annos)
        self.reset()

    def reset(self):
        self._rows = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            gt_boxes, annos = self._gt[inp["image_id"]]
            inst = out["instances"].to("cpu")
            boxes, scores = inst.pred_boxes.tensor, inst.scores
            if self.single_face:
                # Paper 4.2: the largest detected face is the target of a single-face image.
                match = [int(inst.pred_boxes.area().argmax())] if len(inst) else [-1]
                match = match[: len(annos)]
            else:
                match = match_faces(boxes, scores, gt_boxes, self.iou_thresh)
            for a, m in zip(annos, match):
                row = {
                    "image_id": inp["image_id"],
                    "age": float(a.get("age", -1)),
                    "gender": int(a.get("gender", -1)),
                    "age_group": int(a.get("age_group", -1)),
                    "detected": m >= 0,
                }
                if m >= 0:
                    row.update(pred_age=float(inst.pred_ages[m]), p_female=float(inst.pred_female_probs[m]), score=float(scores[m]))
                self._rows.append(row)

    def evaluate(self):
        rows = [r for part in comm.gather(self._rows) for r in part]
        if not comm.is_main_process():
            return {}
        res = summarize_rows(rows)
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            with open(os.path.join(self.output_dir, "face_predictions.json"), "w") as f:
                json.dump(rows, f)
        logger.info("Age/gender evaluation on %s: %s", self.dataset_name, res)
        return OrderedDict([("age", res)])


def summarize_rows(rows: List[dict]) -> dict:
    """Detection rate, MAE, MAE on true ages 21-60, CS@5 and gender accuracy (plain and strict)."""
    res = {"num_faces": len(rows)}
    if not rows:
        return res
    res["detection_rate"] = 100.0 * np.mean([r["detected"] for r in rows])
    aged = [r for r in rows if r["age"] >= 0]
    hit = [r for r in aged if r["detected"]]
    if hit:
        err = np.abs([r["pred_age"] - r["age"] for r in hit])
        res["MAE"] = float(err.mean())
        res["CS@5"] = 100.0 * float((err <= 5).mean())
        mid = [abs(r["pred_age"] - r["age"]) for r in hit if 21 <= r["age"] <= 60]
        if mid:
            res["MAE_21_60"] = float(np.mean(mid))
    gendered = [r for r in rows if r["gender"] >= 0]
    if gendered:
        ok = [r["detected"] and (r["p_female"] > 0.5) == (r["gender"] == 1) for r in gendered]
        det = [o for o, r in zip(ok, gendered) if r["detected"]]
        if det:
            res["gender_acc"] = 100.0 * float(np.mean(det))
        res["gender_acc_strict"] = 100.0 * float(np.mean(ok))
    return res


def build_foss_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None):
    return FaceAgeEvaluator(dataset_name, output_folder)
