"""The command line: the ``foss-d2`` console entry point, one convention for every tool (trailing
KEY VALUE overrides, default config = the shipped model), no tool patching sys.path."""

import ast
import functools
import glob
import json
import os
import runpy
import shutil
import subprocess
import sys

import pytest

from foss_d2.apps import cli
from foss_d2.config import get_foss_cfg
from foss_d2.model_zoo import DEFAULT_CONFIG, DEFAULT_WEIGHTS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FAMILY = os.path.join(ROOT, "demo", "family.jpg")
TOOLS = sorted(
    glob.glob(os.path.join(ROOT, "tools", "*.py")) + glob.glob(os.path.join(ROOT, "tools", "research", "*.py"))
)


@pytest.mark.parametrize("how", ["console script", "python -m foss_d2"])
def test_console_script_lists_the_commands(how):
    if how == "console script":
        exe = shutil.which("foss-d2", path=os.path.dirname(sys.executable)) or shutil.which("foss-d2")
        assert exe, "foss-d2 is not installed: pip install -e ."
        command = [exe]
    else:
        command = [sys.executable, "-m", "foss_d2"]
    r = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == ""  # (no runpy warning, no fvcore FutureWarning)
    for command in ("demo", "survey", "train", "evaluate", "benchmark", "export"):
        assert f"  {command} " in r.stdout


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_entry_point_runs_the_demo_with_trailing_overrides(tmp_path):
    out = tmp_path / "demo"
    # the override after --input is a config override, not a second input
    cli.main(
        [
            "demo",
            "--input",
            os.path.join(ROOT, "demo", "family.jpg"),
            "--output",
            str(out),
            "MODEL.FOSS.TEST_SIZES",
            "[]",
        ]
    )
    preds = json.load(open(out / "predictions.json"))
    assert list(preds) == ["family.jpg"]
    from foss_d2 import FaceAgeEstimator

    api = FaceAgeEstimator(device="cpu")(os.path.join(ROOT, "demo", "family.jpg"))
    assert len(api) >= 6 and [f["box"] for f in preds["family.jpg"]] == [f["box"] for f in api]
    assert (out / "family.jpg").exists() and json.load(open(out / "skipped.json")) == {}


def test_overrides_swallowed_by_a_list_option_go_back_to_opts():
    parser = cli.foss_argument_parser()
    parser.add_argument("--input", nargs="+")
    args = cli.parse_foss_args(parser, ["--input", "a.jpg", "IMG_1.JPG", "MODEL.FOSS.K_TEST", "5", "OUTPUT_DIR", "o"])
    assert args.input == ["a.jpg", "IMG_1.JPG"] and args.opts == ["MODEL.FOSS.K_TEST", "5", "OUTPUT_DIR", "o"]
    args = cli.parse_foss_args(parser, ["--input", "a.jpg", "--", "MODEL.FOSS.K_TEST", "5"])
    assert args.input == ["a.jpg"] and args.opts == ["MODEL.FOSS.K_TEST", "5"]
    with pytest.raises(SystemExit) as e:
        cli.parse_foss_args(parser, ["MODEL.FOSS.K_TEST"])  # a key without its value
    assert e.value.code == 2


def test_overrides_after_a_list_of_numbers_or_choices(capsys):
    """--grids 1 2 DATASETS.ROOT x: the overrides are split off before argparse, which would try
    DATASETS.ROOT as a number; an option after the overrides is a one-line error."""
    from foss_d2.apps import evaluate

    parser = evaluate.get_parser()
    args = cli.parse_foss_args(parser, ["tiled", "--grids", "1", "2", "DATASETS.ROOT", "x", "MODEL.DEVICE", "cpu"])
    assert args.grids == [1, 2] and args.opts == ["DATASETS.ROOT", "x", "MODEL.DEVICE", "cpu"]
    with pytest.raises(SystemExit) as e:
        cli.parse_foss_args(parser, ["tiled", "DATASETS.ROOT", "x", "--grids", "0"])
    assert e.value.code == 2 and "--grids comes after the KEY VALUE overrides" in capsys.readouterr().err


def test_a_misspelt_key_after_the_inputs_is_an_error_not_a_photo(tmp_path, capsys):
    """--input photo.jpg DATASET.ROOT ../data: the misspelt key must fail as a config key, not be
    read as two more inputs (a folder given as its value would have been walked for photos)."""
    from foss_d2.apps import demo

    parser = demo.get_parser()
    args = cli.parse_foss_args(parser, ["--input", "a.jpg", "IMG_2.JPG", "DATASET.ROOT", "d"])
    assert args.input == ["a.jpg", "IMG_2.JPG"] and args.opts == ["DATASET.ROOT", "d"]
    with pytest.raises(SystemExit) as e:
        demo.main(["--output", str(tmp_path / "o"), "--input", "a.jpg", "DATASET.ROOT", "d"])
    assert e.value.code == 2 and "bad configuration: Non-existent key: DATASET.ROOT" in capsys.readouterr().err


