#!/usr/bin/env python
"""Age on held-out UTKFace faces shown alone and at group-photo scale (n x n grids of faces).

    python tools/evaluate_tiled.py --root ../shared/data --weights output/foss_cpu_stage2_experiment.pth \\
        --output output/tiled_stage2.json

The same held-out faces (a seeded shuffle of `utkface_test`) alone, or 4 or 9 to a 480x480 canvas
(foss_d2/evaluation/tiled.py says how cells are scored). Printed and written: faces found, MAE,
Pearson correlation of predicted and true age, gender accuracy, per grid size.
"""
import argparse
import os
import random
import sys

from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from foss_d2 import FaceAgeEstimator  # noqa: E402
from foss_d2.data.datasets.utkface import load_utkface  # noqa: E402
from foss_d2.evaluation.tiled import evaluate_grid  # noqa: E402
from foss_d2.utils.json_io import write_json_atomic  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="folder holding utkface/UTKFace")
    ap.add_argument("--config-file", default=None, help="default: the shipped model's")
    ap.add_argument("--weights", default=None, help="default: the shipped model")
    ap.add_argument("--num", type=int, default=180, help="held-out faces per grid size")
    ap.add_argument("--grids", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--output", default=None, help="JSON file for the figures")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs, e.g. MODEL.AGE_HEAD.TEST_FLIP False")
    args = ap.parse_args()
    image_dir = os.path.join(args.root, "utkface", "UTKFace")
    if not os.path.isdir(image_dir):
        ap.error(f"no UTKFace folder at {image_dir}")
    records = load_utkface(image_dir, "test")
    random.Random(args.seed).shuffle(records)
    records = records[: args.num]
    est = FaceAgeEstimator(args.config_file, args.weights, device="cpu", opts=args.opts)
    results = [evaluate_grid(est, records, g) for g in tqdm(args.grids, desc="grid sizes")]
    # written before printing: nothing computed is lost whatever the figures are
    if args.output:
        write_json_atomic(args.output, {"weights": args.weights or "shipped", "opts": args.opts, "seed": args.seed, "results": results}, indent=1)
    for r in results:
        # MAE / corr / gender are None when no face (or too few) was found at that grid size
        fig = {k: "-" if r[k] is None else f"{r[k]:.{d}f}" for k, d in (("MAE", 2), ("corr", 3), ("gender_acc", 1))}
        print(f"{r['tiles']} per canvas: {r['found']}/{r['faces']} found, MAE {fig['MAE']}, corr {fig['corr']}, gender {fig['gender_acc']}%")


if __name__ == "__main__":
    main()
