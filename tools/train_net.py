#!/usr/bin/env python
"""Train or evaluate (--eval-only) FOSS-D2 with detectron2's DefaultTrainer.

Same as ``foss-d2 train`` (foss_d2/apps/train.py); ``--help`` lists the options.
"""

from foss_d2.apps.cli import run_tool

if __name__ == "__main__":
    run_tool("foss_d2.apps.train", " (a training run goes on from its last checkpoint with --resume)")
