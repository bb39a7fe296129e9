"""ONNX export of FOSS's two heavy networks, and an ONNX Runtime backend that runs them.

Two graphs, exported from the model with its BatchNorms folded (fusion.py):

* ``detector.onnx``: image [B,3,H,W] (normalised, H and W multiples of 32) -> the age network's
  detector feature (``dla_up``, the intermediate feature connection of paper section 3.1),
  CenterNet's feature (``dla_out``) and its heatmap logits ``heat`` (section 3.2), or with
  MODEL.CENTERNET.HEATMAP_BOUND the upper bound ``heat_upper`` of ``BoundedHeatmapHead``, whose
  other channels run in PyTorch where a face above the threshold is possible; the size and offset
  heads run in PyTorch at the heatmap's peaks only (centernet.py, ``head_at_points``);
* ``age_net.onnx``: crops [N,3,h,w] (RGB in [0, 1]) and their ROIAligned detector feature ->
  age logits [N,101] and gender logits [N].

Everything light stays in the PyTorch code, so that both backends share one code path: the resize
to the detector input, peak decoding, the crops and ROIAlign (crops.py), the test-time passes and
mirror average (meta_arch/test_time_augmentation.py). ``use_onnxruntime`` swaps the backbone, the
heatmap head and the age network of a built model for thin modules that call the sessions.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
import warnings
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from ..proposal_generator.centernet import BoundedHeatmapHead
from .fusion import bound_heatmap, fold_batchnorm

DETECTOR_FILE = "detector.onnx"
AGE_NET_FILE = "age_net.onnx"
# The sha1 of the weights the graphs were exported from, so that a folder of graphs is never run in
# place of other weights (MODEL.WEIGHTS changed, or --onnx-dir naming another model's graphs).
FINGERPRINT_FILE = "weights.sha1"


def weights_fingerprint(model: nn.Module) -> str:
    """sha1 of a model's parameters and buffers, names and shapes included, as loaded (before
    BatchNorm folding)."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_fingerprint(out_dir: str, fingerprint: str):
    with open(os.path.join(out_dir, FINGERPRINT_FILE), "w") as f:
        f.write(fingerprint + "\n")


def read_fingerprint(onnx_dir: str) -> Optional[str]:
    """The fingerprint ``onnx_dir``'s graphs were exported with; None when it has none (an export cut
    short or still being published, or one from before fingerprints were written)."""
    try:
        with open(os.path.join(onnx_dir, FINGERPRINT_FILE)) as f:
            return f.read().strip()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def check_fingerprint(onnx_dir: str, fingerprint: str) -> bool:
    """True when ``onnx_dir``'s graphs were exported from the weights of ``fingerprint``; False when
    from other weights or when the folder does not say (no weights.sha1: an export publishes it last,
    so a folder without it may hold graphs of two exports)."""
    return read_fingerprint(onnx_dir) == fingerprint


@contextlib.contextmanager
def staged_onnx_dir(out_dir: str):
    """A folder of its own to write a whole set of graphs and its fingerprint into (beside ``out_dir``,
    on the same file system, one per call: exports of the same folder at the same time never share
    it). When the block ends without error the set replaces ``out_dir``'s (``publish_onnx_dir``); a
    block that fails or is interrupted (Ctrl-C too) leaves ``out_dir`` as it was. The staging
    folder, and any folder made for it, is removed either way."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    existing = parent
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    os.makedirs(parent, exist_ok=True)  # a file on the way: NotADirectoryError / FileExistsError
    stage = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)[:200]}.", suffix=".partial")
    done = False
    try:
        yield stage
        publish_onnx_dir(stage, out_dir)
        done = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if not done:  # the folders made for the stage, when empty (a failed export leaves no folder behind)
            folder = parent
            while folder != existing and len(folder) > len(existing):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
                folder = os.path.dirname(folder)


def publish_onnx_dir(stage: str, out_dir: str):
    """Moves a staged set of graphs into ``out_dir``: its old fingerprint removed first (from then on
    the folder is refused, or exported again when it is a cache, until the end), then the graphs
    moved in one by one, each replaced at once (``os.replace``, the same file system), the old
    set's graphs that the new one lacks removed, and the fingerprint moved in last."""
    os.makedirs(out_dir, exist_ok=True)
    names = sorted(os.listdir(stage))
    try:
        os.remove(os.path.join(out_dir, FINGERPRINT_FILE))
    except FileNotFoundError:
        pass
    for name in (DETECTOR_FILE, AGE_NET_FILE):
        if name not in names and os.path.lexists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))  # e.g. an age network of the old model, this one has none
    for name in names:
        if name != FINGERPRINT_FILE:
            os.replace(os.path.join(stage, name), os.path.join(out_dir, name))
    if FINGERPRINT_FILE in names:
        os.replace(os.path.join(stage, FINGERPRINT_FILE), os.path.join(out_dir, FINGERPRINT_FILE))


