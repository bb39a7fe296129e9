import logging
import os

import pytest

SHARED_DATA = os.path.abspath(
    os.environ.get("FOSS_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """A test that runs a tool's main in this process (benchmarks set torch's thread count, and a
    one-thread run may not restore it) leaves the count as it found it: which path a prepacked
    convolution takes depends on it, so later tests must not depend on the order they run in."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_log_handlers_on_closed_streams():
    """detectron2's setup_logger, run by a tool's main in this process, gives its loggers a console
    handler on the stream of the test running it, which capsys closes when that test ends: every
    later log line then printed a "Logging error" traceback into the output of whatever test came
    next (a test that looks for tracebacks failed or not by the order the tests ran in). Handlers
    left on a closed stream are removed."""
    yield
    for name in ("detectron2", "d2", "fvcore", "foss_d2"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(getattr(handler, "stream", None), "closed", False):
                logger.removeHandler(handler)


class _ShortWrites:
    """A file whose write puts down the first ``n`` bytes of what it is given, then raises ``error``."""

    def __init__(self, path, mode, n: int, error: BaseException):
        self.f, self.n, self.error = open(path, mode), n, error

    def write(self, data):
        self.f.write(bytes(data)[: self.n])
        raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def cut_writes_short(monkeypatch, module, n: int, error: BaseException):
    """Files that ``module`` opens (export.save_atomic's) stop after ``n`` bytes with ``error``: a
    full disk (an OSError), a stop (KeyboardInterrupt)."""
    monkeypatch.setattr(module, "open", lambda path, mode="r": _ShortWrites(path, mode, n, error), raising=False)


def shared_data_path(*parts):
    return os.path.join(SHARED_DATA, *parts)


needs_shared_data = pytest.mark.skipif(
    not os.path.isdir(os.path.join(SHARED_DATA, "utkface"))
    or not os.path.isdir(os.path.join(SHARED_DATA, "widerface")),
    reason=f"real data not found at {SHARED_DATA} (set FOSS_SHARED_DATA to the folder holding utkface/ and widerface/)",
)


def tiny_cfg(**overrides):
    """The FOSS model at toy sizes: same code path, seconds per step on CPU."""
    from foss_d2 import add_foss_config

    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_foss_config(cfg)
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "configs", "Base-FOSS.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.FOSS.DET_INPUT_SIZE = 128
    cfg.MODEL.FOSS.K_TRAIN = 3
    cfg.MODEL.FOSS.K_TEST = 5
    cfg.MODEL.AGE_HEAD.LAYERS = [1, 1, 1, 1]
    cfg.MODEL.AGE_HEAD.WIDTH_FACTOR = 0.5
    cfg.MODEL.AGE_HEAD.CROP_SIZE = [80, 112]
    cfg.MODEL.AGE_HEAD.FEATURE_ROI_SIZE = [5, 7]
    cfg.MODEL.AGE_HEAD.HEAD_CHANNELS = 32
    cfg.MODEL.CENTERNET.HEAD_CONV = 32
    cfg.MODEL.DLA.OUT_CHANNELS = 32
    for k, v in overrides.items():
        node = cfg
        *path, last = k.split(".")
        for p in path:
            node = getattr(node, p)
        setattr(node, last, v)
    return cfg


def toy_tool_inputs(tmp_path, cfg, model, dataset: str, files):
    """A research tool's inputs for an in-process run on a toy model: ``model``'s weights and
    ``cfg`` written to ``tmp_path``, and ``files`` registered as the dataset ``dataset``. Returns
    (config file, weights file) as strings."""
    from foss_d2.apps.export import save_weights

    from detectron2.data import DatasetCatalog

    weights = tmp_path / "toy_weights.pth"
    save_weights(model.state_dict(), str(weights))
    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text(cfg.dump())
    if dataset not in DatasetCatalog.list():
        DatasetCatalog.register(dataset, lambda: [{"file_name": f} for f in files])
    return str(cfg_file), str(weights)


def run_with_fake_python(tmp_path, fake_source: str, argv, **env):
    """Run a shell recipe (``argv``) with $PYTHON pointing at ``fake_source`` (formatted with the real
    interpreter as ``python``); the stand-in appends each call's arguments to $CALLS. Returns the
    completed process and the logged calls, one line each."""
    import subprocess
    import sys

    fake = tmp_path / "python"
    fake.write_text(fake_source.format(python=sys.executable))
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    full_env = dict(os.environ, PYTHON=str(fake), CALLS=str(calls), **env)
    r = subprocess.run(["bash", *map(str, argv)], env=full_env, capture_output=True, text=True, timeout=60)
    return r, (calls.read_text().splitlines() if calls.exists() else [])


def recipe_arg(line: str, key: str):
    """The word after ``key`` in a logged call, or None."""
    words = line.split()
    return words[words.index(key) + 1] if key in words else None


def load_script(relpath: str):
    """A script of the repository (e.g. ``tools/research/run_ablations.py``) as a module, without
    touching sys.path."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", relpath)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(relpath))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shipped_cfg():
    """The shipped model's config, on CPU."""
    from foss_d2.config import get_foss_cfg

    return get_foss_cfg(device="cpu")
