from .centernet import CenterNet, decode_centernet, draw_gaussian, gaussian_radius, focal_loss

__all__ = ["CenterNet", "decode_centernet", "draw_gaussian", "gaussian_radius", "focal_loss"]