OPSET = 17


class DetectorGraph(nn.Module):
    """Backbone + CenterNet heatmap head as one module with tensor outputs (the exported
    detector): the features named in ``names`` (minus the last), then the heatmap logits ("heat"),
    or the upper part of a ``BoundedHeatmapHead`` ("heat_upper")."""

    def __init__(self, model):
        super().__init__()
        self.backbone = model.backbone
        self.heads = model.proposal_generator
        self.bounded = isinstance(self.heads.heatmap, BoundedHeatmapHead)
        age_feature = model.age_head.in_feature if model.age_head is not None else None
        features = list(dict.fromkeys([n for n in (age_feature, self.heads.in_feature) if n]))
        self.names = features + ["heat_upper" if self.bounded else "heat"]

    def forward(self, x):
        features = self.backbone(x)
        if self.bounded:
            heat = self.heads.heatmap(features[self.heads.in_feature], bound_only=True)
        else:
            heat = self.heads.heat_logits(features)
        return tuple(features[n] for n in self.names[:-1]) + (heat,)


class AgeNetGraph(nn.Module):
    """The age network with tensor outputs: (age logits, gender logits) or (age logits,)."""

    def __init__(self, net, with_feature: bool):
        super().__init__()
        self.net = net
        self.with_feature = with_feature

    def forward(self, crops, feat=None):
        age, gender = self.net(crops, feat if self.with_feature else None)
        return (age,) if gender is None else (age, gender)


def export_onnx(model, out_dir: str, det_size: int = 480, fingerprint: Optional[str] = None) -> Dict[str, str]:
    """Writes ``detector.onnx`` and ``age_net.onnx`` for a built FOSS ``model`` (in eval mode; its
    BatchNorms are folded in place first) and the weights' fingerprint into ``out_dir``. Batch,
    height and width of the detector and the number of crops are dynamic. ``fingerprint``:
    ``weights_fingerprint(model)`` when the caller has it already (the weights are hashed before
    folding). The set is written into a staging folder and published whole (``staged_onnx_dir``):
    an export that fails or is interrupted leaves ``out_dir`` as it was, and exports of the same
    folder at the same time (two processes filling one cache) each publish a whole set. Returns
    the two paths."""
    model.eval()
    with staged_onnx_dir(out_dir) as stage:
        fingerprint = fingerprint or weights_fingerprint(model)
        names = write_onnx_graphs(model, stage, det_size)
        write_fingerprint(stage, fingerprint)
    return {key: os.path.join(out_dir, name) for key, name in names.items()}


def write_onnx_graphs(model, out_dir: str, det_size: int = 480) -> Dict[str, str]:
    """``export_onnx``'s graphs, written straight into ``out_dir`` (a staging folder); the model's
    BatchNorms are folded in place. Returns their file names."""
    fold_batchnorm(model)
    bound_heatmap(model)
    names = {"detector": DETECTOR_FILE}
    det = DetectorGraph(model).eval()
    x = torch.zeros(1, 3, det_size, det_size)
    path = os.path.join(out_dir, DETECTOR_FILE)
    _export(det, (x,), path, ["image"], det.names, {"image": {0: "batch", 2: "height", 3: "width"}})
    head = model.age_head
    if head is not None:
        names["age_net"] = AGE_NET_FILE
        h, w = head.crop_hw
        crops = torch.zeros(2, 3, h, w)
        inputs, dyn = (crops,), {"crops": {0: "faces"}}
        inames = ["crops"]
        if head.in_feature:
            channels = model.backbone.output_shape()[head.in_feature].channels
            inputs += (torch.zeros(2, channels, *head.feature_hw),)
            inames.append("feature")
            dyn["feature"] = {0: "faces"}
        outs = ["age_logits"] + (["gender_logits"] if head.net.gender_branch is not None else [])
        path = os.path.join(out_dir, AGE_NET_FILE)
        _export(AgeNetGraph(head.net, bool(head.in_feature)).eval(), inputs, path, inames, outs, dyn)
    return names


def _export(module, inputs, path, input_names, output_names, dynamic_axes):
    dynamic_axes = {**dynamic_axes, **{n: {0: "batch"} for n in output_names}}
    with torch.no_grad(), warnings.catch_warnings():
        # torch's notes on constant folding are about the exporter, not for the user who asked for a backend
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        # The TorchScript-based exporter: a few seconds for both graphs, where torch.export's takes minutes.
        torch.onnx.export(
            module,
            inputs,
            path,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )


