"""tools/research/folder_throughput.py: every run must answer every photo of the folder."""

import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A stand-in demo for --before-repo: writes predictions.json for the first photo of --input only,
# as a demo that silently read fewer photos (e.g. a folder path relative to another checkout) would.
FAKE_DEMO = """
import json, os, sys
import cv2
args = sys.argv[1:]
out = args[args.index("--output") + 1]
os.makedirs(out, exist_ok=True)
if "--video-input" in args:
    video = cv2.VideoCapture(args[args.index("--video-input") + 1])
    keys = [str(i) for i in range(int(video.get(cv2.CAP_PROP_FRAME_COUNT)))]
else:
    keys = sorted(os.listdir(args[args.index("--input") + 1]))
first = keys[: int(os.environ.get("FAKE_DEMO_ANSWERS", "1"))]
if os.environ.get("FAKE_DEMO_LOG"):
    open(os.environ["FAKE_DEMO_LOG"], "a").write(json.dumps(args) + chr(10))
json.dump({name: [] for name in first}, open(os.path.join(out, "predictions.json"), "w"))
"""


def load_tool():
    spec = importlib.util.spec_from_file_location(
        "folder_throughput", os.path.join(REPO, "tools", "research", "folder_throughput.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def fake_before(tmp_path, monkeypatch):
    repo = tmp_path / "before"
    (repo / "tools").mkdir(parents=True)
    (repo / "tools" / "demo.py").write_text(FAKE_DEMO)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(photos / f"{i}.jpg")
    monkeypatch.chdir(tmp_path)  # --input given relative to here, as a user types it
    return repo


def test_a_run_that_answers_fewer_photos_stops_the_measurement(fake_before, tmp_path):
    tool = load_tool()
    with pytest.raises(SystemExit, match="answered 1 of the 3 photos"):
        tool.main(["--input", "photos", "--before-repo", str(fake_before), "--rounds", "1", "--output", "out"])
    assert not (tmp_path / "out").exists()


def test_relative_input_reaches_the_other_checkout(fake_before, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DEMO_ANSWERS", "3")
    tool = load_tool()
    tool.main(["--input", "photos", "--before-repo", str(fake_before), "--rounds", "1", "--output", "out"])
    report = json.load(open(tmp_path / "out" / "throughput.json"))
    assert report["photos"] == 3 and report["input"] == str(tmp_path / "photos")
    assert len(report["runs"]["before"]["seconds"]) == 1 and report["runs"]["before"]["x_first"] == 1.0


def test_before_runs_take_their_options_and_need_the_before_checkout(fake_before, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_DEMO_ANSWERS", "3")
    monkeypatch.setenv("FAKE_DEMO_LOG", str(tmp_path / "calls.jsonl"))
    tool = load_tool()
    argv = ["--input", "photos", "--rounds", "1", "--output", "out", "--before-repo", str(fake_before)]
    tool.main(argv + ["--before-run", "old fast=--no-draw --preset fast", "--before-run", "old=--no-draw"])
    calls = [json.loads(line) for line in open(tmp_path / "calls.jsonl")]
    assert [c[4:] for c in calls] == [["--no-draw", "--preset", "fast"], ["--no-draw"]]
    report = json.load(open(tmp_path / "out" / "throughput.json"))
    assert list(report["runs"]) == ["old fast", "old"]  # no plain "before" beside them
    with pytest.raises(SystemExit):
        tool.main(["--input", "photos", "--before-run", "old=--no-draw"])
    assert "--before-run needs --before-repo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(argv + ["--before-run", "same=--no-draw", "--run", "same=--no-draw"])
    assert "two runs named 'same'" in capsys.readouterr().err


def test_as_video_times_the_demo_on_a_video_of_the_photos(fake_before, tmp_path, monkeypatch):
    """--as-video 4: the 3 photos as 12 frames, each run answering all of them (a run answering 11
    stops the measurement)."""
    tool = load_tool()
    argv = ["--input", "photos", "--before-repo", str(fake_before), "--rounds", "1", "--as-video", "4"]
    monkeypatch.setenv("FAKE_DEMO_ANSWERS", "11")
    with pytest.raises(SystemExit, match="answered 11 of the 12 frames"):
        tool.main([*argv, "--output", "out"])
    monkeypatch.setenv("FAKE_DEMO_ANSWERS", "12")
    tool.main([*argv, "--output", "out"])
    report = json.load(open(tmp_path / "out" / "throughput.json"))
    assert report["frames"] == 12 and report["as_video"] == 4
    assert "12 frames (a video of 3 photos)" in open(tmp_path / "out" / "throughput.md").read()


def test_test_video_letterboxes_each_photo_and_pans(tmp_path):
    """A 100x50 photo of grey 200 in a 1280x720 video: scaled 12.8x to 1280x640, rows 40-679 (the
    bars above and below black), 2 px further right in each of its frames."""
    import cv2

    Image.fromarray(np.full((50, 100, 3), 200, np.uint8)).save(tmp_path / "wide.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a photo")
    tool = load_tool()
    path = str(tmp_path / "v.mp4")
    assert tool.write_test_video([str(tmp_path / "wide.png"), str(tmp_path / "broken.jpg")], path, 3) == 3
    video = cv2.VideoCapture(path)
    frames = [video.read()[1] for _ in range(3)]
    assert video.read()[0] is False and frames[0].shape == (720, 1280, 3)
    for k, f in enumerate(frames):
        rows = f.mean(axis=(1, 2))
        assert rows[:36].max() < 10 and rows[684:].max() < 10 and abs(rows[44:676].mean() - 200) < 6
        cols = f[360].mean(axis=1)
        assert cols[: 2 * k].max(initial=0) < 10 and abs(cols[2 * k + 4 : 1270].mean() - 200) < 6


def test_as_video_needs_a_number_of_frames(fake_before, capsys):
    tool = load_tool()
    with pytest.raises(SystemExit) as e:
        tool.main(["--input", "photos", "--before-repo", str(fake_before), "--as-video", "-2"])
    assert e.value.code == 2 and "--as-video is a number of frames" in capsys.readouterr().err
