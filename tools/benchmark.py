#!/usr/bin/env python
"""Inference time: FOSS vs the two-model baseline (``models``) or one model's test-time settings (``settings``).

Same as ``foss-d2 benchmark`` (foss_d2/apps/benchmark.py); ``--help`` lists the options.
"""

from foss_d2.apps.cli import run_tool

if __name__ == "__main__":
    run_tool("foss_d2.apps.benchmark")
