"""tools/demo.py, batch JSON/CSV, bad inputs, the survey and the Python API, on a toy model whose
weights are saved to a checkpoint (untrained, with size heads set so that boxes are non-empty)."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import tiny_cfg
from PIL import Image

from foss_d2 import FaceAgeEstimator
from foss_d2.apps.survey import count_faces, counts_over_time, group_names, save_survey

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    cfg = tiny_cfg(**{"MODEL.FOSS.SCORE_THRESH_TEST": 0.0, "MODEL.FOSS.K_TEST": 3})
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.constant_(model.proposal_generator.size[-1].bias, 8.0)
    DetectionCheckpointer(model, save_dir=str(d)).save("toy")
    cfg.MODEL.WEIGHTS = str(d / "toy.pth")
    cfg_file = d / "toy.yaml"
    cfg_file.write_text(cfg.dump())
    return str(cfg_file), str(d / "toy.pth")


def _bad_and_odd_folder(root):
    rng = np.random.default_rng(0)
    os.makedirs(root / "sub")
    cv2.imwrite(str(root / "good.jpg"), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "sub" / "gray.png"), rng.integers(0, 255, (50, 50), dtype=np.uint8))
    cv2.imwrite(str(root / "rgba.png"), rng.integers(0, 255, (40, 30, 4), dtype=np.uint8))
    cv2.imwrite(str(root / "deep16.png"), rng.integers(0, 65535, (30, 30, 3), dtype=np.uint16))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    data = open(root / "good.jpg", "rb").read()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "notes.txt").write_text("not an image")


def _run_demo(cfg_file, *args):
    """tools/demo.py as a user runs it, with the toy model's config; it must succeed."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", "demo.py"), "--config-file", cfg_file, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_demo_batch_json_csv_and_bad_inputs(toy_model, tmp_path):
    cfg_file, weights = toy_model
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    _bad_and_odd_folder(inp)
    r = _run_demo(cfg_file, "--input", str(inp), "--output", str(out))
    preds = json.load(open(out / "predictions.json"))
    skipped = json.load(open(out / "skipped.json"))
    assert sorted(preds) == ["deep16.png", "good.jpg", "rgba.png", os.path.join("sub", "gray.png")]
    assert sorted(skipped) == ["corrupt.jpg", "notes.txt", "truncated.jpg"]
    assert "cannot read image" in skipped["corrupt.jpg"] and "not an image file name (.txt)" in skipped["notes.txt"]
    assert "notes.txt" in r.stdout + r.stderr  # the non-image file was reported
    sizes = {
        "good.jpg": (60, 80),
        "rgba.png": (40, 30),
        "deep16.png": (30, 30),
        os.path.join("sub", "gray.png"): (50, 50),
    }
    n_faces = 0
    for key, faces in preds.items():
        h, w = sizes[key]
        for f in faces:
            assert set(f) == {"box", "score", "age", "age_std", "gender", "p_female"}
            x1, y1, x2, y2 = f["box"]
            assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h  # original-image pixels
            assert (
                0 <= f["age"] <= 100
                and 0 <= f["p_female"] <= 1
                and f["gender"] == ("female" if f["p_female"] > 0.5 else "male")
            )
        n_faces += len(faces)
        assert (out / key).exists()  # the annotated picture
    rows = open(out / "predictions.csv").read().strip().splitlines()
    assert rows[0].startswith("image,face,x1") and len(rows) == 1 + n_faces > 1


def test_api_three_input_types_agree(toy_model, tmp_path):
    cfg_file, weights = toy_model
    est = FaceAgeEstimator(config_file=cfg_file, weights=weights, device="cpu")
    bgr = np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), bgr)
    a = est(str(tmp_path / "x.png"))
    b = est(bgr)  # BGR array (OpenCV convention)
    c = est(Image.fromarray(bgr[:, :, ::-1]))  # PIL (RGB)
    d = est(bgr[:, :, ::-1].copy(), channel_order="RGB")
    assert len(a) > 0 and a == b == c == d
    with pytest.raises(FileNotFoundError):
        est(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="is a folder, not an image"):
        est(str(tmp_path))


