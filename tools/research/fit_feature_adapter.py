#!/usr/bin/env python
"""Refit the feature connection's 1x1 projection after the detector changed (issues 16 and 19).

The age network reads the detector's stride-4 feature ROIAligned over each crop (paper 3.2) through
a 1x1 projection (``age_head.net.feature_proj``, 64 -> 48 channels, no bias). A detector trained on
(for example the CPU route's, docs/MODEL_ZOO.md) moves that feature, and an age network trained on
the old one reads the new one a little wrong: gender drops most. Because ROIAlign and the projection
are both linear, an age network can be given back the feature it knows, as far as a linear map can:
this fits the projection W' that sends the new detector's ROI features to the old projection of the
old detector's (least squares over every ROI position of the faces of some photos, ridge towards the
old W), i.e. ``min ||W' f_new - W f_old||^2 + lambda ||W' - W||^2``, closed form, and writes the
checkpoint with W' in place of W. Nothing else changes, so speed is the same.

    python tools/research/fit_feature_adapter.py --checkpoint output/cpu-route-2/join-shipped.pth \\
        --reference foss_d2/model_zoo/foss_default.pth --output output/adapter/join-adapted.pth \\
        --datasets wider_face_train utkface_train --photos 200 DATASETS.ROOT ../shared/data

--checkpoint: the new detector with the old age network (``tools/export_model.py DET --age-head-from
OLD``); --reference: the model whose detector the age network was trained with. Both are run with
the config's detector at each of --sizes; every fifth photo is held out to report how much of the
mismatch the fit removes. Writes OUTPUT and OUTPUT.summary.json; an unreadable photo is skipped
with a warning.
"""

import logging
import os

import numpy as np
import torch
from tqdm import tqdm

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.apps.export import load_weights, save_weights
from foss_d2.config import get_foss_cfg
from foss_d2.data.datasets import register_config_datasets
from foss_d2.data.utils import absolute_annotations
from foss_d2.engine.predictor import load_all_weights
from foss_d2.roi_heads.crops import expand_boxes_with_margins
from foss_d2.utils.image_io import read_image_file
from foss_d2.utils.json_io import write_json_atomic

from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.structures import BoxMode

logger = logging.getLogger("foss_d2.fit_feature_adapter")
PROJ = "age_head.net.feature_proj.weight"


def fit_projection(xtx: np.ndarray, xty: np.ndarray, w_old: np.ndarray, ridge: float) -> np.ndarray:
    """argmin_W' sum ||W' x - y||^2 + lam ||W' - w_old||^2 from the sums X^T X [C,C] and X^T Y [C,O]
    (x: new features, y: targets), lam = ridge * trace(X^T X) / C; W' [O,C]."""
    c = xtx.shape[0]
    lam = ridge * float(np.trace(xtx)) / c
    return np.linalg.solve(xtx + lam * np.eye(c), xty + lam * w_old.T).T


def projection_error(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """||x W^T - y||^2 / ||y||^2 over the rows (x [N,C], y [N,O], W [O,C])."""
    return float(((x @ w.T - y) ** 2).sum() / max((y**2).sum(), 1e-12))


def load_model(cfg, weights: str):
    model = build_model(cfg).eval()
    load_all_weights(model, weights)  # a checkpoint without the age network is an error
    if model.age_head is None or model.age_head.in_feature is None:
        raise SystemExit(f"{weights}: the config has no feature connection (MODEL.AGE_HEAD.INTERMEDIATE_FEATURE)")
    return model


@torch.no_grad()
def roi_features(model, image: torch.Tensor, crop_boxes: torch.Tensor, size: int) -> np.ndarray:
    """The detector feature at ``size``² ROIAligned over the crop boxes, one row per ROI position
    [N*h*w, C]."""
    feats = model.backbone(model.preprocess_detector([image], size))
    sx, sy = size / image.shape[2], size / image.shape[1]
    f = model.age_head.roi_feature(feats, [crop_boxes], model.feature_scales([(sx, sy)]), len(crop_boxes))
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).double().numpy()


