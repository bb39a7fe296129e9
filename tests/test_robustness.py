"""The runner under a user's mistakes (issue 17 items 1, 3, 4, 8; issue 19 item 4): outputs over
inputs, interrupted runs and --resume/--overwrite, oversized pictures, runs where nothing could be
processed, bad arguments, --no-draw and the reader/drawer threads. Toy model, small files made here."""

import csv
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import unicodedata

import cv2
import numpy as np
import pytest
import torch
from conftest import tiny_cfg
from PIL import Image

from foss_d2.apps import demo, survey
from foss_d2.apps.runner import JOURNAL, PredictionWriter, collect_inputs, draw_predictions, read_journal

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

ROOT = os.path.join(os.path.dirname(__file__), "..")
FACES = 3  # the toy model answers K_TEST boxes on any picture


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy model's config file (weights saved beside it)."""
    d = tmp_path_factory.mktemp("toy")
    cfg = tiny_cfg(**{"MODEL.FOSS.SCORE_THRESH_TEST": 0.0, "MODEL.FOSS.K_TEST": FACES})
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.constant_(model.proposal_generator.size[-1].bias, 8.0)
    DetectionCheckpointer(model, save_dir=str(d)).save("toy")
    cfg.MODEL.WEIGHTS = str(d / "toy.pth")
    (d / "toy.yaml").write_text(cfg.dump())
    return str(d / "toy.yaml")


def _photos(folder, n, size=(60, 80)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.random.default_rng(i).integers(0, 255, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"p{i:02d}.png"), img)
    return sorted(os.listdir(folder))


def _demo(capsys, *argv):
    """demo.main in this process: (exit code, stdout + stderr)."""
    try:
        demo.main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def runner_log(caplog):
    """The runner's log lines (caplog.text): the foss_d2 logger does not propagate (detectron2's
    setup_logger), and its console handler holds the stream of the first test that set it up."""
    logger = logging.getLogger("foss_d2")
    caplog.set_level(logging.INFO, logger="foss_d2")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def _csv_counts(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["image", "face"] and sum(r[:2] == ["image", "face"] for r in rows) == 1
    counts = {}
    for r in rows[1:]:
        counts[r[0]] = counts.get(r[0], 0) + 1
    return counts


# ---------------------------------------------------------------- 1. outputs never written over inputs


def test_output_over_input_is_refused(toy, tmp_path, capsys):
    photos = tmp_path / "photos"
    names = _photos(photos, 2)
    before = {n: (photos / n).read_bytes() for n in names}
    code, msg = _demo(capsys, "--config-file", toy, "--input", photos, "--output", photos)
    assert code == 2 and f"--output {photos} is the input folder {photos}" in msg
    code, msg = _demo(capsys, "--config-file", toy, "--input", photos / "p00.png", "--output", tmp_path)
    assert code == 2 and "holds the input" in msg and str(photos / "p00.png") in msg
    os.symlink(photos, tmp_path / "link")  # the same folder by another name
    code, msg = _demo(capsys, "--config-file", toy, "--input", tmp_path / "link", "--output", photos)
    assert code == 2 and os.path.realpath(photos) in msg
    assert {n: (photos / n).read_bytes() for n in os.listdir(photos)} == before  # nothing written


def test_output_inside_the_input_folder_is_not_read_back(toy, tmp_path, capsys):
    photos = tmp_path / "photos"
    _photos(photos, 2)
    code, _ = _demo(capsys, "--config-file", toy, "--input", photos, "--output", photos / "out")
    assert code == 0
    code, _ = _demo(capsys, "--config-file", toy, "--input", photos, "--output", photos / "out", "--resume")
    assert code == 0 and sorted(json.load(open(photos / "out" / "predictions.json"))) == ["p00.png", "p01.png"]
    assert collect_inputs([str(photos)], exclude=str(photos / "out"))[0] == [
        (str(photos / "p00.png"), "p00.png"),
        (str(photos / "p01.png"), "p01.png"),
    ]


def test_a_folder_in_use_by_another_run_is_refused(toy, tmp_path, capsys):
    """Two runs into one folder at once (measured with the shipped model: a --resume started while
    the first run was going answered 10 of WIDER val's 130 photos twice, put 76 faces twice in the
    CSV and broke a journal line): the second is refused in one line naming the first, before the
    model loads, and nothing it would write is written; a process killed while holding the folder
    (SIGKILL: its lock file left behind) does not block the next run, which removes that file."""
    from foss_d2.apps.runner import LOCK_FILE, RunError, output_lock, run_video

    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, 2)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from foss_d2.apps.runner import output_lock\n"
         "with output_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        code, msg = _demo(capsys, "--config-file", toy, "--input", photos, "--output", out)
        assert code == 2 and f"{out} is in use by another run (pid {holder.pid} on " in msg.strip().splitlines()[-1]
        assert os.listdir(out) == [LOCK_FILE]
        with pytest.raises(RunError, match="in use by another run"):  # the Python API's runs too
            run_video(None, str(tmp_path / "none.mp4"), str(out), "BGR")
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(out) == [LOCK_FILE]  # killed: its file stays, its lock went with it
    code, _ = _demo(capsys, "--config-file", toy, "--input", photos, "--output", out, "--no-draw")
    assert code == 0 and sorted(json.load(open(out / "predictions.json"))) == ["p00.png", "p01.png"]
    assert LOCK_FILE not in os.listdir(out)
    with output_lock(str(tmp_path / "new")):  # a folder made for the lock alone goes with it
        assert os.listdir(tmp_path / "new") == [LOCK_FILE]
    assert not (tmp_path / "new").exists()


def test_the_lock_is_taken_on_the_file_that_is_there(tmp_path, monkeypatch):
    """The run before removes its lock file as it ends: a run that opened that file just before and
    locked it just after held a lock on a removed file, and a third run would lock the new file
    and write the folder beside it. Now the lock is taken again on the file that is there."""
    import fcntl

    from foss_d2.apps import runner

    out = tmp_path / "out"
    out.mkdir()
    real, calls = runner._lock_or_refuse, []

    def locked_after_a_removal(f, out_dir, option):
        calls.append(os.fstat(f.fileno()).st_ino)
        if len(calls) == 1:  # the run before ends between this open and this lock
            os.remove(out / runner.LOCK_FILE)
        return real(f, out_dir, option)

    monkeypatch.setattr(runner, "_lock_or_refuse", locked_after_a_removal)
    with runner.output_lock(str(out)):
        assert len(calls) == 2 and os.stat(out / runner.LOCK_FILE).st_ino == calls[1]
        with open(out / runner.LOCK_FILE) as other, pytest.raises(BlockingIOError):  # a third run is refused
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_full_disk_ends_in_one_line_and_resume_finishes_with_every_picture(
    toy, tmp_path, capsys, monkeypatch, runner_log
):
    """A disk that fills up (tried on a 300 KiB tmpfs with WIDER val's Parade photos: a chain of
    three tracebacks): p01's picture cannot be written, then p02's journal line: exit 1 with one
    line saying where the results are and to --resume. After space is freed, --resume runs p01
    again for its picture (its answer had been kept, the picture missing) and p02: every picture,
    nothing skipped, each photo's rows once in the CSV."""
    import errno

    from foss_d2.apps import runner

    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, 3)
    full = OSError(errno.ENOSPC, "No space left on device")
    real_picture, real_journal = runner._write_picture, PredictionWriter._journal_write

    def picture(dst, *args):
        if dst.endswith("p01.png"):
            raise full
        return real_picture(dst, *args)

    def journal_full(self, line):
        if json.loads(line)["key"] == "p02.png":
            self._journal.write('{"key": "p02.png", "wid')  # a line cut short by the full disk
            raise OSError(errno.ENOSPC, "No space left on device", str(out / JOURNAL))
        return real_journal(self, line)

    monkeypatch.setattr(runner, "_write_picture", picture)
    monkeypatch.setattr(PredictionWriter, "_journal_write", journal_full)
    code, msg = _demo(capsys, "--config-file", toy, "--input", photos, "--output", out)
    last = msg.strip().splitlines()[-1]
    assert code == 1 and last == (  # (an uncaught error's traceback would end in "OSError: ...")
        f"No space left on device writing {out / JOURNAL}: the results so far are in {out}/{JOURNAL}; "
        "free some space, then run the same command with --resume to finish"
    )
    monkeypatch.setattr(runner, "_write_picture", real_picture)
    monkeypatch.setattr(PredictionWriter, "_journal_write", real_journal)
    code, msg = _demo(capsys, "--config-file", toy, "--input", photos, "--output", out, "--resume")
    assert code == 0 and "1 images whose pictures could not be written run again" in runner_log.text
    assert sorted(json.load(open(out / "predictions.json"))) == ["p00.png", "p01.png", "p02.png"]
    assert json.load(open(out / "skipped.json")) == {}
    assert all((out / f"p0{i}.png").is_file() for i in range(3))
    assert _csv_counts(out / "predictions.csv") == {f"p0{i}.png": FACES for i in range(3)}


