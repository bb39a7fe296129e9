import os

import cv2
import numpy as np
import pytest
from conftest import needs_shared_data, shared_data_path

from foss_d2.data.datasets import box_from_landmarks, load_fgnet, parse_fgnet_name, read_pts


def _write_pts(path, points):
    body = "\n".join(f"{x} {y}" for x, y in points)
    path.write_text(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")


def test_parse_fgnet_names():
    assert parse_fgnet_name("001A02.JPG") == {"person": "001", "age": 2}
    assert parse_fgnet_name("078A11b.JPG") == {"person": "078", "age": 11}
    assert parse_fgnet_name("x.JPG") is None and parse_fgnet_name("001A2.JPG") is None


def test_box_from_landmarks_adds_the_forehead_and_clips():
    # landmarks span x 10-50, y 40-120 (brows to chin): the top rises by 0.25 * 80 = 20 px
    pts = np.array([[10.0, 40], [50, 120], [30, 80]])
    assert box_from_landmarks(pts, 100, 200) == [10.0, 20.0, 50.0, 120.0]
    # near the image edge the box is clipped to the picture
    assert box_from_landmarks(np.array([[-5.0, 4], [60, 84]]), 55, 80) == [0.0, 0.0, 55.0, 80.0]


def test_read_pts_errors_name_file_and_line(tmp_path):
    p = tmp_path / "a.pts"
    p.write_text("version: 1\nn_points: 3\n{\n1 2\n3 x\n5 6\n}\n")
    with pytest.raises(ValueError, match=r"a\.pts:5: expected 'x y', got '3 x'"):
        read_pts(str(p))


def test_load_fgnet_fixture_person_disjoint(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "points").mkdir()
    names = [f"{p:03d}A{a:02d}.JPG" for p in range(1, 21) for a in (3, 30)] + ["bad_name.JPG"]
    for n in names:
        (tmp_path / "images" / n).write_bytes(cv2.imencode(".jpg", np.zeros((50, 40, 3), np.uint8))[1].tobytes())
        _write_pts(tmp_path / "points" / (os.path.splitext(n)[0].lower() + ".pts"), [(5, 10), (35, 50), (20, 30)])
    os.remove(tmp_path / "points" / "020a30.pts")  # a photo without landmarks is skipped
    all_ = load_fgnet(str(tmp_path), "all")
    assert len(all_) == 39  # 40 good names, one without points; the malformed name skipped
    r = all_[0]
    assert (r["width"], r["height"], r["person"]) == (40, 50, "001")
    assert r["annotations"][0]["bbox"] == [5.0, 0.0, 35.0, 50.0]  # 10 - 0.25 * 40 = 0
    assert r["annotations"][0]["age"] == 3.0 and r["annotations"][0]["gender"] == -1
    train, test = load_fgnet(str(tmp_path), "train"), load_fgnet(str(tmp_path), "test")
    assert len(train) + len(test) == 39 and train and test
    assert not {r["person"] for r in train} & {r["person"] for r in test}


@needs_shared_data
def test_real_fgnet_split_keeps_people_apart():
    root = shared_data_path("fgnet", "FGNET")
    if not os.path.isdir(root):
        pytest.skip(f"FG-NET not found at {root}")
    train, test = load_fgnet(root, "train"), load_fgnet(root, "test")
    assert len(train) + len(test) == 1002  # every photo has its landmarks
    people_train, people_test = {r["person"] for r in train}, {r["person"] for r in test}
    assert len(people_train | people_test) == 82 and not people_train & people_test
    ages = [r["annotations"][0]["age"] for r in train + test]
    assert min(ages) == 0 and max(ages) == 69
    # every derived box lies inside its photo and is face-sized (a tenth to all of the width)
    for r in test:
        x1, y1, x2, y2 = r["annotations"][0]["bbox"]
        assert 0 <= x1 < x2 <= r["width"] and 0 <= y1 < y2 <= r["height"]
        assert 0.1 * r["width"] < x2 - x1 <= r["width"]
