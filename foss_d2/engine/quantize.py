"""int8 ONNX graphs for the onnxruntime backend (not in the FOSS paper; issue 19, item 5).

onnxruntime's static quantisation (``quantize_static``, QDQ format): int8 weights per output
channel, uint8 activations whose ranges come from running the float graphs on calibration photos
(min/max). Only the convolutions are quantised: on AVX512-VNNI CPUs they are where int8 pays, and
the rest (squeeze-excitation products, the age and gender layers) stays float. The calibration
inputs are what the two graphs really see: each photo goes through the float model with its
test-time passes, and the detector inputs and face crops are recorded on the way.
docs/RESULTS.md section 2 ("int8") has the speed and the accuracy beside float.
"""

import os
import random
import shutil
import tempfile
from typing import Dict, List, Sequence

from .onnx_backend import AGE_NET_FILE, DETECTOR_FILE, FINGERPRINT_FILE, _numpy, staged_onnx_dir

FLOAT_PREFIXES = ("/heatmap/",)


def record_graph_inputs(predictor, images: Sequence) -> Dict[str, List[dict]]:
    """Runs an onnxruntime ``FOSSPredictor`` on ``images`` (arrays in its input format) and returns
    the feeds its two graphs received: {"detector": [...], "age_net": [...]}."""
    model = predictor.model
    feeds = {"detector": [], "age_net": []}
    det, age_net = model.backbone, model.age_head.net if model.age_head is not None else None
    if not hasattr(det, "session"):
        raise TypeError("record_graph_inputs needs a predictor with backend='onnxruntime'")

    def on_detector(module, args):
        feeds["detector"].append({"image": _numpy(args[0])})

    def on_age_net(module, args):
        feed = {"crops": _numpy(args[0])}
        if module.with_feature:
            feed["feature"] = _numpy(args[1])
        feeds["age_net"].append(feed)

    hooks = [det.register_forward_pre_hook(on_detector)]
    if age_net is not None:
        hooks.append(age_net.register_forward_pre_hook(on_age_net))
    try:
        for img in images:
            predictor(img)
    finally:
        for h in hooks:
            h.remove()
    return feeds


class _Feeds:
    """onnxruntime's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: List[dict]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def quantize_graphs(src_dir: str, out_dir: str, feeds: Dict[str, List[dict]]) -> Dict[str, str]:
    """Writes int8 versions of ``src_dir``'s detector.onnx and age_net.onnx into ``out_dir``,
    calibrated on ``feeds`` (``record_graph_inputs``), with ``src_dir``'s fingerprint (the int8
    graphs come from the same weights). The set is written into a staging folder and published
    whole (``staged_onnx_dir``): a quantisation that fails (no calibration inputs for one graph) or
    is interrupted leaves ``out_dir`` as it was. Returns the paths written."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    files = {}
    for name, file in (("detector", DETECTOR_FILE), ("age_net", AGE_NET_FILE)):
        if os.path.isfile(os.path.join(src_dir, file)):
            if not feeds.get(name):
                raise ValueError(f"no calibration inputs for {file}: give photos with faces")
            files[name] = file
    with staged_onnx_dir(out_dir) as stage:
        for name, file in files.items():
            with tempfile.TemporaryDirectory() as tmp:
                pre = os.path.join(tmp, "pre.onnx")
                # Shape inference and graph clean-up, as onnxruntime recommends before quantising.
                quant_pre_process(os.path.join(src_dir, file), pre, skip_symbolic_shape=True)
                # CenterNet's heatmap head stays float: its logits are compared with the score threshold,
                # and int8 there turned background into faces (6.7 boxes per close-up instead of 1).
                keep_float = [n.name for n in onnx.load(pre).graph.node if n.name.startswith(FLOAT_PREFIXES)]
                quantize_static(
                    pre,
                    os.path.join(stage, file),
                    _Feeds(feeds[name]),
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"],
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    # MinMax records each tensor's min and max only (ReduceMin/Max in the graph), so
                    # every calibration input can be fed at once.
                    calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=keep_float,
                )
        if os.path.isfile(os.path.join(src_dir, FINGERPRINT_FILE)):
            shutil.copyfile(os.path.join(src_dir, FINGERPRINT_FILE), os.path.join(stage, FINGERPRINT_FILE))
    return {name: os.path.join(out_dir, file) for name, file in files.items()}


def sample_calibration_files(groups: Sequence[Sequence[str]], count: int, seed: int = 0) -> List[str]:
    """About ``count`` files in all, a seeded sample taken evenly from each group (each --calibration
    argument: e.g. group photos and close-ups, whose detector activations differ); all of a group
    that has fewer."""
    per = max(1, count // max(1, len(groups)))
    out = []
    for files in groups:
        files = sorted(files)
        out += files if len(files) <= per else sorted(random.Random(seed).sample(files, per))
    return out
