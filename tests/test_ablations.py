"""tools/research/run_ablations.py orchestration and tools/export_model.py --detector-only, without
training: a stand-in for the Python interpreter writes what train_net.py would write."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import load_script

ROOT = os.path.join(os.path.dirname(__file__), "..")
run_ablations = load_script("tools/research/run_ablations.py")

FAKE_PYTHON = r"""#!{python}
import json, os, sys
args = sys.argv[1:]
out = args[args.index("OUTPUT_DIR") + 1]
row = os.path.basename(args[args.index("--config-file") + 1])[:-5]
with open(os.path.join(os.path.dirname(out.rstrip("/")) if "--eval-only" in args else out, "..", "calls.txt"), "a") as f:
    test = len(args) - 1 - args[::-1].index("DATASETS.TEST")  # the last one wins, as in detectron2
    f.write(("eval " if "--eval-only" in args else "resume " if "--resume" in args else "train ") + row + " " + " ".join(args[args.index("SOLVER.MAX_ITER"):][:4] if "SOLVER.MAX_ITER" in args else [])
            + " test=" + args[test + 1] + "\n")
if row == os.environ.get("FAIL_ROW"):
    sys.exit(1)
os.makedirs(out, exist_ok=True)
if "--eval-only" in args:
    mae = {{"Table1-baseline": 9.5, "Table1-intermediate": 8.25}}.get(row, 7.0)
    json.dump({{"wider_face_val": {{"age": {{"group_acc": 40.0, "group_1off": 90.0, "gender_acc": 70.0}}, "bbox": {{"AP50": 12.5}}}},
               "utkface_test": {{"age": {{"MAE": mae, "CS@5": 33.0, "gender_acc": 80.0}}}}}}, open(os.path.join(out, "eval_results.json"), "w"))
else:
    open(os.path.join(out, "model_final.pth"), "w").close()