class OrtSession:
    """An onnxruntime session (its methods, by delegation) that pickles as its graph's path and
    thread count and is opened again when unpickled: a session itself cannot be pickled, so an
    onnxruntime estimator broke copy.deepcopy, joblib and spawn-based multiprocessing, which the
    PyTorch one passes."""

    def __init__(self, path: str, threads: Optional[int]):
        self.path, self.threads = path, threads
        self.session = _open_session(path, threads)

    def __getattr__(self, name):
        if name == "session":  # (not set yet: while unpickling)
            raise AttributeError(name)
        return getattr(self.session, name)

    def __getstate__(self):
        return {"path": self.path, "threads": self.threads}

    def __setstate__(self, state):
        self.__init__(state["path"], state["threads"])


def _open_session(path: str, threads: Optional[int]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # As many threads as PyTorch uses (by default the physical cores); one op at a time.
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    # No busy-waiting after a run: between the two graphs PyTorch crops the faces and decodes the
    # peaks on the same cores, and a spinning pool held them (2 threads on 2 cores: 1.5x the time
    # a close-up, 1.3x a group photo; docs/RESULTS.md at 58d4fa8, section 9).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001  (onnxruntime's own exception types, by version)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is not a readable ONNX graph ({first[:200]})") from None


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


class OrtDetector(nn.Module):
    """Stands in for the backbone: returns the features and the heatmap logits by name."""

    def __init__(self, session, names, output_shape):
        super().__init__()
        self.session = session
        self.names = names
        self._shape = output_shape

    def output_shape(self):
        return self._shape

    def forward(self, x):
        outs = self.session.run(None, {"image": _numpy(x)})
        return {n: torch.from_numpy(o).to(x.device) for n, o in zip(self.names, outs)}


class OrtAgeNet(nn.Module):
    """Stands in for ``TResNetAgeNet``: (age logits, gender logits or None)."""

    def __init__(self, session, net):
        super().__init__()
        self.session = session
        self.age_branch = net.age_branch  # read for the number of age classes
        self.with_feature = any(i.name == "feature" for i in session.get_inputs())

    def forward(self, crops, feat=None):
        feed = {"crops": _numpy(crops)}
        if self.with_feature:
            feed["feature"] = _numpy(feat)
        outs = [torch.from_numpy(o).to(crops.device) for o in self.session.run(None, feed)]
        return outs[0], (outs[1] if len(outs) > 1 else None)


def _heat_from_features(features, min_score=None, dtype: str = "float32"):
    # The heatmap head ran inside the detector graph (in float32); CenterNet's decoding reads its
    # output here.
    return features["heat"]


class _HeatFromBound:
    """CenterNet's ``heat_logits`` when the graph gave the upper part of a ``BoundedHeatmapHead``:
    the other channels run here, where a face above ``min_score`` is possible."""

    def __init__(self, head: BoundedHeatmapHead, in_feature: str):
        self.head, self.in_feature = head, in_feature

    def __call__(self, features, min_score=None, dtype: str = "float32"):
        # dtype: the graph ran the upper part in float32 whatever PyTorch's caller asks
        return self.head.complete(features["heat_upper"], features[self.in_feature], min_score)


# Keys read only outside the graphs (peak decoding, the detector passes and input size, the mirror
# average, PyTorch's own options): the threshold and the presets share one export.
_NOT_IN_GRAPHS = (
    "FOSS.SCORE_THRESH_TEST",
    "FOSS.K_TEST",
    "FOSS.TEST_SIZES",
    "FOSS.TEST_SIZES_MAX_BOX",
    "FOSS.TEST_NMS_THRESH",
    "FOSS.DET_INPUT_SIZE",
    "FOSS.DET_INPUT_FIT_SMALL",
    "FOSS.PREPACK_DETECTOR",
    "FOSS.DET_INFERENCE_DTYPE",
    "CENTERNET.TEST_FLIP",
    "AGE_HEAD.TEST_FLIP",
    "AGE_HEAD.INFERENCE_DTYPE",
    "AGE_HEAD.PREPACK",
    "AGE_HEAD.TEST_CROPS_PER_CALL",
    "AGE_HEAD.AGE_READOUT",
    "AGE_HEAD.AGE_STD_SCALE",
    "DEVICE",
)


def default_onnx_dir(cfg) -> str:
    """A cache folder per (weights file, model config): ~/.cache/foss_d2/onnx/<hash>; the test-time
    keys of ``_NOT_IN_GRAPHS`` are left out of the hash."""
    model = cfg.MODEL.clone()
    model.defrost()
    for key in _NOT_IN_GRAPHS:
        node, _, leaf = key.rpartition(".")
        parent = model
        for part in filter(None, node.split(".")):
            parent = parent[part]
        parent.pop(leaf, None)
    h = hashlib.sha1(model.dump().encode())
    if cfg.MODEL.WEIGHTS and os.path.isfile(cfg.MODEL.WEIGHTS):
        st = os.stat(cfg.MODEL.WEIGHTS)
        h.update(f"{os.path.abspath(cfg.MODEL.WEIGHTS)}:{st.st_size}:{st.st_mtime_ns}".encode())
    # an empty FOSS_D2_CACHE is unset (it put the graphs in the working directory)
    root = os.environ.get("FOSS_D2_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "foss_d2")
    return os.path.join(root, "onnx", h.hexdigest()[:16])


def _export_to_cache(model, onnx_dir: str, fingerprint: str):
    """``export_onnx`` into the backend's cache; a cache that cannot be written (FOSS_D2_CACHE under a
    file, a read-only home) is a ValueError that says so."""
    try:
        export_onnx(model, onnx_dir, fingerprint=fingerprint)
    except OSError as e:
        why = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        raise ValueError(
            f"cannot write the ONNX graphs into the cache folder {onnx_dir} ({why}): set FOSS_D2_CACHE "
            "to a folder that can be written, or export them (foss-d2 export WEIGHTS FOLDER --format onnx) "
            "and give that folder"
        ) from None


def use_onnxruntime(model, onnx_dir: str, threads: Optional[int] = None, cache: bool = True):
    """Swaps, in place, the heavy modules of a FOSS ``model`` (as loaded) for ONNX Runtime sessions
    on the graphs in ``onnx_dir``. With ``cache`` the folder is the model's own: its graphs are
    exported there when missing, without a fingerprint or from other weights. Without, it must hold
    graphs of these weights and their fingerprint (``foss-d2 export --format onnx``, int8 or not): a
    ValueError otherwise. Returns the model."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ImportError("the onnxruntime backend needs onnxruntime: pip install -e .[onnx]") from e
    det_path = os.path.join(onnx_dir, DETECTOR_FILE)
    age_path = os.path.join(onnx_dir, AGE_NET_FILE)
    fingerprint = weights_fingerprint(model)
    missing = [p for p in (det_path, age_path if model.age_head is not None else None) if p and not os.path.isfile(p)]
    if missing and not cache:
        raise ValueError(
            f"{onnx_dir} holds no {', '.join(map(os.path.basename, missing))}: export the graphs first "
            "(foss-d2 export WEIGHTS FOLDER --format onnx [--int8 ...]) or leave out the folder to use the cache"
        )
    exported = False
    if missing or not check_fingerprint(onnx_dir, fingerprint):
        if not cache and read_fingerprint(onnx_dir) is None:
            raise ValueError(
                f"{onnx_dir} does not say which weights its ONNX graphs come from (no {FINGERPRINT_FILE}: an "
                "export cut short or still running, or one from an older version): export them again "
                "(foss-d2 export WEIGHTS FOLDER --format onnx [--int8 ...]), or leave out the folder to use the cache"
            )
        if not cache:
            raise ValueError(
                f"the ONNX graphs in {onnx_dir} were exported from other weights than MODEL.WEIGHTS: export "
                "them again from these weights, or leave out the folder to use the cache"
            )
        _export_to_cache(model, onnx_dir, fingerprint)
        exported = True
    while True:  # at most twice: a damaged cache is exported once more
        try:
            det = OrtSession(det_path, threads)
            age = OrtSession(age_path, threads) if model.age_head is not None else None
            break
        except ValueError as e:
            if not cache:
                raise ValueError(f"{e}: export it again (foss-d2 export WEIGHTS FOLDER --format onnx)") from None
            if exported:  # graphs written just now that onnxruntime cannot load: not damage, a version mismatch
                raise ValueError(
                    f"{e}; they were exported just now by torch {torch.__version__}: does this onnxruntime "
                    f"read opset {OPSET}? (pip install -e .[onnx] installs the tested one)"
                ) from None
            _export_to_cache(model, onnx_dir, fingerprint)  # the cache's own graphs, damaged: once more
            exported = True
    names = [o.name for o in det.get_outputs()]
    model.backbone = OrtDetector(det, names, model.backbone.output_shape())
    model.det_inference_dtype = "float32"  # the graph is float32 whatever the config says
    detector = model.proposal_generator
    if "heat_upper" in names:
        # split as at export (the same weights: the fingerprint; a stable split by weight)
        head = detector.heatmap
        head = head if isinstance(head, BoundedHeatmapHead) else BoundedHeatmapHead(head)
        head.upper = None  # its weights now live in the graph
        detector.heatmap = head
        detector.heat_logits = _HeatFromBound(head, detector.in_feature)
    else:
        detector.heat_logits = _heat_from_features
        detector.heatmap = None  # its weights now live in the graph
    if model.age_head is not None:
        model.age_head.net = OrtAgeNet(age, model.age_head.net)
        model.age_head.inference_dtype = "float32"  # the graph is float32 whatever the config says
    return model
