"""Age-group / gender survey (the paper's motivating use, section 1: a shop's customer age survey).

Counts faces per age group and gender over a folder of photos or a video's frames, from FOSS-D2
predictions (``predictions.json`` of ``foss-d2 demo``, or computed on the fly), and writes the
counts, a histogram and CSV/JSON:

    foss-d2 survey --input shop_photos/ --output output/survey
    foss-d2 survey --video-input entrance.mp4 --output output/survey --bucket-seconds 60   # unique people
    foss-d2 survey --video-input entrance.mp4 --output output/survey --per-frame          # faces per frame
    foss-d2 survey --predictions output/demo --output output/survey   # reuse the demo's output
    foss-d2 survey --input photos/ --output output/survey --groups 0,18,30,45,65

(``python tools/survey.py`` takes the same arguments.) A video is surveyed per person by default
(``--per-person``): its faces are tracked across frames and each person counted once, overall and
in each time bucket they were in view, from OUT/predictions/people.json (``tracking.py``; needs the
``[video]`` extra); ``--per-frame`` counts every face of every frame instead.
``--predictions`` takes a predictions.json, a predictions.jsonl journal (what an interrupted demo
run left) or a folder holding either (with its people.json, per person). Run on --input or
--video-input, the predictions go to OUT/predictions/ with the demo's rules and options (--no-draw,
--resume, --overwrite, --max-pixels, --draw-max-side, --no-track; see ``foss-d2 demo --help``).
"""

import argparse
import csv
import functools
import importlib.util
import itertools
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from detectron2.utils.logger import setup_logger

from ..evaluation.age_evaluator import age_to_group
from ..utils.figures import pyplot, save_figure
from .cli import foss_argument_parser, parse_foss_args
from .runner import (
    JOURNAL,
    RunError,
    add_run_arguments,
    build_predictor,
    check_output_folder,
    config_from_args,
    frame_times,
    journal_results,
    load_predictions,
    one_kind_of_input,
    positive_number,
    predictions_file,
    prepare_run,
    run_inputs,
)

PAPER_GROUP_LOWER = (0, 3, 8, 13, 20, 37, 66)  # Images of Groups: 0-2, 3-7, 8-12, 13-19, 20-36, 37-65, 66+
GENDERS = ("male", "female", "unknown")


def group_names(lower: Sequence[int]) -> List[str]:
    """[0, 3, 8] -> ["0-2", "3-7", "8+"]."""
    names = [f"{lo}-{hi - 1}" for lo, hi in zip(lower[:-1], lower[1:])]
    return names + [f"{lower[-1]}+"]


def count_faces(faces: Iterable[dict], lower: Sequence[int] = PAPER_GROUP_LOWER) -> Dict[str, Dict[str, int]]:
    """{group name: {"male": n, "female": n, "unknown": n}} for faces with an ``age``."""
    counts = {n: {g: 0 for g in GENDERS} for n in group_names(lower)}
    add_counts(counts, faces, lower)
    return counts


def add_counts(counts: Dict[str, Dict[str, int]], faces: Iterable[dict], lower: Sequence[int]):
    """Adds ``faces`` to ``count_faces``' ``counts``."""
    names = list(counts)
    for f in faces:
        if f.get("age") is None:
            continue
        g = f.get("gender") if f.get("gender") in ("male", "female") else "unknown"
        counts[names[age_to_group(f["age"], lower)]][g] += 1


def counts_over_time(
    frames: Dict[str, List[dict]],
    fps: float,
    bucket_seconds: float,
    lower=PAPER_GROUP_LOWER,
    times: Optional[Dict[str, float]] = None,
):
    """Video: [(start second, counts)] per ``bucket_seconds`` window, from {frame index: faces}; a
    frame's time is its own timestamp where ``times`` has it, else its index / ``fps``."""
    times = times or {}
    tally = Tally(lower, fps, bucket_seconds)
    for key, faces in frames.items():
        tally.add(key, faces, times.get(key))
    return tally.timeline()


