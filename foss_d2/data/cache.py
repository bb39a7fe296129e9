"""Training images decoded once, kept in memory (not in the paper: a GPU recipe aid, issue 16).

A GPU that trains the detector at 480 px waits on JPEG decoding in the loader workers. With
INPUT.CACHE_DECODED every training image is decoded once, in threads, before the loader starts;
the workers fork afterwards and read the arrays copy-on-write, so the cache is paid for once.
Arrays are kept at full resolution: the mapper's transforms (and the annotations' pixels) stay
exactly those of a file read.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, Optional

import numpy as np
from tqdm import tqdm

from ..utils.image_io import read_image_file

logger = logging.getLogger(__name__)


class DecodedImageCache:
    """``cache(record)`` -> the record's image as ``read_image_file`` gives it, from memory."""

    def __init__(self, images: Dict[str, np.ndarray], image_format: str = "BGR"):
        self.images = images
        self.image_format = image_format

    @classmethod
    def build(cls, records: Iterable[dict], image_format: str = "BGR", num_threads: int = 8):
        """Decode every distinct ``file_name`` of ``records``; unreadable files are left out (the
        mapper then reads them itself and reports them as it always does)."""
        names = sorted({r["file_name"] for r in records})

        def load(name) -> Optional[np.ndarray]:
            try:
                return read_image_file(name, image_format)
            except (FileNotFoundError, ValueError):
                return None

        images = {}
        with ThreadPoolExecutor(max(1, num_threads)) as pool:  # decoders release the GIL
            for name, img in tqdm(zip(names, pool.map(load, names)), total=len(names), desc="decoding training images"):
                if img is not None:
                    images[name] = img
        mib = sum(a.nbytes for a in images.values()) / 2**20
        logger.info("Decoded %d of %d training images into memory (%.0f MiB)", len(images), len(names), mib)
        return cls(images, image_format)

    def __call__(self, record: dict) -> np.ndarray:
        img = self.images.get(record["file_name"])
        if img is None:
            return read_image_file(record["file_name"], self.image_format)
        return img.copy()  # the mapper and tiler may write into it; the cached array stays as read
