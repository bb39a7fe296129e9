"""The runner behind ``foss-d2 demo`` and ``survey``: images, folders, globs, a video or a webcam,
with the faces drawn and results that survive a crash.

What it writes under the output folder OUT:

* ``predictions.jsonl``, the journal: one JSON line per image or video frame, flushed as it is
  written. A result is ``{"key", "width", "height", "frame", "faces", "picture"}``: ``frame`` says
  which pixels the boxes are in ("exif_oriented": the picture as displayed, EXIF orientation
  applied, ``width`` x ``height``; "video_frame": the decoded frame), ``picture`` is the file
  drawn under OUT (absent with ``--no-draw``) and an image's ``source`` its file's size and the
  SHA-1 of its first 64 KiB (``file_signature``). An input that could not be used is
  ``{"key", "skipped": reason}``.
* ``predictions.json`` ({key: [faces]}, one key a line) and ``skipped.json`` ({key: reason}),
  rewritten atomically from the same records at the end, also after SIGTERM or Ctrl-C (the input
  in progress is finished first; a second signal stops at once), and during the run every 30 s, or
  every 20 times a rewrite's own time when that is longer (``SAVE_TIME_SHARE``).
* ``predictions.csv``: one row per face, appended and flushed per image.
* the pictures with the faces drawn, at most 2048 px on their longer side (``draw_max_side``;
  boxes scaled with the picture; the JSON/CSV boxes stay in original pixels).

Rules: an OUT that is an input folder or holds an input is refused (realpaths), and so is one that
another run is writing (``output_lock``). An OUT that holds an
earlier run's results is refused unless ``resume`` (skip the inputs already in the journal, append
to the CSV, rebuild the JSON from the journal; an image whose file is not the one the journal
answered, another file under the same name, runs again) or ``overwrite`` (remove that run's result files
and the pictures its journal or predictions.json lists, nothing else). Pictures over
``max_pixels`` are skipped before they are decoded. The next inputs are decoded in a reader thread
and the pictures drawn and written in a writer thread while the model runs, in input order;
with ``workers`` > 1 that many images are in the model at once (each on its share of the
threads), their results still taken in input order.
"""

import argparse
import contextlib
import csv
import errno
import functools
import glob
import hashlib
import json
import logging
import math
import os
import queue
import signal
import socket
import sys
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import cv2
from tqdm import tqdm

try:
    import fcntl
except ImportError:  # Windows: no flock, and two runs into one folder at once are not refused there
    fcntl = None

from ..engine import FOSSPredictor, read_image_file
from ..engine.api import PRESETS
from ..engine.pipeline import NOT_RUN, Prefetcher, computes_on_cpu, predict_in_order
from ..engine.predictor import BACKENDS
from ..utils import write_json_atomic
from ..utils.image_io import DEFAULT_MAX_PIXELS, ImageTooLargeError, swap_red_blue
from ..utils.json_io import atomic_path, nearest_existing, write_text_atomic
from ..utils.precision import effective_dtype
from ..utils.visualizer import DEFAULT_DRAW_MAX_SIDE, UNCERTAIN_BELOW, draw_predictions  # noqa: F401  (re-exported)
from .cli import config_from_args  # noqa: F401  (re-exported: demo, survey and train take it from here)

logger = logging.getLogger("foss_d2.runner")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
# track_id: a video's tracked person (empty for photos and --no-track)
CSV_FIELDS = ["image", "face", "x1", "y1", "x2", "y2", "score", "age", "age_std", "gender", "p_female", "track_id"]
JOURNAL = "predictions.jsonl"
# The settings that decide the answers of the run that wrote a folder: --resume must use the same.
RUN_FILE = "run.json"
RESULT_FILES = (
    JOURNAL,
    "predictions.json",
    "predictions.csv",
    "skipped.json",
    "people.json",
    "people.csv",
    "people_sheet.jpg",  # (only beside a people.json: existing_results)
    RUN_FILE,
)
FRAME_IMAGE = "exif_oriented"
FRAME_VIDEO = "video_frame"


class RunError(Exception):
    """A run refused before it starts, or an input that cannot be opened; the message is one line."""


class Interrupted(Exception):
    """SIGTERM, raised in the main thread so that the files are closed on the way out."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by signal {signum}")


@dataclass
class RunSummary:
    inputs: int  # images or frames met, skipped ones included
    done: int  # results written by this run
    before: int  # results already in the journal (``resume``)
    skipped: int

    @property
    def nothing_processed(self) -> bool:
        return self.done + self.before == 0


# ---------------------------------------------------------------- inputs and the output folder


def collect_inputs(inputs: List[str], exclude: Optional[str] = None) -> Tuple[List[Tuple[str, str]], Dict[str, str]]:
    """([(path, key)], {key: reason skipped}): files as given (key = file name), folders walked
    recursively (key = path relative to the folder; ``exclude``, the output folder, and the output
    folders of earlier runs are not entered), globs expanded. Non-image files in folders, missing
    files and globs that match nothing are returned as skipped, with the reason."""
    items, skipped, origin = [], {}, {}  # origin: {skipped key: the path it stands for}

    def skip(key: str, path: str, reason: str):
        if key in skipped and origin[key] != path:  # another input under that name (cam1/, cam2/ notes.txt)
            key = path
        skipped[key], origin[key] = reason, path

    # the output folder is not walked when it is new or an earlier run's (its drawn pictures are no
    # photos); one that holds photos of its own is, so that check_output refuses it before its photos
    # are written over
    excluded = os.path.realpath(exclude) if exclude and not _photos_of_its_own(exclude) else None
    for item in inputs:
        if os.path.isdir(item):
            walked = set()
            for root, dirs, files in os.walk(item, followlinks=True):
                # linked folders are walked (their photos were left out without a word), each once
                if os.path.realpath(root) in walked:
                    dirs[:] = []
                    continue
                walked.add(os.path.realpath(root))
                if excluded:
                    dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) != excluded]
                # an earlier run's output folder inside the input: its drawn pictures are no photos
                earlier = [d for d in dirs if os.path.isfile(os.path.join(root, d, JOURNAL))]
                for d in earlier:
                    skip(
                        os.path.relpath(os.path.join(root, d), item) + os.sep,
                        os.path.join(root, d) + os.sep,
                        f"the output folder of an earlier run ({JOURNAL}): its pictures are not read as photos",
                    )
                dirs[:] = sorted(d for d in dirs if d not in earlier)
                for f in sorted(files):
                    path = os.path.join(root, f)
                    key = os.path.relpath(path, item)
                    if f.lower().endswith(IMAGE_EXTS):
                        items.append((path, key))
                    else:
                        skip(key, path, _not_an_image(f))
        elif any(c in item for c in "*?[") and not os.path.isfile(item):  # a file named "a [1].jpg" is a file
            files = [m for m in sorted(glob.glob(item, recursive=True)) if os.path.isfile(m)]
            if not files:
                skip(item, item, "no file matches this pattern")
            items += [(m, os.path.basename(m)) for m in files]
        elif not os.path.exists(item):
            skip(os.path.basename(item) or item, item, f"image not found: {item}")
        elif item.lower().endswith(VIDEO_EXTS):
            skip(os.path.basename(item), item, _not_an_image(item))
        else:
            items.append((item, os.path.basename(item)))
    items = _once_each(items)
    keys = [k for _, k in items]
    if len(set(keys)) != len(keys):  # same base name from two places: keys long enough to tell them apart
        items = list(zip([p for p, _ in items], distinct_tails([p for p, _ in items])))
    # a skipped input under an answered one's key (photos/x.jpg and a missing backup/x.jpg): its own
    # path, or the answer took its skipped.json entry away (and every --resume ran the photo again)
    answered = {k for _, k in items}
    skipped = {(origin[k] if k in answered else k): why for k, why in skipped.items()}
    for key, reason in skipped.items():
        logger.warning("skipping %s: %s", key, reason)
    return sorted(items, key=lambda pk: pk[1]), skipped


def distinct_tails(paths: List[str]) -> List[str]:
    """The paths' last n components, with the least n that tells them apart: keys that do not
    depend on the working directory they were typed from (the typed paths did: a --resume from
    another directory ran them again, and a survey counted them twice)."""
    parts = [os.path.abspath(p).split(os.sep) for p in paths]
    for n in range(1, max(map(len, parts)) + 1):
        tails = ["/".join(q[-n:]) for q in parts]
        if len(set(tails)) == len(tails):
            return tails
    return ["/".join(q) for q in parts]  # (the same file twice: _once_each left none)


def _photos_of_its_own(folder: str) -> bool:
    """Whether ``folder`` holds image files and no earlier run's results (demo's, or survey's, whose
    demo run writes to its predictions/ subfolder)."""
    if not os.path.isdir(folder):
        return False
    if existing_results(folder) or existing_results(os.path.join(folder, "predictions")):
        return False
    if os.path.isfile(os.path.join(folder, "survey.json")):
        return False
    return any(f.lower().endswith(IMAGE_EXTS) for _, _, files in os.walk(folder) for f in files)


def _not_an_image(name: str) -> str:
    """The reason a file is not read as a photo, by its name."""
    ext = os.path.splitext(name)[1].lower() or "no extension"
    if ext in VIDEO_EXTS:
        return f"a video ({ext}): --video-input reads one video"
    return f"not an image file name ({ext}); read are {' '.join(IMAGE_EXTS)}"


def _once_each(items: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """``items`` with each file (by absolute path) once, where first named: a folder and a file or
    pattern inside it, or one file given twice, must not run it twice (two journal lines, its CSV
    rows twice)."""
    seen, once = set(), []
    for path, key in items:
        real = os.path.abspath(path)  # not realpath: a link in a folder to another photo is a photo of its own
        if real not in seen:
            seen.add(real)
            once.append((path, key))
    if len(once) < len(items):
        n = len(items) - len(once)
        logger.warning(
            "%d %s named more than once (a folder and a file in it?): each is read once",
            n,
            "input was" if n == 1 else "inputs were",
        )
    return once


def expand_inputs(inputs: List[str]) -> List[Tuple[str, str]]:
    """[(path, key)] of ``collect_inputs``, the skipped ones only logged."""
    return collect_inputs(inputs)[0]


def check_output(out_dir: str, inputs: Iterable[str]):
    """Refuse an output folder that is an input folder or holds an input (compared as realpaths)."""
    out = os.path.realpath(out_dir)
    for path in inputs:
        real = os.path.realpath(path)
        if real == out or real.startswith(out.rstrip(os.sep) + os.sep):
            how = "is the input folder" if real == out else "holds the input"
            raise RunError(
                f"--output {out_dir} {how} {path} (realpaths {out} and {real}): "
                "its pictures would be written over; choose another output folder"
            )


LOCK_FILE = ".foss-d2.lock"


def _lock_or_refuse(f, out_dir: str, option: str) -> bool:
    """flock ``f`` (an open lock file of ``out_dir``) for this process; a RunError naming the run
    that holds it; False where the file system has no locks (some network ones)."""
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        raise RunError(
            f"{option} {out_dir} is in use by another run ({holder}): two runs writing one folder would mix "
            f"their files; wait for it to end, or choose another {option}"
        ) from None
    except OSError as e:
        logger.debug("no lock on %s (%s): runs into it at once are not refused", out_dir, e)
        return False


def _still_there(f, path: str) -> bool:
    """Whether the open file ``f`` is the file at ``path`` (not one removed since it was opened)."""
    try:
        here = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(f.fileno())
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def output_lock(out_dir: Optional[str], option: str = "--output"):
    """Hold ``out_dir`` for one run: a second run into it at the same time (a --resume from another
    terminal, a scheduled job, a training started twice) is refused with a RunError naming the
    holder and ``option``, the setting that chose the folder (``_lock_or_refuse``). An flock on
    OUT/.foss-d2.lock, which the system releases however the process ends; the file is removed at
    the end, and the folder too when it was made for the lock and nothing was written in it.
    Nothing is done without ``out_dir`` or where there is no flock (Windows)."""
    if not out_dir or fcntl is None:
        yield
        return
    check_output_folder(out_dir, option)
    made = not os.path.exists(out_dir)
    path = os.path.join(out_dir, LOCK_FILE)
    for _ in range(100):
        try:
            os.makedirs(out_dir, exist_ok=True)
            f = open(path, "a+")
        except OSError as e:
            raise RunError(f"{option} {out_dir}: cannot write in it ({e.strerror or e})") from None
        try:
            locked = _lock_or_refuse(f, out_dir, option)
        except RunError:
            f.close()
            raise
        if not locked or _still_there(f, path):
            break
        # the run before removed the file between our open and our lock: a lock on it holds nothing
        # (a third run would lock the new file), so lock the one there now
        f.close()
    if locked:
        f.seek(0)
        f.truncate()
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {when}\n")
        f.flush()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        f.close()
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(out_dir)  # only if empty: a run that wrote nothing


def check_not_in_use(out_dir: str, option: str = "--output"):
    """``output_lock``'s refusal, checked without holding the folder (before the model loads)."""
    path = os.path.join(out_dir, LOCK_FILE)
    if fcntl is None or not os.path.isfile(path):
        return
    with open(path, "a+") as f:
        if _lock_or_refuse(f, out_dir, option):
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _holding_output(run):
    """``run(predictor, inputs, out_dir, ...)`` with ``out_dir`` held (``output_lock``) from before
    its first file is touched to after its last is written."""

    @functools.wraps(run)
    def held(predictor, inputs, out_dir=None, *args, **kwargs):
        with output_lock(out_dir):
            return run(predictor, inputs, out_dir, *args, **kwargs)

    return held