@pytest.mark.parametrize("fmt", ["BGR", "RGB"])
def test_api_draws_the_pictures_the_demo_draws(toy_model, tmp_path, fmt):
    """est.draw: the demo's picture of the estimator's faces (BGR, or RGB when asked) whatever
    channel order the model reads, from an array, a file or a PIL image; the photo itself for no
    faces; a picture OpenCV can draw on; a bad channel order a clear error."""
    from foss_d2.utils.visualizer import draw_predictions

    cfg_file, weights = toy_model
    est = FaceAgeEstimator(config_file=cfg_file, weights=weights, device="cpu", opts=["INPUT.FORMAT", fmt])
    bgr = np.random.default_rng(2).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    faces = est(bgr)
    drawn = est.draw(bgr)
    assert len(faces) > 0 and drawn.shape == bgr.shape and (drawn != bgr).any()
    assert (drawn == draw_predictions(bgr, faces)).all()
    assert (est.draw(bgr[:, :, ::-1].copy(), channel_order="RGB") == drawn[:, :, ::-1]).all()
    cv2.imwrite(str(tmp_path / "x.png"), bgr)
    assert (est.draw(str(tmp_path / "x.png"), faces=faces) == drawn).all()
    assert (est.draw(Image.fromarray(bgr[:, :, ::-1].copy())) == drawn).all()
    assert (est.draw(bgr, faces=[]) == bgr).all()
    cv2.rectangle(drawn, (1, 1), (5, 5), (255, 0, 0))  # a plain array, not a channel-reversed view
    with pytest.raises(ValueError, match="channel_order must be BGR or RGB"):
        est.draw(bgr, channel_order="BRG")


def test_api_draw_shrinks_large_pictures_as_the_demo_does(toy_model):
    """3000x100 -> 2048 px on its longer side (100 x 2048 / 3000 = 68.3 -> 68 rows); max_side None
    keeps the full size."""
    cfg_file, weights = toy_model
    est = FaceAgeEstimator(config_file=cfg_file, weights=weights, device="cpu")
    wide = np.full((100, 3000, 3), 50, np.uint8)
    assert est.draw(wide, faces=[]).shape == (68, 2048, 3)
    assert est.draw(wide, faces=[], max_side=None).shape == (100, 3000, 3)


def test_api_settings_mistakes_are_clear_errors(toy_model):
    cfg_file, weights = toy_model
    with pytest.raises(ValueError, match=r"confidence_threshold is a face score in \[0, 1\], got 1.5"):
        FaceAgeEstimator(config_file=cfg_file, weights=weights, device="cpu", confidence_threshold=1.5)
    with pytest.raises(TypeError, match=r"\['MODEL.AGE_HEAD.TEST_FLIP', 'False'\], not one string"):
        FaceAgeEstimator(config_file=cfg_file, weights=weights, device="cpu", opts="MODEL.AGE_HEAD.TEST_FLIP False")


def test_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model weights not found"):
        FaceAgeEstimator(weights=str(tmp_path / "nope.pth"))
    # a URL that cannot be fetched (nothing listens on port 9 here) is a download failure, not a bad file
    with pytest.raises(ValueError, match="could not be downloaded"):
        FaceAgeEstimator(weights="http://127.0.0.1:9/model.pth", device="cpu")


