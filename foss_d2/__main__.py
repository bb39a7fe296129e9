"""``python -m foss_d2 <command> ...``: the ``foss-d2`` command where its script is not on PATH
(a virtualenv not activated, ``pip install --user``)."""

import sys

from .apps.cli import main

sys.exit(main())
