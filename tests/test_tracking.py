"""Faces tracked across video frames (foss_d2/apps/tracking.py, issue 18).

Hand-made boxes where the tracker is the point; the shipped model on footage made from real photos
(demo/family.jpg, WIDER val photos from ../shared) where the detector's faces are."""

import csv
import json
import os
import shutil
from collections import defaultdict

import cv2
import numpy as np
import pytest
from conftest import load_script, needs_shared_data, shared_data_path

from foss_d2.apps.tracking import FaceTracker, SceneCuts, VideoPeople, aggregate, people_over_time, write_people
from foss_d2.utils.footage import shot, write_video

pytest.importorskip("norfair", reason="tracking needs the [video] extra (norfair)")

FAMILY = os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")


def face(x, y, size=60, age=30.0, p_female=0.8, score=0.6, age_std=5.0):
    return {"box": [x, y, x + size, y + size], "score": score, "age": age, "age_std": age_std, "p_female": p_female}


def test_aggregate_inverse_variance():
    # weights 1/2^2 and 1/4^2, i.e. 4:1: age (4*20 + 50) / 5 = 26, P(female) (4*0.9 + 0.4) / 5 = 0.8
    faces = [face(0, 0, age=20, p_female=0.9, age_std=2), face(0, 0, age=50, p_female=0.4, age_std=4)]
    a = aggregate(faces)
    assert (a["age"], a["p_female"], a["gender"]) == (26.0, 0.8, "female")


def test_aggregate_weighted_by_score_and_height():
    # weights 0.5*100 = 50 and 0.25*40 = 10: age (50*20 + 10*50) / 60 = 25
    faces = [face(0, 0, 100, age=20, p_female=0.9, score=0.5), face(0, 0, 40, age=50, p_female=0.3, score=0.25)]
    a = aggregate(faces, "weighted")
    assert a["age"] == 25.0 and a["gender"] == "female"
    assert a["p_female"] == pytest.approx((50 * 0.9 + 10 * 0.3) / 60, abs=1e-4)
    # the mixture's std: each frame's 5 and the spread between 20 and 50
    assert a["age_std"] == pytest.approx(np.sqrt(25 + (50 * 20**2 + 10 * 50**2) / 60 - 25**2), abs=0.01)
    assert aggregate(faces, "mean")["age"] == 35.0 and aggregate(faces, "last")["age"] == 50.0
    assert aggregate([{**face(0, 0), "age": None}])["age"] is None


def test_running_answer_hand_computed_and_as_aggregate_face_by_face():
    """A track's answer so far, from sums: weights 1/1^2 and 1/2^2 for ages 20 and 40 give
    (20 + 0.25 * 40) / 1.25 = 24, std sqrt((401 + 0.25 * 1604) / 1.25 - 24^2) = sqrt(65.6), P(female)
    (0.2 + 0.25 * 0.6) / 1.25 = 0.28. On 300 random faces (some without an age or a P(female)) it
    is aggregate's answer after every face, for each method that sums."""
    from foss_d2.apps.tracking import RunningAnswer

    r = RunningAnswer("inverse_variance")
    assert r.answer()["age"] is None
    r.add(face(0, 0, age=20, p_female=0.2, age_std=1))
    r.add(face(0, 0, age=40, p_female=0.6, age_std=2))
    assert r.answer() == {"age": 24.0, "age_std": round(np.sqrt(65.6), 2), "p_female": 0.28, "gender": "male"}
    rng = np.random.default_rng(0)
    faces = [
        face(
            0,
            0,
            size=float(rng.uniform(10, 200)),
            age=None if i % 17 == 5 else float(rng.uniform(1, 90)),
            p_female=None if i % 13 == 2 else float(rng.uniform(0, 1)),
            score=float(rng.uniform(0.1, 1)),
            age_std=float(rng.uniform(0.2, 9)),
        )
        for i in range(300)
    ]
    for method in RunningAnswer.METHODS:
        r = RunningAnswer(method)
        for n, f in enumerate(faces, 1):
            r.add(f)
            got, want = r.answer(), aggregate(faces[:n], method)
            assert got["gender"] == want["gender"] and got["p_female"] == pytest.approx(want["p_female"], abs=1e-4)
            assert got["age"] == pytest.approx(want["age"], abs=0.01)  # (rounded to 2 decimals each)
            assert got["age_std"] == pytest.approx(want["age_std"], abs=0.01)
    with pytest.raises(ValueError, match="median"):
        RunningAnswer("median")


def test_people_answers_from_running_sums_keep_no_faces():
    """Two people walking across 400 frames, their ages, stds and P(female) random: each person's
    people.json answer is aggregate over the faces the tracker gave its id (to the rounding, the
    shipped inverse-variance sums), its first and last frame and time those faces'; a track keeps
    no face, so memory stays the same however long the video. With ``median`` (no running sums)
    the answer is aggregate's exactly."""
    rng = np.random.default_rng(1)

    def walker(x, y, ages):
        p, std = float(rng.uniform()), float(rng.uniform(1, 8))
        return face(x, y, age=float(rng.uniform(*ages)), p_female=p, age_std=std)

    frames = [[walker(10 + t, 20, (20, 40)), walker(500 - t, 200, (50, 70))] for t in range(400)]
    for method in ("inverse_variance", "median"):
        vp = VideoPeople(fps=20, thumbnails=False, method=method, cut_threshold=None)
        of_track = defaultdict(list)
        for i, faces in enumerate(frames):
            faces = [dict(f) for f in faces]
            vp.update(i, None, faces)
            for f in faces:
                of_track[f["track_id"]].append((i, f))
        people = vp.people()
        assert [p["track_id"] for p in people] == sorted(of_track) and len(people) == 2
        for p in people:
            seen = of_track[p["track_id"]]
            want = aggregate([f for _, f in seen], method)
            assert (p["first_frame"], p["last_frame"], p["frames_seen"]) == (seen[0][0], seen[-1][0], len(seen))
            assert (p["first_time_s"], p["last_time_s"]) == (seen[0][0] / 20, seen[-1][0] / 20)
            assert p["gender"] == want["gender"]
            for k, rounding in (("age", 0.01), ("age_std", 0.01), ("p_female", 1e-4)):
                assert p[k] == (want[k] if method == "median" else pytest.approx(want[k], abs=rounding * 1.01)), k
        kept = [t.faces for t in vp.tracks.values()]
        assert all(f is None for f in kept) if method != "median" else sum(map(len, kept)) == 800


def test_thumbnail_is_the_best_face_as_the_file_it_becomes(tmp_path):
    """A person's thumbnail is the crop of its face of highest score x box height (frame 2 here:
    0.9 x 60 against 0.5 x 60, 0.7 x 60 and 0.8 x 50), kept as the JPEG the run writes: the file
    is byte for byte cv2.imwrite's of that crop, and the track holds its bytes, not the pixels."""
    from foss_d2.apps.tracking import crop_thumbnail

    frames = [np.full((240, 320, 3), 40 * i, np.uint8) for i in range(4)]
    for f in frames:
        f[100:140, 50:90] = (0, 0, 255)
    scored = [(0.5, 60), (0.7, 60), (0.9, 60), (0.8, 50)]
    vp = VideoPeople(fps=25, cut_threshold=None, min_frames=1)
    for i, (frame, (score, size)) in enumerate(zip(frames, scored)):
        vp.update(i, frame, [face(40, 90, size=size, score=score)])
    (person,) = vp.finish(str(tmp_path))
    cv2.imwrite(str(tmp_path / "want.jpg"), crop_thumbnail(frames[2], [40, 90, 100, 150]))
    assert (tmp_path / person["thumbnail"]).read_bytes() == (tmp_path / "want.jpg").read_bytes()
    assert isinstance(vp.tracks[person["track_id"]].thumbnail, bytes)


def test_two_moving_faces_keep_their_ids():
    tracker = FaceTracker(fps=25, cut_threshold=None)
    ids = [tracker.update([face(10 + 4 * t, 20), face(300 - 4 * t, 40)]) for t in range(20)]
    assert all(i == ids[0] for i in ids) and len(set(ids[0])) == 2