def existing_results(out_dir: str) -> List[str]:
    found = [f for f in RESULT_FILES if os.path.isfile(os.path.join(out_dir, f))]
    if "people.json" not in found:  # a picture of that name alone is the user's own, not a run's
        found = [f for f in found if f != "people_sheet.jpg"]
    return found


# config keys that decide how fast a run goes, not its answers (beyond float rounding): a --resume
# may change them (a run.json that holds them is not checked on them)
# the dtypes the detector and the age network run in (run_settings): compared only with a run.json
# that has them (one written before is checked on the rest, as before)
RUN_DTYPES = ("RUN.detector_dtype", "RUN.age_network_dtype")
SAME_ANSWERS = (
    "MODEL.DEVICE",
    "MODEL.FOSS.PREPACK_DETECTOR",
    "MODEL.AGE_HEAD.PREPACK",
    "MODEL.AGE_HEAD.TEST_CROPS_PER_CALL",
)


def run_settings(cfg, onnx_dir: Optional[str] = None, backend: str = "pytorch") -> dict:
    """The config keys that decide a run's answers (MODEL.* but ``SAME_ANSWERS``, and INPUT.*), flattened
    to {"MODEL.FOSS.SCORE_THRESH_TEST": 0.2, ...} in JSON's types, ONNX_DIR when the graphs are
    a folder of one's own (int8 graphs answer otherwise; the cache's answer as PyTorch does), and
    the dtypes the networks run in (``RUN_DTYPES``: bfloat16 asked for runs in float32 with
    onnxruntime or without native bfloat16, and answers otherwise)."""
    flat = {}

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(cfg.MODEL, "MODEL.")
    walk(cfg.INPUT, "INPUT.")
    for key in SAME_ANSWERS:
        flat.pop(key, None)
    weights = flat.get("MODEL.WEIGHTS")
    if weights and os.path.isfile(weights):  # which weights: their bytes, wherever the file is named from
        path = os.path.abspath(weights)
        stat = os.stat(path)
        flat["MODEL.WEIGHTS"] = path
        flat["MODEL.WEIGHTS_SHA1"] = _file_sha1(path, stat.st_size, stat.st_mtime_ns)
    if onnx_dir:
        flat["ONNX_DIR"] = os.path.abspath(onnx_dir)
    device = str(cfg.MODEL.DEVICE).split(":")[0]
    for key, dtype in zip(RUN_DTYPES, (cfg.MODEL.FOSS.DET_INFERENCE_DTYPE, cfg.MODEL.AGE_HEAD.INFERENCE_DTYPE)):
        flat[key] = effective_dtype(dtype, device, backend)
    return json.loads(json.dumps(flat))


@functools.lru_cache(maxsize=1)
def _default_settings() -> dict:
    """``run_settings`` of the defaults every config starts from (detectron2's and add_foss_config's):
    what a key that a run.json lacks, written before the key existed, stood at then."""
    from detectron2.config import get_cfg

    from ..config import add_foss_config

    cfg = get_cfg()
    add_foss_config(cfg)
    return run_settings(cfg)


@functools.lru_cache(maxsize=8)
def _file_sha1(path: str, size: int, mtime_ns: int) -> str:
    """The SHA-1 of a whole file, read once for a run's check before the model loads and its
    run.json after (size and mtime in the key: a file written over is read again)."""
    sha1 = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha1.update(block)
    return sha1.hexdigest()


def open_video(source):
    """``cv2.VideoCapture`` of a video file or camera, opened; a RunError saying why not."""
    # FFmpeg's and OpenCV's own lines ("moov atom not found", "can't open camera by index") would
    # stand above the one-line error that says it; an OPENCV_FFMPEG_LOGLEVEL of the user's wins
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read once, when FFmpeg is first used
    if isinstance(source, str):
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:  # OpenCV crashes the process (a segfault) on such a name
            raise RunError(
                f"cannot open video {source!r}: its file name is not UTF-8, which OpenCV cannot open; rename it"
            ) from None
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        cap = cv2.VideoCapture(source)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        if isinstance(source, int):  # --webcam: a camera index
            raise RunError(
                f"cannot open camera {source}: no camera there, or another program is using it "
                "(--video-input reads a video file)"
            )
        why = ""
        if isinstance(source, str):
            if "://" in source:  # an address FFmpeg reads itself (http, rtsp, ...): no file to look at
                why = ": FFmpeg could not open the address (unreachable, not found there, or not a video)"
            elif os.path.isdir(source):
                why = ": a folder (--input reads a folder of photos)"
            elif not os.path.isfile(source):
                why = ": no such file"
            elif os.path.getsize(source) == 0:
                why = ": the file is empty"
            else:
                why = ": not a video OpenCV can read (an unknown format, or a file cut short)"
        raise RunError(f"cannot open video {source!r}{why}")
    picture = still_picture_format(source) if isinstance(source, str) and os.path.isfile(source) else None
    if picture:  # FFmpeg reads a photo as a video of one frame (of no frame count, under a video's name)
        cap.release()
        raise RunError(f"{source!r} is a picture ({picture}), not a video: --input reads photos")
    return cap


