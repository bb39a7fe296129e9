"""FOSS-D2: multi-person age and gender estimation with one model (FOSS, Yoshimura & Ogata) on detectron2.

Importing the package registers the DLA-34 backbone and the FOSS meta-architecture in detectron2's
registries, and the CenterNet face detector and the TResNet age head in FOSS's own
(proposal_generator/build.py, roi_heads/build.py).
"""

import warnings

import PIL
from PIL import Image

# detectron2 0.6 names Image.LINEAR, which Pillow 10 removed (BILINEAR, the same filter), as a default
# argument: `import detectron2.data` failed. install.sh pins Pillow < 10; a machine that brings its
# own Pillow (the lent GPU machines, tools/research/make_device_carry.py) gets the old name back.
# (Pillow 9 answers the name itself, with a DeprecationWarning: not asked here.)
if int(PIL.__version__.split(".")[0]) >= 10 and "LINEAR" not in vars(Image):
    Image.LINEAR = Image.BILINEAR

# fvcore scripts its focal loss with torch.jit.script when detectron2 imports it, and PyTorch >= 2.10
# answers every command with a FutureWarning about it; FOSS-D2 never calls that function. Silenced
# for these imports only: a user's own torch.jit.script still hears it.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from . import backbone, data, meta_arch, proposal_generator, roi_heads  # noqa: F401  (registration)
    from .config import add_foss_config
    from .engine import FaceAgeEstimator, FOSSPredictor

__version__ = "0.1.0"
__all__ = ["add_foss_config", "FaceAgeEstimator", "FOSSPredictor"]