def test_a_folder_made_read_only_mid_run_ends_in_one_line(toy, tmp_path, capsys, monkeypatch):
    """The same for a folder that stops taking writes (read-only, unplugged): the line says to
    --resume once it can be written, not to free space; an error of another kind is not hidden."""
    import errno

    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, 2)
    real_journal = PredictionWriter._journal_write

    def journal(self, line, error=errno.EROFS):
        if json.loads(line)["key"] == "p01.png":
            raise OSError(error, os.strerror(error), str(out / JOURNAL))
        return real_journal(self, line)

    monkeypatch.setattr(PredictionWriter, "_journal_write", journal)
    code, msg = _demo(capsys, "--config-file", toy, "--input", photos, "--output", out)
    assert code == 1 and msg.strip().splitlines()[-1] == (
        f"Read-only file system writing {out / JOURNAL}: the results so far are in {out}/{JOURNAL}; "
        f"once {out} can be written, run the same command with --resume to finish"
    )
    monkeypatch.setattr(PredictionWriter, "_journal_write", functools.partialmethod(journal, error=errno.EBADF))
    with pytest.raises(OSError, match="Bad file descriptor"):
        demo.main([str(a) for a in ("--config-file", toy, "--input", photos, "--output", tmp_path / "o2")])


def test_same_name_from_two_places_never_escapes_the_output(toy, tmp_path, capsys):
    for d in ("a", "b"):
        _photos(tmp_path / d, 1)
    out = tmp_path / "out"
    os.chdir(tmp_path / "a")  # relative paths with "..": the picture must still land under out/
    try:
        code, _ = _demo(capsys, "--config-file", toy, "--input", "p00.png", "../b/p00.png", "--output", out)
    finally:
        os.chdir(ROOT)
    assert code == 0 and sorted(json.load(open(out / "predictions.json"))) == ["a/p00.png", "b/p00.png"]
    pictures = [r["picture"] for r in read_journal(str(out / JOURNAL))]
    assert all(os.path.isfile(out / p) for p in pictures) and len(set(pictures)) == 2
    # the same two typed from another directory: the same keys, so --resume finds them done (their
    # keys were the paths as typed: run again, and counted twice by a survey)
    code, said = _demo(
        capsys, "--config-file", toy, "--input", tmp_path / "a" / "p00.png", tmp_path / "b" / "p00.png",
        "--output", out, "--resume",
    )  # fmt: skip
    assert code == 0 and "0 new results, 2 from before" in said


def test_a_photo_named_twice_is_run_once(toy, tmp_path, capsys, runner_log):
    """A folder, a file in it, the file again and a pattern over the folder: each photo once in the
    journal, the JSON and the CSV (its FACES rows once), as a survey of the same inputs counts."""
    photos = tmp_path / "photos"
    _photos(photos, 2)
    out = tmp_path / "out"
    inputs = [photos, photos / "p00.png", photos / "p00.png", str(photos / "*.png")]
    code, msg = _demo(capsys, "--config-file", toy, "--input", *inputs, "--output", out, "--no-draw")
    assert code == 0 and "4 inputs were named more than once" in runner_log.text
    assert [r["key"] for r in read_journal(str(out / JOURNAL))] == ["p00.png", "p01.png"]
    assert sorted(json.load(open(out / "predictions.json"))) == ["p00.png", "p01.png"]
    assert _csv_counts(out / "predictions.csv") == {"p00.png": FACES, "p01.png": FACES}
    os.symlink(photos / "p00.png", tmp_path / "best.png")  # a link is a photo of its own name
    assert [k for _, k in collect_inputs([str(photos / "p00.png"), str(tmp_path / "best.png")])[0]] == [
        "best.png",
        "p00.png",
    ]
    assert collect_inputs([str(photos / "p01.png"), str(photos)])[0] == [
        (str(photos / "p00.png"), "p00.png"),
        (str(photos / "p01.png"), "p01.png"),
    ]


