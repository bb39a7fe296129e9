#!/usr/bin/env python
"""Training-step cost: CPU-seconds per step, CenterNet's size/offset heads dense against at the faces' centres.

Same as ``foss-d2 benchmark-train`` (foss_d2/apps/benchmark_train.py); ``--help`` lists the options.
"""

from foss_d2.apps.cli import run_tool

if __name__ == "__main__":
    run_tool("foss_d2.apps.benchmark_train")
