from .image_io import load_image, read_image_file
from .json_io import write_json_atomic

__all__ = ["draw_faces", "face_label", "load_image", "read_image_file", "write_json_atomic"]


def __getattr__(name):
    # drawing brings in matplotlib (about 0.4 s of a run's start-up): loaded when first used, so
    # that --no-draw runs and the Python API without pictures never pay it
    if name in ("draw_faces", "face_label"):
        from . import visualizer

        return getattr(visualizer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