def test_a_skipped_input_keeps_its_entry_beside_an_answered_one_of_that_name(toy, tmp_path, capsys):
    """photos/x.png answered and backup/x.png missing: both were keyed x.png, so the answer took the
    skipped.json entry away, and every --resume ran the photo again as one whose picture could not
    be written. Two folders' notes.txt overwrote each other's entry."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, 1)
    os.rename(photos / "p00.png", photos / "x.png")
    missing = str(tmp_path / "backup" / "x.png")
    for cam in ("cam1", "cam2"):
        (tmp_path / cam).mkdir()
        (tmp_path / cam / "notes.txt").write_text("not a photo")
    items, skipped = collect_inputs([str(photos / "x.png"), missing, str(tmp_path / "cam1"), str(tmp_path / "cam2")])
    assert [k for _, k in items] == ["x.png"]
    assert sorted(skipped) == sorted(["notes.txt", str(tmp_path / "cam2" / "notes.txt"), missing])
    code, _ = _demo(capsys, "--config-file", toy, "--input", photos / "x.png", missing, "--output", out)
    assert code == 0 and json.load(open(out / "skipped.json")) == {missing: f"image not found: {missing}"}
    code, msg = _demo(capsys, "--config-file", toy, "--input", photos / "x.png", missing, "--output", out, "--resume")
    assert code == 0 and "0 new results, 1 from before" in msg, msg


def test_pictures_of_names_a_case_insensitive_disk_would_join_are_kept_apart(toy, tmp_path, capsys):
    """cam1/IMG_1.png and cam2/img_1.PNG: two keys, and two pictures that are one file on macOS's
    APFS or an exFAT stick (the second replaced the first); so are the two ways of writing é."""
    out = tmp_path / "out"
    for cam, name in (
        ("cam1", "IMG_1.png"),
        ("cam2", "img_1.PNG"),
        ("cam3", "caf\u00e9.png"),
        ("cam4", "cafe\u0301.png"),
    ):
        _photos(tmp_path / cam, 1)
        os.rename(tmp_path / cam / "p00.png", tmp_path / cam / name)
    inputs = [tmp_path / "cam1" / "IMG_1.png", tmp_path / "cam2" / "img_1.PNG"]
    inputs += [tmp_path / "cam3" / "caf\u00e9.png", tmp_path / "cam4" / "cafe\u0301.png"]
    assert _demo(capsys, "--config-file", toy, "--input", *inputs, "--output", out)[0] == 0
    pictures = sorted(f for f in os.listdir(out) if f.lower().endswith(".png"))
    assert len(pictures) == 4 and len({unicodedata.normalize("NFC", p).casefold() for p in pictures}) == 4, pictures
    assert "IMG_1.png" in pictures and "img_1~2.PNG" in pictures


# ---------------------------------------------------------------- 2. nothing lost


def _start(toy, inp, out):
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "demo.py"), "--config-file", toy, "--input", inp, "--output", out],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _wait_for_results(proc, journal, n=1, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.isfile(journal) and len(read_journal(journal)) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be interrupted: {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)
    pytest.fail("no results appeared")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_interrupted_run_keeps_its_results_and_resumes(toy, tmp_path, capsys, sig):
    inp, out = tmp_path / "in", tmp_path / "out"
    names = _photos(inp, 12, size=(240, 320))
    proc = _start(toy, inp, out)
    _wait_for_results(proc, str(out / JOURNAL))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    records = read_journal(str(out / JOURNAL))
    kept = {r["key"]: r["faces"] for r in records}
    assert 1 <= len(kept) < len(names), "the run must be cut short for this test to mean anything"
    assert all(r["width"] == 320 and r["height"] == 240 and r["frame"] == "exif_oriented" for r in records)
    if sig == signal.SIGTERM:  # closed cleanly: predictions.json holds everything the journal holds
        assert proc.returncode == 128 + signal.SIGTERM and "interrupted by SIGTERM" in err and "--resume" in err
        assert json.load(open(out / "predictions.json")) == kept
    else:
        assert proc.returncode == -signal.SIGKILL
    # survey reads what survived, from the journal or its folder
    for src in (out / JOURNAL, out):
        survey.main(["--predictions", str(src), "--output", str(tmp_path / "survey")])
        assert json.load(open(tmp_path / "survey" / "survey.json"))["total_faces"] == FACES * len(kept)
    # a plain rerun is refused, --resume finishes it
    code, msg = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out)
    assert code == 2 and "--resume" in msg and "--overwrite" in msg
    code, msg = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out, "--resume")
    assert code == 0, msg
    assert f"{len(names) - len(kept)} new results, {len(kept)} from before" in msg
    preds = json.load(open(out / "predictions.json"))
    assert sorted(preds) == names and all(preds[k] == v for k, v in kept.items())
    assert _csv_counts(out / "predictions.csv") == {n: FACES for n in names}  # each image once, one header
    keys = [r["key"] for r in read_journal(str(out / JOURNAL)) if "faces" in r]
    assert sorted(keys) == names  # each image journaled once
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == names  # every picture, none half-written


@pytest.mark.parametrize("workers", [1, 2])
def test_a_signal_keeps_the_answers_of_the_images_in_the_model(tmp_path, workers):
    """SIGTERM while the model runs on the third of six photos: that photo (and, with two workers,
    those already handed to the pool) is finished and recorded, no other photo goes in, and the
    run ends interrupted. Its answer was thrown away before: the loop checked for the signal
    before recording the result it had just been given."""
    from foss_d2.apps import runner

    from detectron2.structures import Boxes, Instances

    names = _photos(tmp_path / "in", 6)
    items = [(str(tmp_path / "in" / n), n) for n in names]
    called = []

    def model(img):
        called.append(len(called))
        if len(called) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # noted by the run's handler, as a user's kill would be
            time.sleep(0.2)  # still in the model when the signal comes
        inst = Instances(img.shape[:2])
        inst.pred_boxes = Boxes(torch.tensor([[1.0, 2, 30, 40]]))
        inst.scores = torch.tensor([0.9])
        inst.pred_ages = torch.tensor([float(len(called))])
        inst.pred_female_probs = torch.tensor([0.2])
        return inst

    with pytest.raises(runner.Interrupted):
        runner.run_images(model, items, str(tmp_path / "out"), "BGR", draw=False, workers=workers)
    kept = [r["key"] for r in read_journal(str(tmp_path / "out" / JOURNAL)) if "faces" in r]
    assert len(called) == len(kept) and kept == names[: len(kept)]  # every answer the model gave, in order
    assert 3 <= len(kept) <= (3 if workers == 1 else 5)  # the third's; with a pool, those queued behind it
    assert sorted(json.load(open(tmp_path / "out" / "predictions.json"))) == kept


def test_predictions_json_reads_the_journal_where_each_line_is(tmp_path):
    """A line in the journal that the writer did not count (an error between a write and its
    count: a second Ctrl-C, a flush that failed and went out later) no longer shifts where the next
    results are read from: predictions.json copied other bytes (invalid JSON, or another image's
    faces)."""
    a = [{"box": [1.0, 2, 3, 4], "score": 0.5, "age": 30.25, "age_std": 5.0, "gender": "male", "p_female": 0.1}]
    b = [dict(a[0], age=61.5, gender="female", p_female=0.9)]
    w = PredictionWriter(str(tmp_path))
    w.add("a.jpg", a, 10, 10)
    w._journal.write(json.dumps({"key": "stray", "skipped": "written, never counted"}) + "\n")
    w.add("b.jpg", b, 10, 10)
    w.close()
    assert json.load(open(tmp_path / "predictions.json")) == {"a.jpg": a, "b.jpg": b}


def test_predictions_json_is_rewritten_at_most_a_twentieth_of_the_time(tmp_path, monkeypatch):
    """predictions.json holds one key a line, in the order written; during a run it is rewritten
    every save_every_s (30 s), or 20 times a rewrite's own time when longer: on a clock where each
    rewrite of a file takes 10 s, the one at t = 0 ends at 10 s and the next is due at
    10 + 20 x 10 = 210 s, not at 40 s; closing writes everything whatever the clock."""
    from foss_d2.apps import runner

    now = [0.0]
    real_write = runner.write_json_atomic

    def slow_write(path, data, indent=None):  # a disk where every rewrite (its last file) takes 10 s
        now[0] += 10.0
        real_write(path, data, indent)

    monkeypatch.setattr(runner, "write_json_atomic", slow_write)
    a = {"box": [1.5, 2, 3, 4], "score": 0.5, "age": 30.25, "age_std": 5.0, "gender": "male", "p_female": 0.1}
    b = {**a, "age": None, "age_std": None, "gender": None, "p_female": None}
    path = tmp_path / "predictions.json"
    w = PredictionWriter(str(tmp_path), clock=lambda: now[0])
    assert now[0] == 10.0 and path.read_text() == "{}\n"
    now[0] = 200.0
    w.add("x/1.jpg", [a, b], 10, 10)
    assert json.loads(path.read_text()) == {}  # due at 210 s
    now[0] = 210.0
    w.add("2.jpg", [], 10, 10)
    assert path.read_text() == '{\n"x/1.jpg": ' + json.dumps([a, b]) + ',\n"2.jpg": []\n}\n'
    assert now[0] == 220.0
    w.add("3.jpg", [a], 10, 10)
    assert list(json.loads(path.read_text())) == ["x/1.jpg", "2.jpg"]  # due at 420 s
    assert w.faces("x/1.jpg") == [a, b] and [k for k, _ in w.results()] == ["x/1.jpg", "2.jpg", "3.jpg"]
    w.close()
    assert json.loads(path.read_text()) == {"x/1.jpg": [a, b], "2.jpg": [], "3.jpg": [a]}
    quick = PredictionWriter(str(tmp_path / "q"), clock=lambda: now[0])
    monkeypatch.setattr(runner, "write_json_atomic", real_write)
    quick.save()  # a rewrite that takes no time: the next after save_every_s
    now[0] += 29.0
    quick.add("a.jpg", [], 10, 10)
    assert json.loads((tmp_path / "q" / "predictions.json").read_text()) == {}
    now[0] += 1.0
    quick.add("b.jpg", [], 10, 10)
    assert json.loads((tmp_path / "q" / "predictions.json").read_text()) == {"a.jpg": [], "b.jpg": []}
    quick.close()


def test_the_writer_keeps_faces_where_the_journal_has_them(tmp_path):
    """A run's memory does not hold the faces it found: each key keeps where its faces lie in the
    journal, and predictions.json is copied together from there. The journal's lines are
    json.dumps of each record as before, and predictions.json the same text (non-ASCII keys,
    a result withdrawn and given again, a --resume over a journal edited by hand included)."""
    a = {"box": [1.5, 2, 3, 4], "score": 0.5, "age": 30.25, "age_std": 5.0, "gender": "male", "p_female": 0.1}
    b = {**a, "age": None, "age_std": None, "gender": None, "p_female": None}
    w = PredictionWriter(str(tmp_path))
    w.add("été/1.jpg", [a, b], 10, 20, picture="1.jpg", time_s=1.23456, source={"bytes": 5, "sha1": "ab"})
    w.add("2.jpg", [], 30, 40)
    w.skip("3.jpg", "not an image", log=False)
    w.add("4.jpg", [b], 30, 40)
    w.forget(["2.jpg"])
    w.add("2.jpg", [a], 30, 40)
    assert all(isinstance(at, int) for at in w._at.values())  # locations, not texts
    assert w.faces("été/1.jpg") == [a, b] and list(w.done) == ["été/1.jpg", "4.jpg", "2.jpg"]
    w.close()
    first = {"key": "été/1.jpg", "width": 10, "height": 20, "frame": "exif_oriented", "faces": [a, b]}
    first.update(time_s=1.235, picture="1.jpg", source={"bytes": 5, "sha1": "ab"})
    image = {"width": 30, "height": 40, "frame": "exif_oriented"}
    records = [
        first,
        {"key": "2.jpg", **image, "faces": []},
        {"key": "3.jpg", "skipped": "not an image"},
        {"key": "4.jpg", **image, "faces": [b]},
        {"key": "2.jpg", "withdrawn": "its file changed since it was answered"},
        {"key": "2.jpg", **image, "faces": [a]},
    ]
    journal = (tmp_path / JOURNAL).read_text()
    assert journal == "".join(json.dumps(r) + "\n" for r in records)
    text = '{\n"\\u00e9t\\u00e9/1.jpg": ' + json.dumps([a, b]) + ',\n"4.jpg": ' + json.dumps([b])
    text += ',\n"2.jpg": ' + json.dumps([a]) + "\n}\n"
    assert (tmp_path / "predictions.json").read_text() == text
    # a --resume over a journal whose last result was edited by hand (other spacing)
    # and the last line, whole, saved without its newline
    edited = '{"key":"5.jpg","faces":' + json.dumps([a], separators=(",", ":")) + "}\n"
    (tmp_path / JOURNAL).write_text(journal + edited + json.dumps({"key": "7.jpg", "faces": [b]}))
    with PredictionWriter(str(tmp_path), resume=True) as w:
        assert isinstance(w._at["5.jpg"], str) and isinstance(w._at["7.jpg"], int)  # (its text kept)
        assert w.faces("5.jpg") == [a] and w.faces("4.jpg") == [b] and w.faces("7.jpg") == [b]
        w.add("6.jpg", [a], 30, 40)
    assert json.loads((tmp_path / "predictions.json").read_text()) == {
        "été/1.jpg": [a, b],
        "4.jpg": [b],
        "2.jpg": [a],
        "5.jpg": [a],
        "7.jpg": [b],
        "6.jpg": [a],
    }
    counts = {"été/1.jpg": 2, "4.jpg": 1, "2.jpg": 1, "5.jpg": 1, "7.jpg": 1, "6.jpg": 1}
    assert _csv_counts(tmp_path / "predictions.csv") == counts
    # a run from before the journal: its predictions.json (indented) is what a --resume continues
    old = tmp_path / "old"
    old.mkdir()
    (old / "predictions.json").write_text(json.dumps({"1.jpg": [a], "2.jpg": []}, indent=2))
    with PredictionWriter(str(old), resume=True) as w:
        assert w.faces("1.jpg") == [a] and all(isinstance(at, int) for at in w._at.values())
        w.add("3.jpg", [b], 30, 40)
    assert json.loads((old / "predictions.json").read_text()) == {"1.jpg": [a], "2.jpg": [], "3.jpg": [b]}
    assert [r["key"] for r in read_journal(str(old / JOURNAL))] == ["1.jpg", "2.jpg", "3.jpg"]


def test_resume_repairs_a_csv_cut_between_journal_and_rows(tmp_path):
    face = {"box": [1, 2, 3, 4], "score": 0.5, "age": 30.0, "age_std": 5.0, "gender": "male", "p_female": 0.1}
    with PredictionWriter(str(tmp_path)) as w:
        w.add("a.jpg", [face], 10, 10)
        w.add("b.jpg", [face, face], 10, 10)
    lines = (tmp_path / "predictions.csv").read_text().splitlines(keepends=True)
    (tmp_path / "predictions.csv").write_text("".join(lines[:2]))  # killed after b's journal line
    (tmp_path / JOURNAL).write_text((tmp_path / JOURNAL).read_text() + '{"key": "c.jpg", "wid')  # a cut line
    with PredictionWriter(str(tmp_path), resume=True) as w:
        assert w.done == {"a.jpg", "b.jpg"}
        w.add("c.jpg", [], 10, 10)
    assert _csv_counts(tmp_path / "predictions.csv") == {"a.jpg": 1, "b.jpg": 2}
    assert [r["key"] for r in read_journal(str(tmp_path / JOURNAL))] == ["a.jpg", "b.jpg", "c.jpg"]
    (tmp_path / "predictions.csv").write_text("".join(lines)[:-9])  # a row cut short: rebuilt
    with PredictionWriter(str(tmp_path), resume=True):
        pass
    assert _csv_counts(tmp_path / "predictions.csv") == {"a.jpg": 1, "b.jpg": 2}
    # the zeros a power cut can leave at the end of a file (csv before Python 3.11 raised on them): rebuilt
    (tmp_path / "predictions.csv").write_bytes("".join(lines).encode() + b"\0" * 512)
    with PredictionWriter(str(tmp_path), resume=True):
        pass
    assert _csv_counts(tmp_path / "predictions.csv") == {"a.jpg": 1, "b.jpg": 2}


def test_resume_runs_again_a_photo_that_is_another_file_under_its_name(toy, tmp_path, capsys, runner_log):
    """--resume over another folder (or after a photo was replaced): a photo whose file is not the
    one the journal answered runs again; an unchanged one (copied: another folder, the same bytes)
    does not; the CSV holds each photo's rows once. A journal from before the file signatures
    cannot tell, and its answers stand."""
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    _photos(a, 2)
    b.mkdir()
    (b / "p01.png").write_bytes((a / "p01.png").read_bytes())
    cv2.imwrite(str(b / "p00.png"), np.full((60, 80, 3), 200, np.uint8))  # another photo, the same name
    assert _demo(capsys, "--config-file", toy, "--input", a, "--output", out)[0] == 0
    first = json.load(open(out / "predictions.json"))
    fresh = tmp_path / "fresh"
    assert _demo(capsys, "--config-file", toy, "--input", b, "--output", fresh, "--no-draw")[0] == 0
    expected = json.load(open(fresh / "predictions.json"))
    assert expected["p00.png"] != first["p00.png"]  # the toy model tells the two apart
    runner_log.clear()
    code, _ = _demo(capsys, "--config-file", toy, "--input", b, "--output", out, "--resume")
    log = runner_log.text
    assert code == 0 and "1 image is not the file the run before answered (e.g. p00.png" in log
    assert "1 of 2 images done before" in log
    assert json.load(open(out / "predictions.json")) == {"p00.png": expected["p00.png"], "p01.png": first["p01.png"]}
    assert _csv_counts(out / "predictions.csv") == {"p00.png": FACES, "p01.png": FACES}
    journal = read_journal(str(out / JOURNAL))
    assert [(r["key"], "withdrawn" in r) for r in journal] == [
        ("p00.png", False),
        ("p01.png", False),
        ("p00.png", True),  # the earlier answer withdrawn, then the new one
        ("p00.png", False),
    ]
    runner_log.clear()
    code, _ = _demo(capsys, "--config-file", toy, "--input", b, "--output", out, "--resume")
    assert code == 0 and "2 of 2 images done before" in runner_log.text and "not the files" not in runner_log.text
    # a journal without signatures (an older run): nothing to compare, nothing run again
    records = read_journal(str(out / JOURNAL))
    (out / JOURNAL).write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "source"}) + "\n" for r in records)
    )
    runner_log.clear()
    code, _ = _demo(capsys, "--config-file", toy, "--input", a, "--output", out, "--resume")
    assert code == 0 and "2 of 2 images done before" in runner_log.text


def test_a_changed_photo_that_now_fails_leaves_no_earlier_answer(toy, tmp_path, capsys):
    """Replaced by a broken file: the re-run skips it, and nothing of the earlier photo stays (its
    answer withdrawn in the journal, its drawn picture removed), also for the next --resume."""
    from foss_d2.apps.runner import load_predictions

    inp, out = tmp_path / "in", tmp_path / "out"
    _photos(inp, 2)
    assert _demo(capsys, "--config-file", toy, "--input", inp, "--output", out)[0] == 0
    assert (out / "p00.png").is_file()
    (inp / "p00.png").write_bytes(b"not a photo any more")
    assert _demo(capsys, "--config-file", toy, "--input", inp, "--output", out, "--resume")[0] == 0
    assert sorted(json.load(open(out / "predictions.json"))) == ["p01.png"]
    assert "p00.png" in json.load(open(out / "skipped.json"))
    assert sorted(load_predictions(str(out))) == ["p01.png"]  # the journal, as survey and evaluate read it
    assert _csv_counts(out / "predictions.csv") == {"p01.png": FACES} and not (out / "p00.png").exists()
    assert _demo(capsys, "--config-file", toy, "--input", inp / "p01.png", "--output", out, "--resume")[0] == 0
    assert sorted(json.load(open(out / "predictions.json"))) == ["p01.png"]


def test_overwrite_removes_the_previous_run_and_nothing_else(toy, tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out"
    _photos(inp, 3)
    assert _demo(capsys, "--config-file", toy, "--input", inp, "--output", out)[0] == 0
    (out / "mine.txt").write_text("the user's file")
    (out / "mine.png").write_bytes(b"not drawn by the demo")
    before = sorted(os.listdir(out))
    # a run that fails before it starts (weights that are no checkpoint) leaves the earlier run as it was
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    code, msg = _demo(
        capsys,
        "--config-file",
        toy,
        "--input",
        inp,
        "--output",
        out,
        "--overwrite",
        "MODEL.WEIGHTS",
        tmp_path / "broken.pth",
    )
    assert code == 1 and "broken.pth" in msg
    assert sorted(os.listdir(out)) == before and sorted(json.load(open(out / "predictions.json"))) == [
        "p00.png",
        "p01.png",
        "p02.png",
    ]
    os.remove(inp / "p02.png")
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out, "--overwrite")
    assert code == 0
    assert sorted(os.listdir(out)) == sorted(
        ["mine.txt", "mine.png", "p00.png", "p01.png", JOURNAL, "predictions.json", "predictions.csv", "skipped.json"]
        + ["run.json"]
    )
    assert sorted(json.load(open(out / "predictions.json"))) == ["p00.png", "p01.png"]
    code, msg = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out, "--overwrite", "--resume")
    assert code == 2 and "exclude each other" in msg


def test_overwrite_lists_pictures_from_the_journal_and_from_predictions_json_only_without_one(tmp_path):
    """--overwrite removes the pictures the journal names (read as it goes); a predictions.json's
    keys name pictures only in a folder of a run from before the journal. A --no-draw run's folder
    (a journal without pictures) keeps a file of the user's that has a key's picture name."""
    from foss_d2.apps.runner import remove_previous_run

    legacy, nodraw = tmp_path / "legacy", tmp_path / "nodraw"
    for folder in (legacy, nodraw):
        folder.mkdir()
        json.dump({"a.jpg": [], "b.png": []}, open(folder / "predictions.json", "w"))
        (folder / "a.jpg").write_bytes(b"drawn, or the user's")
        (folder / "b.png").write_bytes(b"drawn, or the user's")
    with PredictionWriter(str(nodraw)) as w:
        w.add("a.jpg", [], 10, 10)
        w.add("b.png", [], 10, 10, picture="b.png")
    remove_previous_run(str(legacy))
    remove_previous_run(str(nodraw))
    assert os.listdir(legacy) == [] and os.listdir(nodraw) == ["a.jpg"]


# ---------------------------------------------------------------- 3. oversized pictures


def test_oversized_picture_is_skipped_with_its_size_and_the_batch_goes_on(toy, tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out"
    _photos(inp, 2)
    Image.new("1", (20000, 10000)).save(inp / "huge.png")  # 200 MP, a few kB on disk
    code, msg = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out)
    assert code == 0, msg
    assert sorted(json.load(open(out / "predictions.json"))) == ["p00.png", "p01.png"]
    reason = json.load(open(out / "skipped.json"))["huge.png"]
    assert "20000x10000" in reason and "--max-pixels" in reason
    rec = [r for r in read_journal(str(out / JOURNAL)) if r["key"] == "huge.png"][0]
    assert (rec["width"], rec["height"]) == (20000, 10000)
    code, msg = _demo(
        capsys, "--config-file", toy, "--input", inp, "--output", out, "--overwrite", "--max-pixels", "4000"
    )
    assert code == 1 and "nothing could be processed" in msg  # 80x60 = 4800 pixels each


def test_uncertain_faces_are_drawn_dashed():
    """A face scored under UNCERTAIN_BELOW gets a dashed box: along its bottom edge (the labels sit
    at the top of boxes this tall) the line has gaps; a confident face's line has none, and the
    same face scored at the bar is solid."""
    from foss_d2.utils.visualizer import UNCERTAIN_BELOW

    def edge_coverage(score):
        face = {"box": [40.0, 40.0, 260.0, 200.0], "age": 30.0, "p_female": 0.1, "score": score}
        vis = draw_predictions(np.zeros((300, 300, 3), np.uint8), [face])
        # the drawn line around y = 200 (anti-aliased over a few rows), inside the corners
        band = vis[196:205, 50:250].max(axis=0).max(axis=1)
        return float((band > 30).mean())

    solid, at_bar, dashed = edge_coverage(0.9), edge_coverage(UNCERTAIN_BELOW), edge_coverage(UNCERTAIN_BELOW - 0.01)
    assert solid == 1.0 and at_bar == 1.0
    assert 0.3 < dashed < 0.8  # dashes of 4 line widths, gaps of 3
    assert edge_coverage(None) == 1.0  # a score check_faces lets through: unknown, solid (a TypeError before)


def test_drawn_picture_has_a_bounded_size(toy, tmp_path, capsys):
    face = {"box": [4000.0, 2000.0, 6000.0, 6000.0], "age": 30.0, "p_female": 0.9}
    vis = draw_predictions(np.zeros((8000, 8000, 3), np.uint8), [face], max_side=2048)
    assert vis.shape == (2048, 2048, 3)
    # the box at 2048/8000 of its place: edges at x = 1024 and 1536, nothing drawn inside
    assert vis[1000:1050, 1020:1029].any() and vis[1000:1050, 1531:1541].any() and not vis[1000:1050, 1100:1460].any()
    inp, out = tmp_path / "in", tmp_path / "out"
    _photos(inp, 1, size=(1000, 3000))
    code, msg = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out)
    assert code == 0, msg
    assert cv2.imread(str(out / "p00.png")).shape == (683, 2048, 3)
    box = json.load(open(out / "predictions.json"))["p00.png"][0]["box"]
    assert max(box) > 0 and box[2] <= 3000  # JSON boxes stay in original pixels
    code, msg = _demo(
        capsys, "--config-file", toy, "--input", inp, "--output", out, "--overwrite", "--draw-max-side", "0"
    )
    assert code == 0 and cv2.imread(str(out / "p00.png")).shape == (1000, 3000, 3)


# ---------------------------------------------------------------- 4. no silent successes


def test_nothing_to_process_is_an_error(toy, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, msg = _demo(capsys, "--config-file", toy, "--input", empty, "--output", tmp_path / "o1")
    assert code == 1 and "nothing could be processed" in msg
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.new("RGB", (8, 8)).save(odd / "anim.gif")
    (odd / "photo.heic").write_bytes(b"\0" * 64)
    code, msg = _demo(capsys, "--config-file", toy, "--input", odd, "--output", tmp_path / "o2")
    assert code == 1 and "nothing could be processed" in msg
    skipped = json.load(open(tmp_path / "o2" / "skipped.json"))
    assert sorted(skipped) == ["anim.gif", "photo.heic"] and "not an image file name (.gif)" in skipped["anim.gif"]
    code, msg = _demo(capsys, "--config-file", toy, "--input", tmp_path / "no1.jpg", tmp_path / "no2.jpg")
    assert code == 1 and "nothing could be processed" in msg
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "x.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    code, msg = _demo(capsys, "--config-file", toy, "--input", corrupt, "--output", tmp_path / "o3")
    assert code == 1 and "every input was skipped (1 in all)" in msg


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--confidence-threshold", "1.5"], "outside [0, 1]"),
        (["--confidence-threshold", "-0.1"], "outside [0, 1]"),
        (["--max-pixels", "lots"], "not an integer"),
        (["MODEL.FOSS.K_TSET", "5"], "Non-existent key: MODEL.FOSS.K_TSET"),
        (["MODEL.FOSS.K_TEST", "abc"], "Type mismatch"),
        (["MODEL.FOSS.K_TEST"], "KEY VALUE pairs"),
        (["--config-file", "missing.yaml"], "missing.yaml"),
        (["--output", "o", "MODEL.FOSS.K_TEST", "5", "--max-pixels", "9"], "put the options first"),
    ],
)
@pytest.mark.parametrize("command", [demo, survey])
def test_bad_arguments_are_one_line_errors(command, argv, message, tmp_path, capsys):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit) as e:
        command.main(["--input", str(img), *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


def test_survey_runs_the_model_on_photos_and_counts_its_answers(toy, tmp_path, capsys):
    """survey --input: the model runs on each photo into OUTPUT/predictions/ (demo's files), and
    the counts are those answers' ages and genders, by the paper's groups (0-2 ... 66+)."""
    from foss_d2.evaluation.age_evaluator import age_to_group

    names = _photos(tmp_path / "in", 3)
    out = tmp_path / "survey"
    survey.main(["--config-file", toy, "--input", str(tmp_path / "in"), "--output", str(out), "--no-draw"])
    assert "9 faces in 3 images" in capsys.readouterr().out
    preds = json.load(open(out / "predictions" / "predictions.json"))
    assert sorted(preds) == names and all(len(faces) == FACES for faces in preds.values())
    report = json.load(open(out / "survey.json"))
    assert report["total_faces"] == FACES * len(names) and report["timeline"] is None
    lower, groups = [0, 3, 8, 13, 20, 37, 66], ["0-2", "3-7", "8-12", "13-19", "20-36", "37-65", "66+"]
    expected = {g: {"male": 0, "female": 0, "unknown": 0} for g in groups}
    for faces in preds.values():
        for f in faces:
            expected[groups[age_to_group(f["age"], lower)]][f["gender"]] += 1
    assert report["groups"] == expected
    assert (out / "survey.png").stat().st_size > 0 and (out / "survey.csv").exists()


def test_survey_rejects_bad_groups_and_missing_predictions(tmp_path, capsys):
    for argv, message in [
        (["--groups", "0,a"], "--groups"),
        (["--groups", "5,10"], "starting at 0"),
        (["--predictions", str(tmp_path / "none.json")], "predictions not found"),
    ]:
        with pytest.raises(SystemExit) as e:
            survey.main(
                [*argv, "--output", str(tmp_path / "s")] + ([] if "--predictions" in argv else ["--predictions", "x"])
            )
        assert e.value.code == 2 and message in capsys.readouterr().err


# ---------------------------------------------------------------- 5. --no-draw and the threads


def test_no_draw_and_prefetch_keep_the_answers_and_their_order(toy, tmp_path, capsys):
    inp = tmp_path / "in"
    names = _photos(inp, 5)
    (inp / "p02.png").write_bytes(b"broken")  # a per-file error in the reader thread
    (inp / "zz.txt").write_text("x")
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", tmp_path / "drawn")
    assert code == 0
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", tmp_path / "nodraw", "--no-draw")
    assert code == 0
    a, b = (read_journal(str(tmp_path / d / JOURNAL)) for d in ("drawn", "nodraw"))
    assert [r["key"] for r in a] == ["zz.txt", "p00.png", "p01.png", "p02.png", "p03.png", "p04.png"]  # input order
    assert [r.get("faces") for r in a] == [r.get("faces") for r in b]
    assert all(r.get("picture") == r["key"] for r in a if "faces" in r) and not any("picture" in r for r in b)
    assert not [f for f in os.listdir(tmp_path / "nodraw") if f.endswith(".png")]
    assert sorted(f for f in os.listdir(tmp_path / "drawn") if f.endswith(".png")) == [
        n for n in names if n != "p02.png"
    ]
    assert "cannot read image" in json.load(open(tmp_path / "nodraw" / "skipped.json"))["p02.png"]


def _noise_video(path, frames: int, fps: int) -> str:
    """A small MJPG video of random frames (64x48)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        w.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    return str(path)


def test_a_photo_run_is_not_resumed_with_a_video(toy, tmp_path, capsys):
    """A photo run's run.json has no VIDEO.* keys, as one written before videos had them: a video
    --resume was let in, and its frames joined the photos in one journal and predictions.json."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, 2)
    assert _demo(capsys, "--config-file", toy, "--input", photos, "--output", out, "--no-draw")[0] == 0
    path = _noise_video(tmp_path / "clip.avi", frames=2, fps=5)
    code, msg = _demo(capsys, "--config-file", toy, "--video-input", path, "--output", out, "--resume")
    assert code == 2 and f"--resume: {out} holds a run over photos, which a video cannot finish" in msg, msg
    assert sorted(json.load(open(out / "predictions.json"))) == ["p00.png", "p01.png"]


def test_video_resume_redraws_the_whole_video_and_no_draw_writes_none(toy, tmp_path, capsys):
    path = _noise_video(tmp_path / "clip.avi", frames=4, fps=5)
    out = tmp_path / "out"
    assert _demo(capsys, "--config-file", toy, "--video-input", path, "--output", out)[0] == 0
    first = json.load(open(out / "predictions.json"))
    os.remove(out / "clip_foss.mp4")
    code, msg = _demo(capsys, "--config-file", toy, "--video-input", path, "--output", out, "--resume")
    assert code == 0 and "0 new results, 4 from before" in msg
    assert json.load(open(out / "predictions.json")) == first and _csv_counts(out / "predictions.csv") == {
        str(i): FACES for i in range(4)
    }
    assert int(cv2.VideoCapture(str(out / "clip_foss.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert all(
        r["frame"] == "video_frame" and r["picture"] == "clip_foss.mp4" for r in read_journal(str(out / JOURNAL))
    )
    code, _ = _demo(capsys, "--config-file", toy, "--video-input", path, "--output", out, "--overwrite", "--no-draw")
    assert code == 0 and not (out / "clip_foss.mp4").exists() and json.load(open(out / "predictions.json")) == first


def test_every_n_frames_processes_frames_0_n_2n_and_keeps_their_numbers(toy, tmp_path, capsys):
    path = _noise_video(tmp_path / "clip.avi", frames=7, fps=6)
    out = tmp_path / "out"
    code, _ = _demo(capsys, "--config-file", toy, "--video-input", path, "--output", out, "--every-n-frames", "3")
    assert code == 0
    assert sorted(json.load(open(out / "predictions.json")), key=int) == ["0", "3", "6"]  # 7 frames, every 3rd
    video = cv2.VideoCapture(str(out / "clip_foss.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3 and video.get(cv2.CAP_PROP_FPS) == pytest.approx(2.0)
    with pytest.raises(SystemExit) as e:
        demo.main(["--video-input", path, "--output", str(tmp_path / "o2"), "--every-n-frames", "0"])
    assert e.value.code == 2


def test_demo_takes_one_kind_of_input(tmp_path, capsys):
    for argv, message in [
        (["--input", "a.jpg", "--video-input", "b.mp4"], "not --input and --video-input"),
        (["--video-input", "b.mp4", "--webcam"], "not --video-input and --webcam"),
        ([], "give one of --input, --video-input or --webcam"),
    ]:
        with pytest.raises(SystemExit) as e:
            demo.main([*argv, "--output", str(tmp_path / "o")])
        assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_inputs_named_in_every_way_a_folder_allows(toy, tmp_path, capsys, monkeypatch):
    """Found by a fresh-user audit: a photo whose name is not UTF-8 (Latin-1 "Zo\xeb.jpg" of an old
    archive) crashed the run (cv2.imwrite's segfault; with --no-draw the CSV's UnicodeEncodeError),
    losing the other photos' answers; "a [1].jpg" given by name was taken for a pattern; a linked
    folder inside --input was left out without a word; an --output inside --input that held photos
    of its own was left out of the walk and its photos drawn over."""
    import csv as csv_module

    inp = tmp_path / "in"
    _photos(inp, 2)
    latin1 = os.fsencode(str(inp)) + b"/Zo\xeb.png"
    with open(latin1, "wb") as f:
        f.write((inp / "p00.png").read_bytes())
    (inp / "p00.png").rename(inp / "a [1].png")
    linked = tmp_path / "elsewhere"
    _photos(linked, 1)
    (inp / "linked").symlink_to(linked)
    (inp / "linked" / "loop").symlink_to(inp)  # a loop: walked once
    out = tmp_path / "out"
    code, said = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out)
    assert code == 0, said
    keys = sorted(json.load(open(out / "predictions.json")))
    assert keys == ["Zo\udceb.png", "a [1].png", "linked/p00.png", "p01.png"]
    assert os.path.isfile(os.fsencode(str(out)) + b"/Zo\xeb.png")  # its picture, under its own name
    rows = list(csv_module.reader(open(out / "predictions.csv")))
    assert sorted({r[0] for r in rows[1:]}) == ["Zo\\udceb.png", "a [1].png", "linked/p00.png", "p01.png"]
    code, said = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out, "--resume")
    assert code == 0 and "0 new results, 4 from before" in said and "rebuilt" not in said
    monkeypatch.chdir(inp)  # a file named with brackets, given by its name
    code, said = _demo(capsys, "--config-file", toy, "--input", "a [1].png", "--output", tmp_path / "one")
    assert code == 0 and list(json.load(open(tmp_path / "one" / "predictions.json"))) == ["a [1].png"]
    # an --output inside --input holding a photo of its own: refused, the photo untouched
    mine = inp / "mine"
    _photos(mine, 1)
    before = (mine / "p00.png").read_bytes()
    code, said = _demo(capsys, "--config-file", toy, "--input", inp, "--output", mine)
    assert code == 2 and f"--output {mine} holds the input" in said
    assert (mine / "p00.png").read_bytes() == before
    # an earlier run's output folder inside --input is still passed over, not refused
    code, said = _demo(capsys, "--config-file", toy, "--input", tmp_path, "--output", out, "--overwrite")
    assert code == 0, said


def test_an_empty_cache_variable_is_unset(monkeypatch, tmp_path):
    """FOSS_D2_CACHE= (empty) put the ONNX graphs in the working directory."""
    from foss_d2.config import get_foss_cfg
    from foss_d2.engine.onnx_backend import default_onnx_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FOSS_D2_CACHE", "")
    assert default_onnx_dir(get_foss_cfg()).startswith(str(tmp_path / ".cache" / "foss_d2" / "onnx"))


def test_resume_refuses_other_settings(toy, tmp_path, capsys):
    """--resume finishes a run with the settings it started with: another threshold or preset would
    mix two kinds of answers in one predictions.json; --overwrite starts afresh with the new ones."""
    inp = tmp_path / "in"
    _photos(inp, 2)
    out = tmp_path / "out"
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out, "--no-draw")
    assert code == 0
    saved = json.load(open(out / "run.json"))
    assert saved["MODEL.FOSS.SCORE_THRESH_TEST"] == 0.0 and "MODEL.DEVICE" not in saved  # the toy config's
    before = (out / JOURNAL).read_text()
    with pytest.raises(SystemExit) as e:
        demo.main(["--config-file", str(toy), "--input", str(inp), "--output", str(out), "--resume",
                   "--confidence-threshold", "0.5"])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 2 and "MODEL.FOSS.SCORE_THRESH_TEST: 0.0 then, 0.5 now" in err
    assert (out / JOURNAL).read_text() == before  # nothing touched
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out, "--no-draw", "--resume")
    assert code == 0
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out, "--no-draw", "--overwrite",
                    "--confidence-threshold", "0.5")  # fmt: skip
    assert code == 0 and json.load(open(out / "run.json"))["MODEL.FOSS.SCORE_THRESH_TEST"] == 0.5


def test_resume_refuses_graphs_of_ones_own(toy, tmp_path):
    """A run resumed with --onnx-dir (int8 graphs, say: ages up to 3 years apart) mixed its answers
    with the first part's without a word; the graphs' folder is now part of the settings (the
    cache's graphs answer as PyTorch does, so the backend alone is not)."""
    from foss_d2.apps.runner import RunError, check_same_settings, predictor_settings, run_settings
    from foss_d2.config import get_foss_cfg

    cfg = get_foss_cfg(str(toy))
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps(run_settings(cfg)))
    check_same_settings(str(out), run_settings(cfg))  # the same: fine
    graphs = tmp_path / "int8"
    with pytest.raises(RunError, match=f"ONNX_DIR: None then, '{graphs}' now"):
        check_same_settings(str(out), run_settings(cfg, str(graphs)))

    class Predictor:  # what run_images reads: the predictor's config and its graphs' folder
        onnx_dir = str(graphs)

    Predictor.cfg = cfg
    assert predictor_settings(Predictor())["ONNX_DIR"] == str(graphs)


def test_resume_refuses_another_precision_of_the_fast_preset(toy, tmp_path, monkeypatch):
    """--preset fast in PyTorch on a CPU with bfloat16, resumed with --backend onnxruntime (float32
    graphs; WIDER val's age groups 57.3% against 56.9%): the same config keys, other answers, and
    the resume was let in. run.json now holds the dtypes the networks run in; a run.json from
    before them is checked on the rest, as before."""
    from foss_d2.apps.runner import RUN_DTYPES, RunError, check_same_settings, run_settings
    from foss_d2.config import get_foss_cfg
    from foss_d2.utils import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device_type: True)
    cfg = get_foss_cfg(str(toy), opts=["MODEL.AGE_HEAD.INFERENCE_DTYPE", "bfloat16"])
    out = tmp_path / "out"
    out.mkdir()
    then = run_settings(cfg)
    assert [then[k] for k in RUN_DTYPES] == ["float32", "bfloat16"]
    (out / "run.json").write_text(json.dumps(then))
    check_same_settings(str(out), run_settings(cfg))
    with pytest.raises(RunError, match="RUN.age_network_dtype: 'bfloat16' then, 'float32' now"):
        check_same_settings(str(out), run_settings(cfg, backend="onnxruntime"))
    monkeypatch.setattr(precision, "native_bf16", lambda device_type: False)  # a CPU without bfloat16
    with pytest.raises(RunError, match="RUN.age_network_dtype"):
        check_same_settings(str(out), run_settings(cfg))
    (out / "run.json").write_text(json.dumps({k: v for k, v in then.items() if k not in RUN_DTYPES}))
    check_same_settings(str(out), run_settings(cfg, backend="onnxruntime"))  # a run.json from before