def test_preset_fast_then_overrides():
    from foss_d2.apps import demo
    from foss_d2.apps.runner import config_from_args
    from foss_d2.engine.api import PRESETS

    parser = demo.get_parser()
    (preset,) = [a for a in parser._actions if a.dest == "preset"]
    assert set(preset.choices) == set(PRESETS)  # the flag offers every preset of the API, no other

    def cfg_of(argv):
        return config_from_args(parser, cli.parse_foss_args(parser, ["--input", "a.jpg", *argv]))

    shipped, fast = cfg_of([]), cfg_of(["--preset", "fast"])
    assert shipped.MODEL.AGE_HEAD.TEST_FLIP and shipped.MODEL.AGE_HEAD.INFERENCE_DTYPE == "float32"
    assert not fast.MODEL.AGE_HEAD.TEST_FLIP and fast.MODEL.AGE_HEAD.INFERENCE_DTYPE == "bfloat16"
    assert fast == get_foss_cfg(opts=PRESETS["fast"])  # the demo's preset is the API's
    accurate = cfg_of(["--preset", "accurate"])
    assert accurate.MODEL.FOSS.TEST_SIZES == [800]
    accurate.defrost()
    accurate.MODEL.FOSS.TEST_SIZES = shipped.MODEL.FOSS.TEST_SIZES
    assert accurate == shipped  # the second pass and nothing else
    # a KEY VALUE override wins over the preset
    assert cfg_of(["--preset", "fast", "MODEL.AGE_HEAD.TEST_FLIP", "True"]).MODEL.AGE_HEAD.TEST_FLIP
    with pytest.raises(SystemExit) as e:
        cfg_of(["--preset", "fastest"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:  # a bad value stops before any output is prepared
        cfg_of(["MODEL.AGE_HEAD.INFERENCE_DTYPE", "float16"])
    assert e.value.code == 2


def test_default_config_is_the_shipped_model_and_weights_are_an_override(tmp_path):
    cfg = get_foss_cfg()
    assert cfg.MODEL.WEIGHTS == DEFAULT_WEIGHTS and os.path.isfile(DEFAULT_CONFIG)
    other = tmp_path / "other.pth"
    other.write_bytes(b"")
    assert get_foss_cfg(opts=["MODEL.WEIGHTS", str(other)]).MODEL.WEIGHTS == str(other)
    with pytest.raises(FileNotFoundError, match="model weights not found"):
        get_foss_cfg(opts=["MODEL.WEIGHTS", str(tmp_path / "missing.pth")])


def test_eval_only_without_weights_is_an_error(tmp_path, capsys):
    """A config file names no weights (the shipped one included): --eval-only would measure random
    weights, so it stops with a one-line error instead; --resume needs a checkpoint to resume."""
    from foss_d2.apps import train

    for extra in ([], ["--resume"]):
        with pytest.raises(SystemExit) as e:
            train.main(["--config-file", DEFAULT_CONFIG, "--eval-only", *extra, "OUTPUT_DIR", str(tmp_path)])
        assert e.value.code == 2
        assert "--eval-only needs trained weights: MODEL.WEIGHTS" in capsys.readouterr().err


def test_no_tool_patches_sys_path():
    assert TOOLS
    patched = [os.path.relpath(t, ROOT) for t in TOOLS if "sys.path" in open(t).read()]
    assert not patched, f"these tools patch sys.path (the package is installed editable): {patched}"


def test_tools_import_foss_d2_before_detectron2():
    """foss_d2's import quiets the FutureWarning of fvcore's ``torch.jit.script`` (PyTorch >= 2.10),
    which detectron2's modules import: a tool importing detectron2 first printed it at every run
    (tools/annotate_faces.py and nine research tools did; pyproject.toml's import order now puts
    detectron2 after foss_d2). Read from the tools' module-level imports, in order; then one
    research tool run."""
    early = []
    for tool in TOOLS + glob.glob(os.path.join(ROOT, "datasets", "*.py")):
        seen_foss = False
        for node in ast.parse(open(tool).read()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for top in (n.split(".")[0] for n in names):
                seen_foss = seen_foss or top == "foss_d2"
                if top in ("detectron2", "fvcore") and not seen_foss:
                    early.append(os.path.basename(tool))
    assert not early, f"these tools import detectron2 or fvcore before foss_d2: {sorted(set(early))}"
    tool = os.path.join(ROOT, "tools", "research", "sweep_test_sizes.py")
    r = subprocess.run([sys.executable, tool, "--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "FutureWarning" not in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("tool", [os.path.relpath(t, ROOT) for t in TOOLS])
def test_every_tool_answers_help(tool, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [tool, "--help"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(os.path.join(ROOT, tool), run_name="__main__")
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "tool, argv",
    [
        ("tools/visualize_data.py", []),
        ("tools/annotate_faces.py", ["--dataset", "utkface_test", "--output", "x.json"]),
        ("tools/benchmark_train.py", []),
        ("tools/evaluate.py", ["tiled"]),
    ],
)
def test_tools_refuse_a_bad_config_in_one_line(tool, argv, monkeypatch, capsys):
    """A config key that does not exist, a DATASETS.COCO file that is missing: one line, exit 2
    (these tools printed get_foss_cfg's and the dataset registration's tracebacks)."""
    for opts, message in (
        (["MODEL.FOO", "1"], "error: bad configuration: Non-existent key: MODEL.FOO"),
        (["INPUT.TILING.PROBS", "[0.2,0.3,0.5]"], "probability for each of INPUT.TILING.NUM_TILES"),
        (["DATASETS.COCO", "(('x','/nowhere/x.json',''),)"], "x's JSON file not found: /nowhere/x.json"),
    ):
        if tool.endswith("evaluate.py") and opts[0] == "DATASETS.COCO":
            continue  # tiled reads UTKFace's folder, not the config's datasets
        monkeypatch.setattr(sys, "argv", [tool, *argv, *opts])
        with pytest.raises(SystemExit) as e:
            runpy.run_path(os.path.join(ROOT, tool), run_name="__main__")
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, (tool, opts, err)


def test_benchmarks_check_their_counts_and_data_first(tmp_path, capsys):
    """Counts of 0 ended in a StatisticsError or an IndexError after the models were built (or
    torch's RuntimeError for 0 threads); a missing DATASETS.ROOT in the loader and training-step
    benchmarks was a FileNotFoundError traceback. One line each, exit 2."""
    nodata = ["DATASETS.ROOT", tmp_path / "nodata"]
    for argv, message in (
        (["benchmark", "settings", "--repeats", "0"], "argument --repeats: 0 is not at least 1"),
        (["benchmark", "peer", "--threads", "1", "0"], "argument --threads: 0 is not at least 1"),
        (["benchmark", "models", "--train-iters", "0"], "argument --train-iters: 0 is not at least 1"),
        (["benchmark", "batch", "--rounds", "0"], "argument --rounds: 0 is not at least 1"),
        (["benchmark", "batch", "--input", str(tmp_path / "none")], "no input photos"),
        (["benchmark", "memory", "--passes", "0"], "argument --passes: 0 is not at least 1"),
        (["benchmark", "memory", "--workers", "0"], "argument --workers: 0 is not at least 1"),
        (["benchmark", "memory", "--input", str(tmp_path / "none")], "no input photos"),
        (["benchmark-train", "--batches", "0"], "argument --batches: 0 is not at least 1"),
        (["benchmark-loader", "--rounds", "0"], "argument --rounds: 0 is not at least 1"),
        (["benchmark-loader", *nodata], "not found"),
        (["benchmark-train", *nodata], "not found"),
    ):
        code, err = _exit(argv, capsys)
        last = err.strip().splitlines()[-1]
        assert code == 2 and message in last and "Traceback" not in err, (argv, err)
        if argv[-2:] == nodata:
            assert f"DATASETS.ROOT is '{tmp_path / 'nodata'}'" in last


def test_benchmark_report_names_its_first_variant_and_config():
    """The speed-up column is against the first variant timed (it said "as trained" whatever it
    was); the training benchmarks' reports named the config `None` when none was given."""
    from types import SimpleNamespace

    from foss_d2.apps.benchmark import peer_markdown
    from foss_d2.apps.benchmark_loader import run_header

    row = {"s_per_photo": 0.1, "s_per_face": 0.1, "faces": 1, "speedup_vs_first": 1.0, "stages": {}}
    report = {
        "machine": "m", "date": "d", "repeats": 1, "images": {"close-ups": ["a.jpg"]},
        "threads": {"1": {"conv_peak_gflops": 100.0, "sets": {"close-ups": {"shipped": row}}}},
    }  # fmt: skip
    assert "| x faster than shipped |" in peer_markdown(report, ["shipped"])
    cfg = get_foss_cfg()
    header = run_header(SimpleNamespace(config_file=None, opts=[]), cfg)
    assert header["config"] == "the shipped model's (foss_d2/model_zoo/FOSS-default.yaml)"


def test_tools_say_interrupted_in_one_line(monkeypatch, capsys):
    """Ctrl-C in an export, an evaluation or a training run printed Python's traceback; the tools
    say it in one line, exit 130 (foss-d2 did already)."""
    top = [t for t in TOOLS if os.path.dirname(t) == os.path.join(ROOT, "tools")]
    assert top and all("run_tool(" in open(t).read() or "except KeyboardInterrupt" in open(t).read() for t in top)

    def main():
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["tools/export_model.py"])
    with pytest.raises(SystemExit) as e:
        cli.run_tool(main, " (a hint)")
    assert e.value.code == 130 and capsys.readouterr().err == "export_model.py: interrupted (a hint)\n"


@pytest.fixture(scope="module")
def detector_only(tmp_path_factory):
    """The shipped weights exported --detector-only: boxes, no age network."""
    path = tmp_path_factory.mktemp("det") / "det.pth"
    cli.main(["export", DEFAULT_WEIGHTS, str(path), "--detector-only"])
    return str(path)


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err


def test_a_training_into_an_output_dir_in_use_is_refused(tmp_path, capsys, monkeypatch):
    """A training started twice into one OUTPUT_DIR: the second is refused in one line naming the
    first (it would have moved the first's metrics.json aside and written over its checkpoints),
    and the folder is left as it was; an --eval-only beside it goes on to start (launch)."""
    from foss_d2.apps import train
    from foss_d2.apps.runner import output_lock

    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"iteration": 5}\n')
    (out / "last_checkpoint").write_text("model_0000005.pth")
    zoo = os.path.join(ROOT, "foss_d2", "model_zoo")
    shipped = os.path.join(zoo, "FOSS-default.yaml")
    started = []
    monkeypatch.setattr(train, "launch", lambda *args, **kwargs: started.append(kwargs["args"][0].eval_only))
    with output_lock(str(out), "OUTPUT_DIR"):  # the first training
        code, err = _exit(["train", "--config-file", shipped, "OUTPUT_DIR", out], capsys)
        assert code == 2 and f"error: OUTPUT_DIR {out} is in use by another run (pid {os.getpid()} on " in err
        assert sorted(os.listdir(out)) == [".foss-d2.lock", "last_checkpoint", "metrics.json"] and not started
        evaluate = ["--eval-only", "OUTPUT_DIR", out, "MODEL.WEIGHTS", os.path.join(zoo, "foss_default.pth")]
        cli.main([str(a) for a in ["train", "--config-file", shipped, *evaluate, "DATASETS.TEST", "('utkface_test',)"]])
        assert started == [True]
    assert (out / "metrics.json").read_text() == '{"iteration": 5}\n'


def test_a_training_that_cannot_write_ends_in_one_line(tmp_path, capsys, monkeypatch):
    """A checkpoint that cannot be written (a full disk; checkpoints are written beside their name
    and renamed, so the ones before stay whole) ends the training in one line saying to --resume;
    an --eval-only, to run again; an error of another kind is raised as it was."""
    import errno

    from foss_d2.apps import train

    shipped = os.path.join(ROOT, "foss_d2", "model_zoo", "FOSS-default.yaml")
    checkpoint = str(tmp_path / "out" / "model_0000999.pth")

    def launch(*args, error=errno.ENOSPC, **kwargs):
        raise OSError(error, os.strerror(error), checkpoint)

    monkeypatch.setattr(train, "launch", launch)
    code, err = _exit(["train", "--config-file", shipped, "OUTPUT_DIR", tmp_path / "out"], capsys)
    assert code == 1 and err == (
        f"foss-d2 train: error: No space left on device writing {checkpoint}: the checkpoints saved before are "
        "whole (OUTPUT_DIR/last_checkpoint names the last); free some space, then run the same command with "
        "--resume to go on from it\n"
    )
    weights = ["MODEL.WEIGHTS", os.path.join(ROOT, "foss_d2", "model_zoo", "foss_default.pth")]
    evaluate = ["--eval-only", *weights, "DATASETS.TEST", "('utkface_test',)", "OUTPUT_DIR", tmp_path / "e"]
    monkeypatch.setattr(train, "launch", functools.partial(launch, error=errno.EROFS))
    code, err = _exit(["train", "--config-file", shipped, *evaluate], capsys)
    assert code == 1 and err.endswith(
        f"Read-only file system writing {checkpoint}: make it writable, then run the same command again\n"
    )
    monkeypatch.setattr(train, "launch", functools.partial(launch, error=errno.EBADF))
    with pytest.raises(OSError, match="Bad file descriptor"):
        cli.main(["train", "--config-file", shipped, "OUTPUT_DIR", str(tmp_path / "out2")])


def test_a_checkpoint_that_cannot_be_written_leaves_the_last_one_whole(tmp_path, monkeypatch):
    """torch.save into a full disk raised torch's RuntimeError ("unexpected pos ..."), which said
    nothing of the disk: the checkpoint is now encoded in memory and written by Python, so a full
    disk is an OSError naming the file (what train_net.py's one line says); the partial file is
    gone and last_checkpoint still names the checkpoint before, which loads."""
    import errno

    import torch
    from conftest import cut_writes_short

    from foss_d2.apps import export, train

    model = torch.nn.Linear(3, 2)
    checkpointer = train.AtomicCheckpointer(model, str(tmp_path))
    checkpointer.save("model_0000001")

    cut_writes_short(monkeypatch, export, 100, OSError(errno.ENOSPC, "No space left on device"))  # 100 B fitted
    with pytest.raises(OSError) as e:
        checkpointer.save("model_0000002")
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(tmp_path / "model_0000002.pth"))
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"
    saved = torch.load(tmp_path / "model_0000001.pth", weights_only=False)["model"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_runs_that_would_waste_their_time_are_one_line_errors(tmp_path, capsys, detector_only):
    """--eval-only of weights without an age network (it evaluated a random one, exit 0), the
    paper's stage 2 without a detector to freeze (trained nothing: loss 0 every iteration), an ONNX
    export of such weights (random graphs, exit 0), tools/evaluate.py tiled without weights, more
    GPUs than there are, and config values that failed deep in the model: exit 2, one line."""
    paper = os.path.join(ROOT, "configs", "paper", "FOSS-DLA34-TResNetS.yaml")
    zoo_base = os.path.join(ROOT, "configs", "zoo", "Base-FOSS-zoo.yaml")
    out = ["OUTPUT_DIR", tmp_path / "out"]
    test = ["DATASETS.TEST", "('utkface_test',)"]
    cases = [
        (["train", "--eval-only", "MODEL.WEIGHTS", detector_only, *test, *out], "has no weights for", "age_head"),
        (["train", "--config-file", paper, *out], "the detector is frozen", "MODEL.WEIGHTS is empty"),
        # --resume without a checkpoint in OUTPUT_DIR starts from MODEL.WEIGHTS: here, none (it trained on)
        (["train", "--config-file", paper, "--resume", *out], "the detector is frozen", "MODEL.WEIGHTS is empty"),
        # AMP on CPU stopped at the first step, after the data loaded; SGD ignored the age head's factor
        (["train", "SOLVER.AMP.ENABLED", "True", *out], "SOLVER.AMP.ENABLED is mixed precision on a CUDA GPU", ""),
        (
            ["train", "SOLVER.OPTIMIZER", "SGD", "SOLVER.AGE_HEAD_LR_FACTOR", "10.0", *out],
            "SOLVER.AGE_HEAD_LR_FACTOR 10.0 scales the age network's learning rate",
            "with SGD it has no effect",
        ),
        (["export", detector_only, tmp_path / "onnx", "--format", "onnx"], "has no weights for", "age_head"),
        (["evaluate", "tiled", "--config-file", paper, "--num", "36"], "the model to evaluate has no weights", ""),
        (["train", "--num-gpus", "64", *out], "--num-gpus 64, but torch sees", "CUDA GPUs here"),
        (["train", "MODEL.FOSS.K_TRAIN", "0", *out], "K_TRAIN is a number of faces, at least 1", ""),
        (["train", "MODEL.AGE_HEAD.CROP_MARGINS", "[0.2,0.1]", *out], "CROP_MARGINS are four fractions", ""),
        # a config giving three tile counts under a base with two probabilities (configs/zoo's base did)
        (
            ["benchmark-loader", "--config-file", zoo_base, "INPUT.TILING.PROBS", "[0.5,0.5]"],
            "INPUT.TILING.PROBS [0.5, 0.5] needs one non-negative probability for each of INPUT.TILING.NUM_TILES "
            "[1, 4, 9]",
            "",
        ),
        (["train", "INPUT.TILING.NUM_TILES", "[1,3]", *out], "INPUT.TILING.NUM_TILES are square numbers", ""),
        # a side DLA's stride-32 level cannot take failed each photo in IDA-up ("size of tensor a (63)")
        (
            [
                "demo",
                "--input",
                os.path.join(ROOT, "demo", "family.jpg"),
                "--no-draw",
                "MODEL.FOSS.DET_INPUT_SIZE",
                "500",
            ],
            "MODEL.FOSS.DET_INPUT_SIZE: the detector's input side is a multiple of 32 pixels",
            "got 500, the nearest 480 or 512",
        ),
        (["train", "MODEL.FOSS.DET_INPUT_SIZES_TRAIN", "[480,600]", *out], "got 600, the nearest 576 or 608", ""),
        # a threshold over 1 found nothing, quietly; an even peak window or another channel order
        # failed in the model or read the photo wrong
        (["demo", "--input", FAMILY, "MODEL.FOSS.SCORE_THRESH_TEST", "1.5"], "SCORE_THRESH_TEST is a face score", ""),
        (["demo", "--input", FAMILY, "MODEL.CENTERNET.NMS_KERNEL", "2"], "NMS_KERNEL is an odd window side", "got 2"),
        (["demo", "--input", FAMILY, "INPUT.FORMAT", "RGBA"], "INPUT.FORMAT is BGR or RGB", "'RGBA'"),
        (["demo", "--input", FAMILY, "MODEL.PIXEL_MEAN", "[1,2]"], "three values each", "[1, 2]"),
        (["demo", "--input", FAMILY, "INPUT.MAX_SIDE", "-5"], "INPUT.MAX_SIDE is a side in pixels", ""),
        (["demo", "--input", FAMILY, "MODEL.FOSS.TEST_NMS_THRESH", "2"], "this key is a float", "decimal point"),
        (["train", "MODEL.DEVICE", "gpu", *out], "MODEL.DEVICE gpu is not a torch device", ""),
        (["train", "MODEL.DEVICE", "cuda:64", *out], "MODEL.DEVICE cuda:64, but torch sees", ""),
        (["evaluate", "tiled", "--num", "36", "MODEL.FOSS.TEST_SIZES", "[16]"], "got 16, the nearest 32", ""),
        (["benchmark", "models", "--ks", "0", "--output", tmp_path / "b"], "--ks are numbers of faces", ""),
        (
            ["train", "DATASETS.TRAIN", "('my_facez',)", *out],
            "DATASETS.TRAIN: my_facez is not a dataset here",
            "utkface_train",
        ),
        (
            ["train", "DATASETS.TRAIN", "('utkface_train','utkface_train')", *out],
            "names utkface_train more than once",
            "",
        ),
        (
            ["train", "DATASETS.ROOT", tmp_path / "nodata", "SOLVER.MAX_ITER", "1", *out],
            "not found",
            "DATASETS.ROOT is",
        ),
        (
            ["evaluate", "predictions", "--dataset", "x", "DATASETS.COCO", "(('x', '/nowhere/x.json', ''),)"],
            "x's JSON file not found: /nowhere/x.json",
            "",
        ),
    ]
    # an OUTPUT_DIR holding a run of another model (the shipped architecture, not the paper's):
    # --resume was a traceback from the optimizer's state, its config.yaml written over first
    other_run = tmp_path / "other_run"
    other_run.mkdir()
    (other_run / "model_final.pth").symlink_to(DEFAULT_WEIGHTS)
    (other_run / "last_checkpoint").write_text("model_final.pth")
    (other_run / "config.yaml").write_text("the earlier run's")
    cases += [
        (
            ["train", "--config-file", paper, "--resume", "OUTPUT_DIR", other_run],
            f"--resume: OUTPUT_DIR {other_run} holds a run of another model",
            "in another shape, in age_head, backbone",
        ),
        # a frozen detector from another model's weights trained the age network on a random one
        (
            ["train", "--config-file", paper, "MODEL.WEIGHTS", DEFAULT_WEIGHTS, *out],
            "the detector is frozen (MODEL.FOSS.FREEZE_DETECTOR) but MODEL.WEIGHTS",
            "in backbone: it would stay random",
        ),
    ]
    for argv, *words in cases:
        code, err = _exit(argv, capsys)
        assert code == 2 and all(w in err for w in words), (argv, err)
        assert len(err.strip().splitlines()[-1]) > 20 and "Traceback" not in err, err
    assert not (tmp_path / "onnx" / "age_net.onnx").exists()
    assert (other_run / "config.yaml").read_text() == "the earlier run's"


def test_onnx_export_says_which_kind_of_weights_it_was_given(tmp_path, capsys, detector_only):
    """The ONNX export of weights that leave the model untrained names --config-file only when
    they are of another model (not for a detector-only checkpoint, which has its own hint), and
    a file that is no checkpoint is said to be one."""
    paper = os.path.join(ROOT, "configs", "paper", "FOSS-DLA34-TResNetS.yaml")
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    cases = [
        ([detector_only], ["--age-head-from"], ["another config"]),
        (
            [DEFAULT_WEIGHTS, "--config-file", paper],
            ["has no weights for", "of them in another shape)", "another config: --config-file"],
            [],
        ),
        ([junk], ["is not a model checkpoint"], ["another config"]),
    ]
    for i, (args, said, unsaid) in enumerate(cases):
        code, err = _exit(["export", args[0], tmp_path / f"onnx{i}", "--format", "onnx", *args[1:]], capsys)
        last = err.strip().splitlines()[-1]
        assert code == 2 and all(w in last for w in said) and not any(w in last for w in unsaid), (args, last)


def test_weights_of_another_model_are_one_line_not_a_list_of_every_tensor(tmp_path, detector_only):
    """What a user sees in the terminal: fvcore logged each tensor the weights did not fill (125
    lines for a detector-only checkpoint, 700 for another config's model) above the one-line
    error; now the error alone, saying how many tensors and in which parts."""
    paper = os.path.join(ROOT, "configs", "paper", "FOSS-DLA34-TResNetS.yaml")
    demo = [sys.executable, os.path.join(ROOT, "tools", "demo.py"), "--input", os.path.join(ROOT, "demo", "family.jpg")]
    for i, extra in enumerate(
        [["MODEL.WEIGHTS", detector_only], ["--config-file", paper, "MODEL.WEIGHTS", DEFAULT_WEIGHTS]]
    ):
        r = subprocess.run(
            [*demo, "--output", str(tmp_path / str(i)), *extra], capture_output=True, text=True, timeout=300
        )
        said = (r.stdout + r.stderr).strip().splitlines()
        assert r.returncode == 1 and len(said) <= 2, said[:5]
        assert "has no weights for" in said[-1] and "Skip loading" not in r.stdout + r.stderr
        assert not (tmp_path / str(i)).exists()
    assert "in another shape), in age_head, backbone" in said[-1]


def test_eval_only_on_a_dataset_with_a_missing_image_is_one_line_before_it_starts(tmp_path, capsys):
    """Training skips a missing image with a warning; evaluation would stop halfway in a loader
    worker (a traceback), so it says so before it starts."""
    import json

    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((40, 40, 3), np.uint8))
    ann = {"id": 1, "image_id": 1, "bbox": [5, 5, 20, 20], "category_id": 1, "iscrowd": 0, "area": 400.0, "age": 30}
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 40, "height": 40},
            {"id": 2, "file_name": "gone.jpg", "width": 40, "height": 40},
        ],
        "annotations": [ann],
        "categories": [{"id": 1, "name": "face"}],
    }
    (tmp_path / "mine.json").write_text(json.dumps(coco))
    entry = f"(('mine_missing', '{tmp_path / 'mine.json'}', '{tmp_path}'),)"
    code, err = _exit(
        ["train", "--eval-only", "MODEL.WEIGHTS", DEFAULT_WEIGHTS, "DATASETS.COCO", entry, "DATASETS.TEST",
         "('mine_missing',)", "OUTPUT_DIR", tmp_path / "out"],
        capsys,
    )  # fmt: skip
    last = err.strip().splitlines()[-1]  # (earlier lines: the log)
    assert code == 2 and "error: mine_missing: 1 of its 2 images are missing (first: " in last and "gone.jpg" in last
    # a truncated JPEG, and a photo listed 40x20 that is 20x40: a loader worker's traceback halfway
    # through the evaluation; a training run with such a DATASETS.TEST stopped at its first
    # evaluation, before any checkpoint. Now one line before either starts.
    cv2.imwrite(str(tmp_path / "big.jpg"), np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "big.jpg").read_bytes()[:3000])
    cv2.imwrite(str(tmp_path / "tall.jpg"), np.zeros((40, 20, 3), np.uint8))
    for name, image, message in (
        ("cut.jpg", {"width": 200, "height": 200}, "cut.jpg: image file is truncated"),
        ("tall.jpg", {"width": 40, "height": 20}, "tall.jpg is 20x40, its record says 40x20"),
    ):
        coco["images"][1] = {"id": 2, "file_name": name, **image}
        (tmp_path / "mine.json").write_text(json.dumps(coco))
        for run in (
            ["--eval-only", "MODEL.WEIGHTS", DEFAULT_WEIGHTS],
            ["TEST.EVAL_PERIOD", "1", "SOLVER.MAX_ITER", "2", "DATALOADER.DATASET_WEIGHTS", "[]"],
        ):
            code, err = _exit(
                ["train", *run, "DATASETS.COCO", entry.replace("mine_missing", "mine_bad"), "DATASETS.TEST",
                 "('mine_bad',)", "DATASETS.TRAIN", "('mine_bad',)", "OUTPUT_DIR", tmp_path / "out2"],
                capsys,
            )  # fmt: skip
            last = err.strip().splitlines()[-1]
            assert code == 2 and "error: mine_bad: 1 of its 2 images cannot be evaluated (first: " in last, last
            assert message in last, last
            assert not (tmp_path / "out2" / "metrics.json").exists()  # nothing started


