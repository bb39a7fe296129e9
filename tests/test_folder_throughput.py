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
args = sys.argv[1:]
inp, out = args[args.index("--input") + 1], args[args.index("--output") + 1]
os.makedirs(out, exist_ok=True)
first = sorted(os.listdir(inp))[: int(os.environ.get("FAKE_DEMO_ANSWERS", "1"))]
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