def test_resume_may_change_what_decides_only_the_speed(toy, tmp_path):
    """A run written with 128 crops a call (the default until 2026-12-07) is resumed with 64, and
    either way with the weights prepacked or not, on another device: the same answers to float
    rounding (RESULTS.md section 2), so run.json does not hold those keys and a --resume is not
    refused over them; a threshold still is."""
    from foss_d2.apps.runner import SAME_ANSWERS, RunError, check_same_settings, run_settings
    from foss_d2.config import get_foss_cfg

    cfg = get_foss_cfg(str(toy))
    out = tmp_path / "out"
    out.mkdir()
    then = {**run_settings(cfg), "MODEL.AGE_HEAD.TEST_CROPS_PER_CALL": 128, "MODEL.AGE_HEAD.PREPACK": False}
    (out / "run.json").write_text(json.dumps(then))
    assert not set(SAME_ANSWERS) & set(run_settings(cfg)) and cfg.MODEL.AGE_HEAD.TEST_CROPS_PER_CALL == 64
    check_same_settings(str(out), run_settings(cfg))
    cfg.defrost()
    cfg.MODEL.FOSS.SCORE_THRESH_TEST = 0.5
    with pytest.raises(RunError, match="MODEL.FOSS.SCORE_THRESH_TEST"):
        check_same_settings(str(out), run_settings(cfg))


