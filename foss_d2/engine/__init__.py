from .predictor import FOSSPredictor, load_image
from .optimizer import build_foss_optimizer

__all__ = ["FOSSPredictor", "load_image", "build_foss_optimizer"]
