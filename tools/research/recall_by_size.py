#!/usr/bin/env python
"""Which faces can the detector find at all? Recall by face size at the detector's input.

    python tools/research/recall_by_size.py --dataset wider_face_train_more wider_face_val --num 300 \\
        --output output/recall_by_size DATASETS.ROOT ../shared/data

One detector pass per photo at DET_INPUT_SIZE (the size it trains at; no second pass). A face
counts as found when one of the K peaks overlaps it at IoU >= 0.5, read twice: among all K peaks
(can the heatmap localise it at all?) and among the boxes scoring at least the model's threshold
(what users see). Faces are binned by their longer side in detector-input pixels (the photo is
resized to DET_INPUT_SIZE², so each side scales on its own). Used to choose
MODEL.CENTERNET.IGNORE_BELOW (docs/DESIGN.md "Faces too small to learn"). Writes OUT/recall.json
and OUT/recall.md.
"""

import numpy as np
import torch
from tqdm import tqdm

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.config import get_foss_cfg
from foss_d2.data.datasets import register_config_datasets
from foss_d2.utils.json_io import write_report

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, detection_utils
from detectron2.modeling import build_model
from detectron2.structures import Boxes, BoxMode, pairwise_iou

EDGES = (0, 4, 8, 12, 16, 24, 32, 64, float("inf"))


def bin_label(lo, hi) -> str:
    return f">= {lo:g}" if hi == float("inf") else f"{lo:g}-{hi:g}"


def input_sizes(gt: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Longer side of each XYXY box [N,4] (image pixels) at the detector's input."""
    return np.maximum((gt[:, 2] - gt[:, 0]) * sx, (gt[:, 3] - gt[:, 1]) * sy)


def found_mask(gt: np.ndarray, boxes: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Per ground-truth box: does any of ``boxes`` overlap it at IoU >= ``iou``?"""
    if len(gt) == 0 or len(boxes) == 0:
        return np.zeros(len(gt), bool)
    m = pairwise_iou(Boxes(torch.as_tensor(gt, dtype=torch.float32)), Boxes(torch.as_tensor(boxes)))
    return (m >= iou).any(dim=1).numpy()


def tally(rows):
    """rows: (size, found_any, found_shown) per face -> a record per bin of EDGES."""
    sizes = np.array([r[0] for r in rows], dtype=float)
    out = []
    for lo, hi in zip(EDGES[:-1], EDGES[1:]):
        sel = [(a, s) for size, a, s in rows if lo <= size < hi]
        n = len(sel)
        out.append(
            {
                "bin": bin_label(lo, hi),
                "faces": n,
                "share": n / max(len(sizes), 1),
                "recall_k": sum(a for a, _ in sel) / n if n else None,
                "recall_shown": sum(s for _, s in sel) / n if n else None,
            }
        )
    return out


def markdown(results, threshold) -> str:
    lines = []
    for ds, bins in results.items():
        lines += [
            f"### {ds}",
            "",
            f"| longer side at input (px) | faces | share | found among K peaks | found at score >= {threshold:g} |",
            "|---|---|---|---|---|",
        ]
        pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        lines += [
            f"| {b['bin']} | {b['faces']} | {pct(b['share'])} | {pct(b['recall_k'])} | {pct(b['recall_shown'])} |"
            for b in bins
        ]
        lines.append("")
    return "\n".join(lines)


@torch.no_grad()
def measure(model, dicts, input_format, threshold):
    rows = []
    for d in tqdm(dicts, desc="photos", unit="photo"):
        image = detection_utils.read_image(d["file_name"], format=input_format)
        gt = np.array(
            [
                BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                for a in d.get("annotations", [])
                if not a.get("iscrowd", 0)
            ],
            dtype=np.float32,
        ).reshape(-1, 4)
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        # every one of the K peaks, those under the threshold too (the shipped config decodes only
        # those above it)
        _, proposals, scales = model.detect_pass([tensor], min_score=None)
        p = proposals[0].to("cpu")
        boxes = p.pred_boxes.tensor.numpy()
        shown = boxes[p.scores.numpy() >= threshold]
        sx, sy = scales[0]
        rows += zip(input_sizes(gt, sx, sy), found_mask(gt, boxes), found_mask(gt, shown))
    return rows


def main(argv=None):
    p = foss_argument_parser(__doc__)
    p.add_argument("--dataset", nargs="+", default=["wider_face_train_more", "wider_face_val"])
    p.add_argument("--num", type=int, default=300, help="photos per dataset (the first ones)")
    p.add_argument("--output", default="output/recall_by_size")
    args = parse_foss_args(p, argv)
    cfg = get_foss_cfg(args.config_file, opts=args.opts)
    register_config_datasets(cfg)  # DATASETS.COCO's files too: --dataset may name one
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    model.eval()
    threshold = cfg.MODEL.FOSS.SCORE_THRESH_TEST
    results = {}
    for ds in args.dataset:
        dicts = DatasetCatalog.get(ds)[: args.num]
        results[ds] = tally(measure(model, dicts, cfg.INPUT.FORMAT, threshold))
    write_report(args.output, "recall", results, markdown(results, threshold).splitlines())


if __name__ == "__main__":
    main()
