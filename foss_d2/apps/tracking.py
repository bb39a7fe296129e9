"""Faces tracked across video frames: one age and gender per person, and a visitor survey.

``VideoPeople`` is what a video run calls: ``update(idx, frame, faces)`` once per frame (it adds a
``track_id`` to each face and returns the faces to draw, with their track's answer so far) and
``finish(out_dir)`` at the end, which writes ``people.json``, ``people.csv``, ``thumbnails/`` and
``people_sheet.jpg``.

Tracking is norfair's (the ``[video]`` extra; docs/DESIGN.md "Video" has the measured comparison
with ByteTrack): boxes matched by IoU, started afresh at each scene cut (a large change between
consecutive frames), so no track crosses a cut. A track is a person when it holds at least
``min_frames`` faces, one of them scoring ``min_score``; other tracks are dropped as detector noise.
"""

import csv
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..utils import write_json_atomic

logger = logging.getLogger(__name__)

PEOPLE_FIELDS = [
    "track_id",
    "first_frame",
    "last_frame",
    "first_time_s",
    "last_time_s",
    "frames_seen",
    "age",
    "age_std",
    "gender",
    "p_female",
    "thumbnail",
]
# Measured on the benchmark footage (docs/DESIGN.md): 125 of the 136 tracks that matched no true
# face lasted 1-2 frames, and the tracks of true faces that short were 4 fragments.
DEFAULT_MIN_FRAMES = 3
# A track is a person only if one of its faces scores this much: ByteTrack's rule for starting a
# track, which removed the detector's steady false faces (docs/DESIGN.md "Video").
DEFAULT_MIN_SCORE = 0.4
DEFAULT_MAX_LOST_SECONDS = 1.0  # how long a track waits for a face hidden or missed by the detector
RATE_MISFIT = 4  # FaceTracker._fit_rate: a frame rate this many steps off its frames' times is not theirs
MAX_CAMERA_FPS = 240  # ... when it is also above any camera's (slow motion included)
DEFAULT_CUT_THRESHOLD = 35.0  # grey levels (SceneCuts)
THUMB_SIDE = 128


def face_weight(face: dict) -> float:
    """How much a frame's answer counts in its person's answer: score x box height, since the
    detector's score and the face's size in pixels both make the age network's answer better."""
    x1, y1, x2, y2 = face["box"]
    return max(float(face.get("score") or 0.0), 1e-3) * max(y2 - y1, 1.0)


def aggregate(faces: Sequence[dict], method: str = "inverse_variance") -> dict:
    """One answer from a track's faces: {"age", "age_std", "p_female", "gender"}.

    A weighted mean of the frames' age distributions, whose mean is the weighted mean of their ages
    and whose std holds each frame's std and the spread between frames; P(female) is averaged with
    the same weights. ``inverse_variance`` (the default; the best of these on held-out UTKFace
    footage, docs/DESIGN.md): weights 1 / age_std^2, so that the frames the age network is sure of
    count most; ``weighted``: score x box height (``face_weight``); ``mean``: equal weights.
    ``median``: the median age and P(female); ``last``: the last frame (the per-frame answer).
    """
    aged = [f for f in faces if f.get("age") is not None]
    if not aged:
        return _answer(None, None, None)
    ages = np.array([f["age"] for f in aged], float)
    stds = np.array([f.get("age_std") or 0.0 for f in aged], float)
    pf = np.array([np.nan if f.get("p_female") is None else f["p_female"] for f in aged], float)
    if method == "last":
        age, p = ages[-1], pf[-1]
        std = stds[-1]
    elif method == "median":
        age, p = float(np.median(ages)), float(np.nanmedian(pf)) if np.isfinite(pf).any() else np.nan
        std = float(np.sqrt(np.median(stds**2)))
    else:
        w = np.array([frame_weight(f, method) for f in aged])
        w = w / w.sum()
        age = float(w @ ages)
        std = float(np.sqrt(max(w @ (stds**2 + ages**2) - age**2, 0.0)))  # the mixture's std
        ok = np.isfinite(pf)
        p = float(w[ok] @ pf[ok] / w[ok].sum()) if ok.any() else np.nan
    return _answer(age, std, p)


