#!/usr/bin/env python
"""Draw every face with age and gender on images, folders, globs, videos or a webcam.

Same as ``foss-d2 demo`` (foss_d2/apps/demo.py); ``--help`` lists the options.
"""

import sys

if __name__ == "__main__":
    try:
        from foss_d2.apps.demo import main

        main()
    except KeyboardInterrupt:  # while torch loads or the model is built: the run's own handler is not set yet
        print("interrupted", file=sys.stderr)
        sys.exit(130)
