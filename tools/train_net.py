#!/usr/bin/env python
"""Train or evaluate (--eval-only) FOSS-D2 with detectron2's DefaultTrainer.

Same as ``foss-d2 train`` (foss_d2/apps/train.py); ``--help`` lists the options.
"""

from foss_d2.apps.train import main

if __name__ == "__main__":
    main()