class Tally:
    """Faces counted as the predictions stream by (``journal_results``: a day of video's faces are
    read once, not held): overall, and with ``fps`` per ``bucket_seconds`` window of the frame's
    own time (its index / ``fps`` without one); also what the checks on the input need."""

    def __init__(self, lower: Sequence[int], fps: Optional[float] = None, bucket_seconds: float = 10.0):
        self.lower, self.fps, self.bucket_seconds = lower, fps, bucket_seconds
        self.counts = count_faces([], lower)
        self.buckets: Dict[int, Dict[str, Dict[str, int]]] = {}
        self.entries, self.all_frames, self.timed = 0, True, False
        self.last_frame: Optional[int] = None
        self.last_time: Optional[float] = None

    def add(self, key: str, faces: List[dict], time_s: Optional[float] = None):
        self.entries += 1
        frame = int(key) if str(key).isdigit() else None
        self.all_frames &= frame is not None
        if frame is not None:
            self.last_frame = frame if self.last_frame is None else max(self.last_frame, frame)
        if time_s is not None:
            self.timed = True
            self.last_time = time_s if self.last_time is None else max(self.last_time, time_s)
        add_counts(self.counts, faces, self.lower)
        if time_s is not None or (self.fps and frame is not None):  # (a frame's own time needs no rate)
            b = int((time_s if time_s is not None else frame / self.fps) // self.bucket_seconds)
            if b not in self.buckets:
                self.buckets[b] = count_faces([], self.lower)
            add_counts(self.buckets[b], faces, self.lower)

    def timeline(self):
        """[(start second, counts)] of the windows with frames."""
        return [(b * self.bucket_seconds, self.buckets[b]) for b in sorted(self.buckets)]


TIMELINE_FILES = ("survey_timeline.csv", "survey_timeline.png")
GROUP_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974")


def clock(seconds: float, _pos=None) -> str:
    """A video time as m:ss, or h:mm:ss from an hour on (125 -> "2:05")."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def draw_timeline(plt, timeline, names: Sequence[str], unit: str, bucket_seconds: Optional[float], title: str):
    """survey_timeline.png's figure: a bar per time window over the span it covers, stacked by age
    group (the groups nobody fell in are named under the plot, not drawn), times as m:ss."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    starts = np.array([t for t, _ in timeline], dtype=float)
    if not bucket_seconds:  # the windows' width, from their starts
        bucket_seconds = float(np.diff(starts).min()) if len(starts) > 1 else 1.0
    per_group = {n: np.array([sum(c[n].values()) for _, c in timeline]) for n in names}
    fig, ax = plt.subplots(figsize=(9, 4))
    bottom = np.zeros(len(starts))
    for n, color in zip(names, itertools.cycle(GROUP_COLORS)):
        if per_group[n].any():
            ax.bar(starts, per_group[n], bucket_seconds * 0.9, bottom=bottom, align="edge", color=color, label=n)
            bottom += per_group[n]
    ax.set_xlim(0, starts[-1] + bucket_seconds)
    ax.set_ylim(0, max(1.0, float(bottom.max(initial=0))) * 1.1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(clock))
    ax.set_xlabel("time in the video (m:ss)")
    if unit == "people":
        ax.set_ylabel("people in view")
        ax.set_title(f"{title}: people in view per {bucket_seconds:g} s window")
    else:  # a face seen in 10 frames counts 10 times
        ax.set_ylabel(f"{unit} (all frames)")
        ax.set_title(f"{title}: {unit} per {bucket_seconds:g} s window, every frame counted")
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # listed top to bottom as they are stacked
        ax.legend(
            handles[::-1], labels[::-1], title="age group", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1)
        )
    none = [n for n in names if not per_group[n].any()]
    if none:
        ax.annotate(
            f"no {unit}: {', '.join(none)}",
            (0, 0),
            xycoords="axes fraction",
            xytext=(0, -36),
            textcoords="offset points",
            fontsize=8,
            color="#666666",
        )
    return fig


