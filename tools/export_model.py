#!/usr/bin/env python
"""Export a training checkpoint as small fp16 inference weights.

Same as ``foss-d2 export`` (foss_d2/apps/export.py); ``--help`` lists the options.
"""

from foss_d2.apps.export import main

if __name__ == "__main__":
    main()
