"""Reading images robustly: one path for files, PIL images and arrays.

Files and PIL images get the same treatment: EXIF orientation applied (boxes are in the pixels of
the picture as it is displayed), alpha dropped, grey and palette images expanded, 16-bit scaled to
8 bits. Arrays are taken as they are (no EXIF to read), with the same channel, alpha and 16-bit
handling. Errors are ValueError / FileNotFoundError naming the path; a picture over the pixel
limit raises ImageTooLargeError before it is decoded.
"""

import os
import threading
import warnings
from typing import Dict, Iterable, Optional, Tuple, Union

import cv2
import numpy as np
from PIL import Image, ImageOps

# Pictures over this many pixels are refused before decoding (a 20000x10000 PNG would take 600 MB
# decoded and several GB through the model); 100 MP is above every camera sensor sold today.
DEFAULT_MAX_PIXELS = 100_000_000
_PIL_LIMIT = threading.Lock()
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


class ImageTooLargeError(ValueError):
    """A picture over the pixel limit; ``size`` is its (width, height)."""

    def __init__(self, path: str, size: Tuple[int, int], max_pixels: int):
        self.size = tuple(size)
        w, h = self.size
        super().__init__(
            f"{path}: {w}x{h} pixels ({w * h / 1e6:.3g} MP) is over the limit of {max_pixels / 1e6:.3g} MP "
            f"(shrink it, or raise the limit: the tools' --max-pixels, FaceAgeEstimator's max_pixels)"
        )


def _open_unlimited(path: str) -> "Image.Image":
    """``Image.open`` past PIL's own decompression-bomb limit (89.5 MP warned, 179 MP refused): the
    callers apply ``max_pixels`` from the header. PIL's limit is a global: lifted for the call under
    a lock, so another thread's ``Image.open`` in that instant is unlimited too; hence only where
    the user asked for more than PIL allows (``_open``)."""
    with _PIL_LIMIT:
        old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _open(path: str, max_pixels: Optional[int]) -> "Image.Image":
    """``Image.open`` under PIL's own limit where it refuses nothing ``max_pixels`` allows, else past it."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or (max_pixels and max_pixels <= 2 * limit):
        return Image.open(path)
    return _open_unlimited(path)


def pil_to_array(im: "Image.Image") -> np.ndarray:
    """A PIL image as HxWx3 uint8 RGB: EXIF orientation applied, alpha dropped, 16-bit scaled."""
    if im.mode == "F":  # PIL would clip it to 0..255: a [0, 1] picture would come out black
        raise ValueError("a float image (PIL mode F): scale it to 0..255 and convert it to 8 bits (mode L or RGB)")
    im = ImageOps.exif_transpose(im)
    im.load()  # truncated or corrupt data fails here, not later
    if im.mode in _SIXTEEN_BIT:
        arr = np.asarray(im)
        if im.mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 255:
            arr = arr.astype(np.uint8)  # 8-bit values in PIL's 32-bit mode (Image.convert("I")): as PIL shows them
        elif arr.dtype != np.uint16:
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
    else:
        arr = np.asarray(im.convert("RGB"))
    return load_image(arr, "RGB")


def swap_red_blue(image: np.ndarray) -> np.ndarray:
    """RGB to BGR or back (channels 0 and 2 exchanged, an alpha channel kept in its place), as a new
    C-contiguous array; a picture of one channel is copied as it is. An 8-bit three-channel picture
    goes through OpenCV: numpy's copy of a reversed view took 25x its time (4.5 against 0.2 ms for a
    1024x1535 photo, decoded for every photo of a run)."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.size:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] >= 3:
        return np.ascontiguousarray(image[:, :, [2, 1, 0, *range(3, image.shape[2])]])
    return np.array(image, order="C")


def _to_eight_bits(arr: np.ndarray) -> np.ndarray:
    """16-bit pixels scaled by 1/257 to 8 bits; a picture that stays almost black (10- or 12-bit
    data read as 16) is read, with a warning."""
    if arr.size and int(arr.max()) < 32 * 257:
        warnings.warn(
            f"a 16-bit image whose brightest pixel is {int(arr.max())} of 65535 comes out almost black in 8 bits "
            f"(10- or 12-bit data? scale it to 8 bits first)",
            stacklevel=3,
        )
    return (arr / 257.0).round().astype(np.uint8)


