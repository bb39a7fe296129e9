from .builtin import datasets_root, register_all_foss
from .utkface import load_utkface, parse_utkface_name, register_utkface
from .wider_face import load_wider_demographics, load_wider_face, parse_wider_bbx_gt, register_wider_face

__all__ = [
    "datasets_root",
    "register_all_foss",
    "load_utkface",
    "parse_utkface_name",
    "register_utkface",
    "load_wider_demographics",
    "load_wider_face",
    "parse_wider_bbx_gt",
    "register_wider_face",
]
