from .appa_real import load_appa_real, register_appa_real
from .builtin import datasets_root, register_all_foss, register_config_datasets
from .fgnet import box_from_landmarks, load_fgnet, parse_fgnet_name, read_pts, register_fgnet
from .images_of_groups import box_from_eyes, load_images_of_groups, parse_person_data, register_images_of_groups
from .imdb_wiki import load_imdb_wiki, register_imdb_wiki
from .megaage_asian import load_megaage_asian, register_megaage_asian
from .utkface import load_utkface, parse_utkface_name, register_utkface
from .wider_face import load_wider_demographics, load_wider_face, parse_wider_bbx_gt, register_wider_face

__all__ = [
    "datasets_root",
    "register_all_foss",
    "register_config_datasets",
    "load_appa_real",
    "register_appa_real",
    "box_from_eyes",
    "box_from_landmarks",
    "load_fgnet",
    "parse_fgnet_name",
    "read_pts",
    "register_fgnet",
    "load_images_of_groups",
    "parse_person_data",
    "register_images_of_groups",
    "load_imdb_wiki",
    "register_imdb_wiki",
    "load_megaage_asian",
    "register_megaage_asian",
    "load_utkface",
    "parse_utkface_name",
    "register_utkface",
    "load_wider_demographics",
    "load_wider_face",
    "parse_wider_bbx_gt",
    "register_wider_face",
]