def frame_weight(face: dict, method: str) -> float:
    """A frame's weight in a weighted-mean ``aggregate`` (``inverse_variance``, ``weighted``, ``mean``)."""
    if method == "inverse_variance":
        return 1.0 / max(float(face.get("age_std") or 0.0), 0.5) ** 2
    if method == "weighted":
        return face_weight(face)
    if method == "mean":
        return 1.0
    raise ValueError(f"unknown aggregation {method!r}")


def _answer(age, std, p) -> dict:
    """The answer as ``aggregate`` gives it: rounded, the gender from P(female) (None or NaN: none)."""
    if age is None:
        return {"age": None, "age_std": None, "p_female": None, "gender": None}
    p = None if p is None or not np.isfinite(p) else float(p)
    return {
        "age": round(float(age), 2),
        "age_std": round(float(std), 2),
        "p_female": None if p is None else round(p, 4),
        "gender": None if p is None else ("female" if p > 0.5 else "male"),
    }


class RunningAnswer:
    """``aggregate``'s weighted-mean answer (``inverse_variance``, ``weighted``, ``mean``) over a
    track's faces so far, kept as sums so that a frame costs the same however long the track: over
    all the faces every frame, a face in view for an hour at 25 fps cost 62 ms a frame at its end."""

    METHODS = ("inverse_variance", "weighted", "mean")

    def __init__(self, method: str):
        if method not in self.METHODS:
            raise ValueError(f"a running answer is one of {self.METHODS}, not {method!r}")
        self.method = method
        self.sw = self.sw_age = self.sw_moment = self.sw_pf = self.sw_with_pf = 0.0

    def add(self, face: dict):
        if face.get("age") is None:
            return
        age, std = float(face["age"]), float(face.get("age_std") or 0.0)
        w = frame_weight(face, self.method)
        self.sw += w
        self.sw_age += w * age
        self.sw_moment += w * (std * std + age * age)
        pf = face.get("p_female")
        if pf is not None and np.isfinite(pf):
            self.sw_pf += w * float(pf)
            self.sw_with_pf += w

    def answer(self) -> dict:
        """As ``aggregate`` of the faces added, to float rounding."""
        if self.sw == 0:
            return _answer(None, None, None)
        age = self.sw_age / self.sw
        std = float(np.sqrt(max(self.sw_moment / self.sw - age**2, 0.0)))
        return _answer(age, std, self.sw_pf / self.sw_with_pf if self.sw_with_pf > 0 else None)


class SceneCuts:
    """Scene cuts: the mean absolute difference of two consecutive frames' 32x24 grey thumbnails
    above ``threshold`` grey levels. Measured on the benchmark footage (docs/DESIGN.md): at most 25
    within a shot (a fast pan), 48 and more at a cut; colour histograms missed cuts between photos
    of similar colours."""

    def __init__(self, threshold: float = DEFAULT_CUT_THRESHOLD):
        self.threshold = threshold
        self._last = None

    def __call__(self, frame_bgr: np.ndarray) -> bool:
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA)
        last, self._last = self._last, small
        return last is not None and float(cv2.absdiff(last, small).mean()) > self.threshold


