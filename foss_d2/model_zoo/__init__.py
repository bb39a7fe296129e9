"""The shipped model (docs/MODEL_ZOO.md): its inference config and weights travel with the package."""

import os

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(_HERE, "FOSS-default.yaml")
DEFAULT_WEIGHTS = os.path.join(_HERE, "foss_default.pth")
