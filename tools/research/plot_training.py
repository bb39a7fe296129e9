#!/usr/bin/env python
"""Plot the losses and learning rate of a training run from detectron2's metrics.json: the picture
``tools/train_net.py`` writes as OUTPUT_DIR/training_curves.png, drawn again (for a run from before
it did, or a copy of metrics.json).

python tools/research/plot_training.py --input output/FOSS-CPU-default/metrics.json --output output/training.png
"""

import argparse
import os

from foss_d2.engine.hooks import plot_training_curves, read_metrics


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--input", required=True, metavar="METRICS_JSON", help="detectron2's metrics.json of the run (or its folder)"
    )
    p.add_argument("--output", default="output/training.png", help="the PNG to write")
    args = p.parse_args()
    if os.path.isdir(args.input):
        args.input = os.path.join(args.input, "metrics.json")
    if not os.path.isfile(args.input):
        p.error(f"--input {args.input}: no such file (a training run's metrics.json, or its OUTPUT_DIR)")
    rows = read_metrics(args.input)
    if not rows:
        raise SystemExit(f"{args.input}: no losses logged")
    plot_training_curves(rows, args.output, args.input)
    print(f"{len(rows)} logged points -> {args.output}")


if __name__ == "__main__":
    main()
