"""tools/research/ship_check.py: the figure-by-figure verdict of issue 16's ship rule, on
hand-written eval_results.json files."""

import json
import os

from conftest import load_script

ship_check = load_script("tools/research/ship_check.py")


def results(ap50=38.71, found=46.59, groups=45.82, gender=70.93, utk_mae=6.05, utk_gender=89.75, fgnet=14.8):
    return {
        "wider_face_val": {
            "bbox": {"AP50": ap50},
            "age": {"detection_rate": found, "group_acc": groups, "gender_acc": gender},
        },
        "utkface_test": {"age": {"MAE": utk_mae, "gender_acc": utk_gender}},
        "fgnet_test": {"age": {"MAE": fgnet}},
    }


def write_run(tmp_path, name, res):
    d = tmp_path / name
    d.mkdir()
    (d / "eval_results.json").write_text(json.dumps(res))
    return str(d)


def test_lower_is_better_for_mae_and_equal_is_not_worse():
    shipped = results()
    better = results(groups=49.83, utk_mae=6.02, utk_gender=89.90, fgnet=11.32)  # detection unchanged
    worse_gender = results(groups=49.83, gender=69.65, fgnet=11.32)
    worse_mae = results(utk_mae=6.10)
    report = ship_check.compare(shipped, {"a": better, "b": worse_gender, "c": worse_mae})
    assert report["a"]["passes"] and not report["b"]["passes"] and not report["c"]["passes"]
    rows = {r["figure"]: r for r in report["b"]["figures"]}
    gender = rows["WIDER val, found faces: gender acc (%)"]
    assert gender["diff"] == 69.65 - 70.93 and gender["not_worse"] is False
    fg = rows["FG-NET test: MAE"]
    assert abs(fg["diff"] - (11.32 - 14.8)) < 1e-12 and fg["not_worse"] is True  # lower MAE is better
    mae = {r["figure"]: r for r in report["c"]["figures"]}["UTKFace held out: MAE"]
    assert mae["not_worse"] is False


def test_tolerance_absorbs_rounding_only():
    shipped = results()
    report = ship_check.compare(shipped, {"noise": results(ap50=38.708), "real": results(ap50=38.70)})
    assert report["noise"]["passes"]  # -0.002: a re-exported fp16 detector
    assert not report["real"]["passes"]  # -0.01 is a change


def test_missing_dataset_is_left_out_but_nothing_shared_fails():
    shipped = results()
    only_utk = {"utkface_test": {"age": {"MAE": 6.0, "gender_acc": 90.0}}}
    report = ship_check.compare(shipped, {"utk": only_utk, "none": {}})
    assert report["utk"]["passes"]
    assert [r["not_worse"] for r in report["utk"]["figures"]].count(None) == 5
    assert not report["none"]["passes"]
    # the dataset evaluated, its MAE null (NaN: a diverged age network): worse, not left out
    nan_mae = results(utk_mae=None)
    report = ship_check.compare(shipped, {"nan": nan_mae})
    mae = {r["figure"]: r for r in report["nan"]["figures"]}["UTKFace held out: MAE"]
    assert mae["not_worse"] is False and not report["nan"]["passes"]


def test_command_writes_table_and_exit_code(tmp_path, capsys):
    shipped = write_run(tmp_path, "shipped", results())
    good = write_run(tmp_path, "good", results(utk_mae=5.9))
    bad = write_run(tmp_path, "bad", results(gender=60.0))
    out = tmp_path / "out"
    assert ship_check.main([shipped, good, "--output", str(out)]) == 0
    assert ship_check.main([shipped, good, bad, "--output", str(out)]) == 1
    table = (out / "ship_check.md").read_text()
    assert "60.00 (-10.93) **worse**" in table and "5.90 (-0.15) ok" in table
    assert table.strip().splitlines()[-1].endswith("| yes | no |")
    report = json.loads((out / "ship_check.json").read_text())
    assert set(report) == {good, bad}
    # a run that was never evaluated: a clear message, exit 2
    assert ship_check.main([shipped, str(tmp_path / "missing"), "--output", str(out)]) == 2
    assert "no eval_results.json" in capsys.readouterr().err
    assert os.path.isfile(out / "ship_check.md")


def test_a_run_of_one_dataset_is_read_under_its_name(tmp_path):
    """train_net's eval_results.json drops the dataset level when one dataset was evaluated; the
    run's inference/<dataset>/ folder names it."""
    wider = results(gender=72.0)["wider_face_val"]
    run = write_run(tmp_path, "wider_only", wider)
    (tmp_path / "wider_only" / "inference" / "wider_face_val").mkdir(parents=True)
    loaded = ship_check.load_results(run)
    assert loaded == {"wider_face_val": wider}
    report = ship_check.compare(results(), {"w": loaded})["w"]
    assert report["passes"] and [r["not_worse"] for r in report["figures"]].count(None) == 3
