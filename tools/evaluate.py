#!/usr/bin/env python
"""Evaluate a predictions.json (``predictions``) or the model on tiled held-out faces (``tiled``).

Same as ``foss-d2 evaluate`` (foss_d2/apps/evaluate.py); ``--help`` lists the options.
"""

from foss_d2.apps.cli import run_tool

if __name__ == "__main__":
    run_tool("foss_d2.apps.evaluate")
