#!/usr/bin/env python
"""Age on held-out UTKFace faces shown alone and at group-photo scale (n x n grids of faces).

    python tools/evaluate_tiled.py --root ../shared/data --weights output/foss_cpu_stage2_experiment.pth \\
        --output output/tiled_stage2.json

The single-face protocol (paper 4.2, `train_net.py --eval-only` on utkface_test) shows each face
filling the picture; in the multi-person photos FOSS is for, faces are a fraction of it. Here the
same held-out faces (a seeded shuffle of `utkface_test`) are pasted into 480x480 canvases of 1, 4
or 9 cells; in each cell the highest-scoring detected face whose centre lies inside is the
answer. Printed and written: faces found, MAE, Pearson correlation of predicted and true age,
gender accuracy, per grid size.
"""
import argparse
import os
import random
import sys

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from foss_d2 import FaceAgeEstimator  # noqa: E402
from foss_d2.data.datasets.utkface import load_utkface  # noqa: E402
from foss_d2.utils.json_io import write_json_atomic  # noqa: E402

CANVAS = 480


def evaluate(est, records, grid: int) -> dict:
    cell = CANVAS // grid
    ages, preds, gender_ok = [], [], []
    per = grid * grid
    for start in range(0, len(records) - per + 1, per):
        group = records[start : start + per]
        canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
        for i, r in enumerate(group):
            y, x = divmod(i, grid)
            canvas[y * cell : (y + 1) * cell, x * cell : (x + 1) * cell] = cv2.resize(cv2.imread(r["file_name"]), (cell, cell))
        faces = est(canvas)
        for i, r in enumerate(group):
            y, x = divmod(i, grid)
            inside = [f for f in faces if x * cell <= (f["box"][0] + f["box"][2]) / 2 < (x + 1) * cell
                      and y * cell <= (f["box"][1] + f["box"][3]) / 2 < (y + 1) * cell]
            if inside:
                f = max(inside, key=lambda f: f["score"])
                ann = r["annotations"][0]
                ages.append(ann["age"])
                preds.append(f["age"])
                gender_ok.append((f["gender"] == "female") == (ann["gender"] == 1))
    a, p = np.array(ages, float), np.array(preds, float)
    n_faces = (len(records) // per) * per
    return {
        "tiles": per,
        "faces": n_faces,
        "found": len(a),
        "MAE": float(np.abs(a - p).mean()) if len(a) else None,
        "corr": float(np.corrcoef(a, p)[0, 1]) if len(a) > 2 else None,
        "gender_acc": 100.0 * float(np.mean(gender_ok)) if gender_ok else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="folder holding utkface/UTKFace")
    ap.add_argument("--config-file", default=None, help="default: the shipped model's")
    ap.add_argument("--weights", default=None, help="default: the shipped model")
    ap.add_argument("--num", type=int, default=180, help="held-out faces per grid size")
    ap.add_argument("--grids", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--output", default=None, help="JSON file for the figures")
    args = ap.parse_args()
    image_dir = os.path.join(args.root, "utkface", "UTKFace")
    if not os.path.isdir(image_dir):
        ap.error(f"no UTKFace folder at {image_dir}")
    records = load_utkface(image_dir, "test")
    random.Random(args.seed).shuffle(records)
    records = records[: args.num]
    est = FaceAgeEstimator(args.config_file, args.weights, device="cpu")
    results = [evaluate(est, records, g) for g in tqdm(args.grids, desc="grid sizes")]
    for r in results:
        print(f"{r['tiles']} per canvas: {r['found']}/{r['faces']} found, MAE {r['MAE']:.2f}, corr {r['corr']:.3f}, gender {r['gender_acc']:.1f}%")
    if args.output:
        write_json_atomic(args.output, {"weights": args.weights or "shipped", "seed": args.seed, "results": results}, indent=1)


if __name__ == "__main__":
    main()