class FaceTracker:
    """Track ids for each frame's faces: norfair on the boxes (IoU), a new tracker at each scene
    cut; ids count up over the whole video."""

    def __init__(
        self,
        fps: float = 25.0,
        frame_stride: int = 1,
        max_lost_seconds: float = DEFAULT_MAX_LOST_SECONDS,
        min_iou: float = 0.3,
        cut_threshold: Optional[float] = DEFAULT_CUT_THRESHOLD,
        kalman: bool = False,
    ):
        try:
            import norfair
        except ImportError as e:
            raise ImportError("tracking faces in videos needs norfair: pip install 'foss_d2[video]'") from e
        self._norfair, self.kalman = norfair, kalman
        self.fps, self.frame_stride, self.max_lost_seconds = fps, max(frame_stride, 1), max_lost_seconds
        self._rate_checked = False  # the frame rate against the first step of the footage's own times
        self.hit_counter_max = max(1, round(fps * max_lost_seconds / max(frame_stride, 1)))
        # a pause: a gap in the footage's own times longer than a track waits, and than two of the
        # steps between processed frames (--every-n-frames 30 at 25 fps steps 1.2 s)
        self.max_gap_seconds = max(max_lost_seconds, 2.0 * max(frame_stride, 1) / fps)
        self._last_time: Optional[float] = None
        self.max_distance = 1.0 - min_iou
        self.cuts = SceneCuts(cut_threshold) if cut_threshold is not None else None
        self.n_cuts = 0
        self.n_pauses = 0  # gaps in the footage's own times longer than max_gap_seconds
        self._offset = 0  # ids given by the trackers of earlier scenes
        self.max_id = 0
        self._tracker = self._new_tracker()
        self._frame = 0

    def _restart(self):
        """Every track ends here (a cut, a pause); the ids go on counting up."""
        self._offset = self.max_id
        self._tracker = self._new_tracker()

    def _new_tracker(self):
        # initialization_delay 0: every face has a track id from its first frame; the short tracks
        # are dropped later by their length (VideoPeople's min_frames). No motion filter: the
        # Kalman filter lagged behind fast pans and split tracks (measured, docs/DESIGN.md).
        from norfair.filter import NoFilterFactory, OptimizedKalmanFilterFactory

        return self._norfair.Tracker(
            distance_function="iou",
            distance_threshold=self.max_distance,
            hit_counter_max=self.hit_counter_max,
            initialization_delay=0,
            filter_factory=OptimizedKalmanFilterFactory() if self.kalman else NoFilterFactory(),
        )

    def _fit_rate(self, step: float):
        """A frame rate above any camera's (``MAX_CAMERA_FPS``) that puts the first two processed
        frames more than ``RATE_MISFIT`` of its steps apart is not the footage's (OpenCV reads 1000
        fps from some WebM files): a lost face is then waited for by that first step, not by the
        rate (1000 frames: 30 s of a 30 fps clip, long enough to give the next person in the same
        place the last one's id). A plausible rate is kept: a clip that opens on a held picture
        would otherwise make every track wait one frame."""
        expected = self.frame_stride / self.fps
        if self.fps <= MAX_CAMERA_FPS or step <= RATE_MISFIT * expected:
            return
        self.hit_counter_max = max(1, round(self.max_lost_seconds / step))
        self.max_gap_seconds = max(self.max_lost_seconds, 2.0 * step)
        self._tracker.hit_counter_max = self.hit_counter_max
        for obj in self._tracker.tracked_objects:  # (those of the first frame)
            obj.hit_counter_max = self.hit_counter_max
            obj.hit_counter = min(obj.hit_counter, self.hit_counter_max)
        logger.warning(
            "the video's frame rate (%.4g fps) does not fit its frames' times (%.3f s between the first two "
            "processed): tracks wait for a lost face %d frames (%.3g s) instead",
            self.fps,
            step,
            self.hit_counter_max,
            self.hit_counter_max * step,
        )

    def update(
        self,
        faces: Sequence[dict],
        frame_bgr: Optional[np.ndarray] = None,
        cut: Optional[bool] = None,
        time_s: Optional[float] = None,
    ) -> List[Optional[int]]:
        """The track id of each face (None for one the tracker did not take). ``cut``: whether the
        scene cut since the last update, when the caller measured it (--every-n-frames measures it
        on every frame, the skipped ones too); else measured here on ``frame_bgr``. ``time_s``: the
        frame's own time; a pause in the footage longer than a track waits for its face (a
        variable frame rate's gap, a paused recording) ends every track, as a cut does."""
        self._frame += 1
        if cut is None:
            cut = self.cuts is not None and frame_bgr is not None and self.cuts(frame_bgr)
        if time_s is not None:
            if self._last_time is not None and not self._rate_checked:
                self._rate_checked = True
                self._fit_rate(time_s - self._last_time)
            paused = self._last_time is not None and time_s - self._last_time > self.max_gap_seconds
            self._last_time = time_s
            if paused and not cut:
                self.n_pauses += 1
                self._restart()
        if cut and self.cuts is not None:
            self.n_cuts += 1
            self._restart()
        dets = [
            self._norfair.Detection(
                np.array(f["box"], float).reshape(2, 2),
                scores=np.full(2, float(f.get("score") or 1.0)),
                data=(self._frame, i),
            )
            for i, f in enumerate(faces)
        ]
        ids: List[Optional[int]] = [None] * len(faces)
        for obj in self._tracker.update(dets):
            det = obj.last_detection
            if obj.id is not None and det is not None and det.data[0] == self._frame:
                ids[det.data[1]] = self._offset + obj.id
                self.max_id = max(self.max_id, ids[det.data[1]])
        return ids


