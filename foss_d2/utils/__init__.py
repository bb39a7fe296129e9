from .image_io import load_image, read_image_file
from .json_io import write_json_atomic
from .visualizer import draw_faces, face_label

__all__ = ["draw_faces", "face_label", "load_image", "read_image_file", "write_json_atomic"]