def _leave_and_return(gap):
    """A face in view for 20 frames, away for ``gap`` frames, back at the same place for 10."""
    vp = VideoPeople(fps=25, thumbnails=False, cut_threshold=None)
    other = face(400, 50)  # stays in view all the time
    idx = 0
    for n, present in ((20, True), (gap, False), (10, True)):
        for _ in range(n):
            vp.update(idx, None, [other, face(20, 50)] if present else [other])
            idx += 1
    return vp.people()


def test_face_that_leaves_and_reenters():
    """Documented behaviour (docs/DESIGN.md): a track waits for its face up to max_lost_seconds (1 s;
    less for a track seen only briefly); a face back within it keeps its id, a face away longer is a
    new person (no re-identification by appearance)."""
    back_soon = _leave_and_return(gap=5)
    assert len(back_soon) == 2 and back_soon[1]["frames_seen"] == 30
    back_late = _leave_and_return(gap=50)
    assert len(back_late) == 3
    assert sorted(p["frames_seen"] for p in back_late) == [10, 20, 80]


@pytest.mark.parametrize("header_fps", [30.0, 1000.0])
def test_a_wrong_frame_rate_does_not_keep_a_lost_track_waiting(header_fps, caplog):
    """A 30 fps clip whose header says 1000 fps (OpenCV's reading of some WebM files): a face seen
    for 3 s, gone for 2 s, and a face back in its place is a new person, as with the right rate.
    By the header a track waited up to 1000 frames (as many as it was seen: 3 s here) and the two
    were one person."""
    tracker = FaceTracker(fps=header_fps, cut_threshold=None)
    ids = []
    for i in range(210):  # 3 s seen, 2 s away, 2 s back; each frame's own time
        present = i < 90 or i >= 150
        found = tracker.update([face(20, 50)] if present else [], None, False, i / 30)
        ids.append(found[0] if present else None)
    assert ids[0] == ids[89] and ids[150] == ids[209] and ids[150] != ids[0] and tracker.n_pauses == 0
    assert tracker.hit_counter_max == 30  # 1 s of this clip either way
    assert ("does not fit its frames' times" in caplog.text) == (header_fps == 1000.0)
    # a plausible rate is kept, whatever the first step: a clip that opens on a picture held 5 s
    held = FaceTracker(fps=header_fps if header_fps < 240 else 30.0, cut_threshold=None)
    for t in (0.0, 5.0, 5.0 + 1 / 30):
        held.update([face(20, 50)], None, False, t)
    assert held.hit_counter_max == 30


def test_scene_cut_starts_new_tracks():
    """Same boxes before and after a cut: without the reset the tracks would go on."""
    rng = np.random.default_rng(0)
    a = np.full((120, 160, 3), (200, 40, 40), np.uint8)
    b = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cuts = SceneCuts()
    assert [cuts(a), cuts(a), cuts(b), cuts(b)] == [False, False, True, False]
    tracker = FaceTracker(fps=25)
    ids = [tracker.update([face(10, 10)], img) for img in (a, a, a, b, b)]
    assert ids[0] == ids[1] == ids[2] != ids[3] == ids[4] and tracker.n_cuts == 1


def test_people_files_and_short_tracks(tmp_path):
    vp = VideoPeople(fps=10, min_frames=3, cut_threshold=None)
    frame = np.full((200, 400, 3), 128, np.uint8)
    for t in range(6):
        faces = [face(50, 50, age=30 + t, score=0.5)]
        if t == 2:
            faces.append(face(250, 100, age=70))  # one frame only: noise
        shown = vp.update(t, frame, faces)
        assert shown[0]["age"] == pytest.approx(30 + t / 2, abs=0.01)  # the running answer is drawn
        assert faces[0]["track_id"] == 1
    people = vp.finish(str(tmp_path))
    assert len(people) == 1
    saved = json.load(open(tmp_path / "people.json"))
    assert saved["dropped_tracks"] == 1 and saved["people"] == people
    p = people[0]
    assert (p["first_frame"], p["last_frame"], p["frames_seen"], p["last_time_s"]) == (0, 5, 6, 0.5)
    assert p["age"] == 32.5 and p["gender"] == "female"
    rows = list(csv.DictReader(open(tmp_path / "people.csv")))
    assert len(rows) == 1 and float(rows[0]["age"]) == 32.5
    thumb = cv2.imread(str(tmp_path / p["thumbnail"]))
    assert thumb is not None and thumb.shape[:2] == (90, 90)  # 60 px face + 25% margin each side


def test_people_over_time_counts_each_person_once_per_bucket():
    people = [{"first_time_s": 0.0, "last_time_s": 25.0}, {"first_time_s": 12.0, "last_time_s": 14.0}]
    b = people_over_time(people, 10)
    assert {k: len(v) for k, v in b.items()} == {0: 1, 1: 2, 2: 1}


@pytest.fixture(scope="module")
def estimator():
    from foss_d2 import FaceAgeEstimator

    return FaceAgeEstimator(device="cpu", preset="fast")


def _track(est, frames):
    vp = VideoPeople(fps=25, thumbnails=False)
    for i, frame in enumerate(frames):
        vp.update(i, frame, est(frame))
    return vp


def test_pan_zoom_over_a_photo_gives_one_track_per_face(estimator):
    """A camera panning and zooming over demo/family.jpg (a WIDER val photo, 6 faces by hand): as
    many people as faces the model finds in the still photo scoring what a track needs to be kept
    (DEFAULT_MIN_SCORE; lower ones are dropped as detector noise), give or take one."""
    from foss_d2.apps.tracking import DEFAULT_MIN_SCORE

    img = cv2.imread(FAMILY)
    faces = estimator(img)
    sure = sum(f["score"] >= DEFAULT_MIN_SCORE for f in faces)
    frames = [f for f, _ in shot(img, 8, (640, 480), zoom=(1.0, 1.3), center_to=(0.53, 0.47))]
    vp = _track(estimator, frames)
    assert len(faces) in (7, 8) and sure >= 5  # the shipped model also boxes the double bass's scroll (0.21)
    assert abs(len(vp.people()) - sure) <= 1, vp.people()


@needs_shared_data
def test_no_track_crosses_a_cut(estimator):
    """Three WIDER val photos (4, 4 and 3 faces by hand), four frames each."""
    root = shared_data_path("widerface", "WIDER_val", "images")
    names = [
        "0--Parade/0_Parade_Parade_0_960.jpg",
        "13--Interview/13_Interview_Interview_On_Location_13_847.jpg",
        "19--Couple/19_Couple_Couple_19_125.jpg",
    ]
    frames, shot_of = [], []
    for s, name in enumerate(names):
        img = cv2.imread(os.path.join(root, name))
        for f, _ in shot(img, 4, (640, 480), zoom=(1.0, 1.1)):
            frames.append(f)
            shot_of.append(s)
    vp = VideoPeople(fps=25, thumbnails=False)
    shots_of_track = defaultdict(set)
    for i, frame in enumerate(frames):
        for f in vp.update(i, frame, estimator(frame)):
            shots_of_track[f["track_id"]].add(shot_of[i])
    assert vp.tracker.n_cuts == 2
    shots_of_track.pop(None, None)
    assert shots_of_track and all(len(shots) == 1 for shots in shots_of_track.values()), shots_of_track
    assert abs(len(vp.people()) - 11) <= 2  # 11 faces by hand (12 people measured: one false face or split)


