"""FOSS-D2: multi-person age and gender estimation with one model (FOSS, Yoshimura & Ogata) on detectron2.

Importing the package registers the DLA-34 backbone and the FOSS meta-architecture in detectron2's
registries, and the CenterNet face detector and the TResNet age head in FOSS's own
(proposal_generator/build.py, roi_heads/build.py).
"""

from . import backbone, data, meta_arch, proposal_generator, roi_heads  # noqa: F401  (registration)
from .config import add_foss_config
from .engine import FaceAgeEstimator, FOSSPredictor

__version__ = "0.1.0"
__all__ = ["add_foss_config", "FaceAgeEstimator", "FOSSPredictor"]
