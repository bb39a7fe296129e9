from .build import FACE_DETECTOR_REGISTRY, build_face_detector
from .centernet import CenterNet, average_with_mirror, decode_centernet, draw_gaussian, focal_loss, gaussian_radius

__all__ = [
    "FACE_DETECTOR_REGISTRY",
    "build_face_detector",
    "CenterNet",
    "average_with_mirror",
    "decode_centernet",
    "draw_gaussian",
    "gaussian_radius",
    "focal_loss",
]
