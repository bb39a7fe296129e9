from .visualizer import draw_faces, face_label

__all__ = ["draw_faces", "face_label"]
