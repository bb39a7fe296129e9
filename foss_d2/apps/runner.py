"""The runner behind ``foss-d2 demo`` and ``survey``: images, folders, globs, a video or a webcam,
with the faces drawn and results that survive a crash."""
import csv
import glob
import logging
import os
from typing import List, Tuple

import cv2
from tqdm import tqdm

from ..engine import instances_to_faces, read_image_file
from ..utils import draw_faces, write_json_atomic

logger = logging.getLogger("foss_d2.runner")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CSV_FIELDS = ["image", "face", "x1", "y1", "x2", "y2", "score", "age", "age_std", "gender", "p_female"]


def expand_inputs(inputs: List[str]) -> List[Tuple[str, str]]:
    """[(path, key)]: files as given (key = file name), folders walked recursively (key = path
    relative to the folder; non-image files skipped with a warning), globs expanded."""
    out = []
    for item in inputs:
        if os.path.isdir(item):
            for root, _, files in os.walk(item):
                for f in sorted(files):
                    path = os.path.join(root, f)
                    if f.lower().endswith(IMAGE_EXTS):
                        out.append((path, os.path.relpath(path, item)))
                    else:
                        logger.warning("skipping %s: not an image file name", path)
        elif any(c in item for c in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                logger.warning("no file matches %s", item)
            out += [(m, os.path.basename(m)) for m in matches if os.path.isfile(m)]
        else:
            out.append((item, os.path.basename(item)))  # a missing file is reported when read
    keys = [k for _, k in out]
    if len(set(keys)) != len(keys):  # same base name from two places: fall back to full paths
        out = [(p, p) for p, _ in out]
    return sorted(out, key=lambda pk: pk[1])


class PredictionWriter:
    """Writes ``predictions.json`` ({key: [faces]}), ``predictions.csv`` (one row per face) and
    ``skipped.json`` under ``out_dir``. CSV rows are flushed as they come and the JSON is rewritten
    atomically every ``flush_every`` entries and on close, so an interrupted batch keeps its results."""

    def __init__(self, out_dir: str, flush_every: int = 20):
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir = out_dir
        self.results = {}
        self.skipped = {}
        self.flush_every = flush_every
        self._csv_file = open(os.path.join(out_dir, "predictions.csv"), "w", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(CSV_FIELDS)

    def add(self, key: str, faces: List[dict]):
        self.results[str(key)] = faces
        for i, f in enumerate(faces):
            self._csv.writerow([key, i, *f["box"], f["score"], f["age"], f["age_std"], f["gender"], f["p_female"]])
        self._csv_file.flush()
        if len(self.results) % self.flush_every == 0:
            self.flush()

    def skip(self, key: str, reason: str):
        logger.warning("skipped %s: %s", key, reason)
        self.skipped[str(key)] = reason

    def flush(self):
        write_json_atomic(os.path.join(self.out_dir, "predictions.json"), self.results, indent=1)
        write_json_atomic(os.path.join(self.out_dir, "skipped.json"), self.skipped, indent=1)

    def close(self):
        self.flush()
        self._csv_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def draw_predictions(img_bgr, faces):
    """The picture with each face drawn and labelled with its age and gender."""
    boxes = [f["box"] for f in faces]
    out = draw_faces(img_bgr[:, :, ::-1], boxes, [f["age"] for f in faces], [f["p_female"] if f["p_female"] is not None else float("nan") for f in faces])
    return out[:, :, ::-1]


def run_images(predictor, items, out_dir, fmt):
    with PredictionWriter(out_dir) if out_dir else _NoWriter() as writer:
        for path, key in tqdm(items, desc="images", disable=len(items) < 2):
            try:
                img = read_image_file(path, fmt)
            except (FileNotFoundError, ValueError) as e:
                writer.skip(key, str(e))
                continue
            faces = instances_to_faces(predictor(img))
            writer.add(key, faces)
            bgr = img if fmt == "BGR" else img[:, :, ::-1]
            vis = draw_predictions(bgr, faces)
            if out_dir:
                dst = os.path.join(out_dir, key)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if not cv2.imwrite(dst if dst.lower().endswith((".jpg", ".jpeg", ".png")) else dst + ".jpg", vis):
                    writer.skip(key, "could not write the picture with the faces drawn")
            else:
                logger.info("%s: %d faces %s", key, len(faces), [(f["age"], f["gender"]) for f in faces])


def run_video(predictor, source, out_dir, fmt, max_bad_frames=25):
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise SystemExit(f"cannot open video {source!r}")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out_video = None
    bad, frame_idx = 0, -1
    with PredictionWriter(out_dir) if out_dir else _NoWriter() as writer:
        bar = tqdm(total=total, desc="frames")
        try:
            while True:
                ok, frame = cap.read()
                frame_idx += 1
                if not ok:
                    if total is not None and frame_idx < total and bad < max_bad_frames:
                        bad += 1
                        writer.skip(str(frame_idx), "unreadable frame")
                        bar.update(1)
                        continue
                    break
                img = frame if fmt == "BGR" else frame[:, :, ::-1]
                faces = instances_to_faces(predictor(img))
                writer.add(str(frame_idx), faces)
                vis = draw_predictions(frame, faces)
                if out_dir:
                    if out_video is None:
                        name = os.path.splitext(os.path.basename(str(source)))[0] + "_foss.mp4"
                        out_video = cv2.VideoWriter(os.path.join(out_dir, name), cv2.VideoWriter_fourcc(*"mp4v"), fps, vis.shape[1::-1])
                    out_video.write(vis)
                elif source == 0:
                    cv2.imshow("FOSS-D2", vis)
                    if cv2.waitKey(1) == 27:
                        break
                bar.update(1)
        finally:
            bar.close()
            cap.release()
            if out_video is not None:
                out_video.release()


class _NoWriter:
    def add(self, key, faces):
        pass

    def skip(self, key, reason):
        logger.warning("skipped %s: %s", key, reason)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