def test_survey_counts_hand_checked(tmp_path):
    preds = {
        "a.jpg": [{"age": 1.0, "gender": "female"}, {"age": 25.0, "gender": "male"}, {"age": 36.9, "gender": "male"}],
        "b.jpg": [{"age": 37.0, "gender": "female"}, {"age": 80.0, "gender": "male"}, {"age": None, "gender": None}],
        "c.jpg": [],
    }
    counts = count_faces([f for fs in preds.values() for f in fs])
    assert group_names([0, 3, 8, 13, 20, 37, 66]) == ["0-2", "3-7", "8-12", "13-19", "20-36", "37-65", "66+"]
    assert counts["0-2"] == {"male": 0, "female": 1, "unknown": 0}
    assert counts["20-36"] == {"male": 2, "female": 0, "unknown": 0}
    assert counts["37-65"] == {"male": 0, "female": 1, "unknown": 0}
    assert counts["66+"] == {"male": 1, "female": 0, "unknown": 0}
    assert sum(sum(v.values()) for v in counts.values()) == 5
    custom = count_faces([f for fs in preds.values() for f in fs], [0, 30])
    assert custom == {"0-29": {"male": 1, "female": 1, "unknown": 0}, "30+": {"male": 2, "female": 1, "unknown": 0}}
    # video: frames 0-9 at 5 fps, 1-second windows
    frames = {str(i): [{"age": 30.0, "gender": "male"}] * (i % 2) for i in range(10)}
    tl = counts_over_time(frames, fps=5, bucket_seconds=1)
    assert [t for t, _ in tl] == [0, 1] and [c["20-36"]["male"] for _, c in tl] == [2, 3]
    total = save_survey(counts, str(tmp_path), timeline=tl)
    assert total == 5
    for f in ("survey.json", "survey.csv", "survey.png", "survey_timeline.csv", "survey_timeline.png"):
        assert (tmp_path / f).exists()
    assert open(tmp_path / "survey.csv").read().splitlines()[5] == "20-36,2,0,0,2"


