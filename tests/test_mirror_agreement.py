"""tools/research/mirror_agreement.py: a face's plain and mirrored readings recovered from an
evaluation with the mirror average and one without, on hand-written runs."""

import json

import pytest
import yaml
from conftest import load_script

mirror = load_script("tools/research/mirror_agreement.py")


def write_run(tmp_path, name, faces, test_flip, **age_head):
    d = tmp_path / name
    (d / "inference" / "wider_face_val").mkdir(parents=True)
    (d / "inference" / "wider_face_val" / "face_predictions.json").write_text(json.dumps(faces))
    age_head = {"TEST_FLIP": test_flip, "AGE_READOUT": "mean", "INFERENCE_DTYPE": "float32", **age_head}
    cfg = {"MODEL": {"WEIGHTS": "w.pth", "AGE_HEAD": age_head}}
    cfg["OUTPUT_DIR"] = str(d)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return str(d)


def face(age=None, p_female=None):
    if age is None:
        return {"age": 30.0, "detected": False}
    return {"age": 30.0, "detected": True, "pred_age": age, "p_female": p_female}


def test_readings_by_hand(tmp_path):
    # face 1: plain 20, averaged 23 -> mirror 26, 6 years apart; P(female) 0.4 plain, 0.55
    # averaged -> 0.7 mirrored: on either side of 0.5. Face 2: 40 / 39 -> 38, 2 apart; 0.1 / 0.2 -> 0.3.
    # Face 3: plain 50, averaged 50: 0 apart. Face 4: not found.
    averaged = [face(23.0, 0.55), face(39.0, 0.2), face(50.0, 0.9), face()]
    plain = [face(20.0, 0.4), face(40.0, 0.1), face(50.0, 0.9), face()]
    a = write_run(tmp_path, "avg", averaged, True)
    p = write_run(tmp_path, "plain", plain, False)
    report = mirror.main([a, p, "--output", str(tmp_path / "out")])
    r = report["wider_face_val"]
    assert r["faces"] == 3
    assert r["mean_years"] == pytest.approx((6 + 2 + 0) / 3, abs=1e-3) and r["median_years"] == pytest.approx(2.0)
    assert r["p90_years"] == pytest.approx(2 + 0.8 * (6 - 2))  # numpy's linear percentile of [0, 2, 6]
    assert r["gender_flips_pct"] == pytest.approx(100 / 3, abs=0.01)
    assert "| wider_face_val | 3 |" in (tmp_path / "out" / "mirror_agreement.md").read_text()


def test_runs_that_are_not_a_pair_are_refused(tmp_path):
    faces = [face(20.0, 0.4)]
    a = write_run(tmp_path, "avg", faces, True)
    both = write_run(tmp_path, "also-avg", faces, True)
    bf16 = write_run(tmp_path, "bf16", faces, False, INFERENCE_DTYPE="bfloat16")
    with pytest.raises(ValueError, match="TEST_FLIP True"):  # both with the mirror average
        mirror.check_runs(mirror.run_config(a), mirror.run_config(both))
    with pytest.raises(ValueError, match="INFERENCE_DTYPE"):  # another age network precision
        mirror.check_runs(mirror.run_config(a), mirror.run_config(bf16))
    with pytest.raises(SystemExit) as e:  # the command line says so and stops
        mirror.main([a, bf16, "--output", str(tmp_path / "o")])
    assert e.value.code == 2
    with pytest.raises(ValueError, match="one run has a config.yaml"):
        mirror.check_runs(mirror.run_config(a), {})
    with pytest.raises(ValueError, match="different faces"):
        mirror.agreement([face(20.0, 0.4), face()], [face(20.0, 0.4), face(21.0, 0.4)])
    moved = dict(face(20.0, 0.4), image_id="b.jpg")
    with pytest.raises(ValueError, match="another order"):
        mirror.agreement([dict(face(20.0, 0.4), image_id="a.jpg")], [moved])
    # runs without config.yaml are taken as given, a key only one run has (another version's) too
    assert mirror.check_runs({}, {}) is None
    new_key = {"MODEL.AGE_HEAD.TEST_FLIP": False, "MODEL.AGE_HEAD.LAMBDA_FLIP": 0.0}
    assert mirror.check_runs({"MODEL.AGE_HEAD.TEST_FLIP": True}, new_key) is None