def test_video_run_writes_track_ids_and_people(tmp_path, estimator):
    """The runner with tracking on a 6-frame pan over demo/family.jpg: every face has a track id, the
    people (6 faces by hand, give or take one) have thumbnails, the drawn video is written."""
    from foss_d2.apps.runner import load_predictions, run_video

    video = tmp_path / "pan.mp4"
    img = cv2.imread(FAMILY)
    write_video(str(video), [f for f, _ in shot(img, 6, (640, 480), zoom=(1.0, 1.2))], fps=5)
    out = tmp_path / "out"
    run_video(estimator.predictor, str(video), str(out), estimator.cfg.INPUT.FORMAT, track=True)
    preds = load_predictions(str(out))
    assert len(preds) == 6 and all(f["track_id"] is not None for faces in preds.values() for f in faces)
    saved = json.load(open(out / "people.json"))
    assert saved["fps"] == 5 and abs(len(saved["people"]) - 6) <= 1
    assert all((out / p["thumbnail"]).is_file() for p in saved["people"])
    assert {p["track_id"] for p in saved["people"]} <= {f["track_id"] for fs in preds.values() for f in fs}
    assert len(list(csv.DictReader(open(out / "people.csv")))) == len(saved["people"])
    assert (out / "pan_foss.mp4").is_file()


def test_survey_counts_people_not_faces(tmp_path):
    """One man in view for 50 frames and a woman for 3: 2 people per person, 53 faces per frame."""
    from foss_d2.apps import survey

    pred = tmp_path / "pred"
    pred.mkdir()
    man = {**face(10, 10, age=30, p_female=0.1), "gender": "male"}
    woman = {**face(200, 10, age=70, p_female=0.9), "gender": "female"}
    frames = {str(i): [man] + ([woman] if 30 <= i < 33 else []) for i in range(50)}
    json.dump(frames, open(pred / "predictions.json", "w"))
    people = [
        {"track_id": 1, "first_frame": 0, "last_frame": 49, "first_time_s": 0.0, "last_time_s": 24.5},
        {"track_id": 2, "first_frame": 30, "last_frame": 32, "first_time_s": 15.0, "last_time_s": 16.0},
    ]
    for p, f in zip(people, (man, woman)):
        p.update(frames_seen=p["last_frame"] - p["first_frame"] + 1, **aggregate([f]), thumbnail=None)
    write_people(str(pred), people, fps=2, min_frames=3, min_score=0.4, dropped=0)
    survey.main(["--predictions", str(pred), "--output", str(tmp_path / "people"), "--bucket-seconds", "10"])
    s = json.load(open(tmp_path / "people" / "survey.json"))
    assert s["total_people"] == 2 and s["groups"]["20-36"]["male"] == 1 and s["groups"]["66+"]["female"] == 1
    assert [sum(sum(g.values()) for g in c.values()) for _, c in s["timeline"]] == [1, 2, 1]
    assert (tmp_path / "people" / "survey.png").is_file()
    survey.main(["--predictions", str(pred), "--output", str(tmp_path / "frames"), "--per-frame"])
    assert json.load(open(tmp_path / "frames" / "survey.json"))["total_faces"] == 53


def _fake_predictor(img):
    """Two faces in every frame, without the model."""
    import torch

    from detectron2.structures import Boxes, Instances

    inst = Instances(img.shape[:2])
    inst.pred_boxes = Boxes(torch.tensor([[20.0, 20.0, 80.0, 80.0], [150.0, 30.0, 200.0, 90.0]]))
    inst.scores = torch.tensor([0.7, 0.5])
    inst.pred_ages = torch.tensor([30.0, 60.0])
    inst.pred_age_stds = torch.tensor([5.0, 5.0])
    inst.pred_female_probs = torch.tensor([0.8, 0.1])
    return inst


def test_resumed_video_run_gives_the_same_people(tmp_path):
    """--resume replays the tracker over the frames done before, so the ids and people.json match an
    uninterrupted run."""
    from foss_d2.apps.runner import JOURNAL, load_predictions, run_video

    video = tmp_path / "clip.mp4"
    write_video(str(video), [np.full((120, 240, 3), 90 + 10 * i, np.uint8) for i in range(8)], fps=4)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_video(_fake_predictor, str(video), str(whole), "BGR", track=True, draw=False)
    run_video(_fake_predictor, str(video), str(cut), "BGR", track=True, draw=False)
    lines = open(cut / JOURNAL).readlines()
    open(cut / JOURNAL, "w").writelines(lines[:3])  # killed after 3 frames
    (cut / "people.json").unlink()
    run_video(_fake_predictor, str(video), str(cut), "BGR", track=True, draw=False, resume=True)
    assert load_predictions(str(cut)) == load_predictions(str(whole))
    people = json.load(open(whole / "people.json"))
    assert json.load(open(cut / "people.json")) == people
    assert [(p["track_id"], p["frames_seen"], p["age"], p["gender"]) for p in people["people"]] == [
        (1, 8, 30.0, "female"),
        (2, 8, 60.0, "male"),
    ]


def test_video_without_output_says_what_it_found(tmp_path, caplog):
    """No --output: the frames, faces and people are counted and said at the end (8 frames of
    two faces each, two people), with no folder written."""
    import logging

    from foss_d2.apps.runner import run_video

    video = tmp_path / "clip.mp4"
    write_video(str(video), [np.full((120, 240, 3), 90 + 10 * i, np.uint8) for i in range(8)], fps=4)
    logger = logging.getLogger("foss_d2")  # (it does not propagate: detectron2's setup_logger)
    caplog.set_level(logging.INFO, logger="foss_d2")
    logger.addHandler(caplog.handler)
    try:
        summary = run_video(_fake_predictor, str(video), None, "BGR", track=True)
    finally:
        logger.removeHandler(caplog.handler)
    assert summary.done == 8 and f"{video}: 8 frames, 16 faces, 2 people (add --output" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def _three_faces(img):
    """_fake_predictor's two faces and a third one, lower down."""
    import torch

    inst = _fake_predictor(img)
    extra = _fake_predictor(img)[:1]
    extra.pred_boxes.tensor += torch.tensor([0.0, 30.0, 0.0, 30.0])
    return type(inst).cat([inst, extra])


def test_overwrite_no_draw_and_the_csv_of_a_tracked_video(tmp_path):
    """--overwrite removes the earlier run's thumbnails with its people.json; --no-draw writes no
    thumbnails; predictions.csv carries each face's track_id as the JSON does."""
    from foss_d2.apps.runner import load_predictions, run_video

    video = tmp_path / "clip.mp4"
    write_video(str(video), [np.full((120, 240, 3), 90 + 10 * i, np.uint8) for i in range(6)], fps=4)
    out = tmp_path / "out"
    run_video(_three_faces, str(video), str(out), "BGR", track=True)
    assert sorted(os.listdir(out / "thumbnails")) == [f"track_0000{i}.jpg" for i in (1, 2, 3)]
    run_video(_fake_predictor, str(video), str(out), "BGR", track=True, overwrite=True)
    people = json.load(open(out / "people.json"))["people"]
    assert len(people) == 2
    assert sorted(os.listdir(out / "thumbnails")) == sorted(os.path.basename(p["thumbnail"]) for p in people)
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    preds = load_predictions(str(out))
    assert [(r["image"], int(r["track_id"])) for r in rows] == [
        (k, f["track_id"]) for k, faces in preds.items() for f in faces
    ]
    bare = tmp_path / "bare"
    run_video(_fake_predictor, str(video), str(bare), "BGR", track=True, draw=False)
    assert not (bare / "thumbnails").exists() and not [f for f in os.listdir(bare) if f.endswith((".jpg", ".mp4"))]
    assert all(p["thumbnail"] is None for p in json.load(open(bare / "people.json"))["people"])


