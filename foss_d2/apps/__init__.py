"""The applications on top of the library: the runner (images, folders, videos, webcam) behind
``foss-d2 demo``, the age-group survey, and the commands of ``foss-d2`` (cli.py) that tools/ calls."""

from .runner import PredictionWriter, draw_predictions, expand_inputs, run_images, run_video

__all__ = ["PredictionWriter", "draw_predictions", "expand_inputs", "run_images", "run_video"]
