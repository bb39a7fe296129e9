"""Reading images robustly: EXIF orientation, alpha, grey, palette and 16-bit, with clear errors."""
import os
from typing import Union

import numpy as np


def read_image_file(path: str, image_format: str = "BGR") -> np.ndarray:
    """Decode a file to HxWx3 uint8: EXIF orientation applied, alpha dropped, grey and palette images
    expanded, 16-bit scaled to 8 bits. Raises FileNotFoundError / ValueError with the path."""
    from PIL import Image, ImageOps

    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()  # truncated or corrupt data fails here, not later
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im).astype(np.uint16 if im.mode.startswith("I;16") else np.int64)
                if arr.dtype != np.uint16:
                    arr = np.clip(arr, 0, 65535).astype(np.uint16)
            else:
                arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unreadable data
        raise ValueError(f"cannot read image {path}: {e}") from e
    arr = load_image(arr, "RGB")
    return arr[:, :, ::-1].copy() if image_format == "BGR" else arr


def load_image(image: Union[str, os.PathLike, np.ndarray], image_format: str = "BGR") -> np.ndarray:
    """A path or an HxW / HxWx{1,3,4} array -> HxWx3 uint8 in ``image_format`` channel order.

    Arrays are taken to be in ``image_format`` already; alpha is dropped, grey is replicated and
    16-bit data is scaled to 8 bits. Anything else raises a ValueError that says what was wrong.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image_file(os.fspath(image), image_format)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a path or a numpy array, got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    arr = arr[:, :, :3]
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    if arr.dtype == np.uint16:
        arr = (arr / 257.0).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 pixels, got {arr.dtype}")
    return np.ascontiguousarray(arr)