def _tool_exit(tool, argv, monkeypatch, capsys):
    """tools/<tool> run as a script with ``argv``: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", [tool, *map(str, argv)])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(os.path.join(ROOT, "tools", tool), run_name="__main__")
    return e.value.code, capsys.readouterr().err


def test_tools_refuse_outputs_and_values_they_cannot_use_before_any_work(tmp_path, monkeypatch, capsys):
    """A file where a folder is written (or a folder where a file is), a score outside [0, 1], a
    picture size of 0, a dataset folder not under DATASETS.ROOT: one line, exit 2, before the
    model runs (evaluate.py tiled ran the whole evaluation, then lost it to a FileExistsError)."""
    afile = tmp_path / "afile"
    afile.write_text("")
    nodata = ["DATASETS.ROOT", tmp_path / "nodata"]
    cases = [
        ("evaluate.py", ["tiled", "--num", "4", "--grids", "2", "--output", afile], f"--output {afile} is a file"),
        ("evaluate.py", ["pasted", "--per-band", "1", "--output", afile], f"--output {afile} is a file"),
        ("annotate_faces.py", ["--dataset", "utkface_train", "--output", tmp_path], "is a folder"),
        ("annotate_faces.py", ["--dataset", "utkface_train", "--output", tmp_path / "a.json", "--score", "2"],
         "argument --score: 2 is outside [0, 1]"),
        ("annotate_faces.py", ["--dataset", "utkface_train", "--output", tmp_path / "a.json", "--num", "1", *nodata],
         "UTKFace folder not found"),
        ("visualize_data.py", ["--output", afile], f"--output {afile} is a file"),
        ("visualize_data.py", ["--max-side", "0"], "argument --max-side: 0 is not at least 1"),
        ("visualize_data.py", ["--num", "1", "--output", tmp_path / "v", *nodata], "DATASETS.ROOT is"),
    ]  # fmt: skip
    for tool, argv, message in cases:
        code, err = _tool_exit(tool, argv, monkeypatch, capsys)
        assert code == 2 and message in err.strip().splitlines()[-1], (tool, argv, err[-500:])
    assert afile.read_text() == "" and not (tmp_path / "a.json").exists()  # nothing written


def test_a_video_or_camera_that_cannot_be_opened_is_one_line_with_or_without_output(tmp_path):
    """What the terminal shows: FFmpeg's "moov atom not found" and OpenCV's "[ WARN:0] ... can't
    open camera by index" stood above the error, and --webcam (or a video without --output) exited
    1 after the model had loaded, where a video with --output exited 2 before. Now one line, exit 2,
    for each, nothing written."""
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))  # an MP4 header and no movie
    demo = [sys.executable, os.path.join(ROOT, "tools", "demo.py")]
    out = str(tmp_path / "out")
    for argv, said in [
        (["--video-input", str(cut)], "not a video OpenCV can read"),
        (["--video-input", str(cut), "--output", out], "not a video OpenCV can read"),
        (["--webcam", "--output", out], "cannot open camera 0"),
    ]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
        r = subprocess.run([*demo, *argv], capture_output=True, text=True, timeout=300, env=env)
        lines = (r.stdout + r.stderr).strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and said in lines[0], (argv, lines)
    assert not os.path.exists(out)


def test_videos_given_as_photos_and_a_folder_given_as_a_video_say_which_option(tmp_path, capsys):
    from foss_d2.apps.runner import RunError, collect_inputs, open_video, still_picture_format

    (tmp_path / "clip.MP4").write_bytes(b"\0" * 100)
    (tmp_path / "a.jpg").write_bytes(b"\0")
    items, skipped = collect_inputs([str(tmp_path), str(tmp_path / "clip.MP4")])
    assert [k for _, k in items] == ["a.jpg"]
    assert skipped == {"clip.MP4": "a video (.mp4): --video-input reads one video"}
    with pytest.raises(RunError, match=r"cannot open video '.*': a folder \(--input reads a folder of photos\)"):
        open_video(str(tmp_path))
    # an address FFmpeg cannot open (nothing listens on port 9 here) is not called "no such file"
    with pytest.raises(RunError, match=r"'http://127.0.0.1:9/clip.mp4': FFmpeg could not open the address"):
        open_video("http://127.0.0.1:9/clip.mp4")
    # a photo given as the video (FFmpeg read it as one frame with a frame count of -2**63)
    renamed = tmp_path / "holiday.mp4"
    renamed.write_bytes(open(FAMILY, "rb").read())
    for path in (FAMILY, str(renamed)):
        with pytest.raises(RunError, match=r"is a picture \(JPEG\), not a video: --input reads photos"):
            open_video(path)
    # an MPEG stream, which PIL names (format MPEG) but cannot read, is a video
    mpeg = tmp_path / "clip.mpg"
    mpeg.write_bytes(b"\x00\x00\x01\xb3" + b"\x14\x00\xf0\x13" + bytes(200))
    assert still_picture_format(str(mpeg)) is None and still_picture_format(FAMILY) == "JPEG"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--input", "a.jpg", "--output", "o", "--every-n-frames", "0"], "--every-n-frames"),
        (["survey", "--groups", "5,1", "--input", "a.jpg", "--output", "o"], "--groups"),
        (["export", "a.pth", "b", "--format", "zip"], "invalid choice: 'zip'"),
        (["evaluate", "tiled", "--num", "x"], "--num"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["benchmark", "models", "--ks", "x"], "--ks"),
    ],
)
def test_usage_errors_are_one_line(argv, message, capsys):
    """argparse put the whole usage block (a dozen lines for the demo) before the error."""
    code, err = _exit(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and message in err and "usage:" not in err, err


def test_ctrl_c_before_a_run_starts_is_one_line(monkeypatch, capsys):
    """Ctrl-C while torch loads or the model is built was a traceback of 40-60 lines."""

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    assert cli.main(["demo", "--input", "a.jpg"]) == 130
    assert capsys.readouterr().err == "foss-d2 demo: interrupted\n"