def face_boxes(record: dict, min_height: float, limit: int, rng) -> torch.Tensor:
    h, w = record.get("height"), record.get("width")
    boxes = [
        BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
        for a in absolute_annotations(record.get("annotations", []), h, w)
        if not a.get("iscrowd", 0)  # WIDER FACE's invalid faces, which training leaves out too
    ]
    boxes = [b for b in boxes if b[3] - b[1] >= min_height and b[2] > b[0]]
    if len(boxes) > limit:
        boxes = [boxes[i] for i in sorted(rng.choice(len(boxes), limit, replace=False))]
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def main(argv=None):
    p = foss_argument_parser(__doc__, config_help="the config of both models (default: the shipped one)")
    p.add_argument("--checkpoint", required=True, help="the new detector joined to the old age network")
    p.add_argument("--reference", required=True, help="the model the age network was trained with")
    p.add_argument("--output", required=True, help="the checkpoint to write")
    p.add_argument("--datasets", nargs="+", required=True, help="registered datasets with face boxes")
    p.add_argument("--photos", type=int, default=200, help="photos per dataset, evenly spaced (default 200)")
    p.add_argument("--sizes", nargs="+", default=["480", "576"], help="detector input sizes (default 480 576)")
    p.add_argument("--faces-per-photo", type=int, default=20, help="at most this many faces of a photo (default 20)")
    p.add_argument("--min-height", type=float, default=20.0, help="faces lower than this (px) are left out")
    p.add_argument("--ridge", type=float, default=1e-3, help="pull towards the old W, relative (default 1e-3)")
    args = parse_foss_args(p, argv)
    try:
        args.sizes = [int(s) for s in args.sizes]
    except ValueError:
        p.error(f"--sizes takes whole numbers of pixels, got {' '.join(args.sizes)}")
    for path in (args.checkpoint, args.reference):
        if not os.path.isfile(path):
            raise SystemExit(f"no such checkpoint: {path}")
    cfg = get_foss_cfg(args.config_file or None, weights=args.checkpoint, opts=args.opts, device="cpu")
    new, old = load_model(cfg, args.checkpoint), load_model(cfg, args.reference)
    w_old = old.age_head.net.feature_proj.weight.detach().double().flatten(1).numpy()  # [48, 64]
    register_config_datasets(cfg)
    rng = np.random.default_rng(0)
    c = w_old.shape[1]
    xtx, xty = np.zeros((c, c)), np.zeros((c, w_old.shape[0]))
    held_x, held_y, skipped, n_faces = [], [], [], 0
    records = []
    for name in args.datasets:
        rs = DatasetCatalog.get(name)
        idx = np.linspace(0, len(rs) - 1, min(args.photos, len(rs))).round().astype(int)
        records += [rs[i] for i in np.unique(idx)]
    for i, r in enumerate(tqdm(records, desc="ROI features, both detectors")):
        boxes = face_boxes(r, args.min_height, args.faces_per_photo, rng)
        if not len(boxes):
            continue
        try:
            img = torch.from_numpy(np.ascontiguousarray(read_image_file(r["file_name"], cfg.INPUT.FORMAT)))
        except (OSError, ValueError) as e:
            logger.warning("skipping %s: %s", r["file_name"], e)
            skipped.append(r["file_name"])
            continue
        img = img.permute(2, 0, 1)
        crop_boxes = expand_boxes_with_margins(boxes, new.age_head.margins)
        n_faces += len(boxes)
        for s in args.sizes:
            x = roi_features(new, img, crop_boxes, s)
            y = roi_features(old, img, crop_boxes, s) @ w_old.T
            if i % 5 == 4:
                held_x.append(x.astype(np.float32))
                held_y.append(y.astype(np.float32))
            else:
                xtx += x.T @ x
                xty += x.T @ y
    if not held_x or not xtx.any():
        raise SystemExit("no faces read: check --datasets, --min-height and DATASETS.ROOT")
    w_new = fit_projection(xtx, xty, w_old, args.ridge)
    hx, hy = np.concatenate(held_x).astype(np.float64), np.concatenate(held_y).astype(np.float64)
    summary = {
        "checkpoint": args.checkpoint,
        "reference": args.reference,
        "datasets": args.datasets,
        "photos": len(records),
        "faces": n_faces,
        "sizes": args.sizes,
        "ridge": args.ridge,
        "unreadable": skipped,
        "held_out_error_before": round(projection_error(hx, hy, w_old), 4),
        "held_out_error_after": round(projection_error(hx, hy, w_new), 4),
        "relative_change_of_W": round(float(np.linalg.norm(w_new - w_old) / np.linalg.norm(w_old)), 4),
    }
    ckpt, state = load_weights(args.checkpoint)
    if PROJ not in state:
        raise SystemExit(f"{args.checkpoint} holds no {PROJ}")
    state = dict(state)
    state[PROJ] = torch.from_numpy(w_new).reshape(state[PROJ].shape).to(state[PROJ].dtype)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    save_weights(state, args.output, ckpt.get("iteration"))
    write_json_atomic(args.output + ".summary.json", summary, indent=1)
    print(summary)
    return summary


if __name__ == "__main__":
    main()
