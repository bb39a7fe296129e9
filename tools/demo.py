#!/usr/bin/env python
"""Draw every face with age and gender on images, folders, globs, videos or a webcam.

Same as ``foss-d2 demo`` (foss_d2/apps/demo.py); ``--help`` lists the options.
"""

from foss_d2.apps.demo import main

if __name__ == "__main__":
    main()
