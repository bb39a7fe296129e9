#!/usr/bin/env python
"""Plot the losses of a training run from detectron2's metrics.json.

python tools/research/plot_training.py --input output/FOSS-CPU-default/metrics.json --output output/training.png
"""

import argparse
import json
import os

from foss_d2.utils.figures import pyplot, save_figure

KEYS = ("total_loss", "loss_age", "loss_gender", "loss_heatmap", "loss_size", "loss_offset")


def read_metrics(path):
    """Logged rows by iteration; after a resume, the rerun's rows replace the first run's."""
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                row = json.loads(line)
                if "iteration" in row and "total_loss" in row:
                    rows[row["iteration"]] = row
    return [rows[i] for i in sorted(rows)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--input", required=True, metavar="METRICS_JSON", help="detectron2's metrics.json of the run (or its folder)"
    )
    p.add_argument("--output", default="output/training.png", help="the PNG to write")
    args = p.parse_args()
    plt = pyplot()
    if os.path.isdir(args.input):
        args.input = os.path.join(args.input, "metrics.json")
    if not os.path.isfile(args.input):
        p.error(f"--input {args.input}: no such file (a training run's metrics.json, or its OUTPUT_DIR)")
    if os.path.dirname(args.output):
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
    rows = read_metrics(args.input)
    # Only the losses this run logged (a frozen detector logs no detection losses).
    keys = [k for k in KEYS if any(k in r for r in rows)]
    if not keys:
        raise SystemExit(f"{args.input}: no losses logged")
    ncols = min(3, len(keys))
    nrows = (len(keys) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), sharex=True, squeeze=False)
    for ax in axes.ravel()[len(keys) :]:
        ax.set_visible(False)
    for ax, key in zip(axes.ravel(), keys):
        ax.plot(*zip(*[(r["iteration"], r[key]) for r in rows if key in r]), marker=".")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.set_xlabel("iteration")
    fig.suptitle(args.input)
    save_figure(plt, fig, args.output, dpi=100)
    print(f"{len(rows)} logged points -> {args.output}")


if __name__ == "__main__":
    main()