def test_resume_takes_keys_added_since_at_their_defaults(toy, tmp_path):
    """A run started before a config key existed (MODEL.FOSS.DET_INFERENCE_DTYPE, 2026-12-07) is
    resumed by a version that has it: at its default the key answers as the code of then did, so
    the resume goes on; set otherwise (the fast preset's bfloat16 backbone) it is refused, naming
    the key and its default as what the run had."""
    from foss_d2.apps.runner import RunError, check_same_settings, run_settings
    from foss_d2.config import get_foss_cfg

    cfg = get_foss_cfg(str(toy))
    out = tmp_path / "out"
    out.mkdir()
    then = run_settings(cfg)
    del then["MODEL.FOSS.DET_INFERENCE_DTYPE"]
    (out / "run.json").write_text(json.dumps(then))
    check_same_settings(str(out), run_settings(cfg))
    fast = get_foss_cfg(str(toy), opts=["MODEL.FOSS.DET_INFERENCE_DTYPE", "bfloat16"])
    with pytest.raises(RunError, match="MODEL.FOSS.DET_INFERENCE_DTYPE: 'float32' then, 'bfloat16' now"):
        check_same_settings(str(out), run_settings(fast))


def test_a_resume_reads_only_the_journals_last_line_to_mend_it(tmp_path):
    """A last line cut short is cut away and a whole one given its newline, found from the end of
    the file (lines longer than the 64 KiB blocks it reads back in); a hand-written record without
    a key is taken up as replay reads it, under "None"."""
    from foss_d2.apps import runner

    face = {"box": [1, 2, 3, 4], "score": 0.5, "age": 30.0, "age_std": 5.0, "gender": "male", "p_female": 0.1}
    long = json.dumps({"key": "long.jpg", "faces": [face] * 1500})  # about 150 KiB
    journal = tmp_path / JOURNAL
    journal.write_text(json.dumps({"key": "a.jpg", "faces": []}) + "\n" + long + "\n" + long[:-1000])
    runner._truncate_partial_line(str(journal))
    assert journal.read_text() == json.dumps({"key": "a.jpg", "faces": []}) + "\n" + long + "\n"
    journal.write_text(long)  # one whole line without its newline
    runner._truncate_partial_line(str(journal))
    assert journal.read_text() == long + "\n"
    journal.write_text(long[:70000])  # the only line, cut short
    runner._truncate_partial_line(str(journal))
    assert journal.read_text() == ""
    journal.write_text('{"faces": []}\n' + long + "\n")
    with PredictionWriter(str(tmp_path), resume=True) as w:
        assert list(w.done) == ["None", "long.jpg"] and w.faces("long.jpg") == [face] * 1500