@dataclass
class Track:
    """One tracked face: where it was first and last seen and its answer so far, as running sums
    where the method sums (``RunningAnswer``; its memory then stays the same however long the
    video), else all its faces (``median``, ``last``)."""

    track_id: int
    first_frame: int
    first_time: float
    last_frame: int = -1
    last_time: float = 0.0
    frames_seen: int = 0
    best_score: float = 0.0
    best_weight: float = -1.0
    thumbnail: Optional[bytes] = None  # JPEG, as written: a few KB where its pixels took tens
    running: Optional[RunningAnswer] = None
    faces: Optional[List[dict]] = None  # only without a running answer

    def add(self, idx: int, time_s: float, face: dict):
        self.last_frame, self.last_time = idx, time_s
        self.frames_seen += 1
        self.best_score = max(self.best_score, float(face.get("score") or 0.0))
        if self.running is not None:
            self.running.add(face)
        else:
            self.faces.append(face)

    def answer(self, method: str) -> dict:
        return self.running.answer() if self.running is not None else aggregate(self.faces, method)


def crop_thumbnail(frame_bgr: np.ndarray, box: Sequence[float], side: int = THUMB_SIDE) -> np.ndarray:
    """The face with a 25% margin, its longer side at most ``side``."""
    h, w = frame_bgr.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = 0.25 * (x2 - x1), 0.25 * (y2 - y1)
    x1, y1 = int(max(0, x1 - mx)), int(max(0, y1 - my))
    x2, y2 = int(min(w, x2 + mx)), int(min(h, y2 + my))
    crop = frame_bgr[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)]
    scale = side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))))
    return crop.copy()