# Photo formats that FFmpeg also opens as a "video" of one frame. Not PIL's MPEG, which is a video
# stream PIL can name but not read, nor GIF, which FFmpeg reads as the animation it often is.
STILL_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "PPM", "MPO", "JPEG2000")


def still_picture_format(path: str) -> Optional[str]:
    """PIL's name for the format of a still photo file (JPEG, PNG, ...), whatever its name says;
    None for anything else."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.format if im.format in STILL_FORMATS and getattr(im, "n_frames", 1) == 1 else None
    except Exception:  # noqa: BLE001  (not a picture PIL knows, which is what a video is)
        return None


def video_settings(cap, source, every_n_frames: int = 1, track: bool = False, min_track_frames=None) -> dict:
    """What a video run's answers also depend on, for run.json: which video (its name, bytes, frame
    count and size: a frame number means nothing in another video), the stride and the tracking. A
    --resume with another video or other options is refused (``check_same_settings``)."""
    from .tracking import DEFAULT_MIN_FRAMES

    return {
        "VIDEO.name": os.path.basename(str(source)),
        "VIDEO.bytes": os.path.getsize(source) if isinstance(source, str) and os.path.isfile(source) else None,
        "VIDEO.fps": float(cap.get(cv2.CAP_PROP_FPS) or 25.0),
        "VIDEO.frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
        "VIDEO.size": [int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))],
        "VIDEO.every_n_frames": int(every_n_frames),
        "VIDEO.track": bool(track),
        "VIDEO.min_track_frames": (DEFAULT_MIN_FRAMES if min_track_frames is None else min_track_frames)
        if track
        else None,
    }


def check_creatable(folder: str, what: str):
    """A RunError when ``folder`` could not be made: the nearest part of it that exists is a file,
    or a folder this process may not write in (found before the model loads, not at the first write)."""
    part = nearest_existing(folder)
    if not os.path.isdir(part):
        raise RunError(f"{what} {folder}: {part} is a file, not a folder")
    if part != os.path.abspath(folder) and not os.access(part, os.W_OK | os.X_OK):
        raise RunError(f"{what} {folder}: cannot create it in {part} (no write permission)")


def check_output_folder(out_dir: str, option: str = "--output"):
    """A RunError when ``out_dir`` is a file or could not be made (``check_creatable``)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunError(f"{option} {out_dir} is a file, not a folder")
    check_creatable(out_dir, option)


def prepare_output(
    out_dir: str, resume: bool = False, overwrite: bool = False, settings: Optional[dict] = None, write: bool = True
):
    """The rule for an output folder that holds an earlier run's results: refused unless ``resume``
    (with the same ``settings`` as that run, when both are known) or ``overwrite`` (which removes
    that run's result files and pictures, nothing else). With ``write``, ``settings``
    (``run_settings``) are then written to the folder's run.json (the run itself; the checks before
    the model loads only check)."""
    if resume and overwrite:
        raise RunError("--resume and --overwrite exclude each other")
    check_output_folder(out_dir)
    if not write:  # (a run's own call holds the folder already: output_lock)
        check_not_in_use(out_dir)
    found = existing_results(out_dir)
    if found and resume and settings is not None:
        check_same_settings(out_dir, settings)
    elif found and not resume:
        if not overwrite:
            raise RunError(
                f"{out_dir} holds the results of an earlier run ({', '.join(found)}): "
                "add --resume to finish it, --overwrite to replace it, or choose another --output"
            )
        if write:  # (not before the model loads: a run that fails to start must not lose the earlier one)
            remove_previous_run(out_dir)
    if settings is not None and write:
        os.makedirs(out_dir, exist_ok=True)
        write_json_atomic(os.path.join(out_dir, RUN_FILE), settings, indent=1)


def _journal_frame(out_dir: str) -> Optional[str]:
    """The ``frame`` of the first result in ``out_dir``'s journal (FRAME_IMAGE or FRAME_VIDEO), if any."""
    for record in iter_journal(os.path.join(out_dir, JOURNAL), warn=False):
        if "faces" in record:
            return record.get("frame")
    return None