def test_survey_timeline_picture_stacks_each_window_over_its_span(monkeypatch, tmp_path):
    """survey_timeline.png: one bar per window, from its start over its width (not a point at the
    start joined to the next), stacked by age group; the legend lists the groups drawn top to bottom
    as they are stacked, the groups nobody fell in are named under the plot, and times read m:ss."""
    from foss_d2.apps import survey

    drawn = {}
    monkeypatch.setattr(survey, "save_figure", lambda plt, fig, path, **kw: drawn.update(fig=fig))
    lower = [0, 20, 40]
    people = {
        0.0: [{"age": 10.0, "gender": "male"}, {"age": 30.0, "gender": "female"}, {"age": 31.0, "gender": "male"}],
        60.0: [],
        120.0: [{"age": 5.0, "gender": "female"}],
    }
    timeline = [(t, count_faces(p, lower)) for t, p in people.items()]
    survey.save_survey(count_faces([], lower), str(tmp_path), timeline=timeline, unit="people", bucket_seconds=60)
    ax = drawn["fig"].axes[0]
    bars = [(r.get_x(), r.get_width(), r.get_y(), r.get_height()) for r in ax.patches]
    # 0-19 at the bottom (1, 0, 1 people), 20-39 on it (2, 0, 0); 40+ has nobody and no bars
    assert bars == [(0, 54, 0, 1), (60, 54, 0, 0), (120, 54, 0, 1), (0, 54, 1, 2), (60, 54, 0, 0), (120, 54, 1, 0)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["20-39", "0-19"]
    assert [t.get_text() for t in ax.texts] == ["no people: 40+"]
    assert ax.get_xlim() == (0, 180)
    assert ax.get_title() == "FOSS-D2 age survey: people in view per 60 s window"
    assert [survey.clock(s) for s in (0, 125, 3725.4)] == ["0:00", "2:05", "1:02:05"]
    survey.save_survey(count_faces([], lower), str(tmp_path), timeline=timeline, bucket_seconds=60)
    assert drawn["fig"].axes[0].get_title() == "FOSS-D2 age survey: faces per 60 s window, every frame counted"
    with open(tmp_path / "survey_timeline.csv") as f:
        assert f.read().splitlines() == ["start_s,0-19,20-39,40+", "0.0,1,2,0", "60.0,0,0,0", "120.0,1,0,0"]


def test_video_with_broken_frames_keeps_going(toy_model, tmp_path):
    cfg_file, _ = toy_model
    path = str(tmp_path / "clip.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for i in range(12):
        w.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    data = bytearray(open(path, "rb").read())
    n = len(data)
    data[int(n * 0.45) : int(n * 0.55)] = bytes(int(n * 0.55) - int(n * 0.45))  # zero out frames mid-stream
    open(path, "wb").write(bytes(data))
    out = tmp_path / "out"
    _run_demo(cfg_file, "--video-input", path, "--output", str(out))
    preds = json.load(open(out / "predictions.json"))
    skipped = json.load(open(out / "skipped.json"))
    assert "0" in preds and len(preds) >= 10  # frames before and after the damage
    assert len(preds) + len(skipped) == 12  # every frame is either predicted or reported
    assert (out / "clip_foss.mp4").exists()


class _Capture:
    """A video whose header announces ``announced`` frames and which gives ``real`` of them, the
    ones in ``bad`` unreadable: what OpenCV does with remuxed or damaged files."""

    def __init__(self, real, announced, bad=()):
        self.i, self.real, self.announced, self.bad = 0, real, announced, set(bad)

    def isOpened(self):
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_COUNT: self.announced, cv2.CAP_PROP_FPS: 10.0}.get(prop, 64)

    def grab(self):
        ok = self.i < self.real and self.i not in self.bad
        self.i += 1
        return ok

    def read(self):
        ok = self.grab()
        return ok, (np.full((48, 64, 3), 100, np.uint8) if ok else None)

    def release(self):
        pass


@pytest.mark.parametrize(
    "real, announced, stride, bad, expected",
    [
        (30, 52, 1, (), {"30-51": "the video ends at frame 30, before the 52 frames"}),
        (30, 52, 5, (), {"30-51": "the video ends at frame 30"}),  # the stride's last frame past the end
        (30, 52, 4, (), {"32-51": "the video ends at frame 32"}),
        (52, 52, 5, (50,), {"50": "unreadable frame"}),  # frame 51 is there: 50 was broken
        (40, 40, 1, (7, 8), {"7": "unreadable frame", "8": "unreadable frame"}),
        (100, 100, 1, range(30, 61), {"30-99": "25 frames in a row from frame 30 could not be read"}),
    ],
)
def test_video_frames_that_never_read_are_reported_by_what_they_are(
    tmp_path, monkeypatch, real, announced, stride, bad, expected
):
    """Every processed frame is predicted or in skipped.json: a broken frame as such, the frames a
    header announced but the file never gave as one entry, a long broken stretch as where reading
    stopped (frame numbers and reasons by hand)."""
    from foss_d2.apps import runner
    from foss_d2.engine import pipeline

    monkeypatch.setattr(runner.cv2, "VideoCapture", lambda source: _Capture(real, announced, bad))
    monkeypatch.setattr(pipeline, "instances_to_faces", lambda inst: [])
    (tmp_path / "clip.mp4").write_bytes(b"x")
    out = tmp_path / "out"
    runner.run_video(lambda img: None, str(tmp_path / "clip.mp4"), str(out), "BGR", draw=False, every_n_frames=stride)
    skipped = json.load(open(out / "skipped.json"))
    assert sorted(skipped) == sorted(expected) and all(expected[k] in skipped[k] for k in expected), skipped
    processed = [i for i in range(0, min(real, announced), stride) if i not in set(bad)]
    done = json.load(open(out / "predictions.json"))
    if expected.get("30-99"):
        processed = [i for i in processed if i < 30]
    assert sorted(map(int, done)) == processed


def test_a_config_without_weights_is_refused_for_inference(toy_model, tmp_path):
    from foss_d2.config import get_foss_cfg
    from foss_d2.model_zoo import DEFAULT_CONFIG, DEFAULT_WEIGHTS

    cfg_file, weights = toy_model
    bare = tmp_path / "bare.yaml"
    bare.write_text(open(cfg_file).read().replace(f"WEIGHTS: {weights}", "WEIGHTS: ''"))
    # an untrained model answers [] for every photo: refused, with what to give
    with pytest.raises(ValueError, match="no weights: .*bare.yaml sets no MODEL.WEIGHTS"):
        FaceAgeEstimator(config_file=str(bare), device="cpu")
    assert FaceAgeEstimator(config_file=str(bare), weights=weights, device="cpu").cfg.MODEL.WEIGHTS == weights
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "demo.py"), "--config-file", str(bare)]
    family = os.path.join(ROOT, "demo", "family.jpg")
    r = subprocess.run([*cmd, "--input", family, "--output", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "no weights" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    # the shipped config named for inference comes with the shipped weights; for training it stays bare
    assert get_foss_cfg(DEFAULT_CONFIG, need_weights=True).MODEL.WEIGHTS == DEFAULT_WEIGHTS
    assert get_foss_cfg(DEFAULT_CONFIG).MODEL.WEIGHTS == ""


def test_a_training_runs_config_yaml_is_not_read_with_the_weights_it_started_from(tmp_path):
    """train_net.py writes OUTPUT_DIR/config.yaml with the MODEL.WEIGHTS the run started from (a
    fine-tuning run: the shipped weights). Given to the demo or the API, it answered with those,
    not the trained ones, without a word. Now a ValueError naming the trained weights; given
    weights are used; training reads the config as written."""
    from foss_d2.config import get_foss_cfg
    from foss_d2.model_zoo import DEFAULT_WEIGHTS

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(get_foss_cfg(need_weights=True).dump())  # MODEL.WEIGHTS: the shipped
    (run / "model_0000009.pth").write_bytes(b"trained")  # the config check does not read it
    (run / "last_checkpoint").write_text("model_0000009.pth")
    cfg_file = str(run / "config.yaml")
    trained = str(run / "model_0000009.pth")
    with pytest.raises(ValueError, match=f"was written by a training run, whose weights are {trained}"):
        FaceAgeEstimator(config_file=cfg_file, device="cpu")
    assert get_foss_cfg(cfg_file, need_weights=True, opts=["MODEL.WEIGHTS", trained]).MODEL.WEIGHTS == trained
    assert get_foss_cfg(cfg_file, need_weights=True, weights=DEFAULT_WEIGHTS).MODEL.WEIGHTS == DEFAULT_WEIGHTS
    assert get_foss_cfg(cfg_file).MODEL.WEIGHTS == DEFAULT_WEIGHTS  # train_net.py --resume reads it so
    (run / "model_final.pth").write_bytes(b"trained")  # the run's end: its final weights are named
    with pytest.raises(ValueError, match="MODEL.WEIGHTS .*run/model_final.pth in the tools"):
        get_foss_cfg(cfg_file, need_weights=True)
    # the same config under another name, or one whose weights are the run's own: read as it is
    other = tmp_path / "mine.yaml"
    other.write_text((run / "config.yaml").read_text())
    assert get_foss_cfg(str(other), need_weights=True).MODEL.WEIGHTS == DEFAULT_WEIGHTS
    (run / "config.yaml").write_text(get_foss_cfg(weights=str(run / "model_final.pth")).dump())
    assert get_foss_cfg(cfg_file, need_weights=True).MODEL.WEIGHTS.endswith("run/model_final.pth")


def test_config_and_opts_mistakes_name_what_to_do(toy_model, tmp_path):
    cfg_file, weights = toy_model
    with pytest.raises(ValueError, match=r"not a YAML config but a binary file \(a checkpoint\? pass it as weights="):
        FaceAgeEstimator(weights)  # the checkpoint as the first argument, which is the config
    with pytest.raises(FileNotFoundError, match="config file not found: .*nope.yaml"):
        FaceAgeEstimator(config_file=str(tmp_path / "nope.yaml"))
    with pytest.raises(KeyError, match="Non-existent key: MODEL.NOPE .*foss_d2/config.py"):
        FaceAgeEstimator(config_file=cfg_file, device="cpu", opts=["MODEL.NOPE", "1"])
    with pytest.raises(ValueError, match="'MODEL.FOSS.K_TEST' has no value"):
        FaceAgeEstimator(config_file=cfg_file, device="cpu", opts=["MODEL.FOSS.K_TEST"])
    est = FaceAgeEstimator(config_file=cfg_file, device="cpu", opts={"MODEL.FOSS.K_TEST": "2"})
    assert est.cfg.MODEL.FOSS.K_TEST == 2


def test_draw_checks_the_faces_it_is_given(toy_model, recwarn):
    cfg_file, _ = toy_model
    est = FaceAgeEstimator(config_file=cfg_file, device="cpu")
    img = np.full((100, 200, 3), 90, np.uint8)
    face = {"box": [10, 20, 60, 90], "score": 0.9, "age": 30.0, "p_female": 0.8}
    with pytest.raises(TypeError, match="faces is a list of face dicts .* got dict"):
        est.draw(img, faces=face)
    with pytest.raises(ValueError, match=r"faces\[1\] has no box"):
        est.draw(img, faces=[face, {"age": 3}])
    with pytest.raises(ValueError, match="max_side is a side in pixels"):
        est.draw(img, faces=[face], max_side=-5)
    # values of the wrong kind: numpy's or matplotlib's message before ("must be real number, not str")
    for bad, said in [
        ({"box": ["a", "b", "c", "d"]}, r"faces\[0\]'s box is not four finite numbers"),
        ({"box": [float("nan")] * 4}, r"faces\[0\]'s box is not four finite numbers"),
        (dict(face, age="30"), r"faces\[0\]'s age is not a number: '30'"),
        (dict(face, score=None, gender=1), r"faces\[0\]'s gender is not 'female' or 'male': 1"),
    ]:
        with pytest.raises(ValueError, match=said):
            est.draw(img, faces=[bad])
    # channel_order is checked whatever the image (it was ignored for a path or a PIL image)
    with pytest.raises(ValueError, match="channel_order must be BGR or RGB, got 'XYZ'"):
        est(Image.fromarray(img), channel_order="XYZ")
    # a hand-made face with a box alone is drawn, labelled "?"; so is one with its age alone
    bare = est.draw(img, faces=[{"box": [10, 20, 60, 90]}, {"box": [100, 20, 150, 90], "age": 7}])
    assert (bare != img).any()
    assert not [w for w in recwarn if "outside" in str(w.message)]
    est.draw(img, faces=[face, {"box": [300, 150, 350, 190]}])  # the answers of a larger photo
    assert any("1 of the 2 faces' boxes lie outside this 200x100 image" in str(w.message) for w in recwarn)


def test_max_pixels_is_the_estimators_to_set(toy_model, tmp_path):
    from foss_d2.utils.image_io import ImageTooLargeError

    cfg_file, _ = toy_model
    path = str(tmp_path / "wide.png")
    Image.new("RGB", (400, 300)).save(path)
    small = FaceAgeEstimator(config_file=cfg_file, device="cpu", max_pixels=100_000)
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        small(path)
    # the same photo opened with PIL (lazily: only its header read) was decoded whatever its size
    with Image.open(path) as im, pytest.raises(ImageTooLargeError, match=r"the PIL image: 400x300 pixels"):
        small(im)
    est = FaceAgeEstimator(config_file=cfg_file, device="cpu", max_pixels=120_000)
    assert len(est(path)) == 3  # the toy model: K_TEST faces, threshold 0
    with Image.open(path) as im:
        assert len(est(im)) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_api_map_answers_every_input_in_order_and_skips_bad_ones(toy_model, tmp_path, caplog, workers):
    """est.map over files, a pathlib path, arrays and a PIL image, from a generator: each result in
    its input's place with the faces est() gives it; a missing file, a text file and a picture over
    max_pixels come back as errors in their places (each logged) while the others go on."""
    import logging
    import pathlib

    cfg_file, weights = toy_model
    est = FaceAgeEstimator(config_file=cfg_file, weights=weights, device="cpu", max_pixels=200_000)
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 255, (60 + 10 * i, 90, 3), dtype=np.uint8) for i in range(3)]
    cv2.imwrite(str(tmp_path / "a.png"), arrays[0])
    cv2.imwrite(str(tmp_path / "b.png"), arrays[1])
    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("RGB", (600, 400)).save(tmp_path / "big.png")  # 240,000 pixels
    inputs = [
        str(tmp_path / "a.png"),
        str(tmp_path / "missing.png"),
        arrays[2],
        pathlib.Path(tmp_path / "b.png"),
        str(tmp_path / "notes.txt"),
        Image.fromarray(arrays[2][:, :, ::-1]),
        str(tmp_path / "big.png"),
        arrays[1],
    ]
    with caplog.at_level(logging.WARNING, logger="foss_d2.api"):
        results = list(est.map((x for x in inputs), channel_order="BGR", workers=workers))
    assert [r.index for r in results] == list(range(8))
    assert [r.path for r in results] == [
        str(tmp_path / "a.png"),
        str(tmp_path / "missing.png"),
        None,
        str(tmp_path / "b.png"),
        str(tmp_path / "notes.txt"),
        None,
        str(tmp_path / "big.png"),
        None,
    ]
    bad = {1: "not found", 4: "cannot identify image file", 6: "max_pixels"}
    for r in results:
        if r.index in bad:
            assert r.faces is None and bad[r.index] in r.error
        else:
            assert r.error is None and len(r.faces) == 3  # the toy model: K_TEST faces, threshold 0
    assert results[0].faces == est(arrays[0]) != results[3].faces == est(arrays[1]) == results[7].faces
    assert results[2].faces == results[5].faces == est(arrays[2])
    skipped = [m for m in caplog.messages if m.startswith("skipping input")]
    assert len(skipped) == 3 and "missing.png" in skipped[0] and "big.png" in skipped[2]
    # one bad channel order for all the images is said at the call, before any is read
    with pytest.raises(ValueError, match="channel_order must be BGR or RGB"):
        est.map(inputs, channel_order="BRG")
    with pytest.raises(ValueError, match="workers is a number of images"):
        est.map(inputs, workers=0)