"""


@pytest.fixture
def fake_python(tmp_path):
    """The stand-in interpreter and a weights file for --weights / --detector."""
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    weights = tmp_path / "det.pth"
    weights.write_text("x")
    return fake, weights


def test_run_ablations_trains_evaluates_skips_and_reports_failures(tmp_path, monkeypatch, fake_python):
    fake, det = fake_python
    out = tmp_path / "abl"
    argv = [
        "--detector",
        str(det),
        "--max-iter",
        "50",
        "--output",
        str(out),
        "--python",
        str(fake),
        "--rows",
        "Table1-baseline",
        "Table1-intermediate",
        "Table1-tiling",
    ]
    monkeypatch.setenv("FAIL_ROW", "Table1-tiling")
    assert run_ablations.main(argv) == 1  # one row failed, the others are reported
    calls = (out / "calls.txt").read_text().splitlines()
    # Equal budget: 50 iterations, lr x0.1 at 62.5% and 87.5% (paper 4.2: epochs 50 and 70 of 80).
    # No evaluation inside training: each row is evaluated once, by --eval-only on --datasets.
    assert calls[0] == "train Table1-baseline SOLVER.MAX_ITER 50 SOLVER.STEPS (31, 43) test=()"
    assert calls[1] == "eval Table1-baseline  test=('wider_face_val','utkface_test',)"
    assert [c.split()[:2] for c in calls] == [
        ["train", "Table1-baseline"],
        ["eval", "Table1-baseline"],
        ["train", "Table1-intermediate"],
        ["eval", "Table1-intermediate"],
        ["train", "Table1-tiling"],
    ]
    records = json.load(open(out / "ablations.json"))
    assert [r["row"] for r in records] == ["Table1-baseline", "Table1-intermediate", "Table1-tiling"]
    assert records[1]["results"]["utkface_test"]["age"]["MAE"] == 8.25
    assert "training failed" in records[2]["error"]
    assert records[0]["settings"] == {
        "intermediate_feature": False,
        "tiling": False,
        "end_to_end": False,
        "crop_jitter": False,
        "pixel_looks": False,
        "age_balance": False,
        "batch": 12,
    }
    md = (out / "ablations.md").read_text().splitlines()
    # only the settings in which the rows differ get a column
    assert md[0].startswith("| row | feature | tiling | iterations | train min | wider_face_val group_acc")
    assert md[3].startswith("| Table1-intermediate | yes | no | 50 |") and md[3].endswith(
        "| 12.5 | 8.25 | - | - | 33.0 | 80.0 |"
    )
    assert md[4].startswith("| Table1-tiling (training failed")

    # A second call runs only what is missing: the failed row, resumed from its last checkpoint
    # when it wrote one, then evaluated; the rows done before are neither trained nor evaluated.
    monkeypatch.delenv("FAIL_ROW")
    (out / "calls.txt").unlink()
    (out / "Table1-tiling" / "last_checkpoint").write_text("model_0000019.pth")
    assert run_ablations.main(argv) == 0
    calls = (out / "calls.txt").read_text().splitlines()
    assert [c.split()[:2] for c in calls] == [["resume", "Table1-tiling"], ["eval", "Table1-tiling"]]
    records = json.load(open(out / "ablations.json"))
    assert [r["row"] for r in records] == ["Table1-baseline", "Table1-intermediate", "Table1-tiling"]
    assert "error" not in records[2] and records[2]["results"]["utkface_test"]["age"]["MAE"] == 7.0
    assert records[1]["results"]["utkface_test"]["age"]["MAE"] == 8.25  # read back, not rerun
    (out / "calls.txt").unlink()
    assert run_ablations.main(argv[:-1]) == 0  # rows baseline + intermediate: both done, nothing runs
    assert not (out / "calls.txt").exists()


def test_run_ablations_rows_given_as_config_paths(tmp_path, fake_python, capsys):
    fake, weights = fake_python
    out = tmp_path / "wild"
    rows = [os.path.join(ROOT, "configs", "zoo", "wild-ablation", f) for f in ("plain.yaml", "crop-jitter.yaml")]
    argv = ["--weights", str(weights), "--max-iter", "20", "--output", str(out), "--python", str(fake), "--rows", *rows]
    assert run_ablations.main(argv) == 0
    calls = (out / "calls.txt").read_text().splitlines()
    assert [c.split()[:2] for c in calls] == [
        ["train", "plain"],
        ["eval", "plain"],
        ["train", "crop-jitter"],
        ["eval", "crop-jitter"],
    ]
    records = json.load(open(out / "ablations.json"))
    assert [(r["row"], r["settings"]["crop_jitter"], r["settings"]["pixel_looks"]) for r in records] == [
        ("plain", False, False),
        ("crop-jitter", True, False),
    ]
    md = (out / "ablations.md").read_text().splitlines()
    assert md[0].startswith("| row | crop jitter | iterations |")
    assert md[2].startswith("| plain | no | 20 |") and md[3].startswith("| crop-jitter | yes | 20 |")
    with pytest.raises(SystemExit):  # two rows of one name would share a folder
        run_ablations.main(argv[:-1] + [rows[0]])
    assert "same name" in capsys.readouterr().err


def test_run_ablations_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_ablations.main(["--detector", str(tmp_path / "missing.pth"), "--max-iter", "5"])
    assert "does not exist" in capsys.readouterr().err
    det = tmp_path / "d.pth"
    det.write_text("x")
    with pytest.raises(SystemExit):
        run_ablations.main(["--detector", str(det), "--max-iter", "5", "--rows", "Table9-nothing"])
    assert "no such ablation config" in capsys.readouterr().err


def test_export_detector_only(tmp_path):
    state = {
        "backbone.a": torch.ones(2),
        "proposal_generator.b": torch.zeros(1, dtype=torch.float64),
        "age_head.net.c": torch.ones(3),
        "pixel_mean": torch.ones(3),
        "backbone.n": torch.tensor(7),
    }
    src, dst = tmp_path / "m.pth", tmp_path / "d.pth"
    torch.save({"model": state, "iteration": 99, "optimizer": {}}, src)
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export_model.py"), str(src), str(dst), "--detector-only"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = torch.load(dst, weights_only=False)
    assert sorted(out["model"]) == ["backbone.a", "backbone.n", "proposal_generator.b"] and out["iteration"] == 99
    assert out["model"]["backbone.a"].dtype == torch.float16 and out["model"]["backbone.n"].dtype == torch.int64
    torch.save({"model": {"age_head.x": torch.ones(1)}}, src)
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export_model.py"), str(src), str(dst), "--detector-only"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "no detector weights" in r.stderr


def test_export_joins_detector_and_age_network(tmp_path):
    det, age, dst = tmp_path / "det.pth", tmp_path / "age.pth", tmp_path / "joined.pth"
    torch.save(
        {
            "model": {
                "backbone.a": torch.full((2,), 1.0),
                "proposal_generator.b": torch.full((1,), 2.0),
                "age_head.c": torch.full((1,), 9.0),
            },
            "iteration": 7,
        },
        det,
    )
    torch.save(
        {
            "model": {
                "backbone.a": torch.full((2,), 5.0),
                "age_head.c": torch.full((1,), 3.0),
                "pixel_mean": torch.full((3,), 4.0),
            }
        },
        age,
    )
    cmd = [sys.executable, os.path.join(ROOT, "tools", "export_model.py"), str(det), str(dst)]
    r = subprocess.run(cmd + ["--age-head-from", str(age)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = torch.load(dst, weights_only=False)["model"]
    # detector from det.pth, age network (and the rest) from age.pth
    assert {k: v.float().tolist() for k, v in m.items()} == {
        "backbone.a": [1.0, 1.0],
        "proposal_generator.b": [2.0],
        "age_head.c": [3.0],
        "pixel_mean": [4.0, 4.0, 4.0],
    }
    torch.save({"model": {"pixel_mean": torch.ones(3)}}, age)
    r = subprocess.run(cmd + ["--age-head-from", str(age)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "no age network" in r.stderr
    # an age network of another architecture than det.pth's own (a wider layer): refused, naming it
    torch.save({"model": {"age_head.c": torch.ones(2)}}, age)
    r = subprocess.run(cmd + ["--age-head-from", str(age)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "age_head.c is (2,) there, (1,) here" in r.stderr, r.stderr


def test_export_blends_two_checkpoints(tmp_path):
    a, b, dst = tmp_path / "a.pth", tmp_path / "b.pth", tmp_path / "blend.pth"
    torch.save(
        {
            "model": {
                "age_head.w": torch.tensor([1.0, -2.0, 4.0]).half(),
                "age_head.bn.running_var": torch.tensor([1.0]),
                "age_head.bn.num_batches_tracked": torch.tensor(10),
            },
            "iteration": 3,
        },
        a,
    )
    torch.save(
        {
            "model": {
                "age_head.w": torch.tensor([5.0, 2.0, 0.0]),
                "age_head.bn.running_var": torch.tensor([3.0]),
                "age_head.bn.num_batches_tracked": torch.tensor(99),
            }
        },
        b,
    )
    cmd = [sys.executable, os.path.join(ROOT, "tools", "export_model.py"), str(a), str(dst), "--blend", str(b)]
    r = subprocess.run(cmd + ["--blend-weight", "0.25"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = torch.load(dst, weights_only=False)["model"]
    # 0.75 * a + 0.25 * b; the batch counter is a's
    assert m["age_head.w"].float().tolist() == [2.0, -1.0, 3.0]
    assert m["age_head.bn.running_var"].float().tolist() == [1.5]
    assert m["age_head.bn.num_batches_tracked"].item() == 10
    r = subprocess.run(cmd + ["--blend-weight", "1.5"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "[0, 1]" in r.stderr
    # a weight without --blend was ignored: a plain export, said to be done
    plain = cmd[:3] + [str(tmp_path / "plain.pth"), "--blend-weight", "0.3"]
    r = subprocess.run(plain, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--blend-weight is the share of --blend's checkpoint" in r.stderr
    assert not (tmp_path / "plain.pth").exists()
    torch.save({"model": {"age_head.w": torch.zeros(2)}}, b)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "different tensors" in r.stderr
    torch.save(
        {
            "model": {
                k: torch.zeros(4) for k in ("age_head.w", "age_head.bn.running_var", "age_head.bn.num_batches_tracked")
            }
        },
        b,
    )
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "age_head.w is (3,)" in r.stderr


def test_export_to_a_folder_is_refused_and_a_failed_save_leaves_no_temporary(tmp_path, capsys):
    from foss_d2.apps.export import main as export_main
    from foss_d2.apps.export import save_atomic

    src, folder = tmp_path / "a.pth", tmp_path / "models"
    torch.save({"model": {"age_head.w": torch.tensor([1.0, 2.0])}}, src)
    folder.mkdir()
    with pytest.raises(SystemExit) as e:
        export_main([str(src), str(folder)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{folder} is a folder" in err and os.path.join(str(folder), "model.pth") in err
    assert sorted(os.listdir(tmp_path)) == ["a.pth", "models"] and not os.listdir(folder)
    with pytest.raises(IsADirectoryError):  # the folder given to the writer itself
        save_atomic({"x": 1}, str(folder))
    assert sorted(os.listdir(tmp_path)) == ["a.pth", "models"]  # no models.tmp left behind
    export_main([str(src), str(folder / "model.pth")])
    assert torch.load(folder / "model.pth", weights_only=False)["model"]["age_head.w"].tolist() == [1.0, 2.0]