def test_resume_knows_the_weights_by_their_contents_not_their_path(toy, tmp_path, capsys, monkeypatch):
    """run.json held MODEL.WEIGHTS as typed: the same file named from another folder was refused,
    and other weights saved under the same name (a retrained model) resumed, mixing two models'
    answers. Now the file's path is absolute and its SHA-1 decides."""
    import shutil

    inp, out = tmp_path / "in", tmp_path / "out"
    _photos(inp, 2)
    shutil.copy(os.path.join(os.path.dirname(toy), "toy.pth"), tmp_path / "w.pth")
    monkeypatch.chdir(tmp_path)
    run = ["--config-file", toy, "--input", inp, "--output", out, "--no-draw"]
    assert _demo(capsys, *run, "MODEL.WEIGHTS", "w.pth")[0] == 0
    assert json.load(open(out / "run.json"))["MODEL.WEIGHTS"] == str(tmp_path / "w.pth")
    assert _demo(capsys, *run, "--resume", "MODEL.WEIGHTS", tmp_path / "w.pth")[0] == 0  # refused before
    with open(tmp_path / "w.pth", "ab") as f:  # other bytes under the same name
        f.write(b"retrained")
    code, said = _demo(capsys, *run, "--resume", "MODEL.WEIGHTS", "w.pth")
    w = tmp_path / "w.pth"
    assert code == 2 and f"MODEL.WEIGHTS: '{w}' then, '{w}' now (other contents)" in said


