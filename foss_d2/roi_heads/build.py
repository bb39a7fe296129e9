"""FOSS's own registry of age networks (as Panoptic-DeepLab adds its own heads' registries): an age
head is called with the full-resolution images, the faces and the detector features, a contract
that detectron2's ROI heads do not share."""

from detectron2.utils.registry import Registry

AGE_HEAD_REGISTRY = Registry("AGE_HEAD")
AGE_HEAD_REGISTRY.__doc__ = """
Age / gender networks of FOSS (paper section 3.1), chosen by MODEL.AGE_HEAD.NAME.
Called as ``obj(cfg, input_shape)`` with the backbone's output shapes.
"""


def build_age_head(cfg, input_shape):
    """The age head named by MODEL.AGE_HEAD.NAME, built from ``cfg`` and the backbone's output shapes."""
    name = cfg.MODEL.AGE_HEAD.NAME
    if name not in AGE_HEAD_REGISTRY:
        known = ", ".join(sorted(n for n, _ in AGE_HEAD_REGISTRY))
        raise KeyError(f"MODEL.AGE_HEAD.NAME={name!r} is not a registered age head (known: {known})")
    return AGE_HEAD_REGISTRY.get(name)(cfg, input_shape)
