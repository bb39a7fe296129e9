#!/usr/bin/env python
"""Age-group / gender survey of photos or a video: counts, histogram, CSV/JSON.

Same as ``foss-d2 survey`` (foss_d2/apps/survey.py); ``--help`` lists the options.
"""

import sys

if __name__ == "__main__":
    try:
        from foss_d2.apps.survey import main

        main()
    except KeyboardInterrupt:  # while torch loads or the model is built: the run's own handler is not set yet
        print("interrupted", file=sys.stderr)
        sys.exit(130)