def check_pixels(name: str, size: Tuple[int, int], max_pixels: Optional[int]):
    """ImageTooLargeError for a picture of ``size`` (width, height) over ``max_pixels`` (0/None: no limit)."""
    if max_pixels and size[0] * size[1] > max_pixels:
        raise ImageTooLargeError(name, size, max_pixels)


def read_image_file(path: str, image_format: str = "BGR", max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a file to HxWx3 uint8 in ``image_format`` order (see the module docstring).
    Raises FileNotFoundError, ImageTooLargeError or ValueError, each naming the path."""
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not an image (tools/demo.py --input reads folders)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with _open(path, max_pixels) as im:
            check_pixels(path, im.size, max_pixels)
            arr = pil_to_array(im)
    except ImageTooLargeError:
        raise
    except Image.DecompressionBombError as e:
        if max_pixels and max_pixels <= 2 * (Image.MAX_IMAGE_PIXELS or 0):  # refused at open: over ours too
            with _open_unlimited(path) as im:
                raise ImageTooLargeError(path, im.size, max_pixels) from None
        raise ValueError(f"cannot read image {path}: {e}") from e  # a format that checks again while decoding
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unreadable data
        raise ValueError(f"cannot read image {path}: {e}") from e
    return swap_red_blue(arr) if image_format == "BGR" else arr


def unreadable_images(
    items: Iterable[Tuple[str, Optional[Tuple[int, int]]]], image_format: str = "BGR", desc: str = "reading images"
) -> Dict[str, str]:
    """{path: why} of the (path, (width, height) or None) items whose file ``read_image_file`` cannot
    decode, or whose picture is not of that size, in the items' order: decoded in threads (the
    decoders release the GIL), with a progress bar."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def problem(item):
        path, size = item
        try:
            img = read_image_file(path, image_format)
        except (FileNotFoundError, ValueError) as e:
            return str(e)
        if size and all(size) and (img.shape[1], img.shape[0]) != tuple(size):
            return f"{path} is {img.shape[1]}x{img.shape[0]}, its record says {size[0]}x{size[1]}"
        return None

    items = list(items)
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        found = tqdm(pool.map(problem, items), total=len(items), desc=desc, leave=False)
        return {path: why for (path, _), why in zip(items, found) if why}


def load_image(
    image: Union[str, os.PathLike, np.ndarray, "Image.Image"],
    image_format: str = "BGR",
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """A path, a PIL image or an HxW / HxWx{1,3,4} array -> HxWx3 uint8 in ``image_format`` order.

    Paths and PIL images go through the same decoding (EXIF orientation, 16-bit). Arrays are taken
    to be in ``image_format`` already; alpha is dropped, grey is replicated and 16-bit data is
    scaled to 8 bits. Anything else raises a ValueError that says what was wrong.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image_file(os.fspath(image), image_format, max_pixels)
    if isinstance(image, Image.Image):
        check_pixels("the PIL image", image.size, max_pixels)  # (its size is known before it decodes)
        try:
            rgb = pil_to_array(image)
        except AttributeError as e:  # a closed image has no file to read any more
            raise ValueError(f"cannot read the PIL image ({e}): is it closed?") from None
        except ValueError as e:
            if "closed image" not in str(e):  # e.g. our own "a float image (PIL mode F)"
                raise
            raise ValueError(f"cannot read the PIL image ({e}): it was closed; pass it open, or its path") from None
        except OSError as e:  # truncated or corrupt data
            raise ValueError(f"cannot read the PIL image: {e}") from None
        return swap_red_blue(rgb) if image_format == "BGR" else rgb
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a path, a PIL image or a numpy array, got {type(image).__name__}")
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
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:  # big-endian too (FITS, np.frombuffer ">u2")
        arr = _to_eight_bits(arr.astype(np.uint16))
    elif arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 or uint16 pixels, got {arr.dtype}")
    return np.ascontiguousarray(arr)