def check_same_settings(out_dir: str, settings: dict):
    """A RunError naming the keys whose values differ from those of the run that wrote ``out_dir``
    (nothing to check for a folder written before run.json existed)."""
    try:
        with open(os.path.join(out_dir, RUN_FILE)) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return
    # a run.json written before it held a video's keys (VIDEO.*) is checked on the rest
    older = not any(k.startswith("VIDEO.") for k in saved)
    if not any(k in saved for k in RUN_DTYPES):
        settings = {k: v for k, v in settings.items() if k not in RUN_DTYPES}
    if older and any(k.startswith("VIDEO.") for k in settings) and _journal_frame(out_dir) == FRAME_IMAGE:
        # a photo run's run.json has no VIDEO.* keys either: its journal says what it answered
        raise RunError(
            f"--resume: {out_dir} holds a run over photos, which a video cannot finish: choose another "
            "--output, or --overwrite"
        )
    keys = set(saved) | {k for k in settings if not (older and k.startswith("VIDEO."))}
    keys -= set(SAME_ANSWERS)
    if "MODEL.WEIGHTS_SHA1" in saved:
        keys.discard("MODEL.WEIGHTS")  # the same bytes named from elsewhere are the same model
    else:  # a run.json from before: the weights' path, as written then
        keys.discard("MODEL.WEIGHTS_SHA1")
        if saved.get("MODEL.WEIGHTS") and "://" not in saved["MODEL.WEIGHTS"]:
            saved["MODEL.WEIGHTS"] = os.path.abspath(saved["MODEL.WEIGHTS"])
    # a key added to the config since the run started is taken at its default, which is how the
    # code of then ran (a run of the version before resumed with this one is not refused over it)
    defaults = _default_settings()

    def then(k):
        return saved[k] if k in saved else defaults.get(k)

    diff = [k for k in sorted(keys) if then(k) != settings.get(k)]
    if diff:

        def then_now(k):
            if k == "MODEL.WEIGHTS_SHA1":  # a checksum says nothing to a reader: the files, and that they differ
                k, why = "MODEL.WEIGHTS", " (other contents)"
            else:
                why = ""
            return f"{k}: {then(k)!r} then, {settings.get(k)!r} now{why}"

        shown = "; ".join(then_now(k) for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise RunError(
            f"--resume with other settings than the run in {out_dir} ({shown}{more}): its answers would mix "
            "two runs' models, thresholds or videos; give the same options, or --overwrite"
        )


def remove_previous_run(out_dir: str):
    """Delete the result files and the pictures that the journal (or an older predictions.json) lists."""
    journal = os.path.join(out_dir, JOURNAL)
    # read as it goes (a day of video's journal would not fit in memory)
    pictures = {r["picture"] for r in iter_journal(journal) if r.get("picture")}
    try:
        if not os.path.isfile(journal):  # written by runs without a journal
            with open(os.path.join(out_dir, "predictions.json")) as f:
                pictures |= {picture_path(k) for k in json.load(f)}
    except (OSError, ValueError, TypeError):
        pass
    try:
        with open(os.path.join(out_dir, "people.json")) as f:  # a video run's thumbnails
            pictures |= {p["thumbnail"] for p in json.load(f)["people"] if p.get("thumbnail")}
    except (OSError, ValueError, TypeError, KeyError):
        pass
    out = os.path.realpath(out_dir)
    removed = 0
    for rel in sorted(pictures):
        path = os.path.join(out_dir, rel)
        if os.path.isfile(path) and os.path.realpath(path).startswith(out + os.sep):
            os.remove(path)
            removed += 1
    for f in existing_results(out_dir):
        os.remove(os.path.join(out_dir, f))
    thumbs = os.path.join(out_dir, "thumbnails")
    if os.path.isdir(thumbs) and not os.listdir(thumbs):
        os.rmdir(thumbs)
    logger.info("--overwrite: removed the earlier run's result files and %d pictures from %s", removed, out_dir)


def picture_path(key: str) -> str:
    """Where the picture of input ``key`` goes, relative to the output folder (never outside it)."""
    parts = [p for p in os.path.normpath(str(key)).split(os.sep) if p not in ("", ".", "..")]
    rel = os.path.join(*parts) if parts else "image"
    return rel if rel.lower().endswith((".jpg", ".jpeg", ".png")) else rel + ".jpg"


def _folded(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def unique_picture(key: str, taken: Dict[str, str]) -> str:
    """``picture_path(key)``, or with ~2, ~3, ... before its extension when another input's picture
    has that name (``x.webp`` and ``x.webp.jpg`` both draw to x.webp.jpg); ``taken``: {name as a
    case-insensitive, normalising filesystem sees it (``_folded``): key}, updated. On macOS's APFS
    or an exFAT stick x.jpg and X.JPG (or the two ways of writing é) are one file: the second
    picture replaced the first, which the journal still gave its own key."""
    rel = picture_path(key)
    if taken.get(_folded(rel), key) != key:
        root, ext = os.path.splitext(rel)
        n = 2
        while _folded(f"{root}~{n}{ext}") in taken:
            n += 1
        rel = f"{root}~{n}{ext}"
    taken[_folded(rel)] = key
    return rel


# ---------------------------------------------------------------- the journal and the writer


def file_signature(path: str) -> dict:
    """What tells an image file from another under the same name, cheaply: its size and the SHA-1
    of its first 64 KiB (a folder copied keeps it, unlike the modification time)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return {"bytes": os.path.getsize(path), "head_sha1": hashlib.sha1(head).hexdigest()}


def iter_journal(path: str, locate: bool = False, warn: bool = True) -> Iterator[dict]:
    """The records of a journal, read as they are used; a line cut short by a crash is ignored
    (with a warning unless not ``warn``). With ``locate``, a result also holds where its faces'
    JSON text lies in the file (``FACES_AT``: see ``faces_location``)."""
    if not os.path.isfile(path):
        return
    with open(path, "rb") as f:
        start = 0
        for i, raw in enumerate(f, 1):
            line_start, start = start, start + len(raw)
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if warn:
                    logger.warning("%s line %d is incomplete (an interrupted write): ignored", path, i)
                continue
            if locate and "faces" in record:
                record[FACES_AT] = faces_location(raw, record["faces"], line_start)
            yield record


def read_journal(path: str) -> List[dict]:
    """The records of a journal (``iter_journal``)."""
    return list(iter_journal(path))


# a journal record's faces, located: the start and length of their JSON text in the journal
# (packed in one int: a long run keeps one for every image or frame), or that text itself
FACES_AT = "_faces_at"
_LENGTH_BITS = 32


def faces_location(line: bytes, faces: list, line_start: int):
    """Where ``faces``' JSON text lies in the journal ``line`` that starts at byte ``line_start``
    (json.dumps writes the same text for what it read); the text itself when it is not there as
    written by PredictionWriter (a journal edited by hand)."""
    text = json.dumps(faces)
    i = line.find(b'"faces": ' + text.encode())
    return text if i < 0 else _location(line_start + i + len('"faces": '), text)


def _location(start: int, text: str):
    """``text``, found at byte ``start`` of the journal, as its start and length packed in one int
    (the text itself when too long to pack)."""
    return start << _LENGTH_BITS | len(text) if len(text) < 1 << _LENGTH_BITS else text


def replay(records: Iterable[dict]) -> Tuple[Dict[str, list], Dict[str, str]]:
    """({key: faces}, {key: reason}) from journal records; a later record of a key wins."""
    results, skipped = {}, {}
    for r in records:
        key = str(r.get("key"))
        if "faces" in r:
            results[key] = r["faces"]
            skipped.pop(key, None)
        elif "skipped" in r:
            skipped[key] = r["skipped"]
        elif "withdrawn" in r:  # its file changed: the earlier answer is not this file's
            results.pop(key, None)
    return results, skipped


def journal_results(path: str) -> Iterator[Tuple[str, list, Optional[float]]]:
    """(key, faces, time_s or None) of each result of a journal, those ``replay`` keeps, read in
    two passes rather than held (a day of video's faces as dicts would not fit in memory): the
    first notes each key's last word, the second yields the results that are."""
    numbered = ({**r, "faces": i} if "faces" in r else r for i, r in enumerate(iter_journal(path)))
    last = replay(numbered)[0]  # {key: the number of its record that stands}
    for i, r in enumerate(iter_journal(path, warn=False)):
        if "faces" in r and last.get(str(r.get("key"))) == i:
            yield str(r.get("key")), r["faces"], r.get("time_s")


def frame_times(out_dir: str) -> Dict[str, float]:
    """{frame key: its timestamp in seconds} of a video run's journal (frames written before the
    journal held times have none: their index / fps stands in)."""
    return {r["key"]: r["time_s"] for r in iter_journal(os.path.join(out_dir, JOURNAL)) if "time_s" in r}


def predictions_file(path: str) -> str:
    """The file ``load_predictions`` reads for ``path``: itself, or a folder's journal or, without
    one, its predictions.json; FileNotFoundError when there is none."""
    if os.path.isdir(path):
        for name in (JOURNAL, "predictions.json"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise FileNotFoundError(f"no {JOURNAL} or predictions.json in {path}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"predictions not found: {path}")
    return path


def load_predictions(path: str) -> Dict[str, list]:
    """{key: faces} from a predictions.json, a predictions.jsonl journal or a folder holding either
    (the journal first: it holds everything an interrupted run finished)."""
    path = predictions_file(path)
    if path.endswith(".jsonl"):
        return replay(read_journal(path))[0]
    with open(path) as f:
        try:
            data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(
                f"{path} is not JSON ({e}): give predictions.json, predictions.jsonl or the run's folder"
            ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected {{key: [faces]}}, got a {type(data).__name__}")
    return data


def csv_key(key: str) -> str:
    """The key as the CSV writes it: a file name that is not UTF-8 (a Latin-1 "Zo\xeb.jpg" of an old
    archive reaches Python as a lone surrogate, which no UTF-8 file can hold) with its undecodable
    bytes written \\udcXX (the JSON files escape them alike)."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _csv_rows(key: str, faces: List[dict]):
    k = csv_key(key)
    return [
        [k, i, *f["box"], f["score"], f["age"], f["age_std"], f["gender"], f["p_female"], f.get("track_id", "")]
        for i, f in enumerate(faces)
    ]


def _truncate_partial_line(path: str):
    """Cut a last line that a crash left without its newline, so that appending starts a new line;
    a whole record without its newline (a journal edited by hand) gets one instead, as
    ``read_journal`` read it."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    with open(path, "rb+") as f:
        end = f.seek(-1, os.SEEK_END) + 1
        if f.read(1) == b"\n":
            return
        # the last line only, read back from the end in blocks (a long run's journal is large)
        tail, start = b"", end
        while start > 0 and b"\n" not in tail:
            step = min(start, 1 << 16)
            start -= step
            f.seek(start)
            tail = f.read(step) + tail
        cut = tail.rfind(b"\n") + 1
        try:
            json.loads(tail[cut:])
        except ValueError:  # (JSONDecodeError, UnicodeDecodeError)
            f.truncate(start + cut)
        else:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")


# predictions.json is rewritten during a run at most this share of the time: a rewrite costs what
# the run has found so far, so at a fixed period a long run (an hour of video, thousands of group
# photos) would spend ever more of its time rewriting it.
SAVE_TIME_SHARE = 0.05


class PredictionWriter:
    """The journal, ``predictions.csv``, ``predictions.json`` and ``skipped.json`` under ``out_dir``
    (see the module docstring). With ``resume`` the journal and CSV are continued and the JSON
    rebuilt from the journal; ``done`` holds the keys finished before, ``faces(key)`` their faces.

    Each key's faces are kept where they are in the journal, not in memory: predictions.json is
    copied together from there, so a run's memory does not grow with the faces it finds (a day of
    video, a survey of thousands of crowds), and nothing found is encoded twice."""

    def __init__(
        self,
        out_dir: str,
        resume: bool = False,
        frame: str = FRAME_IMAGE,
        save_every_s: float = 30.0,
        clock=time.monotonic,
    ):
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir, self.frame, self.save_every_s, self.clock = out_dir, frame, save_every_s, clock
        self._journal_path = journal = os.path.join(out_dir, JOURNAL)
        # {key: its faces' location in the journal (faces_location)}, in the order they were written
        self._at, self.skipped = {}, {}
        self.sources, self.pictures = {}, {}  # {key: file_signature}, {picture: key}
        self._reader = None  # (the journal, opened to read faces back when first needed)
        if resume:
            legacy = os.path.join(out_dir, "predictions.json")
            if not self._replay_journal() and os.path.isfile(legacy):  # a run from before the journal existed
                results = load_predictions(legacy)
                write_text_atomic(
                    journal, "".join(json.dumps({"key": k, "faces": v}) + "\n" for k, v in results.items())
                )
                del results
                self._replay_journal()
            _truncate_partial_line(journal)
            self._reconcile_csv()
        # its JSON is ASCII and no newline is translated: a line's place is a count of the file's bytes
        self._journal = open(journal, "a" if resume else "w", encoding="utf-8", newline="")
        csv_path = os.path.join(out_dir, "predictions.csv")
        new_csv = not resume or not os.path.isfile(csv_path) or os.path.getsize(csv_path) == 0
        self._csv_file = open(csv_path, "a" if resume else "w", newline="")
        self._csv = csv.writer(self._csv_file)
        if new_csv:
            self._csv.writerow(CSV_FIELDS)
            self._csv_file.flush()
        self.save()

    @property
    def done(self):
        """The keys with a result (finished before, with ``resume``, or in this run)."""
        return self._at.keys()

    def _replay_journal(self) -> int:
        """Takes up the journal a --resume continues, record by record (a long run's faces are not
        all read into memory at once): ``replay``'s results, as locations, and the skipped, the
        file signatures and the pictures. Returns the records read."""
        read = 0

        def located():
            nonlocal read
            for r in iter_journal(self._journal_path, locate=True):
                read += 1
                key = str(r.get("key"))  # (as replay reads a record, one edited by hand too)
                if r.get("picture"):
                    self.pictures[r["picture"]] = key
                if "faces" in r:
                    if "source" in r:
                        self.sources[key] = r["source"]
                    r = {"key": key, "faces": r[FACES_AT]}
                yield r

        self._at, self.skipped = replay(located())
        return read

    def _reconcile_csv(self):
        """Make the CSV hold each finished key's rows exactly once: the journal line of an image is
        written before its CSV rows, so a kill between the two leaves rows to append; anything else
        that does not match (a row cut short) has the CSV rebuilt from the journal."""
        path = os.path.join(self.out_dir, "predictions.csv")
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            return self._write_csv(path, self._all_csv_rows())
        # read row by row, as the journal's results: a long run's CSV would not fit in memory
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            whole = f.read(1) == b"\n"
        try:
            with open(path, newline="") as f:
                rows = csv.reader(f)
                header = next(rows, None)
                counts = Counter(row[0] for row in rows if row)
        except (csv.Error, UnicodeDecodeError):  # (before Python 3.11 csv refused NUL bytes: a power cut's zeros)
            header, counts = None, Counter()
        consistent = header == CSV_FIELDS and whole
        if consistent and counts:
            written = {csv_key(k): len(faces) for k, faces in self.results()}
            consistent = all(written.get(k) == n for k, n in counts.items())
            del written
        if consistent:
            missing = (r for k in self._at if csv_key(k) not in counts for r in _csv_rows(k, self.faces(k)))
            with open(path, "a", newline="") as f:
                csv.writer(f).writerows(missing)
        else:
            logger.warning("%s does not match %s (an interrupted write): rebuilt from the journal", path, JOURNAL)
            self._write_csv(path, self._all_csv_rows())

    def _all_csv_rows(self) -> Iterator[list]:
        """Every result's CSV rows, as they are read from the journal."""
        return (r for k, faces in self.results() for r in _csv_rows(k, faces))

    def _text(self, at) -> str:
        """The faces' JSON text at location ``at`` (``faces_location``)."""
        if isinstance(at, str):
            return at
        if self._reader is None:
            self._reader = open(self._journal_path, "rb")
        self._reader.seek(at >> _LENGTH_BITS)
        return self._reader.read(at & ((1 << _LENGTH_BITS) - 1)).decode()

    def results(self) -> Iterator[Tuple[str, list]]:
        """(key, faces) of every result, in the order they were written."""
        return ((k, json.loads(self._text(at))) for k, at in self._at.items())

    def faces(self, key: str) -> list:
        return json.loads(self._text(self._at[str(key)]))

    @staticmethod
    def _write_csv(path, rows: Iterable[list]):
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CSV_FIELDS)
            w.writerows(rows)

    def forget(self, keys: Iterable[str], why: str = "its file changed since it was answered"):
        """Withdraw finished results (their files changed since, or their pictures could not be
        written): a journal line says ``why`` (a re-run that fails then leaves no answer behind),
        their pictures are removed, the CSV is rewritten without them and the JSON saved."""
        keys = set(keys) & self.done
        if not keys:
            return
        for k in sorted(keys):
            self._journal_write(json.dumps({"key": k, "withdrawn": why}))
            self._at.pop(k)
            self.sources.pop(k, None)
        for picture, k in self.pictures.items():
            if k in keys and os.path.isfile(os.path.join(self.out_dir, picture)):
                os.remove(os.path.join(self.out_dir, picture))
        self._csv_file.close()
        csv_path = os.path.join(self.out_dir, "predictions.csv")
        self._write_csv(csv_path, self._all_csv_rows())
        self._csv_file = open(csv_path, "a", newline="")
        self._csv = csv.writer(self._csv_file)
        self.save()

    def _journal_write(self, line: str) -> int:
        """Appends one record's JSON ``line``; returns where it starts: the file's own size, as a
        count kept beside it fell behind when an error came between a write and its count (a
        second Ctrl-C, a flush that failed and was written later), and predictions.json then
        copied other bytes."""
        self._journal.flush()
        start = os.fstat(self._journal.fileno()).st_size
        self._journal.write(line + "\n")
        self._journal.flush()
        return start

    def add(
        self,
        key: str,
        faces: List[dict],
        width: int,
        height: int,
        picture: Optional[str] = None,
        time_s: Optional[float] = None,
        source: Optional[dict] = None,
    ):
        key = str(key)
        head = {"key": key, "width": int(width), "height": int(height), "frame": self.frame}
        tail = {}
        if time_s is not None:  # a video frame's own timestamp (variable frame rates)
            tail["time_s"] = round(float(time_s), 3)
        if picture:
            tail["picture"] = picture
        if source is not None:  # an image file's file_signature, checked by a --resume
            tail["source"] = source
        # json.dumps of the whole record, written in three parts to know where the faces lie
        head_text, text = json.dumps(head)[:-1] + ', "faces": ', json.dumps(faces)
        line = head_text + text + (", " + json.dumps(tail)[1:] if tail else "}")
        # first: a kill before the CSV rows leaves rows to append on --resume
        at = _location(self._journal_write(line) + len(head_text), text)
        self._csv.writerows(_csv_rows(key, faces))
        self._csv_file.flush()
        if source is not None:
            self.sources[key] = source
        self._at[key] = at
        self.skipped.pop(key, None)
        if self.clock() >= self._next_save:
            self.save()

    def skip(self, key: str, reason: str, log: bool = True, **extra):
        key = str(key)
        if log:
            logger.warning("skipped %s: %s", key, reason)
        if self.skipped.get(key) == reason:  # already recorded by the run this one resumes
            return
        self._journal_write(json.dumps({"key": key, "skipped": reason, **extra}))
        self.skipped[key] = reason

    def save(self):
        start = self.clock()
        with atomic_path(os.path.join(self.out_dir, "predictions.json")) as tmp, open(tmp, "w") as f:
            sep = "{\n"  # (the same text as one key a line joined in memory)
            for k, at in self._at.items():
                f.write(f"{sep}{json.dumps(k)}: {self._text(at)}")
                sep = ",\n"
            f.write("\n}\n" if self._at else "{}\n")
        write_json_atomic(os.path.join(self.out_dir, "skipped.json"), self.skipped, indent=1)
        end = self.clock()
        self._next_save = end + max(self.save_every_s, (end - start) / SAVE_TIME_SHARE)

    def close(self):
        """Save, then close the journal and the CSV, each tried whatever the steps before did
        (a full disk); the first error is raised."""
        first = None
        for step in (self.save, self._csv_file.close, self._journal.close, self._close_reader):
            try:
                step()
            except OSError as e:
                first = first or e
        if first is not None:
            raise first

    def _close_reader(self):
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _NoWriter:
    """No output folder: results are logged and counted, not kept (a camera may run for days)."""

    def __init__(self, log: bool = True):
        self.skipped, self.done, self.log = {}, set(), log
        self.pictures = {}
        self.n_results = self.n_faces = 0

    def add(self, key, faces, width=None, height=None, picture=None, time_s=None, source=None):
        self.n_results += 1
        self.n_faces += len(faces)
        if self.log:
            logger.info("%s: %d faces %s", key, len(faces), [(f["age"], f["gender"]) for f in faces])

    def skip(self, key, reason, log: bool = True, **extra):
        self.skipped[str(key)] = reason
        if log:
            logger.warning("skipped %s: %s", key, reason)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------- threads and signals


class _Drawer:
    """Draws and writes pictures in a thread, in order; finished jobs come back from ``finished()``
    as (payload, error message or None). ``submit`` waits when ``depth`` jobs are pending."""

    def __init__(self, depth: int = 2):
        self._in = queue.Queue(maxsize=depth)
        self._out = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="foss-d2-drawer", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            job = self._in.get()
            if job is None:
                return
            fn, payload = job
            try:
                fn()
                self._out.put((payload, None))
            except Exception as e:  # the results stand; the picture is reported missing
                self._out.put((payload, f"could not write the picture with the faces drawn: {e}"))

    def submit(self, fn, payload):
        self._in.put((fn, payload))

    def finished(self):
        done = []
        while True:
            try:
                done.append(self._out.get_nowait())
            except queue.Empty:
                return done

    def close(self):
        self._in.put(None)
        self._thread.join()
        return self.finished()


class _StopSignals:
    """SIGTERM and Ctrl-C (SIGINT) while a run is writing: the first one is noted, no new input goes
    into the model (``until_stopped``), the inputs in it are finished and recorded, and then
    ``check()`` raises Interrupted, so that no journal line or CSV row is torn, no finished answer
    is thrown away and the files close cleanly; a second one raises at once. Outside the main
    thread signals are left alone."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def check(self):
        if self.signum is not None:
            raise Interrupted(self.signum)

    def until_stopped(self, items):
        """``items`` until a signal is noted."""
        for item in items:
            if self.signum is not None:
                return
            yield item

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


# ---------------------------------------------------------------- drawing


def _write_picture(dst: str, img_bgr, faces, max_side):
    vis = draw_predictions(img_bgr, faces, max_side)
    # encoded here and written by Python: cv2.imwrite crashed the process (a segfault) on a file
    # name that is not UTF-8
    ext = os.path.splitext(dst)[1]
    ok, data = cv2.imencode(ext, vis)
    if not ok:
        raise OSError(f"cannot encode the picture {dst} as {ext}")
    with atomic_path(dst) as tmp, open(tmp, "wb") as f:  # a kill mid-write leaves no half picture
        f.write(data.tobytes())


# ---------------------------------------------------------------- images and videos


def _read_images(items, fmt, max_pixels, signatures: Optional[dict] = None):
    """(key, image, None) or (key, None, error) for each (path, key); with ``signatures``, each file
    read has its ``file_signature`` put there (taken as it is read, for the journal)."""
    for path, key in items:
        try:
            img = read_image_file(path, fmt, max_pixels=max_pixels)
            if signatures is not None:
                signatures[key] = _signature_or_none(path)
            yield key, img, None
        except (FileNotFoundError, ValueError) as e:
            yield key, None, e
        except Exception as e:  # noqa: BLE001  (one bad file must not end the batch)
            yield key, None, ValueError(f"cannot read image {path}: {type(e).__name__}: {e}")


def face_cap(predictor) -> int:
    """The most faces the model reports on one image (MODEL.FOSS.K_TEST; 0 when unknown)."""
    cfg = getattr(predictor, "cfg", None)
    return int(cfg.MODEL.FOSS.K_TEST) if cfg is not None else 0


def warn_if_capped(key: str, faces, cap: int, note: str = "") -> bool:
    """A warning when an image's faces reach the cap: a crowd may hold more than were reported."""
    if not (cap and faces is not None and len(faces) >= cap):
        return False
    logger.warning(
        "%s: %d faces, the most MODEL.FOSS.K_TEST lets through: there may be more (raise it, e.g. "
        "MODEL.FOSS.K_TEST %d)%s",
        key,
        len(faces),
        cap * 3,
        note,
    )
    return True


def _record(writer, finished):
    """Journal what the drawer finished: ("add", key, faces, w, h, picture) or ("skip", key, reason, extra)."""
    for payload, error in finished:
        if payload is None:  # a frame done before (--resume), drawn again for the video
            continue
        if payload[0] == "skip":
            writer.skip(payload[1], payload[2], **payload[3])
            continue
        _, key, faces, w, h, picture, *rest = payload  # rest: (time_s,) or (time_s, source)
        writer.add(key, faces, w, h, None if error else picture, *rest)
        if error:
            writer.skip(key, error)


def _skip(writer, drawer, key, reason, **extra):
    """Record a skipped input after the pictures before it, so that the journal keeps the input order."""
    if drawer is None:
        writer.skip(key, reason, **extra)
    else:
        drawer.submit(lambda: None, ("skip", key, reason, extra))


def _changed_since(writer, items: List[Tuple[str, str]]) -> List[str]:
    """Keys of ``items`` that the journal answered for another file than the one there now (its
    recorded ``file_signature`` differs: another folder's photo under the same name, an edited one)."""
    changed = []
    for path, key in items:
        recorded = writer.sources.get(key)
        if recorded is None or key not in writer.done:
            continue
        now = _signature_or_none(path)
        if now is not None and now != recorded:  # (unreadable now: its earlier answer stands)
            changed.append(key)
    return changed


def _signature_or_none(path: str) -> Optional[dict]:
    try:
        return file_signature(path)
    except OSError:
        return None


def predictor_settings(predictor) -> Optional[dict]:
    """``run_settings`` of a FOSSPredictor's config (None for any other callable)."""
    cfg = getattr(predictor, "cfg", None)
    if cfg is None:
        return None
    return run_settings(cfg, getattr(predictor, "onnx_dir", None), getattr(predictor, "backend", "pytorch"))


@_holding_output
def run_images(
    predictor,
    items: List[Tuple[str, str]],
    out_dir: Optional[str],
    fmt: str,
    *,
    skipped: Optional[Dict[str, str]] = None,
    draw: bool = True,
    draw_max_side: int = DEFAULT_DRAW_MAX_SIDE,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    resume: bool = False,
    overwrite: bool = False,
    prefetch: int = 2,
    workers: int = 1,
) -> RunSummary:
    """Run ``predictor`` on each (path, key) of ``items`` (see the module docstring for what is
    written); ``skipped``: inputs already found unusable, recorded as such; ``workers``: images in
    the model at once."""
    if out_dir:
        check_output(out_dir, [p for p, _ in items])
        prepare_output(out_dir, resume, overwrite, predictor_settings(predictor))
    inputs = {os.path.realpath(p) for p, _ in items}
    with _StopSignals() as stop, PredictionWriter(out_dir, resume=resume) if out_dir else _NoWriter() as writer:
        for key, reason in (skipped or {}).items():
            writer.skip(key, reason, log=False)  # collect_inputs said so already
        changed = _changed_since(writer, items) if out_dir and resume else []
        if changed:
            logger.warning(
                "--resume: %d %s not the %s the run before answered (e.g. %s: another file under that name, "
                "or edited since): run again",
                len(changed),
                *(("image is", "file") if len(changed) == 1 else ("images are", "files")),
                changed[0],
            )
            writer.forget(changed)
        # answered, but the picture could not be written (a full disk): run again for the picture
        undrawn = [k for _, k in items if k in writer.done and k in writer.skipped] if resume and draw else []
        if undrawn:
            logger.info("--resume: %d images whose pictures could not be written run again", len(undrawn))
            writer.forget(undrawn, "its picture could not be written")
        todo = [(p, k) for p, k in items if k not in writer.done]
        signatures = {} if out_dir else None  # {key: file_signature}, filled by the reader thread
        if len(todo) < len(items):
            logger.info(
                "--resume: %d of %d images done before, %d to go", len(items) - len(todo), len(items), len(todo)
            )
        before = len(items) - len(todo)
        reader = Prefetcher(functools.partial(_read_images, todo, fmt, max_pixels, signatures), prefetch + workers - 1)
        drawer = _Drawer() if out_dir and draw else None
        taken = {_folded(p): k for p, k in writer.pictures.items()}  # written so far (a resumed run's)
        done = 0
        results = predict_in_order(predictor, stop.until_stopped(reader), workers)
        face_limit = face_cap(predictor)
        try:
            for key, img, error, faces in tqdm(results, total=len(todo), desc="images", disable=len(todo) < 2):
                warn_if_capped(key, faces, face_limit)
                if error is not None:
                    extra = (
                        {"width": error.size[0], "height": error.size[1]}
                        if isinstance(error, ImageTooLargeError)
                        else {}
                    )
                    _skip(writer, drawer, key, str(error), **extra)
                    continue
                h, w = img.shape[:2]
                done += 1
                source = signatures.pop(key, None) if out_dir else None
                if drawer is None:
                    writer.add(key, faces, w, h, source=source)
                    continue
                rel = unique_picture(key, taken)
                dst = os.path.join(out_dir, rel)
                if os.path.realpath(dst) in inputs:  # check_output makes this unreachable; never write over an input
                    drawer.submit(lambda: None, ("add", key, faces, w, h, None, None, source))
                    _skip(writer, drawer, key, f"picture not drawn: {dst} is an input")
                    continue
                bgr = img if fmt == "BGR" else swap_red_blue(img)
                drawer.submit(
                    functools.partial(_write_picture, dst, bgr, faces, draw_max_side),
                    ("add", key, faces, w, h, rel, None, source),
                )
                _record(writer, drawer.finished())
            stop.check()  # after the inputs in the model when the signal came, recorded
        finally:
            results.close()
            reader.close()
            if drawer is not None:
                _record(writer, drawer.close())
        n_skipped = len(writer.skipped)
    return RunSummary(inputs=len(items) + len(skipped or {}), done=done, before=before, skipped=n_skipped)


class VideoTimeline:
    """How many slots of a video written at one ``rate`` (frames a second) each drawn frame fills,
    so that frames with their own times (a variable frame rate) keep them, as a constant-rate
    conversion does. At a constant rate: one each. A frame that comes before its slot fills none
    (it is not drawn; its answers are in predictions.json); after a gap the picture before fills
    the slots in between, at most ``MAX_HOLD_S`` seconds of them (a jump in the timestamps is not
    a pause to show for minutes). A rate that puts the first two frames more than two slots apart
    (for each frame between them, given their ``index``: broken frames are not drawn) is not the
    frames' (OpenCV reads 1000 fps from some WebM files): then one slot a frame, as without
    times. Times that go back (joined clips) count on from the frame."""

    MAX_HOLD_S = 10.0

    def __init__(self, rate: float):
        self.rate = rate
        self.start: Optional[float] = None
        self.written = 0
        self.trusted = rate > 0
        self._first_index: Optional[int] = None

    def _anchor(self, time_s: float, slot: int):
        self.start = time_s - slot / self.rate

    def slots(self, time_s: Optional[float], index: Optional[int] = None) -> int:
        """Slots the frame fills; ``index``: its place among the processed frames (frame // stride)."""
        if time_s is None or not self.trusted:
            self.written += 1
            return 1
        if self.start is None:
            self._anchor(time_s, self.written)
            self._first_index = index
        slot = round((time_s - self.start) * self.rate)
        apart = index - self._first_index if index is not None and self._first_index is not None else 1
        if self.written == 1 and slot > 2 * max(1, apart):
            logger.warning(
                "the video's frame rate (%.4g a second) does not fit its frames' times: the annotated video "
                "has one picture a frame",
                self.rate,
            )
            self.trusted = False
            self.written += 1
            return 1
        if slot < self.written - 1:  # back in time: a joined clip
            self._anchor(time_s, self.written)
            slot = self.written
        elif slot < self.written:
            return 0
        n = slot - self.written + 1
        most = 1 + round(self.MAX_HOLD_S * self.rate)
        if n > most:
            n = most
            self._anchor(time_s, self.written + n - 1)
        self.written += n
        return n


class _VideoFrames:
    """A video's frames for ``run_video``: ``read()`` yields (index, frame, cut, reason, time) for
    frames 0, n, 2n, ... (``stride`` n), and (key, None, None, reason, None) for frames that did not
    read. A frame that does not read is broken only if a later one reads: OpenCV's frame count is an
    estimate (variable frame rate, remuxed files), and the frames past the real end fail too; after
    ``max_bad`` processed frames in a row the rest is given up. With ``cuts_threshold`` and a stride
    the scene cuts are measured on every frame, the skipped ones too (a pan's small steps add up to a
    cut's difference over four frames), and handed to the tracker with the next processed frame."""

    def __init__(self, cap, total, fps, stride, live, max_bad, cuts_threshold=None):
        self.cap, self.total, self.fps, self.stride = cap, total, fps, stride
        self.live, self.max_bad, self.cuts_threshold = live, max_bad, cuts_threshold

    def _time(self, idx: int) -> Optional[float]:
        """The frame just read's own timestamp in seconds (a variable frame rate's gaps included),
        else its index over the average fps; None for a camera."""
        if self.live:
            return None
        ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
        return ms / 1000.0 if ms > 0 or idx == 0 else idx / self.fps

    @staticmethod
    def _broken(failed):
        """The entries for the processed frames in ``failed`` (emptied), a later frame having read:
        each one unreadable."""
        entries = [(bad_idx, None, None, "unreadable frame", None) for bad_idx in failed]
        failed.clear()
        return entries

    def _unread(self, failed, gave_up: bool):
        """One entry from the first frame in ``failed`` to the announced last frame: processed
        frames that never read, and no later frame did."""
        if not failed:
            return []
        last = self.total - 1
        key = str(failed[0]) if failed[0] == last else f"{failed[0]}-{last}"
        if gave_up:
            why = (
                f"not read: {len(failed)} frames in a row from frame {failed[0]} could not be read, so the rest "
                f"of the video (to frame {last}) is left out"
            )
        else:
            why = (
                f"not read: the video ends at frame {failed[0]}, before the {self.total} frames its header "
                "announced (an estimate for some files, or a file cut short)"
            )
        return [(key, None, None, why, None)]

    def read(self):
        cap, total = self.cap, self.total
        idx, failed, cut = -1, [], False
        scene = None
        if self.cuts_threshold is not None:
            from .tracking import SceneCuts

            scene = SceneCuts(self.cuts_threshold)
        while True:
            idx += 1
            if idx % self.stride:
                if scene is not None:
                    ok, between = cap.read()
                    cut = (scene(between) or cut) if ok else cut
                else:
                    ok = cap.grab()
                if not ok and (total is None or idx >= total):
                    yield from self._unread(failed, gave_up=False)
                    return
                if ok:  # a later frame is there: the ones before it were broken
                    yield from self._broken(failed)
                continue
            ok, frame = cap.read()
            if not ok:
                if total is not None and idx < total and len(failed) < self.max_bad:
                    failed.append(idx)
                    continue
                yield from self._unread(failed, gave_up=total is not None and idx < total)
                return
            yield from self._broken(failed)
            if scene is not None:
                cut = scene(frame) or cut
            yield idx, frame, (cut if scene is not None else None), None, self._time(idx)
            cut = False


class _AnnotatedVideo:
    """``run_video``'s annotated video at ``path``: each drawn frame fills the slots its time gives
    (``VideoTimeline``), a gap holding the picture before; the writer opens at the first picture's
    size."""

    def __init__(self, path: str, rate: float, draw_max_side: int):
        self.path, self.rate, self.draw_max_side = path, rate, draw_max_side
        self.timeline = VideoTimeline(rate)
        self.writer = None
        self.last = None

    def write(self, frame, faces, time_s, index=None):
        n = self.timeline.slots(time_s, index)
        if not n:
            return
        vis = draw_predictions(frame, faces, self.draw_max_side)
        if self.writer is None:
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.rate, vis.shape[1::-1])
        for _ in range(n - 1):  # a gap in the frames' times: the picture before is held
            self.writer.write(self.last)
        self.writer.write(vis)
        self.last = vis

    def close(self):
        if self.writer is not None:
            self.writer.release()


@_holding_output
def run_video(
    predictor,
    source,
    out_dir: Optional[str],
    fmt: str,
    max_bad_frames: int = 25,
    *,
    draw: bool = True,
    draw_max_side: int = DEFAULT_DRAW_MAX_SIDE,
    resume: bool = False,
    overwrite: bool = False,
    prefetch: int = 2,
    track: bool = False,
    min_track_frames: Optional[int] = None,
    every_n_frames: int = 1,
    workers: int = 1,
) -> RunSummary:
    """Run ``predictor`` on each frame of a video file or a camera (``source`` 0); with ``out_dir``
    the annotated video is ``<name>_foss.mp4`` there, its frames placed by their times
    (``VideoTimeline``). ``resume`` skips the model on the frames in the journal but still draws
    them, so the annotated video is whole. ``track``: faces tracked
    across frames (tracking.py): each face gets a ``track_id``, the video shows each track's answer
    so far, and people.json/.csv and thumbnails/ (one answer per person) are written at the end.
    ``every_n_frames``: only frames 0, n, 2n, ... are read and processed (the others are skipped
    undecoded, or with tracking decoded only to measure scene cuts); keys and times stay those of the
    video, the annotated video has fps / n. ``workers``: frames of a video file in the model at once
    (a camera's: one)."""
    stride = max(1, int(every_n_frames))
    live = not isinstance(source, str)
    cap = open_video(source)  # before the output folder is touched: a video that cannot be read leaves none
    if out_dir:
        check_output(out_dir, [source] if not live else [])
        settings = predictor_settings(predictor)
        if settings is not None and not live:
            settings.update(video_settings(cap, source, stride, track, min_track_frames))
        try:
            prepare_output(out_dir, resume, overwrite, settings)
        except RunError:
            cap.release()
            raise
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    steps = -(-total // stride) if total else None
    name = os.path.splitext(os.path.basename(str(source)))[0] + "_foss.mp4"
    drawn = bool(out_dir) and draw  # --no-draw: no pictures at all
    people, cuts = None, None
    if track:
        from .tracking import DEFAULT_MIN_FRAMES, VideoPeople

        people = VideoPeople(
            fps=fps,
            frame_stride=stride,
            min_frames=DEFAULT_MIN_FRAMES if min_track_frames is None else min_track_frames,
            thumbnails=drawn,
        )
        if stride > 1 and people.tracker.cuts is not None:  # measured on the frames between too
            cuts = people.tracker.cuts.threshold
    frames = _VideoFrames(cap, total, fps, stride, live, max_bad_frames, cuts)
    annotated = _AnnotatedVideo(os.path.join(out_dir, name), fps / stride, draw_max_side) if drawn else None

    done = before = seen = 0
    face_limit, capped = face_cap(predictor), False
    with (
        _StopSignals() as stop,
        PredictionWriter(out_dir, resume, FRAME_VIDEO) if out_dir else _NoWriter(log=False) as writer,
    ):
        bar = tqdm(total=steps, desc="frames")  # with its ETA
        workers = 1 if live else max(1, workers)  # a camera's frames are read as they come
        reader = Prefetcher(frames.read, 0 if live else prefetch + workers - 1)
        drawer = _Drawer() if drawn else None

        def to_model():
            # predict_in_order's (key, image, error): the reader's fields travel in the key, and a
            # frame done before (--resume) or not read is not run
            for item in stop.until_stopped(reader):
                frame, key = item[1], str(item[0])
                if frame is None or key in writer.done:
                    yield item, None, NOT_RUN
                else:
                    yield item, (frame if fmt == "BGR" else swap_red_blue(frame)), None

        # frames in the model at once, their answers taken in frame order (the tracker's)
        results = predict_in_order(predictor, to_model(), workers)
        try:
            for (idx, frame, cut, why, time_s), _, error, faces in results:
                key = str(idx)
                seen += 1
                bar.update(1)
                if frame is None or (error is not None and error is not NOT_RUN):
                    if key not in writer.done:
                        _skip(writer, drawer, key, why or str(error))
                    continue
                h, w = frame.shape[:2]
                if key in writer.done:
                    faces, payload = writer.faces(key), None
                    before += 1
                else:
                    if not capped:  # once a video: a crowd scene would say it every frame
                        capped = warn_if_capped(f"frame {key}", faces, face_limit, "; said once a video")
                    payload = ("add", key, faces, w, h, name, time_s)
                    done += 1
                shown = people.update(idx, frame, faces, cut, time_s) if people is not None else faces
                if drawer is not None:
                    drawer.submit(functools.partial(annotated.write, frame, shown, time_s, idx // stride), payload)
                    _record(writer, drawer.finished())
                    continue
                if payload is not None:
                    writer.add(key, faces, w, h, time_s=time_s)
                if live and not out_dir:
                    cv2.imshow("FOSS-D2", draw_predictions(frame, shown, draw_max_side))
                    if cv2.waitKey(1) == 27:
                        break
            stop.check()
        finally:
            results.close()
            reader.close()
            if drawer is not None:
                _record(writer, drawer.close())
            if bar.total and bar.n < bar.total and not stop.signum:
                bar.total = bar.n  # the video ended before the frame count OpenCV announced
            bar.close()
            cap.release()
            if annotated is not None:
                annotated.close()
        n_skipped = len(writer.skipped)
    if people is not None and out_dir:
        people.finish(out_dir, reuse_thumbnails=resume)
    if not out_dir and not live:  # nothing written: say what was found
        who = f", {len(people.people())} people" if people is not None else ""
        logger.info(
            "%s: %d frames, %d faces%s (add --output to keep the answers and the annotated video)",
            source,
            writer.n_results,
            writer.n_faces,
            who,
        )
    return RunSummary(inputs=seen, done=done, before=before, skipped=n_skipped)


# ---------------------------------------------------------------- the commands' shared options


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]")
    return v


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{text} is not a number above 0")
    return v


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    v = non_negative_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} is not at least 1")
    return v


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (0: no limit)."""
    try:
        v = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return v


def add_run_arguments(p: argparse.ArgumentParser):
    """The options of every command that runs the model over inputs (demo, survey)."""
    p.add_argument("--confidence-threshold", type=probability, default=None, help="face score threshold, in [0, 1]")
    p.add_argument(
        "--max-pixels",
        type=non_negative_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"pictures over this many pixels go to skipped.json undecoded (default {DEFAULT_MAX_PIXELS:,}; 0: none)",
    )
    p.add_argument(
        "--draw-max-side",
        type=non_negative_int,
        default=DEFAULT_DRAW_MAX_SIDE,
        help=f"the pictures with the faces drawn are shrunk to this longer side (default {DEFAULT_DRAW_MAX_SIDE}; "
        "0: full size); the JSON/CSV boxes stay in original pixels",
    )
    p.add_argument("--no-draw", action="store_true", help="JSON/CSV only: no pictures drawn or written")
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="shipped",
        help="accurate: a second detector pass at 800 px on photos over 512 px (more of a crowd's small faces, "
        "about 3x the time of a group photo); fast: no mirror average, the age network and the detector's backbone "
        "in bfloat16 where the CPU has it (README, Fast on CPU); KEY VALUE overrides apply after it",
    )
    p.add_argument(
        "--backend", choices=BACKENDS, default="pytorch", help="onnxruntime: faster on CPU (pip install -e .[onnx])"
    )
    p.add_argument(
        "--onnx-dir",
        default=None,
        help="onnxruntime: the ONNX graphs to run, exported from the same weights by `foss-d2 export --format onnx` "
        "(with --int8: int8 ones); checked against MODEL.WEIGHTS (default: the model's, exported to a cache folder)",
    )
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="images or video frames in the model at once, the threads shared among them (default 0: one per "
        "thread, at most one per image, as measured fastest on 2 cores; a webcam or a GPU: 1)",
    )
    p.add_argument(
        "--no-track",
        action="store_true",
        help="videos: no face tracking (per-frame answers only; no track_id, people.json or people.csv)",
    )
    p.add_argument(
        "--every-n-frames",
        type=positive_int,
        default=1,
        help="videos: process every n-th frame only (the others do not go through the model; keys stay frame numbers)",
    )
    p.add_argument(
        "--min-track-frames",
        type=positive_int,
        default=None,
        help="videos: a track of fewer faces is dropped from people.json as detector noise (default 3)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted run in --output: skip the inputs in its predictions.jsonl, append to its CSV",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results in --output (its result files and the pictures it drew; nothing else)",
    )


def one_kind_of_input(parser: argparse.ArgumentParser, named: Dict[str, object]):
    """A usage error unless exactly one of the ``named`` options ({"--input": value, ...}) is given."""
    given = [name for name, value in named.items() if value]
    if len(given) != 1:
        names = list(named)
        choice = ", ".join(names[:-1]) + " or " + names[-1]
        parser.error(f"give one of {choice}" + (f", not {' and '.join(given)}" if given else ""))


def prepare_run(
    parser: argparse.ArgumentParser, args, out_dir: Optional[str], check_dir: Optional[str] = None, cfg=None
):
    """Everything checked before the model loads: the inputs, the output folder (``check_dir``, the
    folder that must not hold an input, defaults to ``out_dir``) and its earlier results (with
    ``cfg``: a --resume must use the settings of the run it finishes). Returns
    (items, skipped) for ``--input``; a run with no image to read writes skipped.json and exits 1."""
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    if getattr(args, "onnx_dir", None) and getattr(args, "backend", None) != "onnxruntime":
        parser.error("--onnx-dir needs --backend onnxruntime")
    if args.resume and not out_dir:
        parser.error("--resume needs --output")
    if getattr(args, "webcam", False) and args.resume:
        parser.error("--resume does not apply to --webcam")
    if args.input:  # a video's options given for photos were ignored without a word
        video_only = {
            "--every-n-frames": getattr(args, "every_n_frames", 1) != 1,
            "--min-track-frames": getattr(args, "min_track_frames", None) is not None,
            "--no-track": getattr(args, "no_track", False),
        }
        given = [name for name, on in video_only.items() if on]
        if given:
            are = "is" if len(given) == 1 else "are"
            parser.error(f"{' and '.join(given)} {are} for --video-input and --webcam, not for photos (--input)")
    items, skipped = collect_inputs(args.input, exclude=check_dir or out_dir) if args.input else ([], {})
    video = args.video_input or (0 if getattr(args, "webcam", False) else None)
    cap = None
    try:
        if video is not None:  # a video or camera that cannot be opened: said before the model loads
            cap = open_video(video)
        if out_dir:
            inputs = [*(args.input or []), *(p for p, _ in items)] + ([args.video_input] if args.video_input else [])
            check_output(check_dir or out_dir, inputs)
            backend = getattr(args, "backend", None) or "pytorch"
            settings = run_settings(cfg, getattr(args, "onnx_dir", None), backend) if cfg is not None else None
            if settings is not None and args.video_input:
                from .tracking import track_options

                settings.update(
                    video_settings(cap, args.video_input, args.every_n_frames, **track_options(args, False))
                )
            prepare_output(out_dir, args.resume, args.overwrite, settings, write=False)
    except RunError as e:
        parser.error(str(e))
    finally:
        if cap is not None:
            cap.release()
    if args.input and not items:
        if out_dir:
            run_images(None, [], out_dir, "BGR", skipped=skipped, resume=args.resume)
        where = f" (reasons in {os.path.join(out_dir, 'skipped.json')})" if out_dir and skipped else ""
        raise SystemExit(f"nothing could be processed: no image file found in {' '.join(args.input)}{where}")
    return items, skipped


def default_workers(cfg, args, n_inputs: Optional[int], threads: int) -> int:
    """--workers 0's number: one-thread workers did the most photos/s on 2 cores with either
    backend (a second image in the model while the writer thread draws: docs/RESULTS.md
    section 2, "Over a folder"), at most one per input image (a single image keeps every thread; a video file's
    frames are many); a webcam's frames go through the model as they come, and a GPU takes one
    image at a time."""
    if getattr(args, "webcam", False):
        return 1
    on_cpu = computes_on_cpu(cfg.MODEL.DEVICE, args.backend)
    many = n_inputs if n_inputs is not None and getattr(args, "input", None) else threads
    return max(1, min(threads, many)) if on_cpu else 1


def build_predictor(cfg, args, n_inputs: Optional[int] = None) -> FOSSPredictor:
    """The predictor for --backend, --onnx-dir and --workers; sets ``args.workers`` to the number
    used (``default_workers`` unless given; a webcam always 1). Threads are shared among the
    workers: each onnxruntime session is opened on its share (PyTorch's: ``predict_in_order``)."""
    import torch

    threads = torch.get_num_threads()  # (--onnx-dir without onnxruntime: prepare_run's usage error)
    if getattr(args, "webcam", False) or not args.workers:
        args.workers = default_workers(cfg, args, n_inputs, threads)
    share = max(1, threads // args.workers)
    try:
        return FOSSPredictor(cfg, backend=args.backend, onnx_dir=args.onnx_dir, threads=share)
    except (ImportError, ValueError) as e:
        raise SystemExit(str(e)) from None


# what stops a run's writing halfway (a full disk, a quota, a folder made read-only or unplugged):
# said in one line, with the way to finish
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # (of those, the ones that space freed mends)
WRITE_ERRORS = (*FULL_DISK, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def run_inputs(predictor, args, out_dir: Optional[str], fmt: str, items, skipped) -> RunSummary:
    """``run_images`` or ``run_video`` with the command's options; an interrupted run exits with
    128 + the signal after its files are closed, and one where nothing could be processed exits 1."""
    options = dict(
        draw=not args.no_draw, draw_max_side=args.draw_max_side, resume=args.resume, overwrite=args.overwrite
    )
    try:
        if args.input:
            summary = run_images(
                predictor,
                items,
                out_dir,
                fmt,
                skipped=skipped,
                max_pixels=args.max_pixels,
                workers=max(1, getattr(args, "workers", 1) or 1),
                **options,
            )
        else:
            from .tracking import track_options

            summary = run_video(
                predictor,
                args.video_input or 0,
                out_dir,
                fmt,
                **options,
                **track_options(args),
                every_n_frames=args.every_n_frames,
                workers=max(1, getattr(args, "workers", 1) or 1),
            )
    except (Interrupted, KeyboardInterrupt) as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        resumable = "" if getattr(args, "webcam", False) else " (add --resume to finish)"
        kept = f"; the results so far are in {out_dir}/{resumable}" if out_dir else ""
        print(f"interrupted by {signal.Signals(signum).name}{kept}", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    except RunError as e:
        raise SystemExit(str(e)) from None
    except OSError as e:
        if not out_dir or e.errno not in WRITE_ERRORS:
            raise
        # what was finished is in the journal (a line cut short is dropped by --resume)
        then = "free some space, then run" if e.errno in FULL_DISK else f"once {out_dir} can be written, run"
        raise SystemExit(
            f"{e.strerror} writing {e.filename or out_dir}: the results so far are in {out_dir}/{JOURNAL}; "
            f"{then} the same command with --resume to finish"
        ) from None
    if summary.nothing_processed:
        where = f" (reasons in {os.path.join(out_dir, 'skipped.json')})" if out_dir else ""
        raise SystemExit(f"nothing could be processed: every input was skipped ({summary.inputs} in all){where}")
    return summary
