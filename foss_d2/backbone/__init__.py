from .dla import DLASeg, build_dla_backbone

__all__ = ["DLASeg", "build_dla_backbone"]
