from .api import FaceAgeEstimator, get_foss_cfg, instances_to_faces
from .batch import PredictionWriter, expand_inputs
from .optimizer import build_foss_optimizer
from .predictor import FOSSPredictor, load_image, read_image_file

__all__ = [
    "FaceAgeEstimator",
    "get_foss_cfg",
    "instances_to_faces",
    "PredictionWriter",
    "expand_inputs",
    "build_foss_optimizer",
    "FOSSPredictor",
    "load_image",
    "read_image_file",
]