def test_api_map_shares_the_threads_and_gives_them_back(toy_model):
    """On 2 threads with PyTorch on CPU, map's two workers run the model on one thread each; the
    calling thread keeps its 2 throughout, and a thread started afterwards gets 2 again. An image
    the model fails on is an error in its place. A loop left after its first result stops the
    reader and the workers."""
    import threading

    cfg_file, weights = toy_model
    est = FaceAgeEstimator(config_file=cfg_file, weights=weights, device="cpu")
    seen, model = [], est.predictor

    def counting(img):
        seen.append(torch.get_num_threads())
        if img[0, 0, 0] == 30:
            raise RuntimeError("out of memory")
        return model(img)

    est.predictor = counting
    est.predictor.backend, est.predictor.cfg = "pytorch", est.cfg
    torch.set_num_threads(2)
    images = [np.full((50, 70, 3), 10 * i, np.uint8) for i in range(6)]
    during, errors = [], []
    for r in est.map(images):
        during.append(torch.get_num_threads())
        errors.append(r.error)
    assert seen == [1] * 6 and during == [2] * 6 and torch.get_num_threads() == 2
    # the image the model failed on comes back as its error, in its place
    assert errors == [None] * 3 + ["the model failed on this image: RuntimeError: out of memory"] + [None] * 2
    later = []
    t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert later == [2]
    results = est.map(images * 20, workers=2)
    next(results)
    results.close()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("foss-d2-")]
    assert len(seen) < 6 + 20 * 6
