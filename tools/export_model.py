#!/usr/bin/env python
"""Export a training checkpoint as small fp16 inference weights.

Same as ``foss-d2 export`` (foss_d2/apps/export.py); ``--help`` lists the options.
"""

from foss_d2.apps.cli import run_tool

if __name__ == "__main__":
    run_tool("foss_d2.apps.export")
