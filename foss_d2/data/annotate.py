"""Face-box annotation and cleaning of single-face age datasets (paper section 4.2).

A trained face detector is run over every image. Training images: the one detected face replaces
the dataset's box; images with no face or with several faces are dropped (they would teach the
age network wrong pairs). Test images are all kept; the largest detected face becomes the target.
Progress is appended to a JSON-lines file as it goes, so an interrupted run resumes where it stopped.
"""

import json
import logging
import os
from collections import Counter
from typing import Callable, Iterable, List, Tuple

import numpy as np
from tqdm import tqdm

from detectron2.structures import BoxMode

logger = logging.getLogger(__name__)


def _load_progress(path: str, detector_id: str) -> dict:
    """{image file: row} of a progress file written by the same detector (rows written before they
    named their file: under "id:<image_id>"); an unreadable image's row is left out (it is tried
    again). A file of another detector (or of a version that thresholded before saving) is a
    ValueError: its boxes would be passed off as this run's. A last line cut short (a kill while
    writing it) is dropped from the file; a damaged line elsewhere is a ValueError naming it."""
    done = {}
    if not (path and os.path.isfile(path)):
        return done
    with open(path, newline="") as f:  # (the bytes as written: a truncation below counts them, \r\n too)
        text = f.read()
    rows = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:  # no newline after it: cut short while written
                logger.warning("%s: its last line was cut short (a run killed while writing it): dropped", path)
                with open(path, "rb+") as f:
                    f.truncate(len(text.encode()) - len(line.encode()))
                break
            raise ValueError(
                f"{path}:{i + 1} is not a line of progress: delete the file to start over, or choose another --output"
            ) from None
    header = rows[0] if rows and "detector" in rows[0] else {}
    if header.get("detector") != detector_id:
        raise ValueError(
            f"{path} holds the progress of another detector ({header.get('detector', 'not recorded')!r}, this run: "
            f"{detector_id!r}): delete it to start over, or choose another --output"
        )
    for row in rows[1:]:
        if row.get("boxes") is not None:
            # by file: COCO ids are 1..N in every file, so an --output reused for another dataset
            # gave its images the boxes found on the first one's
            done[row["file"] if "file" in row else f"id:{row['image_id']}"] = row
    return done


def annotate_records(
    records: Iterable[dict],
    detect: Callable[[str], Tuple[np.ndarray, np.ndarray]],
    mode: str = "train",
    score_thresh: float = 0.3,
    progress_path: str = None,
    detector_id: str = "",
) -> Tuple[List[dict], Counter]:
    """Returns (kept records with detector boxes, counts of each outcome).

    ``detect(file_name)`` returns (boxes Nx4 XYXY in pixels, scores N). Outcomes: "kept",
    "no_face", "multiple_faces" (dropped in train mode), "unreadable" (always dropped). The
    progress file keeps every box with its score, so a rerun with another ``score_thresh`` reuses
    it; ``detector_id`` names the detector, and a progress file of another one is refused.
    """
    if mode not in ("train", "test"):
        raise ValueError(f"mode must be train or test, got {mode!r}")
    records = list(records)
    done = _load_progress(progress_path, detector_id)
    out, counts = [], Counter()
    log = None
    if progress_path:
        fresh = not os.path.isfile(progress_path)
        log = open(progress_path, "a")
        if fresh:  # (flushed now: a run killed in its first detection left an empty file, refused as another's)
            log.write(json.dumps({"detector": detector_id}) + "\n")
            log.flush()
    try:
        for r in tqdm(records, desc=f"annotating ({mode})"):
            key, path = str(r["image_id"]), os.path.abspath(r["file_name"])
            row = done.get(path) or done.get(f"id:{key}")
            if row is None:
                try:
                    boxes, scores = detect(r["file_name"])
                    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
                    scores = np.asarray(scores, float).tolist()
                    row = {"image_id": key, "file": path, "boxes": boxes.tolist(), "scores": scores}
                except (OSError, ValueError) as e:
                    logger.warning("skipping %s: %s", r["file_name"], e)
                    row = {"image_id": key, "file": path, "boxes": None, "error": str(e)}
                if log:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
            status, rec = _apply(r, row, mode, score_thresh)
            counts[status] += 1
            if rec is not None:
                out.append(rec)
    finally:
        if log:
            log.close()
    return out, counts


def _apply(r: dict, row: dict, mode: str, score_thresh: float):
    if row.get("boxes") is None:
        return "unreadable", None
    boxes = np.asarray(row["boxes"]).reshape(-1, 4)[np.asarray(row["scores"]) > score_thresh]
    if len(boxes) == 0:
        status = "no_face"
    elif len(boxes) > 1:
        status = "multiple_faces"
    else:
        status = "kept"
    if mode == "train" and status != "kept":
        return status, None
    rec = dict(r)
    annos = [dict(a) for a in r.get("annotations", [])]
    if len(boxes) and annos:
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        target = boxes[int(np.argmax(areas))]  # the largest detected face (paper 4.2)
        annos[0].update(bbox=[float(v) for v in target], bbox_mode=BoxMode.XYXY_ABS, detected=True)
    elif annos:
        annos[0]["detected"] = False
    rec["annotations"] = annos
    return status, rec