class VideoPeople:
    """Tracks a video's faces and gives each person one answer (module docstring).

    ``update`` returns copies of the faces whose age and gender are their track's answer so far
    (for drawing; ``aggregate``), and sets ``track_id`` on the faces given (for the journal).
    """

    def __init__(
        self,
        fps: float = 25.0,
        frame_stride: int = 1,
        min_frames: int = DEFAULT_MIN_FRAMES,
        min_score: float = DEFAULT_MIN_SCORE,
        method: str = "inverse_variance",
        thumbnails: bool = True,
        **tracker_kwargs,
    ):
        self.fps, self.min_frames, self.min_score = fps, min_frames, min_score
        self.method, self.keep_thumbnails = method, thumbnails
        self.tracker = FaceTracker(fps=fps, frame_stride=frame_stride, **tracker_kwargs)
        self.tracks: Dict[int, Track] = {}

    def update(
        self,
        idx: int,
        frame_bgr: Optional[np.ndarray],
        faces: List[dict],
        cut: Optional[bool] = None,
        time_s: Optional[float] = None,
    ) -> List[dict]:
        """``time_s``: the frame's own timestamp (else ``idx`` / fps), for the people's times."""
        shown = []
        for face, tid in zip(faces, self.tracker.update(faces, frame_bgr, cut, time_s)):
            face["track_id"] = tid
            if tid is None:
                shown.append(dict(face))
                continue
            track = self.tracks.get(tid)
            t = idx / self.fps if time_s is None else float(time_s)
            if track is None:
                sums = self.method in RunningAnswer.METHODS
                track = self.tracks[tid] = Track(
                    tid,
                    int(idx),
                    t,
                    running=RunningAnswer(self.method) if sums else None,
                    faces=None if sums else [],
                )
            track.add(int(idx), t, face)
            w = face_weight(face)  # the thumbnail: the track's best-scored, largest face
            if self.keep_thumbnails and frame_bgr is not None and w > track.best_weight:
                ok, jpeg = cv2.imencode(".jpg", crop_thumbnail(frame_bgr, face["box"]))
                if ok:
                    track.best_weight, track.thumbnail = w, jpeg.tobytes()
            answer = track.answer(self.method)
            shown.append({**face, **answer})
        return shown

    def people(self) -> List[dict]:
        """One record per track of at least ``min_frames`` faces, one scoring ``min_score`` or more,
        in the order of their first frame."""
        out = []
        for tid, t in sorted(self.tracks.items(), key=lambda kv: (kv[1].first_frame, kv[0])):
            if t.frames_seen < self.min_frames or t.best_score < self.min_score:
                continue
            out.append(
                {
                    "track_id": tid,
                    "first_frame": t.first_frame,
                    "last_frame": t.last_frame,
                    "first_time_s": round(t.first_time, 3),
                    "last_time_s": round(t.last_time, 3),
                    "frames_seen": t.frames_seen,
                    **t.answer(self.method),
                    "thumbnail": f"thumbnails/track_{tid:05d}.jpg" if t.thumbnail is not None else None,
                }
            )
        return out

    def finish(self, out_dir: str, reuse_thumbnails: bool = False) -> List[dict]:
        """Write people.json, people.csv, thumbnails/ and people_sheet.jpg under ``out_dir``; returns the people.
        ``reuse_thumbnails`` (a --resume): a person without a crop here keeps the thumbnail the run
        it finishes drew (the same journal, the same tracks)."""
        people = self.people()
        for p in people:
            earlier = f"thumbnails/track_{p['track_id']:05d}.jpg"
            if reuse_thumbnails and not p["thumbnail"] and os.path.isfile(os.path.join(out_dir, earlier)):
                p["thumbnail"] = earlier
                continue
            if p["thumbnail"]:
                path = os.path.join(out_dir, p["thumbnail"])
                try:  # a picture beside the answers: it never costs them
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as f:
                        f.write(self.tracks[p["track_id"]].thumbnail)
                except OSError as e:
                    logger.warning("could not write %s: %s", path, e)
                    p["thumbnail"] = None
        dropped = len(self.tracks) - len(people)
        write_people(
            out_dir,
            people,
            self.fps,
            self.min_frames,
            self.min_score,
            dropped,
            self.tracker.n_cuts,
            self.tracker.n_pauses,
        )
        try:  # a picture beside the answers: it never costs them
            people_sheet(out_dir, people)
        except Exception as e:  # noqa: BLE001
            logger.warning("could not draw %s: %s", SHEET_FILE, e)
        return people


SHEET_FILE = "people_sheet.jpg"
SHEET_COLUMNS = 8
SHEET_MAX_PEOPLE = 200


def _clock(seconds) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "?"
    m, sec = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{sec:02d}" if m >= 60 else f"{m}:{sec:02d}"


