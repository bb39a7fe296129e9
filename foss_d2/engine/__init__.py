"""The library: single-image inference (FOSSPredictor) and the plain Python API (FaceAgeEstimator)."""

from ..config import get_foss_cfg
from .api import FaceAgeEstimator, FaceResult, instances_to_faces
from .predictor import FOSSPredictor, load_image, read_image_file

__all__ = [
    "FaceAgeEstimator",
    "FaceResult",
    "get_foss_cfg",
    "instances_to_faces",
    "FOSSPredictor",
    "load_image",
    "read_image_file",
]
