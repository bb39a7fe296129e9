"""tools/research/compare_found_faces.py: two runs' per-face rows split into faces both found and
faces only one found, with accuracies counted by hand."""

import json

import pytest
from conftest import load_script

cff = load_script("tools/research/compare_found_faces.py")
LOWER = [0, 30, 45, 65]  # WIDER's perceived groups


def face(image, gender, group, detected, p_female=None, age=None):
    r = {"image_id": image, "age": -1.0, "gender": gender, "age_group": group, "detected": detected}
    if detected:
        r.update(p_female=p_female, pred_age=age, score=0.9)
    return r


# five labelled faces; A finds 1-3, B finds 1, 2, 4 and 5
A = [
    face("a", 1, 0, True, 0.9, 20),  # female right, group 0 right
    face("a", 0, 2, True, 0.7, 50),  # male read female: wrong; 50 -> group 2: right
    face("b", 0, -1, True, 0.1, 40),  # male right; no group label
    face("b", 1, 1, False),
    face("c", -1, 3, False),  # no gender label
]
B = [
    face("a", 1, 0, True, 0.2, 35),  # wrong, group 1: wrong
    face("a", 0, 2, True, 0.3, 44),  # right, group 1: wrong
    face("b", 0, -1, False),
    face("b", 1, 1, True, 0.8, 31),  # right, group 1: right
    face("c", -1, 3, True, 0.5, 70),  # no gender label; group 3: right
]


def test_compare_splits_faces_by_who_found_them():
    res = cff.compare(A, B, LOWER)
    assert res["both"] == {
        "faces": 2,
        "A": {"gender_faces": 2, "gender_acc": 50.0, "group_faces": 2, "group_acc": 100.0},
        "B": {"gender_faces": 2, "gender_acc": 50.0, "group_faces": 2, "group_acc": 0.0},
    }
    assert res["only A"] == {
        "faces": 1,
        "A": {"gender_faces": 1, "gender_acc": 100.0, "group_faces": 0, "group_acc": None},
    }
    assert res["only B"] == {
        "faces": 2,
        "B": {"gender_faces": 1, "gender_acc": 100.0, "group_faces": 2, "group_acc": 100.0},
    }
    md = cff.to_markdown(res, ("old", "new"))
    assert "| both | 2 | 50.0% / 50.0% (2 labelled) | 100.0% / 0.0% (2 labelled) |" in md
    assert "| new only | 2 | - / 100.0% (1 labelled) | - / 100.0% (2 labelled) |" in md


def test_compare_refuses_runs_on_different_faces(tmp_path):
    with pytest.raises(ValueError, match="5 and 4 faces"):
        cff.compare(A, B[:4], LOWER)
    with pytest.raises(ValueError, match="face 1 differs"):
        cff.compare(A, [B[0], dict(B[1], gender=1)] + B[2:], LOWER)
    for name, rows in (("a", A), ("b", B)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "face_predictions.json").write_text(json.dumps(rows))
    cff.main([str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "out")])
    saved = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert saved["names"] == ["A", "B"] and saved["both"]["faces"] == 2
    with pytest.raises(SystemExit) as e:  # a folder without the rows: a clear argparse error
        cff.main([str(tmp_path / "a"), str(tmp_path), "--output", str(tmp_path / "out2")])
    assert e.value.code == 2
