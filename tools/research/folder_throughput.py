"""Folder throughput of ``tools/demo.py`` (issue 19, item 4): the wall clock of whole demo runs over
one folder, start-up included, for several option sets run in alternating order.

    python tools/research/folder_throughput.py --input wider200/ --rounds 2 --output output/throughput \\
        --run "after=" --run "no-draw=--no-draw" --run "onnxruntime=--no-draw --backend onnxruntime" \\
        --before-repo /tmp/before

With ``--as-video K`` the folder's photos are first written as one video (1280x720, 25 fps, each
photo letterboxed and held for K frames, moving 2 px a frame) and the demo runs on that video
(``--video-input``, faces tracked): frames per second instead of photos.

``--run NAME=OPTIONS`` adds a run of this checkout's demo with those options (the trailing KEY VALUE
overrides included); ``--before-repo`` adds "before", the demo of another checkout (e.g. a
``git worktree`` of an older commit) with its own default options, or with ``--before-run
NAME=OPTIONS`` one run of it per option set. Writes throughput.json and
throughput.md (seconds and photos/s per round, the median's ratio to the first run) to --output.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from foss_d2.apps.runner import collect_inputs
from foss_d2.utils.footage import write_video
from foss_d2.utils.json_io import write_report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def answered_photos(out: str) -> int:
    """How many photos a demo run's predictions.json holds (0 without one)."""
    path = os.path.join(out, "predictions.json")
    if not os.path.isfile(path):
        return 0
    with open(path) as f:
        return len(json.load(f))


def test_video_frames(paths, frames_per_photo: int, size=(1280, 720)):
    """``paths`` as the frames of one video: each photo letterboxed into ``size`` and held for
    ``frames_per_photo`` frames, 2 px further right each frame (a slow pan); unreadable photos left out."""
    w, h = size
    for p in paths:
        img = cv2.imread(p)
        if img is None:
            continue
        s = min(w / img.shape[1], h / img.shape[0])
        img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))))
        y0 = (h - img.shape[0]) // 2
        for k in range(frames_per_photo):
            frame = np.zeros((h, w, 3), np.uint8)
            x0 = min((w - img.shape[1]) // 2 + 2 * k, w - 1)
            cols = min(img.shape[1], w - x0)
            frame[y0 : y0 + img.shape[0], x0 : x0 + cols] = img[:, :cols]
            yield frame


def write_test_video(paths, path: str, frames_per_photo: int) -> int:
    """``test_video_frames`` written at 25 fps to ``path`` (streamed); the frames written."""
    return write_video(path, test_video_frames(paths, frames_per_photo), fps=25.0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="a folder of photos")
    p.add_argument("--run", action="append", default=[], metavar="NAME=OPTIONS")
    p.add_argument("--before-repo", help="a checkout whose tools/demo.py runs as 'before'")
    p.add_argument(
        "--before-run",
        action="append",
        default=[],
        metavar="NAME=OPTIONS",
        help="a run of --before-repo's demo with these options (instead of its plain 'before')",
    )
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--output", default="output/throughput")
    p.add_argument(
        "--as-video", type=int, default=0, metavar="K", help="time the demo on a video of the photos, K frames each"
    )
    args = p.parse_args(argv)
    if args.as_video < 0:
        p.error(f"--as-video is a number of frames a photo (0: the folder itself), got {args.as_video}")
    # Each demo runs in its own checkout: a relative folder would name another (or no) folder there.
    args.input = os.path.abspath(args.input)
    if args.before_run and not args.before_repo:
        p.error("--before-run needs --before-repo")
    runs = {}
    if args.before_repo and not args.before_run:
        runs["before"] = (args.before_repo, [])
    for repo, specs in ((args.before_repo, args.before_run), (REPO, args.run)):
        for spec in specs:
            name, _, opts = spec.partition("=")
            if name in runs:
                p.error(f"two runs named {name!r}")
            runs[name] = (repo, shlex.split(opts))
    if not runs:
        p.error("give --run NAME=OPTIONS or --before-repo")
    photos = [path for path, _ in collect_inputs([args.input])[0]]  # the images the demo will read
    n, unit = len(photos), "photos"
    seconds = {name: [] for name in runs}
    with tempfile.TemporaryDirectory() as tmp:
        source = ["--input", args.input]
        if args.as_video:
            video = os.path.join(tmp, "photos.mp4")
            n, unit = write_test_video(photos, video, args.as_video), "frames"
            source = ["--video-input", video]
        items = list(runs.items())
        for r in range(args.rounds):
            for k in range(len(items)):
                i = (k + r) % len(items)  # each round starts one run later: none always meets cold caches first
                name, (repo, opts) = items[i]
                out = os.path.join(tmp, f"run{i}-{r}")  # numbered: names may hold any character
                # OPTIONS as written: its --flags first, then any KEY VALUE overrides
                cmd = [sys.executable, os.path.join(repo, "tools", "demo.py"), *source, "--output", out]
                cmd += opts
                env = dict(os.environ, PYTHONPATH=repo)
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds[name].append(time.perf_counter() - t0)
                answered = answered_photos(out)
                if answered != n:  # a demo that read fewer photos would look fast
                    raise SystemExit(f"run {name!r} answered {answered} of the {n} {unit} in {args.input}")
                print(f"round {r + 1}, {name}: {seconds[name][-1]:.1f} s ({n / seconds[name][-1]:.2f} {unit}/s)")
    first = statistics.median(next(iter(seconds.values())))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        unit: n,
        "input": args.input,
        "as_video": args.as_video,
        "runs": {
            name: {"options": " ".join(runs[name][1]), "seconds": s, "x_first": first / statistics.median(s)}
            for name, s in seconds.items()
        },
    }
    what = f"{n} frames (a video of {len(photos)} photos)" if args.as_video else f"{n} photos"
    lines = [f"{what}, {report['cpus']} cpus, {report['date']}", "", f"| run | seconds | {unit} / s | x first |"]
    lines.append("|---|---|---|---|")
    for name, r in report["runs"].items():
        secs = ", ".join(f"{s:.1f}" for s in r["seconds"])
        rates = ", ".join(f"{n / s:.2f}" for s in r["seconds"])
        lines.append(f"| {name} | {secs} | {rates} | {r['x_first']:.2f} |")
    write_report(args.output, "throughput", report, lines)


if __name__ == "__main__":
    main()
