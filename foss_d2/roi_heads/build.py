"""FOSS's own registry of age networks (as Panoptic-DeepLab adds its own heads' registries): an age
head is called with the full-resolution images, the faces and the detector features, a contract
that detectron2's ROI heads do not share."""

from detectron2.utils.registry import Registry

from ..utils.registry import lookup

AGE_HEAD_REGISTRY = Registry("AGE_HEAD")
AGE_HEAD_REGISTRY.__doc__ = """
Age / gender networks of FOSS (paper section 3.1), chosen by MODEL.AGE_HEAD.NAME.
Called as ``obj(cfg, input_shape)`` with the backbone's output shapes.
"""


def build_age_head(cfg, input_shape):
    """The age head named by MODEL.AGE_HEAD.NAME, built from ``cfg`` and the backbone's output shapes."""
    return lookup(AGE_HEAD_REGISTRY, cfg.MODEL.AGE_HEAD.NAME, "MODEL.AGE_HEAD.NAME", "age head")(cfg, input_shape)