def people_sheet(out_dir: str, people: List[dict]) -> Optional[str]:
    """``people_sheet.jpg``: each person's thumbnail over their answer ("34, F", in the gender's colour)
    and when they were in view, in the order they came; the people without a thumbnail (--no-draw)
    are left out, and a sheet of an earlier run that no person has one for is removed. At most
    ``SHEET_MAX_PEOPLE`` (people.csv has them all). Returns its path, or None."""
    from ..utils.visualizer import face_label, gender_color

    path = os.path.join(out_dir, SHEET_FILE)
    shown, more = [], 0
    for p in people:
        if not p.get("thumbnail"):
            continue
        if len(shown) == SHEET_MAX_PEOPLE:
            more += 1  # counted, not read: a long video's thousands of thumbnails stay on disk
            continue
        thumb = cv2.imread(os.path.join(out_dir, p["thumbnail"]))
        if thumb is not None:
            shown.append((p, thumb))
    if not shown:
        if os.path.isfile(path):
            os.remove(path)
        return None
    cell, band = THUMB_SIDE + 8, 40
    cols = min(SHEET_COLUMNS, len(shown))
    rows = -(-len(shown) // cols)
    sheet = np.full((rows * (cell + band) + (24 if more > 0 else 0), cols * cell, 3), 32, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, (p, thumb) in enumerate(shown):
        x0, y0 = (i % cols) * cell, (i // cols) * (cell + band)
        grow = min(4.0, THUMB_SIDE / max(thumb.shape[:2]))  # a face seen small, shown at a size to see
        if grow != 1:  # (and a thumbnail larger than the cell, e.g. replaced by the user, made to fit)
            size = (max(1, round(thumb.shape[1] * grow)), max(1, round(thumb.shape[0] * grow)))
            thumb = cv2.resize(thumb, size, interpolation=cv2.INTER_LINEAR)
        h, w = thumb.shape[:2]
        top, left = y0 + (cell - h) // 2, x0 + (cell - w) // 2
        sheet[top : top + h, left : left + w] = thumb
        female = p.get("p_female")
        colour = tuple(int(255 * c) for c in gender_color(female)[::-1])  # BGR
        label = face_label(p.get("age"), female)
        cv2.putText(sheet, label, (x0 + 6, y0 + cell + 17), font, 0.55, colour, 2, cv2.LINE_AA)
        when = f"{_clock(p.get('first_time_s'))}-{_clock(p.get('last_time_s'))}"
        cv2.putText(sheet, when, (x0 + 6, y0 + cell + 34), font, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    if more > 0:
        note = f"+{more} more people in people.csv"
        cv2.putText(sheet, note, (6, sheet.shape[0] - 8), font, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.imwrite(path, sheet)
    return path


def write_people(
    out_dir, people: List[dict], fps: float, min_frames: int, min_score: float, dropped: int, cuts=0, pauses=0
):
    os.makedirs(out_dir, exist_ok=True)
    meta = {
        "fps": fps,
        "min_frames": min_frames,
        "min_score": min_score,
        "dropped_tracks": dropped,
        "scene_cuts": cuts,
        "pauses": pauses,  # gaps in the video's own times longer than a track waits
    }
    write_json_atomic(os.path.join(out_dir, "people.json"), {**meta, "people": people}, indent=1)
    with open(os.path.join(out_dir, "people.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, PEOPLE_FIELDS)
        w.writeheader()
        w.writerows(people)


def people_over_time(people: Sequence[dict], bucket_seconds: float) -> Dict[int, List[dict]]:
    """{bucket index: people in view during it}: a person counts once in each time bucket between
    their first and last frame."""
    buckets: Dict[int, List[dict]] = {}
    for p in people:
        for b in range(int(p["first_time_s"] // bucket_seconds), int(p["last_time_s"] // bucket_seconds) + 1):
            buckets.setdefault(b, []).append(p)
    return buckets


def people_survey(
    people: Sequence[dict], lower: Sequence[int], bucket_seconds: Optional[float] = None, end_s: Optional[float] = None
):
    """(counts, timeline) as ``survey.count_faces`` / ``counts_over_time`` give them for faces,
    for people: each person counted once overall and once in each time bucket they were in view.
    The timeline has every bucket from the start to the later of ``end_s`` (the video's last
    frame) and the last person seen, those with nobody in view as zeros."""
    from .survey import count_faces  # survey imports this module

    counts = count_faces(people, lower)
    if not bucket_seconds:
        return counts, None
    buckets = people_over_time(people, bucket_seconds)
    last = max([*buckets, int(end_s // bucket_seconds) if end_s else 0])
    return counts, [(b * bucket_seconds, count_faces(buckets.get(b, []), lower)) for b in range(last + 1)]


def track_options(args, warn: bool = True) -> dict:
    """run_video's tracking options from a command's --no-track / --min-track-frames: on unless
    --no-track; without the [video] extra, off with a warning (the per-frame answers still come)."""
    if getattr(args, "no_track", False):
        return {}
    try:
        import norfair  # noqa: F401
    except ImportError:
        if warn:
            logging.getLogger(__name__).warning("faces not tracked (no people.json): pip install 'foss_d2[video]'")
        return {}
    return {"track": True, "min_track_frames": getattr(args, "min_track_frames", None)}
