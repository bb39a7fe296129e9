"""IMDB-WIKI (Rothe, Timofte, Van Gool, DEX 2015), official ``imdb_crop/imdb.mat`` / ``wiki_crop/wiki.mat``.

The .mat holds one struct (``imdb`` or ``wiki``) whose fields are 1xN arrays: ``dob`` (MATLAB
serial date number), ``photo_taken`` (year), ``full_path`` (path under the crop folder), ``gender``
(1 male, 0 female, NaN unknown), ``face_location`` (x1 y1 x2 y2 in the original photo),
``face_score`` (-Inf: no face found) and ``second_face_score`` (NaN: no second face).

Age = photo_taken - birth year, the photo assumed taken in the middle of the year (as DEX): a
year less for a birthday from July on (born 15 October 1990, in a photo of 2000: 9).
Cleaning, as DEX and the paper's preprocessing: a face was found (finite face_score >= MIN_SCORE),
no second face (second_face_score is NaN), 0 <= age <= 100, gender known.

The crops carry a 40% margin around the detected face on every side, so the face box inside a
crop is the central 1/1.8 of it (``CROP_FACE_BOX``) until the annotation tool replaces it.
"""

import datetime
import logging
import os
from typing import List

import numpy as np

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..utils import DatasetError, hash_split

logger = logging.getLogger(__name__)

MIN_SCORE = 1.0
_M = 0.4 / 1.8
CROP_FACE_BOX = (_M, _M, 1 - _M, 1 - _M)


def matlab_datenum_to_date(datenum: float) -> datetime.date:
    """The date of a MATLAB serial date number (days since year 0; Python ordinals start at year 1)."""
    return datetime.date.fromordinal(max(1, int(datenum) - 366))


def age_in_photo(taken_year: int, dob_datenum: float) -> int:
    """Age at the middle of the photo's year: the birth year's difference, a year less for a
    birthday from July on (the year's difference alone made half the labels a year too old)."""
    born = matlab_datenum_to_date(dob_datenum)
    return int(taken_year) - born.year - (born.month >= 7)


def load_imdb_wiki(
    mat_path: str, image_root: str = None, split: str = "all", clean: bool = True, min_score: float = MIN_SCORE
) -> List[dict]:
    """Records of one .mat; ``split`` "train"/"test" is the paper's random 80/20 (by path hash), or "all"."""
    from scipy.io import loadmat

    if not os.path.isfile(mat_path):
        raise FileNotFoundError(f"IMDB-WIKI metadata not found: {mat_path}")
    image_root = image_root or os.path.dirname(mat_path)
    mat = loadmat(mat_path)
    key = [k for k in mat if not k.startswith("__")]
    if len(key) != 1:
        raise DatasetError(f"{mat_path}: expected one struct (imdb or wiki), found {key}")
    s = mat[key[0]][0, 0]
    dob = s["dob"].ravel()
    taken = s["photo_taken"].ravel()
    paths = [str(p[0]) if np.size(p) else "" for p in s["full_path"].ravel()]
    gender = s["gender"].ravel().astype(float)
    score = s["face_score"].ravel().astype(float)
    second = s["second_face_score"].ravel().astype(float)
    records, dropped = [], 0
    for i in range(len(paths)):
        try:
            age = age_in_photo(int(taken[i]), float(dob[i]))
        except (ValueError, OverflowError):
            age = -1
        ok = (
            paths[i]
            and np.isfinite(score[i])
            and score[i] >= min_score
            and np.isnan(second[i])
            and 0 <= age <= 100
            and not np.isnan(gender[i])
        )
        if clean and not ok:
            dropped += 1
            continue
        if split != "all" and hash_split(paths[i]) != split:
            continue
        x1, y1, x2, y2 = CROP_FACE_BOX
        records.append(
            {
                "file_name": os.path.join(image_root, paths[i]),
                "image_id": paths[i],
                "annotations": [
                    {
                        "bbox": [x1, y1, x2, y2],
                        "bbox_mode": BoxMode.XYXY_REL,  # resolved when the image is read
                        "category_id": 0,
                        "iscrowd": 0,
                        "age": float(age) if 0 <= age <= 100 else -1.0,
                        # IMDB-WIKI: 1 = male, 0 = female; FOSS-D2: 0 = male, 1 = female.
                        "gender": -1 if np.isnan(gender[i]) else int(gender[i] == 0),
                        "face_score": float(score[i]),
                    }
                ],
            }
        )
    logger.info("IMDB-WIKI %s: kept %d, dropped %d by cleaning", mat_path, len(records), dropped)
    return records


def register_imdb_wiki(name: str, mat_path: str, image_root: str = None, split: str = "all"):
    DatasetCatalog.register(name, lambda: load_imdb_wiki(mat_path, image_root, split))
    MetadataCatalog.get(name).set(thing_classes=["face"], evaluator_type="age_single", mat_path=mat_path)