def test_setup_mistakes_are_one_line_errors(tmp_path, capsys, monkeypatch):
    """A config file that is no YAML mapping, a CUDA device on a machine without one, an export into a
    folder that does not exist yet (created) or from a file that is no checkpoint."""
    from foss_d2.apps import export
    from foss_d2.model_zoo import DEFAULT_WEIGHTS

    (tmp_path / "child.yaml").write_text('_BASE_: "missing-base.yaml"\n')
    with pytest.raises(SystemExit) as e:
        demo.main(["--config-file", str(tmp_path / "child.yaml"), "--input", "a.jpg", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"config {tmp_path / 'child.yaml'}: {tmp_path / 'missing-base.yaml'} not found" in err
    (tmp_path / "notes.yaml").write_text("just a sentence\n")
    with pytest.raises(SystemExit) as e:
        demo.main(["--config-file", str(tmp_path / "notes.yaml"), "--input", "a.jpg", "--output", str(tmp_path / "o")])
    assert e.value.code == 2 and "is not a detectron2 YAML config" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from foss_d2.config import get_foss_cfg
    from foss_d2.engine import FOSSPredictor

    with pytest.raises(ValueError, match="MODEL.DEVICE cuda, but torch sees no CUDA GPU here"):
        FOSSPredictor(get_foss_cfg(device="cuda"))
    # a device name torch does not know, or a build without that backend, was a traceback from
    # the model's .to(); a GPU index past the last one, CUDA's "invalid device ordinal". A config
    # alone is checked by name only: it may be written here for a GPU machine
    with pytest.raises(ValueError, match="MODEL.DEVICE gpu is not a torch device: cpu, cuda or cuda:N"):
        get_foss_cfg(device="gpu")
    assert get_foss_cfg(device="cuda:3").MODEL.DEVICE == "cuda:3"
    if not torch.backends.mps.is_available():
        with pytest.raises(
            ValueError, match=r"MODEL.DEVICE mps: this PyTorch cannot run there \(.*\); use cpu or cuda"
        ):
            FOSSPredictor(get_foss_cfg(device="mps"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="MODEL.DEVICE cuda:2, but torch sees 2 CUDA GPUs here"):
        FOSSPredictor(get_foss_cfg(device="cuda:2"))
    export.main([DEFAULT_WEIGHTS, str(tmp_path / "new" / "sub" / "det.pth"), "--detector-only"])
    assert (tmp_path / "new" / "sub" / "det.pth").is_file()
    for src, message in [(tmp_path / "notes.yaml", "is not a model checkpoint"), (tmp_path / "no.pth", "not found")]:
        with pytest.raises(SystemExit, match=message):
            export.main([str(src), str(tmp_path / "x.pth")])


def test_an_earlier_runs_output_inside_the_input_is_not_read(toy, tmp_path, capsys):
    """demo --output photos/out, then another run over photos/: the drawn pictures in photos/out
    are not photos; the folder is named in skipped.json instead."""
    inp = tmp_path / "photos"
    _photos(inp, 2)
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", inp / "out")
    assert code == 0 and (inp / "out" / "p00.png").is_file()
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", tmp_path / "again", "--no-draw")
    assert code == 0
    assert sorted(json.load(open(tmp_path / "again" / "predictions.json"))) == ["p00.png", "p01.png"]
    assert "earlier run" in json.load(open(tmp_path / "again" / "skipped.json"))["out" + os.sep]


def test_two_inputs_whose_pictures_share_a_name_keep_both(toy, tmp_path, capsys):
    """x.webp draws to x.webp.jpg, the name of the photo x.webp.jpg's picture: the one read second
    gets x.webp~2.jpg (both were written to one file before)."""
    inp = tmp_path / "in"
    inp.mkdir()
    rgb = np.random.default_rng(3).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(inp / "x.webp")
    Image.fromarray(rgb[::-1]).save(inp / "x.webp.jpg")
    out = tmp_path / "out"
    code, _ = _demo(capsys, "--config-file", toy, "--input", inp, "--output", out)
    assert code == 0
    pictures = {r["key"]: r["picture"] for r in read_journal(str(out / JOURNAL)) if r.get("picture")}
    assert pictures == {"x.webp": "x.webp.jpg", "x.webp.jpg": "x.webp~2.jpg"}  # in key order
    assert (out / "x.webp.jpg").is_file() and (out / "x.webp~2.jpg").is_file()


def test_output_that_is_a_file_is_refused_by_every_tool(tmp_path, capsys):
    from foss_d2.apps import evaluate, export
    from foss_d2.model_zoo import DEFAULT_WEIGHTS

    afile = tmp_path / "afile"
    afile.write_text("x")
    pred = tmp_path / "p.json"
    pred.write_text("{}")
    for main, argv, message in [
        (survey.main, ["--predictions", str(pred)], "is a file, not a folder"),
        (export.main, [DEFAULT_WEIGHTS, "--format", "onnx"], "writes a folder"),
        (evaluate.main, ["predictions", "--dataset", "utkface_test", "--predictions", str(pred)], "is a file"),
    ]:
        argv = [*argv, "--output", str(afile)] if main is not export.main else [argv[0], str(afile), *argv[1:]]
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err, argv
    assert afile.read_text() == "x"
    # a folder under a file: NotADirectoryError's traceback after the model had loaded
    under = str(afile / "sub")
    for main, argv in [
        (demo.main, ["--input", os.path.join(ROOT, "demo", "family.jpg"), "--no-draw"]),
        (survey.main, ["--predictions", str(pred)]),
    ]:
        with pytest.raises(SystemExit) as e:
            main([*argv, "--output", under])
        assert e.value.code == 2 and f"{afile} is a file, not a folder" in capsys.readouterr().err, argv


def test_evaluation_commands_check_their_numbers_and_datasets(tmp_path, capsys):
    from foss_d2.apps import evaluate
    from foss_d2.apps.train import main as train_main
    from foss_d2.model_zoo import DEFAULT_WEIGHTS

    for argv, message in [
        (["tiled", "--grids", "0"], "--grids: 0 is not at least 1"),
        (["tiled", "--num", "3", "--grids", "2"], "--num 3 faces fill no whole 2x2 canvases alike: give at least 4"),
        # 18 faces fill 4 canvases of 2x2 with 2 faces left: the grids would score different faces
        (["tiled", "--num", "18"], "--num 18 faces fill no whole 1x1 and 2x2 and 3x3 canvases alike: give at least 36"),
        (["pasted", "--per-photo", "0"], "--per-photo: 0 is not at least 1"),
    ]:
        with pytest.raises(SystemExit) as e:
            evaluate.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err, argv
    quick = os.path.join(
        os.path.dirname(os.path.dirname(__file__)), "configs", "quick_schedules", "FOSS-CPU-quick.yaml"
    )
    with pytest.raises(SystemExit) as e:
        train_main(["--config-file", quick, "--eval-only", "MODEL.WEIGHTS", DEFAULT_WEIGHTS, "DATASETS.TEST", "()"])
    assert e.value.code == 2 and "--eval-only with an empty DATASETS.TEST" in capsys.readouterr().err


def test_tiled_evaluation_shows_every_grid_the_same_faces(tmp_path, capsys, monkeypatch):
    """--num that is not a multiple of every grid's cells is rounded down, with a word, so that the
    1x1, 2x2 and 3x3 figures are of the same faces (40 faces: 2x2 took all 40, 3x3 only 36)."""
    from foss_d2.apps import evaluate

    os.makedirs(tmp_path / "utkface" / "UTKFace")
    faces = [{"file_name": f"{i}.jpg", "image_id": i, "annotations": [{"age": i, "gender": 0}]} for i in range(50)]
    monkeypatch.setattr(evaluate, "load_utkface", lambda image_dir, split: list(faces))
    monkeypatch.setattr(evaluate, "trained_estimator", lambda parser, config_file, opts: None)
    monkeypatch.setattr(evaluate, "unreadable_images", lambda items, **kw: {})  # every face readable
    shown = {}

    def grid(estimate, records, g, read):
        shown[g] = sorted(r["image_id"] for r in records)
        return {
            "tiles": g * g,
            "faces": len(records),
            "found": 0,
            "MAE": None,
            "corr": None,
            "gender_acc": None,
            "per_band": {},
        }

    monkeypatch.setattr(evaluate, "evaluate_grid", grid)
    evaluate.main(["tiled", "--num", "40", "DATASETS.ROOT", str(tmp_path)])
    captured = capsys.readouterr()
    assert "--num 40: 36 faces scored (a multiple of 36), so that every grid size shows the same faces" in captured.err
    assert len(shown[1]) == 36 and shown[1] == shown[2] == shown[3]
    assert "9 per canvas: 0/36 found" in captured.out


def test_held_out_faces_that_cannot_be_read_are_left_out_with_a_word(tmp_path, capsys):
    """evaluate.py tiled / pasted read faces with cv2.imread, which gives a truncated JPEG part grey:
    the face was scored as not found, silently. FOSS-D2's reader refuses it; it is left out, said."""
    from foss_d2.apps.evaluate import readable

    whole = tmp_path / "whole.jpg"
    cv2.imwrite(str(whole), np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))
    (tmp_path / "cut.jpg").write_bytes(whole.read_bytes()[:3000])
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # what the evaluation took for a face
    records = [{"file_name": str(tmp_path / n)} for n in ("whole.jpg", "cut.jpg", "gone.jpg")]
    assert readable(records, "mine") == records[:1]
    err = capsys.readouterr().err
    assert "mine: 2 of 3 images cannot be read and are left out (cannot read image " in err and "cut.jpg" in err


def test_default_workers_one_per_thread_and_the_threads_given_back(toy, tmp_path, capsys, monkeypatch):
    """Over several photos the demo puts one photo per thread in the model (PyTorch too), each
    worker on its share of the threads; a single photo keeps every thread; the demo's own thread
    keeps its count, and threads started after the run get the count of before."""
    import threading

    from foss_d2.engine.predictor import FOSSPredictor

    seen = []  # (the model's thread, PyTorch's thread count there) per call
    call = FOSSPredictor.__call__

    def spy(self, img):
        seen.append((threading.current_thread().name.split("_")[0], torch.get_num_threads()))
        return call(self, img)

    monkeypatch.setattr(FOSSPredictor, "__call__", spy)
    torch.set_num_threads(2)  # as on this project's 2-core machines (conftest puts back the count)
    inp = tmp_path / "in"
    _photos(inp, 3)
    assert _demo(capsys, "--config-file", toy, "--input", inp, "--output", tmp_path / "a", "--no-draw")[0] == 0
    assert seen == [("foss-d2-model", 1)] * 3
    later = []
    t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert torch.get_num_threads() == 2 and later == [2]
    seen.clear()
    assert _demo(capsys, "--config-file", toy, "--input", inp / "p00.png", "--output", tmp_path / "b")[0] == 0
    assert seen == [("MainThread", 2)]


def test_webcam_without_a_window_needs_output(tmp_path, capsys, monkeypatch):
    """setup.py installs headless OpenCV: --webcam without --output would crash on cv2.imshow at its
    first frame; it is a usage error instead, before the camera or the model open."""
    monkeypatch.setattr(demo, "opencv_has_gui", lambda: False)
    with pytest.raises(SystemExit) as e:
        demo.main(["--webcam"])
    assert e.value.code == 2 and "give --output to write the annotated video" in capsys.readouterr().err


def test_a_crowd_at_the_face_cap_is_warned_about(tmp_path, monkeypatch):
    """An image whose faces reach MODEL.FOSS.K_TEST may hold more: each such image is named (a
    video once); images under the cap are not."""
    from foss_d2.apps import runner
    from foss_d2.utils.footage import write_video

    from detectron2.config import CfgNode
    from detectron2.structures import Boxes, Instances

    class Crowd:
        """Returns as many faces as the image's first pixel says, over a cap of 3."""

        cfg = CfgNode({"MODEL": CfgNode({"FOSS": CfgNode({"K_TEST": 3})})})

        def __call__(self, img):
            n = int(img[0, 0, 0]) // 50
            inst = Instances(img.shape[:2])
            inst.pred_boxes = Boxes(torch.tensor([[10.0 * i, 0, 10.0 * i + 8, 8] for i in range(n)]).reshape(-1, 4))
            inst.scores = torch.full((n,), 0.9)
            inst.pred_ages = torch.full((n,), 30.0)
            inst.pred_age_stds = torch.full((n,), 5.0)
            inst.pred_female_probs = torch.full((n,), 0.5)
            return inst

    said = []
    monkeypatch.setattr(runner.logger, "warning", lambda msg, *args: said.append(msg % args))
    items = []
    for name, level in (("two.png", 100), ("three.png", 150), ("again.png", 150)):
        cv2.imwrite(str(tmp_path / name), np.full((40, 60, 3), level, np.uint8))
        items.append((str(tmp_path / name), name))
    runner.run_images(Crowd(), items, None, "BGR")
    assert said == [
        f"{key}: 3 faces, the most MODEL.FOSS.K_TEST lets through: there may be more (raise it, e.g. "
        "MODEL.FOSS.K_TEST 9)"
        for key in ("three.png", "again.png")
    ]
    said.clear()
    video = tmp_path / "crowd.mp4"
    write_video(str(video), [np.full((40, 60, 3), v, np.uint8) for v in (100, 210, 210, 210)], fps=4)  # 2, 4, 4, 4
    runner.run_video(Crowd(), str(video), None, "BGR")
    assert len(said) == 1 and said[0].startswith("frame 1: 4 faces") and said[0].endswith("; said once a video")


def test_a_skipped_input_is_reported_once(toy, tmp_path, capsys, monkeypatch):
    """A non-image file in an --input folder: one warning (it was said twice: when the inputs were
    collected and again when the journal recorded it), and one skipped.json entry."""
    from foss_d2.apps import runner

    _photos(tmp_path / "in", 1)
    (tmp_path / "in" / "notes.txt").write_text("not a photo")
    said = []
    monkeypatch.setattr(runner.logger, "warning", lambda msg, *args: said.append(msg % args))
    code, _ = _demo(capsys, "--config-file", toy, "--input", tmp_path / "in", "--output", tmp_path / "out", "--no-draw")
    assert code == 0
    assert [m for m in said if "notes.txt" in m] == [
        "skipping notes.txt: not an image file name (.txt); read are .jpg .jpeg .png .bmp .tif .tiff .webp .ppm .pgm"
    ]
    assert list(json.load(open(tmp_path / "out" / "skipped.json"))) == ["notes.txt"]
