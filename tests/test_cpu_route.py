"""tools/research/train_cpu_route.sh (issue 16, item 2: the next model's stages on CPU, resumable), with
a stand-in for the Python interpreter: the stages' order and starting weights, and a stop halfway that
the same command continues without training a finished stage again."""

import os

from conftest import recipe_arg as _arg
from conftest import run_with_fake_python

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SCRIPT = os.path.join(ROOT, "tools", "research", "train_cpu_route.sh")
SHIPPED = "foss_d2/model_zoo/foss_default.pth"

FAKE_PYTHON = r"""#!{python}
import os, sys
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as f:
    f.write(" ".join(args) + "\n")
if args[0].endswith("train_net.py"):
    out = args[args.index("OUTPUT_DIR") + 1]
    os.makedirs(out, exist_ok=True)
    if os.path.basename(out) == os.environ.get("STOP_IN"):  # a stop halfway: a checkpoint, no final
        open(os.path.join(out, "model_0000049.pth"), "w").close()
        sys.exit(137)
    open(os.path.join(out, "model_final.pth"), "w").close()
else:  # export_model.py SRC DST ...
    open(args[2], "w").close()
"""


def run_route(tmp_path, **env):
    (tmp_path / "compact").mkdir(exist_ok=True)
    (tmp_path / "data").mkdir(exist_ok=True)
    argv = [SCRIPT, tmp_path / "compact", tmp_path / "data", tmp_path / "runs"]
    calls = tmp_path / "calls.txt"
    if calls.exists():
        calls.unlink()  # each run's own calls
    return run_with_fake_python(tmp_path, FAKE_PYTHON, argv, **env)


def test_cpu_route_trains_the_detector_then_the_joined_age_network(tmp_path):
    r, calls = run_route(tmp_path)
    assert r.returncode == 0, r.stderr
    runs = str(tmp_path / "runs")
    assert [c.split()[0] for c in calls] == [
        "tools/train_net.py",
        "tools/export_model.py",
        "tools/train_net.py",
        "tools/export_model.py",
    ]
    det, join, age, final = calls
    assert _arg(det, "--config-file") == "configs/zoo/next-detector-cpu.yaml" and "--resume" in det.split()
    assert (_arg(det, "DATASETS.ROOT"), _arg(det, "MODEL.WEIGHTS")) == (str(tmp_path / "compact"), SHIPPED)
    assert join.split()[1:] == [f"{runs}/detector/model_final.pth", f"{runs}/age-start.pth", "--age-head-from", SHIPPED]
    assert _arg(age, "--config-file") == "configs/zoo/next-age-cpu.yaml" and "--resume" in age.split()
    assert (_arg(age, "DATASETS.ROOT"), _arg(age, "MODEL.WEIGHTS")) == (str(tmp_path / "data"), f"{runs}/age-start.pth")
    assert final.split()[1:] == [f"{runs}/age/model_final.pth", f"{runs}/model.pth"]


def test_cpu_route_continues_after_a_stop_without_training_a_finished_stage_again(tmp_path):
    r, calls = run_route(tmp_path, STOP_IN="age")
    assert r.returncode != 0
    assert len(calls) == 3 and not (tmp_path / "runs" / "model.pth").exists()
    r, calls = run_route(tmp_path)  # the same command again
    assert r.returncode == 0, r.stderr
    # the detector finished and the join is newer than it: only the age stage runs, resumed
    assert [c.split()[0] for c in calls] == ["tools/train_net.py", "tools/export_model.py"]
    assert _arg(calls[0], "OUTPUT_DIR") == str(tmp_path / "runs" / "age") and "--resume" in calls[0].split()
    assert "finished before, not run again" in r.stdout
    assert (tmp_path / "runs" / "model.pth").exists()


def test_cpu_route_starts_the_age_stage_again_on_a_new_detector(tmp_path):
    """The detector trained again after an age stage had run: the join is redone, and the age stage
    was not (finished before, or resumed from a checkpoint holding the old detector), so model.pth
    carried the old detector. Now the age stage's folder is moved aside and the stage runs again."""
    import time

    r, _ = run_route(tmp_path)
    assert r.returncode == 0, r.stderr
    runs = tmp_path / "runs"
    time.sleep(1.1)  # (file times of one second on some file systems)
    (runs / "detector" / "model_final.pth").write_text("trained again")
    r, calls = run_route(tmp_path)
    assert r.returncode == 0, r.stderr
    assert [c.split()[0] for c in calls] == ["tools/export_model.py", "tools/train_net.py", "tools/export_model.py"]
    assert _arg(calls[1], "OUTPUT_DIR") == str(runs / "age") and "moved to" in r.stdout
    (aside,) = [p for p in os.listdir(runs) if p.startswith("age.before-")]
    assert os.path.isfile(runs / aside / "model_final.pth")


def test_cpu_route_checks_its_inputs_before_training(tmp_path):
    r, calls = run_route(tmp_path, AGE_INIT="output/no-such-model.pth")
    assert r.returncode == 2 and "no such file: output/no-such-model.pth" in r.stderr
    assert calls == []


def test_cpu_route_takes_another_age_config(tmp_path):
    r, calls = run_route(tmp_path, AGE_CFG="configs/zoo/next-age-teacher-online-cpu.yaml")
    assert r.returncode == 0, r.stderr
    assert _arg(calls[0], "--config-file") == "configs/zoo/next-detector-cpu.yaml"
    assert _arg(calls[2], "--config-file") == "configs/zoo/next-age-teacher-online-cpu.yaml"
    r, calls = run_route(tmp_path, AGE_CFG="configs/zoo/no-such.yaml")
    assert r.returncode == 2 and "no such file: configs/zoo/no-such.yaml" in r.stderr and calls == []