def test_survey_reads_a_journal_as_it_goes_with_the_results_the_run_kept(tmp_path, capsys):
    """A video run's journal is counted as it is read (journal_results: two passes, no face held),
    with what the run kept: a result withdrawn and given again counts once with its last faces, a
    skipped frame and a line cut short not at all; each frame's own time places it. Hand-counted:
    frames 0-3 at 2 fps (0.0, 0.5, 1.0 and 1.6 s), 1-second windows."""
    from foss_d2.apps import survey
    from foss_d2.apps.runner import JOURNAL, journal_results

    pred = tmp_path / "pred"
    pred.mkdir()
    kid, man = {**face(0, 0, age=5.0), "gender": "female"}, {**face(0, 0, age=40.0), "gender": "male"}
    records = [
        {"key": "0", "faces": [kid], "time_s": 0.0},
        {"key": "1", "faces": [kid, man], "time_s": 0.5},
        {"key": "2", "skipped": "not read"},
        {"key": "1", "withdrawn": "run again"},
        {"key": "3", "faces": [man, man], "time_s": 1.6},
        {"key": "1", "faces": [man], "time_s": 0.5},
        {"key": "4", "faces": [kid], "time_s": 2.0},
    ]
    text = "".join(json.dumps(r) + "\n" for r in records)
    (pred / JOURNAL).write_text(text[: -len(json.dumps(records[-1])) // 2])  # the last line cut short
    assert sorted(journal_results(str(pred / JOURNAL))) == [
        ("0", [kid], 0.0),
        ("1", [man], 0.5),
        ("3", [man, man], 1.6),
    ]
    json.dump({"VIDEO.fps": 2.0}, open(pred / "run.json", "w"))
    survey.main(["--predictions", str(pred), "--output", str(tmp_path / "s"), "--bucket-seconds", "1"])
    assert "4 faces in 3 frames" in capsys.readouterr().out
    s = json.load(open(tmp_path / "s" / "survey.json"))
    assert s["total_faces"] == 4
    assert s["groups"]["3-7"] == {"male": 0, "female": 1, "unknown": 0}
    assert s["groups"]["37-65"] == {"male": 3, "female": 0, "unknown": 0}
    # windows [0, 1): frames 0 and 1 (the kid, one man), [1, 2): frame 3 (two men)
    assert [(t, sum(sum(g.values()) for g in c.values())) for t, c in s["timeline"]] == [(0.0, 2), (1.0, 2)]
    (pred / JOURNAL).write_text(text.replace('"faces": [{', '"faces": ["no face", {', 1))
    with pytest.raises(SystemExit):
        survey.main(["--predictions", str(pred), "--output", str(tmp_path / "t")])
    assert (
        f"{pred / JOURNAL} is not foss-d2 demo's journal: its entry '0' is no list of faces" in capsys.readouterr().err
    )


def test_survey_of_saved_predictions_reads_the_video_fps_and_filters_scores(tmp_path, capsys):
    """--per-frame over a video run's folder takes the frame rate from people.json; a
    --confidence-threshold keeps the faces scored above it; timelines need a frame rate."""
    from foss_d2.apps import survey

    pred = tmp_path / "pred"
    pred.mkdir()
    frames = {str(i): [face(10, 10, score=0.3), face(200, 10, score=0.6)] for i in range(8)}
    json.dump(frames, open(pred / "predictions.json", "w"))
    write_people(str(pred), [], fps=2, min_frames=3, min_score=0.4, dropped=0)
    survey.main(["--predictions", str(pred), "--output", str(tmp_path / "a"), "--per-frame", "--bucket-seconds", "2"])
    s = json.load(open(tmp_path / "a" / "survey.json"))
    assert s["total_faces"] == 16
    assert [sum(sum(g.values()) for g in c.values()) for _, c in s["timeline"]] == [8, 8]  # 4 frames a window
    survey.main(
        ["--predictions", str(pred), "--output", str(tmp_path / "b"), "--per-frame", "--confidence-threshold", "0.5"]
    )
    assert json.load(open(tmp_path / "b" / "survey.json"))["total_faces"] == 8
    photos = tmp_path / "photos.json"
    json.dump({"a.jpg": frames["0"]}, open(photos, "w"))
    json.dump({"x.jpg": "cannot read image"}, open(tmp_path / "skipped.json", "w"))
    (tmp_path / "empty").mkdir()
    json.dump({}, open(tmp_path / "empty" / "skipped.json", "w"))  # what a run that skipped nothing writes
    json.dump({"images": [], "annotations": [], "categories": []}, open(tmp_path / "coco.json", "w"))
    (tmp_path / "p.csv").write_text("image,face\na.jpg,0\n")
    cut, other = tmp_path / "cut", tmp_path / "other"  # a run whose people.json is cut short, or not one
    for folder, text in [(cut, '{"people": [{"track_id'), (other, '{"fps": 2}')]:
        folder.mkdir()
        json.dump(frames, open(folder / "predictions.json", "w"))
        (folder / "people.json").write_text(text)
    for argv, message in [
        (["--predictions", str(photos), "--bucket-seconds", "5"], "--bucket-seconds is for a video run's predictions"),
        (["--predictions", str(pred), "--confidence-threshold", "0.5"], "cannot filter the tracked people"),
        (["--predictions", str(photos), "--input", str(photos)], "not --input and --predictions"),
        # what the earlier message asked for, on photos: it crashed reading a file name as a frame number
        (
            ["--predictions", str(photos), "--fps", "25"],
            f"--fps is for a video run's predictions (frame numbers); {photos}",
        ),
        (["--predictions", str(pred), "--fps", "0"], "argument --fps: 0 is not a number above 0"),
        # files that are not predictions: a survey's own output, a people.json, a skipped.json, a CSV
        (["--predictions", str(pred / "people.json")], "is not foss-d2 demo's predictions ({image or frame: [faces]})"),
        (["--predictions", str(tmp_path / "a" / "survey.json")], "no list of faces"),
        (["--predictions", str(tmp_path / "skipped.json")], "its entry 'x.jpg' is no list of faces"),
        # empty, they read as "0 faces in 0 images" before
        (["--predictions", str(tmp_path / "empty" / "skipped.json")], "but another file of a run"),
        (["--predictions", str(tmp_path / "coco.json")], "but a COCO file"),
        (["--predictions", str(pred), "--no-track"], "--no-track is for --video-input; a video run's predictions"),
        (["--predictions", str(tmp_path / "p.csv")], "is not JSON (Expecting value"),
        # it was a JSONDecodeError traceback, and a KeyError for a file without people
        (["--predictions", str(cut)], f"{cut / 'people.json'} could not be read (Unterminated string"),
        (["--predictions", str(other)], f"{other / 'people.json'} is not a people.json of foss-d2 demo"),
    ]:
        with pytest.raises(SystemExit) as e:
            survey.main([*argv, "--output", str(tmp_path / "c")])
        assert e.value.code == 2 and message in capsys.readouterr().err


class _ModelStandIn:
    """_fake_predictor with a config, as FOSSPredictor has: its run writes run.json."""

    def __init__(self):
        from conftest import tiny_cfg

        self.cfg = tiny_cfg()

    def __call__(self, img):
        return _fake_predictor(img)


def test_resume_of_a_video_run_refuses_another_video_or_stride(tmp_path, capsys):
    """Frame numbers mean nothing in another video: --resume with another file (or the same file
    with another --every-n-frames or tracking) is refused, naming what differs; the same options
    resume. A video that cannot be opened is an error saying why, before the output folder exists."""
    from foss_d2.apps.runner import RunError, run_video

    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    write_video(str(a), [np.full((120, 240, 3), 90 + 10 * i, np.uint8) for i in range(8)], fps=4)
    write_video(str(b), [np.full((160, 200, 3), 90, np.uint8) for i in range(6)], fps=4)
    out, pred = tmp_path / "out", _ModelStandIn()
    run_video(pred, str(a), str(out), "BGR", track=True, draw=False)
    with pytest.raises(RunError, match=r"VIDEO.frames: 8 then, 6 now; VIDEO.name: 'a.mp4' then, 'b.mp4' now"):
        run_video(pred, str(b), str(out), "BGR", track=True, draw=False, resume=True)
    with pytest.raises(RunError, match=r"VIDEO.every_n_frames: 1 then, 2 now"):
        run_video(pred, str(a), str(out), "BGR", track=True, draw=False, resume=True, every_n_frames=2)
    with pytest.raises(RunError, match=r"VIDEO.min_track_frames: 3 then, None now; VIDEO.track: True then, False now"):
        run_video(pred, str(a), str(out), "BGR", draw=False, resume=True)
    run_video(pred, str(a), str(out), "BGR", track=True, draw=False, resume=True)  # the same: goes on
    assert len(json.load(open(out / "predictions.json"))) == 8
    # a run.json written before it held the video's keys: resumed, checked on the model's settings
    saved = json.load(open(out / "run.json"))
    json.dump({k: v for k, v in saved.items() if not k.startswith("VIDEO.")}, open(out / "run.json", "w"))
    run_video(pred, str(a), str(out), "BGR", track=True, draw=False, resume=True)
    # a run stopped before its people.json: survey counts faces per frame, on the video's own timeline
    from foss_d2.apps import survey

    (out / "people.json").unlink()
    survey.main(["--predictions", str(out), "--output", str(tmp_path / "s"), "--bucket-seconds", "1"])
    assert "faces are counted per frame, not people" in capsys.readouterr().out
    report = json.load(open(tmp_path / "s" / "survey.json"))
    assert report["total_faces"] == 16 and [t for t, _ in report["timeline"]] == [0.0, 1.0]  # 8 frames at 4 fps
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(RunError, match="cannot open video .*empty.mp4'?: the file is empty"):
        run_video(pred, str(empty), str(tmp_path / "never"), "BGR")
    assert not (tmp_path / "never").exists()  # nothing left to block a rerun
    from foss_d2.apps.runner import open_video

    with pytest.raises(RunError, match="cannot open camera 99: no camera there"):  # --webcam's index
        open_video(99)


def test_scene_cuts_are_measured_on_every_frame_whatever_the_stride(tmp_path):
    """--every-n-frames 4 over a slow fade: each frame differs from the next by 12 grey levels
    (under the cut threshold, 35), every fourth frame by 48, which the tracker took for a cut. The
    reader measures the cuts on every frame, the skipped ones too: the fade is no cut, and a cut in
    a frame between two processed ones still starts new tracks."""
    from foss_d2.apps.runner import run_video

    fade = tmp_path / "fade.mp4"
    write_video(str(fade), [np.full((120, 240, 3), 12 * i, np.uint8) for i in range(17)], fps=4)
    run_video(_fake_predictor, str(fade), str(tmp_path / "a"), "BGR", track=True, draw=False, every_n_frames=4)
    people = json.load(open(tmp_path / "a" / "people.json"))
    assert people["scene_cuts"] == 0 and [p["frames_seen"] for p in people["people"]] == [5, 5]
    # the same frames, four apart: the old measure, on the processed frames only, saw four cuts
    plain = FaceTracker(fps=4, frame_stride=4)
    for i in range(0, 17, 4):
        plain.update([face(10, 10)], np.full((120, 240, 3), 12 * i, np.uint8))
    assert plain.n_cuts == 4
    cut = tmp_path / "cut.mp4"  # dark, then bright from frame 6: between the processed frames 4 and 8
    write_video(str(cut), [np.full((120, 240, 3), 20 if i < 6 else 220, np.uint8) for i in range(13)], fps=4)
    run_video(
        _fake_predictor,
        str(cut),
        str(tmp_path / "b"),
        "BGR",
        track=True,
        draw=False,
        every_n_frames=4,
        min_track_frames=2,
    )
    people = json.load(open(tmp_path / "b" / "people.json"))
    assert people["scene_cuts"] == 1 and [(p["first_frame"], p["last_frame"]) for p in people["people"]] == [
        (0, 4),
        (0, 4),
        (8, 12),
        (8, 12),
    ]


def test_people_timeline_spans_the_video_with_empty_buckets():
    """Per person, every time bucket from 0 to the video's last frame, with zeros where nobody was
    in view (the buckets without anyone were left out, and the plot joined their neighbours)."""
    from foss_d2.apps.tracking import people_survey

    people = [
        {"first_time_s": 0.0, "last_time_s": 0.4, "age": 30.0, "gender": "female"},
        {"first_time_s": 1.6, "last_time_s": 2.2, "age": 70.0, "gender": "male"},
    ]
    counts, timeline = people_survey(people, [0, 3, 8, 13, 20, 37, 66], 0.5, end_s=3.2)
    assert [t for t, _ in timeline] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    totals = [sum(sum(g.values()) for g in c.values()) for _, c in timeline]
    assert totals == [1, 0, 0, 1, 1, 0, 0]
    assert counts["20-36"]["female"] == 1 and counts["66+"]["male"] == 1


@pytest.mark.parametrize(
    "argv, words",
    [
        (["demo", "--video-input", "x.mp4", "--output", "o", "--min-track-frames", "0"], "is not at least 1"),
        # a video's options for photos were ignored without a word
        (["demo", "--input", "a.jpg", "--every-n-frames", "5"], "--every-n-frames is for --video-input and --webcam"),
        (
            ["survey", "--input", "a.jpg", "--no-track", "--min-track-frames", "2"],
            "--min-track-frames and --no-track are",
        ),
        (["survey", "--predictions", "p", "--output", "o", "--bucket-seconds", "0"], "is not a number above 0"),
        (["survey", "--predictions", "p", "--output", "o", "--bucket-seconds", "nan"], "is not a number above 0"),
    ],
)
def test_video_options_out_of_range_are_usage_errors(argv, words, capsys):
    from foss_d2.apps import cli

    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and words in capsys.readouterr().err


class _VariableRateCapture:
    """Ten frames of a phone clip with a pause: frames 0-4 at 0.0-0.4 s, frames 5-9 at 6.0-6.4 s
    (OpenCV's average: 10 frames over 6.4 s, about 1.56 fps)."""

    times_ms = [0, 100, 200, 300, 400, 6000, 6100, 6200, 6300, 6400]

    def __init__(self):
        self.i = 0

    def isOpened(self):
        return True

    def get(self, prop):
        if prop == cv2.CAP_PROP_POS_MSEC:
            return float(self.times_ms[self.i - 1])
        return {cv2.CAP_PROP_FRAME_COUNT: 10, cv2.CAP_PROP_FPS: 10 / 6.4}.get(prop, 120)

    def grab(self):
        self.i += 1
        return self.i <= 10

    def read(self):
        ok = self.grab()
        return ok, (np.full((120, 240, 3), 90, np.uint8) if ok else None)

    def release(self):
        pass


def test_times_are_the_frames_own_with_a_variable_frame_rate(tmp_path, monkeypatch):
    """People's first and last seconds, the journal and survey's timelines take each frame's own
    timestamp: frame 4 is at 0.4 s, not 4 / 1.56 = 2.56 s, and nothing is counted in 1-5 s; a pause
    longer than a track waits ends the tracks, as a cut does."""
    from foss_d2.apps import runner, survey
    from foss_d2.apps.runner import JOURNAL, read_journal, run_video

    monkeypatch.setattr(runner.cv2, "VideoCapture", lambda source: _VariableRateCapture())
    (tmp_path / "pause.mp4").write_bytes(b"x")
    out = tmp_path / "out"
    run_video(_fake_predictor, str(tmp_path / "pause.mp4"), str(out), "BGR", track=True, draw=False)
    assert [r["time_s"] for r in read_journal(str(out / JOURNAL))] == [t / 1000 for t in _VariableRateCapture.times_ms]
    saved = json.load(open(out / "people.json"))
    # the 5.6 s pause is longer than a track waits for its face (1 s): each face is a new person after it
    assert saved["pauses"] == 1 and saved["scene_cuts"] == 0
    # a constant rate whose processed frames are 1.2 s apart (--every-n-frames 30 at 25 fps): no pause
    tracker = FaceTracker(fps=25, frame_stride=30)
    ids = [tracker.update([face(10, 10)], None, False, 1.2 * i) for i in range(4)]
    assert tracker.n_pauses == 0 and len(set(map(tuple, ids))) == 1
    assert [(p["first_time_s"], p["last_time_s"]) for p in saved["people"]] == [
        (0.0, 0.4),
        (0.0, 0.4),
        (6.0, 6.4),
        (6.0, 6.4),
    ]
    survey.main(["--predictions", str(out), "--output", str(tmp_path / "s"), "--per-frame", "--bucket-seconds", "1"])
    timeline = json.load(open(tmp_path / "s" / "survey.json"))["timeline"]
    assert [(t, sum(sum(g.values()) for g in c.values())) for t, c in timeline] == [(0.0, 10), (6.0, 10)]
    # the journal alone, copied without run.json: its frames' own times give the same timeline (it
    # asked for --fps, then refused --fps as the frames have their own times)
    (tmp_path / "copy").mkdir()
    shutil.copy(out / JOURNAL, tmp_path / "copy" / JOURNAL)
    journal = str(tmp_path / "copy" / JOURNAL)
    survey.main(["--predictions", journal, "--output", str(tmp_path / "s2"), "--bucket-seconds", "1"])
    assert json.load(open(tmp_path / "s2" / "survey.json"))["timeline"] == timeline


class _ShadedVariableRateCapture(_VariableRateCapture):
    """The same clip with frame i a flat grey of 20 + 20 i, to tell the frames apart in the video."""

    def read(self):
        ok = self.grab()
        return ok, (np.full((120, 240, 3), 20 + 20 * (self.i - 1), np.uint8) if ok else None)


def test_annotated_video_keeps_a_variable_frame_rates_timing(tmp_path, monkeypatch):
    """The annotated video is written at OpenCV's average rate (10 frames / 6.4 s = 1.5625 fps), so
    frame k of it is at k / 1.5625 s: the frames at 0.0-0.3 s all fall in slot 0 (the first is
    drawn), 0.4 s in slot 1 (round(0.625)), then frame 4 is held over the pause until 6.0 s, slot 9
    (round(9.375)); 6.1-6.4 s fall in slot 10. By hand: frame 0, frame 4 eight times, frames 5, 6."""
    from foss_d2.apps import runner
    from foss_d2.engine import pipeline

    monkeypatch.setattr(runner.cv2, "VideoCapture", lambda source: _ShadedVariableRateCapture())
    monkeypatch.setattr(pipeline, "instances_to_faces", lambda inst: [])
    (tmp_path / "pause.mp4").write_bytes(b"x")
    out = tmp_path / "out"
    runner.run_video(lambda img: None, str(tmp_path / "pause.mp4"), str(out), "BGR", track=False)
    monkeypatch.undo()  # cv2's own VideoCapture again, to read the video back
    video = cv2.VideoCapture(str(out / "pause_foss.mp4"))
    shades = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        shades.append(float(frame.mean()))
    # the codec moves a flat grey by a few levels; the shades are 20 apart
    frames = [round((shade - 20) / 20) for shade in shades]
    assert frames == [0] + [4] * 8 + [5, 6] and max(abs(v - (20 + 20 * i)) for v, i in zip(shades, frames)) < 6
    assert len(json.load(open(out / "predictions.json"))) == 10  # every frame's answers, drawn or not


def test_video_frames_two_at_a_time_keep_frame_order(tmp_path):
    """With workers=2 two frames are in the model at once, and the answers, the tracker's ids and the
    journal still follow the frames' order; a frame the model fails on is skipped with the reason
    and the video goes on. Frame i is a flat grey of 20 + 20 i and the fake model answers age i."""
    import threading
    import time

    import torch

    from foss_d2.apps.runner import JOURNAL, read_journal, run_video

    from detectron2.structures import Boxes, Instances

    video = tmp_path / "clip.mp4"
    write_video(str(video), [np.full((120, 240, 3), 20 + 20 * i, np.uint8) for i in range(8)], fps=4)
    lock, running, most = threading.Lock(), [0], {}

    def model(img):
        i = round((float(img.mean()) - 20) / 20)
        with lock:
            running[0] += 1
            most[run] = max(most.get(run, 0), running[0])
        time.sleep(0.05 if i % 2 else 0.15)  # even frames slower: they finish after the next one
        with lock:
            running[0] -= 1
        if i == 3:
            raise RuntimeError("out of memory")
        inst = Instances(img.shape[:2])
        inst.pred_boxes = Boxes(torch.tensor([[20.0, 20.0, 80.0, 80.0]]))
        inst.scores = torch.tensor([0.9])
        inst.pred_ages = torch.tensor([float(i)])
        inst.pred_age_stds = torch.tensor([1.0])
        inst.pred_female_probs = torch.tensor([0.2])
        return inst

    answers = {}
    for run in (1, 2):
        out = tmp_path / f"w{run}"
        run_video(model, str(video), str(out), "BGR", track=True, workers=run)
        journal = read_journal(str(out / JOURNAL))
        assert [r["key"] for r in journal] == [str(i) for i in range(8)]
        assert "the model failed on this image: RuntimeError: out of memory" in journal[3]["skipped"]
        answers[run] = {r["key"]: r["faces"] for r in journal if "faces" in r}
        assert {k: f[0]["age"] for k, f in answers[run].items()} == {str(i): i for i in range(8) if i != 3}
        assert all(f[0]["track_id"] >= 1 for f in answers[run].values())
    assert most == {1: 1, 2: 2} and answers[1] == answers[2]


@pytest.mark.parametrize(
    "rate, times, slots",
    [
        (25.0, [k / 25 for k in range(6)], [1] * 6),  # a constant rate: a slot a frame
        (25.0, [None] * 3, [1, 1, 1]),  # a camera: no times
        # the paused clip above: 0.0-0.3 s in slot 0, 0.4 s in slot 1, 6.0 s in slot 9, 6.1-6.4 s in 10
        (10 / 6.4, [t / 1000 for t in _VariableRateCapture.times_ms], [1, 0, 0, 0, 1, 8, 1, 0, 0, 0]),
        (1000.0, [k / 30 for k in range(4)], [1, 1, 1, 1]),  # a WebM's 1000 fps: 33 slots apart, not used
        (10.0, [0.0, 0.1, 60.1, 60.2], [1, 1, 101, 1]),  # a 60 s jump held 10 s (100 slots), then on
        (10.0, [5.0, 5.1, 5.2, 0.0, 0.1], [1, 1, 1, 1, 1]),  # joined clips: times go back, the count goes on
        # --every-n-frames: the rate over the stride; 1.4 s is slot round(2.8) = 3, 1.6 s slot 3 too, 2.5 s slot 5
        (2.0, [0.0, 0.5, 1.4, 1.6, 2.5], [1, 1, 2, 0, 2]),
    ],
)
def test_video_timeline_slots_by_hand(rate, times, slots):
    from foss_d2.apps.runner import VideoTimeline

    timeline = VideoTimeline(rate)
    assert [timeline.slots(t) for t in times] == slots
    assert timeline.written == sum(slots)


def test_video_timeline_keeps_its_times_when_the_second_and_third_frames_are_broken():
    """25 fps, frames 1 and 2 broken (not drawn): frame 3 at 0.12 s is slot 3, three frames on, not
    a rate that misfits its times (it was read as one, and every later frame got one slot: the
    gap from 0.16 to 0.32 s below, a variable rate's, not held). The 1000 fps misfit still shows
    at the second processed frame."""
    from foss_d2.apps.runner import VideoTimeline

    timeline = VideoTimeline(25.0)
    assert [timeline.slots(t, i) for t, i in ((0.0, 0), (0.12, 3), (0.16, 4), (0.32, 8))] == [1, 3, 1, 4]
    assert timeline.trusted
    webm = VideoTimeline(1000.0)
    assert [webm.slots(k / 30, k) for k in range(3)] == [1, 1, 1] and not webm.trusted


def test_default_workers_by_input_and_device():
    """--workers 0: one a thread on CPU (at most one an image; a video's frames are many), one for a
    webcam, one on a GPU (PyTorch; onnxruntime runs on the CPU)."""
    from argparse import Namespace

    from foss_d2.apps.runner import default_workers
    from foss_d2.config import get_foss_cfg

    cpu, gpu = get_foss_cfg(device="cpu"), get_foss_cfg(device="cuda")

    def workers(cfg, n=None, backend="pytorch", **kind):
        return default_workers(cfg, Namespace(backend=backend, **kind), n, threads=4)

    assert workers(cpu, 10, input=["photos"]) == 4 and workers(cpu, 3, input=["photos"]) == 3
    assert workers(cpu, 1, input=["one.jpg"]) == 1
    assert workers(cpu, 0, video_input="clip.mp4") == 4 and workers(cpu, 0, webcam=True) == 1
    assert workers(gpu, 0, video_input="clip.mp4") == 1 and workers(gpu, 10, input=["photos"]) == 1
    assert workers(gpu, 10, backend="onnxruntime", input=["photos"]) == 4


def test_survey_of_a_video_with_no_track_counts_faces_per_frame(tmp_path, capsys):
    """--no-track on a video: no tracks, so no people: every face of every frame is counted (it
    tracked anyway and counted people); with --per-person it is a one-line error."""
    from foss_d2.apps import survey
    from foss_d2.utils.footage import write_video

    video = tmp_path / "clip.mp4"
    write_video(str(video), [np.full((48, 64, 3), v, np.uint8) for v in (90, 120, 150)], fps=3)
    out = tmp_path / "s"
    survey.main(["--video-input", str(video), "--no-track", "--no-draw", "--output", str(out)])
    report = json.load(open(out / "survey.json"))
    assert "total_faces" in report and "total_people" not in report
    assert not (out / "predictions" / "people.json").exists()
    assert sorted(json.load(open(out / "predictions" / "predictions.json"))) == ["0", "1", "2"]
    with pytest.raises(SystemExit) as e:
        survey.main(["--video-input", str(video), "--no-track", "--per-person", "--output", str(tmp_path / "t")])
    assert e.value.code == 2 and "--per-person counts tracked people: not with --no-track" in capsys.readouterr().err


def test_survey_fps_is_refused_where_the_frames_have_their_own_times_and_old_timelines_go(tmp_path, capsys):
    """--fps over a run whose journal holds each frame's time was silently ignored: refused, as
    with --video-input (whose own rate is read). A survey without a timeline removes an earlier
    survey's timeline files from its folder (they read as its own)."""
    from foss_d2.apps import survey
    from foss_d2.utils.footage import write_video

    video = tmp_path / "clip.mp4"
    write_video(str(video), [np.full((48, 64, 3), v, np.uint8) for v in (90, 120, 150)], fps=3)
    out = tmp_path / "s"
    survey.main(["--video-input", str(video), "--no-track", "--no-draw", "--output", str(out)])
    assert (out / "survey_timeline.csv").is_file() and (out / "survey_timeline.png").is_file()
    assert "survey_timeline.csv, survey_timeline.png" in capsys.readouterr().out
    for argv, message in [
        (["--predictions", str(out / "predictions"), "--fps", "25"], "holds each frame's own time"),
        (["--video-input", str(video), "--fps", "25"], "--fps is for --predictions"),
    ]:
        with pytest.raises(SystemExit) as e:
            survey.main([*argv, "--output", str(tmp_path / "x")])
        assert e.value.code == 2 and message in capsys.readouterr().err
    photos = tmp_path / "photos.json"
    json.dump({"a.jpg": [face(10, 10, score=0.6)]}, open(photos, "w"))
    survey.main(["--predictions", str(photos), "--output", str(out)])
    assert json.load(open(out / "survey.json"))["timeline"] is None
    assert not (out / "survey_timeline.csv").exists() and not (out / "survey_timeline.png").exists()
    assert "survey_timeline" not in capsys.readouterr().out


def test_resume_without_drawing_keeps_the_thumbnails_drawn_before(tmp_path):
    """people.json pointed nowhere (thumbnail null) after a --resume --no-draw of a drawn run,
    while the thumbnails were still in the folder."""
    faces = [face(10, 10, age=30, p_female=0.1, score=0.9)]
    frame = np.full((120, 160, 3), 100, np.uint8)
    drawn = VideoPeople(fps=5, min_frames=2)
    for i in range(4):
        drawn.update(i, frame, [dict(f) for f in faces])
    (people,) = drawn.finish(str(tmp_path))
    assert people["thumbnail"] == "thumbnails/track_00001.jpg" and (tmp_path / people["thumbnail"]).is_file()
    replayed = VideoPeople(fps=5, min_frames=2, thumbnails=False)  # the journal's answers, no frames
    for i in range(4):
        replayed.update(i, None, [dict(f) for f in faces])
    (again,) = replayed.finish(str(tmp_path), reuse_thumbnails=True)  # a --resume
    assert again["thumbnail"] == people["thumbnail"]
    assert json.load(open(tmp_path / "people.json"))["people"][0]["thumbnail"] == people["thumbnail"]
    (fresh,) = replayed.finish(str(tmp_path))  # a new run: another video's file under that name is not its
    assert fresh["thumbnail"] is None
    (tmp_path / people["thumbnail"]).unlink()
    (gone,) = replayed.finish(str(tmp_path), reuse_thumbnails=True)
    assert gone["thumbnail"] is None


def test_a_survey_of_no_people_says_how_many_tracks_were_dropped(tmp_path, capsys):
    from foss_d2.apps import survey

    pred = tmp_path / "pred"
    pred.mkdir()
    json.dump({"0": [face(10, 10), face(100, 10)]}, open(pred / "predictions.json", "w"))
    write_people(str(pred), [], fps=2, min_frames=3, min_score=0.4, dropped=2)
    survey.main(["--predictions", str(pred), "--output", str(tmp_path / "s")])
    out = capsys.readouterr().out
    assert "0 people in 1 frames" in out and "(2 tracks dropped as noise: under 3 frames, or no face scored 0.4" in out


def test_people_sheet_shows_each_persons_thumbnail_and_answer(tmp_path):
    """people_sheet.jpg: one cell a person with a thumbnail, in their order, the label in the
    gender's colour; a small face shown enlarged (at most 4x), a large one made to fit; at most
    SHEET_MAX_PEOPLE cells and a note of the rest; --overwrite removes it beside a people.json, and
    leaves a picture of that name alone."""
    from foss_d2.apps import tracking
    from foss_d2.apps.runner import existing_results, remove_previous_run
    from foss_d2.apps.tracking import SHEET_FILE, THUMB_SIDE, people_sheet, write_people

    os.makedirs(tmp_path / "thumbnails")
    people = []
    for tid, (side, colour, p_female) in enumerate([(128, 200, 0.9), (32, 60, 0.1), (None, 0, 0.5)], 1):
        thumb = f"thumbnails/track_{tid:05d}.jpg" if side else None
        if side:
            cv2.imwrite(str(tmp_path / thumb), np.full((side, side, 3), colour, np.uint8))
        people.append(
            {"track_id": tid, "age": 30.0, "p_female": p_female, "first_time_s": 0.0, "last_time_s": 75.4}
            | {"thumbnail": thumb}
        )
    path = people_sheet(str(tmp_path), people)
    sheet = cv2.imread(path)
    cell, band = THUMB_SIDE + 8, 40
    assert sheet.shape == (cell + band, 2 * cell, 3)  # the third person has no thumbnail: two cells
    assert abs(int(sheet[cell // 2, cell // 2, 0]) - 200) <= 3  # the first thumbnail, centred in its cell
    assert abs(int(sheet[cell // 2, cell + cell // 2, 0]) - 60) <= 3  # the 32 px one, shown at 128 px
    assert abs(int(sheet[4 + 2, cell + 4 + 2, 0]) - 60) <= 3 and abs(int(sheet[2, cell + 2, 0]) - 32) <= 3
    label = sheet[cell : cell + 22, :cell].reshape(-1, 3).astype(int)
    female_bgr = np.array([115, 77, 242])  # visualizer.FEMALE_COLOR, BGR
    assert (np.abs(label - female_bgr).sum(1) < 40).sum() > 20  # "30, F" in the female colour
    assert people_sheet(str(tmp_path), [dict(people[2])]) is None and not (tmp_path / SHEET_FILE).exists()
    # a user's own picture of that name: not a run's result without people.json beside it
    people_sheet(str(tmp_path), people)
    assert existing_results(str(tmp_path)) == []
    remove_previous_run(str(tmp_path))
    assert (tmp_path / SHEET_FILE).exists()
    write_people(str(tmp_path), people, fps=5, min_frames=2, min_score=0.4, dropped=0)
    assert SHEET_FILE in existing_results(str(tmp_path))
    remove_previous_run(str(tmp_path))
    assert not (tmp_path / SHEET_FILE).exists()
    # a thumbnail larger than its cell (replaced by hand), no times: drawn, fitted; 3 people a sheet at most
    os.makedirs(tmp_path / "thumbnails", exist_ok=True)  # (the overwrite removed the emptied folder)
    cv2.imwrite(str(tmp_path / "thumbnails" / "big.jpg"), np.full((400, 300, 3), 150, np.uint8))
    crowd = [{"track_id": i, "age": 5.0, "p_female": None, "thumbnail": "thumbnails/big.jpg"} for i in range(5)]
    tracking.SHEET_MAX_PEOPLE, before = 3, tracking.SHEET_MAX_PEOPLE
    try:
        sheet = cv2.imread(people_sheet(str(tmp_path), crowd))
    finally:
        tracking.SHEET_MAX_PEOPLE = before
    assert sheet.shape == (cell + band + 24, 3 * cell, 3)  # three cells and the note's line
    assert abs(int(sheet[cell // 2, cell // 2, 0]) - 150) <= 3 and abs(int(sheet[1, cell // 2, 0]) - 32) <= 3


def test_a_tracked_video_run_writes_the_people_sheet(tmp_path):
    faces = [face(10, 10, age=30, p_female=0.1, score=0.9), face(90, 10, age=8, p_female=0.9, score=0.9)]
    frame = np.full((120, 160, 3), 100, np.uint8)
    people = VideoPeople(fps=5, min_frames=2)
    for i in range(4):
        people.update(i, frame, [dict(f) for f in faces])
    assert len(people.finish(str(tmp_path))) == 2
    sheet = cv2.imread(str(tmp_path / "people_sheet.jpg"))
    assert sheet.shape[:2] == (136 + 40, 2 * 136)
    male, female = np.array([242, 115, 51]), np.array([115, 77, 242])  # visualizer's colours, BGR

    def coloured(cell, colour):  # pixels of that colour in the cell's label line
        label = sheet[136:158, cell * 136 : (cell + 1) * 136].reshape(-1, 3).astype(int)
        return int((np.abs(label - colour).sum(1) < 40).sum())

    # "30, M" first, then "8, F"
    assert coloured(0, male) > 20 and coloured(0, female) == 0
    assert coloured(1, female) > 20 and coloured(1, male) == 0


def test_a_sheet_that_cannot_be_drawn_costs_nothing_of_the_answers(tmp_path, monkeypatch):
    from foss_d2.apps import tracking

    def broken(out_dir, people):
        raise ValueError("cannot draw")

    monkeypatch.setattr(tracking, "people_sheet", broken)
    people = VideoPeople(fps=5, min_frames=2)
    for i in range(3):
        people.update(i, np.full((120, 160, 3), 100, np.uint8), [face(10, 10, score=0.9)])
    assert len(people.finish(str(tmp_path))) == 1
    assert len(json.load(open(tmp_path / "people.json"))["people"]) == 1 and (tmp_path / "people.csv").is_file()


def test_track_benchmark_counts_what_the_people_rule_drops():
    """track_benchmark.py's count behind docs/DESIGN.md's "Which tracks are people", on six tracks
    written out by hand: two of true faces (5 frames, and a 2-frame fragment), four that never met
    one (1, 2, 4 and 3 frames, best scores 0.25, 0.3, 0.35 and 0.5)."""
    from types import SimpleNamespace

    from foss_d2.apps.tracking import Track

    bench = load_script("tools/research/track_benchmark.py")
    tracks = {}
    for tid, frames, score in [(1, 5, 0.6), (2, 2, 0.45), (3, 1, 0.25), (4, 2, 0.3), (5, 4, 0.35), (6, 3, 0.5)]:
        t = tracks[tid] = Track(track_id=tid, first_frame=0, first_time=0.0, faces=[])
        for i in range(frames):
            t.add(i, i / 25, {"box": [0, 0, 10, 10], "score": score, "age": 30.0, "p_female": 0.5})
    # per frame: (shot, faces, shown, true person of each face); track 2 meets person "b" once only
    per_frame = [(0, [{"track_id": 1}, {"track_id": 2}, {"track_id": 5}], None, ["a", "b", None])]
    per_frame += [(0, [{"track_id": 1}, {"track_id": 3}, {"track_id": 6}], None, ["a", None, None])]
    counts = bench.track_filter_counts(SimpleNamespace(tracks=tracks), per_frame, min_frames=3, min_score=0.4)
    assert counts == {
        "false_tracks": 4,
        "false_tracks_by_frames": {"1": 1, "2": 1, "3+": 2},
        "false_tracks_3+_under_min_score": 1,
        "false_tracks_best_scores": [0.25, 0.5],
        "true_tracks_under_min_frames": 1,
    }


def test_track_benchmark_runs_a_tracker_and_scores_it_by_hand():
    """track_benchmark.py's path from cached detections to its tables, without the model: one
    person in four frames (ages 30-36 about a true 33) and a false face in the first frame only."""
    bench = load_script("tools/research/track_benchmark.py")
    grey = np.full((480, 640, 3), 110, np.uint8)
    person = [100, 100, 200, 220]
    frames = [(grey, 0, [("p", person, (33.0, "male"))]) for _ in range(4)]
    face = {"box": person, "score": 0.6, "age_std": 4.0, "p_female": 0.2, "gender": "male"}
    dets = [[{**face, "age": a}] for a in (30.0, 32.0, 34.0, 36.0)]
    dets[0].append({**face, "box": [400, 300, 440, 350], "score": 0.25, "age": 50.0})
    vp, per_frame = bench.run_tracker(lambda: FaceTracker(fps=25.0, cut_threshold=None), frames, dets, 3)
    metrics = bench.tracking_metrics(vp, per_frame, 3)
    assert metrics["true_people"] == 1 and metrics["tracks"] == 1 and metrics["id_switches"] == 0
    assert metrics["tracks_without_true_person"] == 0 and metrics["dropped_tracks"] == 1
    jit = bench.age_jitter(per_frame, {"p": (33.0, "male")}, 3)
    assert jit["people"] == 1 and jit["mae_per_frame"] == 2.0  # (3 + 1 + 1 + 3) / 4
    assert jit["age_std_over_frames_per_frame"] == 2.24  # sqrt((9 + 1 + 1 + 9) / 4)
    assert jit["age_std_over_frames_drawn_running_answer"] == 1.12  # 30, 31, 32, 33: sqrt(1.25)
    assert all(jit[f"mae_per_person_{m}"] == 0.0 for m in ("inverse_variance", "weighted", "mean", "median"))
    # the answer 33 and its std: the mixture's, sqrt(4^2 + the ages' variance (9 + 1 + 1 + 9) / 4) = 4.58;
    # a true age 4 years off lies within it, 5 years off outside
    for true, inside in ((37.0, 1.0), (38.0, 0.0)):
        jit = bench.age_jitter(per_frame, {"p": (true, "male")}, 3)
        assert jit["mae_per_person_inverse_variance"] == true - 33.0
        assert jit["age_in_1std_per_person_inverse_variance"] == inside
    # per frame (std 4): 30, 32, 34, 36 against 37 are 7, 5, 3, 1 off: two of four within
    assert bench.age_jitter(per_frame, {"p": (37.0, "male")}, 3)["age_in_1std_per_frame"] == 0.5
    assert jit["gender_accuracy_per_frame"] == 1.0
    counts = bench.track_filter_counts(vp, per_frame, 3, 0.4)
    assert counts["false_tracks"] == 1 and counts["false_tracks_by_frames"] == {"1": 1, "2": 0, "3+": 0}
    assert counts["false_tracks_best_scores"] == [0.25, 0.25] and counts["true_tracks_under_min_frames"] == 0
