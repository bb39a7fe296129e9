#!/usr/bin/env python
"""How much of CenterNet's heatmap head ``MODEL.CENTERNET.HEATMAP_BOUND`` leaves out on real photos,
and that it finds the same peaks (issue 19; docs/RESULTS.md at 58d4fa8, section 10, "The heatmap head bounded
by its positive half").

The head's logit is b + sum_c w_c relu(h_c): its hidden channels of positive 1x1 weight w_c give an
upper bound, and the others run only at the stride-4 pixels where that bound clears the logit of
SCORE_THRESH_TEST (``BoundedHeatmapHead``). For each photo, read as inference reads it (the model's
input size), this tool runs the trained head densely and bounded, and reports the fraction of
pixels where the bound clears the threshold (where the other channels ran), the fraction truly
above it, and the peaks above the threshold of both heads, which must be the same.

    python tools/research/heatmap_bound.py --datasets wider_face_val:100 --output output/heatmap_bound \\
        DATASETS.ROOT ../shared/data

Writes OUTPUT/heatmap_bound.json (per photo and overall) and prints the summary.
"""

import json
import logging
import math
import os

import numpy as np
import torch
from tqdm import tqdm

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.config import get_foss_cfg
from foss_d2.data.datasets import register_config_datasets
from foss_d2.data.utils import photo_paths
from foss_d2.engine.predictor import load_model, read_photos
from foss_d2.proposal_generator.centernet import BoundedHeatmapHead, top_peaks

from detectron2.utils.logger import setup_logger

logger = logging.getLogger("foss_d2.heatmap_bound")


def peaks_above(logits: torch.Tensor, min_score: float, k: int, nms_kernel: int) -> list:
    """The (flat pixel, score) of the peaks scoring above ``min_score``, best first."""
    scores, _, pix, _, _ = top_peaks(logits.sigmoid(), k, nms_kernel)
    above = scores[0] > min_score
    return list(zip(pix[0][above].tolist(), scores[0][above].tolist()))


@torch.no_grad()
def measure(model, bounded: BoundedHeatmapHead, image: torch.Tensor, min_score: float, k: int) -> dict:
    """One photo (uint8 CHW tensor): the dense and the bounded heatmap of its detector pass."""
    pg = model.proposal_generator
    size = model.test_input_size([image])
    x = model.backbone(model.preprocess_detector([image], size))[pg.in_feature]
    dense = pg.heatmap(x)
    bound = bounded(x, bound_only=True)
    floor = math.log(min_score / (1.0 - min_score))  # where the logit clears the threshold
    runs = floor - bounded.floor_margin  # where the rest runs
    a = peaks_above(dense, min_score, k, pg.nms_kernel)
    b = peaks_above(bounded.complete(bound, x, min_score), min_score, k, pg.nms_kernel)
    same = [p for p, _ in a] == [p for p, _ in b]
    return {
        "input": size,
        "pixels": int(bound.numel()),
        "bound_clears": float((bound > runs).float().mean()),
        "logit_clears": float((dense > floor).float().mean()),
        "peaks": len(a),
        "same_peaks": same,
        "max_score_difference": max((abs(s - t) for (_, s), (_, t) in zip(a, b)), default=0.0) if same else None,
    }


def get_parser():
    p = foss_argument_parser(__doc__)
    p.add_argument(
        "--datasets",
        nargs="+",
        default=["wider_face_val:100"],
        help="registered datasets whose photos to read; NAME:N takes N of them, spread over the dataset",
    )
    p.add_argument("--block", type=int, default=16, help="the upper part's channels are rounded up to this")
    p.add_argument("--output", required=True)
    return p


def main(argv=None):
    args = parse_foss_args(get_parser(), argv)
    setup_logger(name="foss_d2")
    cfg = get_foss_cfg(args.config_file or None, opts=["MODEL.DEVICE", "cpu", *args.opts])
    register_config_datasets(cfg)
    model = load_model(cfg)
    bounded = BoundedHeatmapHead(model.proposal_generator.heatmap, block=args.block)
    min_score, k = cfg.MODEL.FOSS.SCORE_THRESH_TEST, cfg.MODEL.FOSS.K_TEST
    photos = read_photos(tqdm(photo_paths(args.datasets), desc="photos"), cfg.INPUT.FORMAT, cfg.INPUT.MAX_SIDE)
    per_photo = {path: measure(model, bounded, image, min_score, k) for path, image in photos}
    if not per_photo:
        raise SystemExit("no photo could be read")
    rows = list(per_photo.values())
    clears = [r["bound_clears"] for r in rows]
    summary = {
        "photos": len(rows),
        "threshold": min_score,
        "hidden_channels": {
            "upper": bounded.upper[0].out_channels,
            "rest": bounded.rest[0].out_channels if bounded.rest else 0,
        },
        "positive_weights": int((bounded.upper[2].weight > 0).sum()),
        "bound_clears_mean": float(np.mean(clears)),
        "bound_clears_max": float(np.max(clears)),
        "logit_clears_mean": float(np.mean([r["logit_clears"] for r in rows])),
        "peaks": sum(r["peaks"] for r in rows),
        "photos_with_other_peaks": sum(not r["same_peaks"] for r in rows),
    }
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "heatmap_bound.json"), "w") as f:
        json.dump({"summary": summary, "photos": per_photo}, f, indent=1)
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
