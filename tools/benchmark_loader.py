#!/usr/bin/env python
"""Training-loader throughput, without the model: images/s per core with and without the decoded cache.

Same as ``foss-d2 benchmark-loader`` (foss_d2/apps/benchmark_loader.py); ``--help`` lists the options.
"""

from foss_d2.apps.cli import run_tool

if __name__ == "__main__":
    run_tool("foss_d2.apps.benchmark_loader")
