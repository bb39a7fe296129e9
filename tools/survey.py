#!/usr/bin/env python
"""Age-group / gender survey of photos or a video: counts, histogram, CSV/JSON.

Same as ``foss-d2 survey`` (foss_d2/apps/survey.py); ``--help`` lists the options.
"""

from foss_d2.apps.survey import main

if __name__ == "__main__":
    main()
