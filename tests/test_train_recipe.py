"""tools/train_cpu_model.sh, the shipped model's stages, without training: a stand-in for the
Python interpreter logs each call and writes the file that call would write."""
import os

from conftest import recipe_arg as arg, run_with_fake_python

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

FAKE_PYTHON = r'''#!{python}
import os, sys
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as f:
    f.write(" ".join(args) + "\n")
if args[0].endswith("train_net.py"):
    out = args[args.index("OUTPUT_DIR") + 1]
    if os.path.basename(out) == os.environ.get("FAIL_STAGE"):
        sys.exit(3)
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "model_final.pth"), "w").close()
else:
    open(args[2], "w").close()
'''


def run_recipe(tmp_path, **env):
    return run_with_fake_python(tmp_path, FAKE_PYTHON, [os.path.join(ROOT, "tools", "train_cpu_model.sh"), "/data",
                                                        tmp_path / "w.pth"], FOSS_OUTPUT=str(tmp_path / "runs"), **env)


def test_recipe_runs_the_stages_in_order_with_the_right_weights(tmp_path):
    r, calls = run_recipe(tmp_path)
    assert r.returncode == 0, r.stderr
    runs = str(tmp_path / "runs")
    trains = [c for c in calls if "train_net.py" in c]
    assert [os.path.basename(arg(c, "OUTPUT_DIR")) for c in trains] == [
        "FOSS-CPU-default", "FOSS-CPU-stage2", "FOSS-CPU-stage2-mixed-scale", "FOSS-CPU-detector-rescale", "FOSS-CPU-age-refit"]
    assert all(arg(c, "DATASETS.ROOT") == "/data" for c in trains)
    assert [arg(c, "MODEL.WEIGHTS") for c in trains] == [
        None, f"{runs}/stage1.pth", f"{runs}/FOSS-CPU-stage2/model_final.pth", f"{runs}/stage1.pth", f"{runs}/joined_rescale.pth"]
    # the age refit starts from stage 4's detector joined with stage 3's age network
    join = next(c for c in calls if "--age-head-from" in c)
    assert join.split()[1:3] == [f"{runs}/FOSS-CPU-detector-rescale/model_final.pth", f"{runs}/joined_rescale.pth"]
    assert arg(join, "--age-head-from") == f"{runs}/FOSS-CPU-stage2-mixed-scale/model_final.pth"
    assert calls[-1].split()[1:] == [f"{runs}/FOSS-CPU-age-refit/model_final.pth", str(tmp_path / "w.pth")]
    assert os.path.isfile(tmp_path / "w.pth")


def test_recipe_stops_at_a_failed_stage_and_skips_finished_ones_on_rerun(tmp_path):
    r, calls = run_recipe(tmp_path, FAIL_STAGE="FOSS-CPU-stage2-mixed-scale")
    assert r.returncode != 0 and not os.path.exists(tmp_path / "w.pth")
    assert sum("train_net.py" in c for c in calls) == 3  # stages 1, 2 and the failing 3
    (tmp_path / "calls.txt").unlink()
    r, calls = run_recipe(tmp_path)
    assert r.returncode == 0, r.stderr
    trains = [os.path.basename(arg(c, "OUTPUT_DIR")) for c in calls if "train_net.py" in c]
    assert trains == ["FOSS-CPU-stage2-mixed-scale", "FOSS-CPU-detector-rescale", "FOSS-CPU-age-refit"]
    assert "done before" in r.stdout
