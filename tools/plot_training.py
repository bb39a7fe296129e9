#!/usr/bin/env python
"""Plot the losses of a training run from detectron2's metrics.json.

    python tools/plot_training.py output/FOSS-CPU-default/metrics.json --output docs/images/training.png
"""
import argparse
import json

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
    p.add_argument("metrics")
    p.add_argument("--output", required=True)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(args.metrics)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
    for ax, key in zip(axes.ravel(), KEYS):
        pts = [(r["iteration"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), marker=".")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("iteration")
    fig.suptitle(args.metrics)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"{len(rows)} logged points -> {args.output}")


if __name__ == "__main__":
    main()
