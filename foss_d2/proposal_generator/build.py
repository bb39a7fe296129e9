"""FOSS's own registry of face detectors (as Panoptic-DeepLab adds its own heads' registries): a
face detector is called with the detector input's size, the backbone features and K, and returns
the K most probable faces, a contract that detectron2's proposal generators do not share. At test
time FOSS may add ``min_score``: the faces scoring at most that are not wanted (CenterNet then
decodes fewer than K), and ``dense_dtype`` with MODEL.FOSS.DET_INFERENCE_DTYPE other than float32
(the dtype of CenterNet's dense heatmap conv); a detector without those keywords is called without
them unless the floor or that dtype is on."""

from detectron2.utils.registry import Registry

from ..utils.registry import lookup

FACE_DETECTOR_REGISTRY = Registry("FACE_DETECTOR")
FACE_DETECTOR_REGISTRY.__doc__ = """
Face detection heads of FOSS (paper section 3.2), chosen by MODEL.FOSS.FACE_DETECTOR.
Called as ``obj(cfg, input_shape)`` with the backbone's output shapes.
"""


def build_face_detector(cfg, input_shape):
    """The face detector named by MODEL.FOSS.FACE_DETECTOR, built from ``cfg`` and the backbone's output shapes."""
    return lookup(FACE_DETECTOR_REGISTRY, cfg.MODEL.FOSS.FACE_DETECTOR, "MODEL.FOSS.FACE_DETECTOR", "face detector")(
        cfg, input_shape
    )