def save_survey(
    counts: Dict[str, Dict[str, int]],
    out_dir: str,
    title: str = "FOSS-D2 age survey",
    timeline=None,
    unit="faces",
    bucket_seconds: Optional[float] = None,
):
    """survey.json, survey.csv and survey.png (stacked bars per group); with ``timeline`` (windows
    of ``bucket_seconds``) also survey_timeline.csv / .png (``unit``, faces or people, per group
    and window)."""
    os.makedirs(out_dir, exist_ok=True)
    total = sum(sum(v.values()) for v in counts.values())
    with open(os.path.join(out_dir, "survey.json"), "w") as f:
        json.dump({f"total_{unit}": total, "groups": counts, "timeline": timeline}, f, indent=1)
    with open(os.path.join(out_dir, "survey.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", *GENDERS, "total"])
        for name, c in counts.items():
            w.writerow([name, *[c[g] for g in GENDERS], sum(c.values())])
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    names = list(counts)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = np.zeros(len(names))
    for g, color in zip(GENDERS, ("#3973f2", "#f24d73", "#999999")):
        vals = np.array([counts[n][g] for n in names])
        if vals.sum() or g != "unknown":
            ax.bar(x, vals, bottom=bottom, label=g, color=color)
        bottom += vals
    ax.set_xticks(x, names)
    ax.set_xlabel("age group (years)")
    ax.set_ylabel(unit)
    ax.set_ylim(0, max(1.0, float(bottom.max(initial=0))) * 1.05)  # counts: from 0, whole numbers
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{title} ({total} {unit})")
    ax.legend()
    save_figure(plt, fig, os.path.join(out_dir, "survey.png"), dpi=110)
    if not timeline:  # an earlier survey's timeline in this folder would read as this one's
        for name in TIMELINE_FILES:
            if os.path.isfile(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
    else:
        with open(os.path.join(out_dir, "survey_timeline.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["start_s", *names])
            for t, c in timeline:
                w.writerow([t, *[sum(c[n].values()) for n in names]])
        fig = draw_timeline(plt, timeline, names, unit, bucket_seconds, title)
        save_figure(plt, fig, os.path.join(out_dir, "survey_timeline.png"), dpi=110)
    return total


def age_groups(text: str) -> List[int]:
    """argparse type: increasing lower bounds of the age groups, from 0 ("0,18,30,45,65")."""
    try:
        lower = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole years like 0,18,30,45,65") from None
    if lower != sorted(set(lower)) or lower[0] != 0:
        raise argparse.ArgumentTypeError(f"{text}: give increasing lower bounds starting at 0, e.g. 0,18,30,45,65")
    return lower


def get_parser(prog=None):
    p = foss_argument_parser(__doc__, prog)
    p.add_argument("--input", nargs="+", help="image files, folders or globs")
    p.add_argument("--video-input")
    p.add_argument("--predictions", help="predictions.json or .jsonl written by foss-d2 demo, or its folder")
    p.add_argument(
        "--fps", type=positive_number, default=None, help="frame rate of the video behind --predictions (a video run's)"
    )
    p.add_argument(
        "--output", default="output/survey", help="folder for survey.png/.csv/.json (default: output/survey)"
    )
    p.add_argument(
        "--groups",
        type=age_groups,
        default=list(PAPER_GROUP_LOWER),
        help="lower bounds of the age groups, in years (default: the paper's, "
        + ",".join(map(str, PAPER_GROUP_LOWER))
        + ")",
    )
    p.add_argument(
        "--bucket-seconds", type=positive_number, default=None, help="video: width of each time window (default: 10)"
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--per-person",
        dest="per_person",
        action="store_true",
        default=None,
        help="video (the default): count each tracked person once (people.json), overall and per time window",
    )
    how.add_argument(
        "--per-frame", dest="per_person", action="store_false", help="video: count every face of every frame"
    )
    add_run_arguments(p)  # --confidence-threshold, --max-pixels, --draw-max-side, --no-draw, --resume, --overwrite
    return p


OTHER_RUN_FILES = ("skipped.json", "run.json", "people.json", "survey.json")


def _is_face_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(f, dict) and "age" in f for f in v)


def _video_run_fps(pred_dir: str):
    """The frame rate in a video run's run.json (None for photos, or a run without run.json)."""
    try:
        with open(os.path.join(pred_dir, "run.json")) as f:
            return json.load(f).get("VIDEO.fps")
    except (OSError, ValueError, AttributeError):
        return None


def _journal_entries(p, path: str):
    """A journal's results as they are read (``journal_results``); an entry that is no list of
    faces is a usage error."""
    for key, faces, time_s in journal_results(path):
        if not _is_face_list(faces):
            p.error(f"{path} is not foss-d2 demo's journal: its entry {key!r} is no list of faces")
        yield key, faces, time_s


def _read_predictions(p, path: str):
    """A demo run's predictions at ``path`` (its folder, predictions.json or .jsonl), as a function
    giving (key, faces, time_s or None) as they are read, and the run's folder; any other file (the
    run's others, a COCO file, JSON that is not {image or frame: [faces]}) is a usage error saying
    what to give."""
    try:
        file = predictions_file(path)
        if file.endswith(".jsonl"):
            return functools.partial(_journal_entries, p, file), os.path.dirname(file)
        results = load_predictions(file)
    except (OSError, ValueError) as e:
        p.error(str(e))
    # the run's other files, even empty (a run that skipped nothing writes skipped.json as {})
    # (by name only when empty: with entries, the check below names what is not a face list)
    named = not results and os.path.isfile(path)
    if (named and os.path.basename(path) in OTHER_RUN_FILES) or {"images", "annotations"} <= set(results):
        p.error(
            f"{path} is not foss-d2 demo's predictions but "
            f"{'a COCO file' if 'images' in results else 'another file of a run'}: give predictions.json, "
            "predictions.jsonl or the run's folder"
        )
    not_faces = next((k for k, v in results.items() if not _is_face_list(v)), None)
    if not_faces is not None:
        p.error(
            f"{path} is not foss-d2 demo's predictions ({{image or frame: [faces]}}): its entry "
            f"{not_faces!r} is no list of faces; give predictions.json, predictions.jsonl or the run's folder"
        )
    times = frame_times(os.path.dirname(file))  # (the journal beside it, where there is one)
    return lambda: ((k, faces, times.get(k)) for k, faces in results.items()), os.path.dirname(file)


def _read_people(p, pred_dir: str) -> dict:
    """A video run's people.json (its people, fps and tracking settings); one that cannot be read
    is a usage error naming it."""
    path = os.path.join(pred_dir, "people.json")
    try:
        with open(path) as f:
            people_file = json.load(f)
    except (OSError, ValueError) as e:
        p.error(f"{path} could not be read ({e}): run the video again, or give --per-frame")
    if not isinstance(people_file, dict) or not isinstance(people_file.get("people"), list):
        p.error(f"{path} is not a people.json of foss-d2 demo (no list of people): give --per-frame")
    return people_file


def written_files(timeline) -> str:
    return ", ".join(["survey.png", "survey.csv", "survey.json", *(TIMELINE_FILES if timeline else ())])


def main(argv=None, prog=None):
    p = get_parser(prog)
    args = parse_foss_args(p, argv)
    setup_logger(name="foss_d2")
    lower = args.groups
    fps = args.fps
    try:
        check_output_folder(args.output)
    except RunError as e:
        p.error(str(e))
    one_kind_of_input(p, {"--input": args.input, "--video-input": args.video_input, "--predictions": args.predictions})
    if args.fps and not args.predictions:
        p.error("--fps is for --predictions of a video run without its frames' times (a video's own rate is read)")
    if args.predictions:
        entries, pred_dir = _read_predictions(p, args.predictions)
    video = os.path.isfile(os.path.join(pred_dir, "people.json")) if args.predictions else bool(args.video_input)
    per_person = video if args.per_person is None else args.per_person
    if args.predictions and args.no_track:
        p.error("--no-track is for --video-input; a video run's predictions are counted per frame with --per-frame")
    if args.video_input and args.no_track:  # no tracks, no people: every face of every frame
        if args.per_person:
            p.error("--per-person counts tracked people: not with --no-track")
        per_person = False
    if per_person and not video:
        p.error("--per-person needs a video: --video-input, or --predictions of a video run (with its people.json)")
    people_file = _read_people(p, pred_dir) if args.predictions and video else None
    if people_file is not None and fps is None:
        fps = people_file.get("fps")  # the frame rate the demo read from the video
    if args.predictions and not video:
        video_fps = _video_run_fps(pred_dir)
        if video_fps is not None:  # a video run stopped before it wrote people.json, or --no-track
            fps = video_fps if fps is None else fps
        if video_fps is not None and args.per_person is None:
            print(
                f"{pred_dir} holds a video run without people.json (stopped early: --resume it, or run with "
                "tracking): faces are counted per frame, not people"
            )
    thr = None
    if args.predictions and args.confidence_threshold is not None:
        if per_person:
            p.error(
                "--confidence-threshold cannot filter the tracked people of people.json (tracked at the run's "
                "threshold): give --per-frame, or run survey on the video itself"
            )
        thr = args.confidence_threshold  # as the model applies it: scores above the threshold
    bucket_seconds = 10.0 if args.bucket_seconds is None else args.bucket_seconds
    if per_person and args.video_input and importlib.util.find_spec("norfair") is None:
        p.error("counting people needs the [video] extra: pip install 'foss_d2[video]' (or give --per-frame)")
    if not args.predictions:
        cfg = config_from_args(p, args, need_weights=True)  # a bad config is a one-line error
        pred_dir = os.path.join(args.output, "predictions")
        if per_person:
            args.no_track = False  # the people come from the tracks
        items, skipped = prepare_run(p, args, pred_dir, check_dir=args.output, cfg=cfg)  # before the model loads
        predictor = build_predictor(cfg, args, len(items))
        run_inputs(predictor, args, pred_dir, cfg.INPUT.FORMAT, items, skipped)
        if args.video_input:
            fps = _video_run_fps(pred_dir) or 25.0  # the frame rate the run read from the video (run.json)
        entries = functools.partial(journal_results, os.path.join(pred_dir, JOURNAL))
    # one pass over the predictions, each face counted as it is read
    tally = Tally(lower, None if per_person else fps, bucket_seconds)
    for key, faces, time_s in entries():
        tally.add(key, faces if thr is None else [f for f in faces if f["score"] > thr], time_s)
    if args.predictions and fps and not tally.all_frames:
        p.error(f"--fps is for a video run's predictions (frame numbers); {args.predictions} holds photos")
    if args.predictions and args.fps and tally.timed:
        p.error(
            f"--fps: {args.predictions} holds each frame's own time, read from the video, which the timeline "
            "follows; --fps is for predictions without them (a predictions.json alone)"
        )
    # (after the pass: a video run's journal holds its frames' times, so it needs neither run.json nor --fps)
    if args.predictions and not fps and not tally.timed and not per_person and args.bucket_seconds is not None:
        p.error(
            "--bucket-seconds is for a video run's predictions (photos have no timeline); for a video run "
            "without its run.json, give its frame rate: --fps"
        )
    if per_person:
        from .tracking import people_survey

        if people_file is None:  # written by this run
            people_file = _read_people(p, pred_dir)
        people = people_file["people"]
        end_s = tally.last_time or ((tally.last_frame or 0) / fps if fps else None)
        counts, timeline = people_survey(people, lower, bucket_seconds, end_s)
        title = "FOSS-D2 visitor survey"
        total = save_survey(
            counts, args.output, title=title, timeline=timeline, unit="people", bucket_seconds=bucket_seconds
        )
        print(f"{total} people in {tally.entries} frames -> {args.output}/{written_files(timeline)}")
        if not total and people_file.get("dropped_tracks"):
            print(
                f"({people_file['dropped_tracks']} tracks dropped as noise: under {people_file.get('min_frames')} "
                f"frames, or no face scored {people_file.get('min_score')}; run the video again with "
                "--min-track-frames 1, or give --per-frame to count faces)"
            )
        return
    video = bool(fps or tally.timed)
    timeline = tally.timeline() if video else None
    total = save_survey(tally.counts, args.output, timeline=timeline, bucket_seconds=bucket_seconds)
    print(
        f"{total} faces in {tally.entries} {'frames' if video else 'images'} -> {args.output}/{written_files(timeline)}"
    )


if __name__ == "__main__":
    main()
