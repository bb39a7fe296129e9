"""Export a training checkpoint as a small inference checkpoint (model weights only, fp16).

    foss-d2 export output/FOSS-CPU-age-zoomout/model_final.pth output/foss_default.pth

    foss-d2 export model_final.pth detector.pth --detector-only

The optimizer and scheduler states are dropped; floating-point tensors are stored in fp16 (they
are cast back to fp32 when loaded into the model), integer buffers are kept as they are.
``--detector-only`` keeps the detector (backbone + CenterNet head): the common start of the
paper's ablation rows, whose age networks differ in shape (tools/research/run_ablations.py).
``--age-head-from CKPT`` joins the checkpoint's detector with the age network of another
checkpoint (the paper's two stages, 4.2: a detector trained on its own, then the age network):

    foss-d2 export detector/model_final.pth joined.pth --age-head-from age/model_final.pth

``--blend CKPT --blend-weight W`` writes the weight-space average (1 - W) * checkpoint + W * CKPT,
tensor by tensor (BatchNorm statistics too), of two checkpoints that share an architecture and a
common start, e.g. a model and its fine-tuned copy. Interpolating a fine-tuned network toward the one
it started from keeps much of what fine-tuning gained on the new kind of photo and much of what the
start knew (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022); the weight is
chosen by measurement on held-out data (docs/RESULTS.md at 58d4fa8, section 10):

    foss-d2 export foss_d2/model_zoo/foss_default.pth blend.pth --blend finetuned/model_final.pth \\
        --blend-weight 0.5

``--format onnx`` writes the detector (backbone + CenterNet heatmap head) and the age network of a
checkpoint as two ONNX graphs into the output folder (engine/onnx_backend.py says what each holds),
for ``FaceAgeEstimator(backend="onnxruntime")`` and ``tools/demo.py --backend onnxruntime``
(which export to a cache folder by themselves when not given one):

    foss-d2 export foss_d2/model_zoo/foss_default.pth output/onnx --format onnx
    foss-d2 export model_final.pth output/onnx --format onnx --config-file my-config.yaml

``--int8`` writes int8 graphs instead (engine/quantize.py), calibrated on ``--calibration`` photos
(files, folders or globs; a seeded sample of ``--calibration-count`` of them, taken evenly from each
argument), like the photos the model will see, group photos and close-ups alike; run them with
``--backend onnxruntime --onnx-dir OUT``:

    foss-d2 export foss_d2/model_zoo/foss_default.pth output/onnx-int8 --format onnx --int8 \\
        --calibration group_photos/ portraits/

(``python tools/export_model.py`` takes the same arguments.)
"""

import argparse
import io
import os
import tempfile

import torch

from ..utils.json_io import atomic_path, nearest_existing
from .cli import OneLineErrorParser

DETECTOR_PREFIXES = ("backbone.", "proposal_generator.")


def get_parser(prog=None):
    p = OneLineErrorParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("output")
    p.add_argument("--detector-only", action="store_true", help="keep only backbone.* and proposal_generator.*")
    p.add_argument("--age-head-from", metavar="CKPT", help="take everything but the detector from this checkpoint")
    p.add_argument("--blend", metavar="CKPT", help="average the weights with this checkpoint's (same architecture)")
    p.add_argument(
        "--blend-weight", type=float, default=None, metavar="W", help="--blend: CKPT's share, in [0, 1] (default 0.5)"
    )
    p.add_argument("--format", choices=("pth", "onnx"), default="pth", help="onnx: OUTPUT is a folder")
    p.add_argument("--config-file", help="with --format onnx: the model's config (default: the shipped one)")
    p.add_argument("--int8", action="store_true", help="with --format onnx: int8 graphs, calibrated on --calibration")
    p.add_argument(
        "--calibration", nargs="+", metavar="PHOTOS", help="--int8: photos (files, folders or globs), sampled evenly"
    )
    p.add_argument("--calibration-count", type=int, default=32, help="--int8: photos sampled (default 32)")
    return p


def load_weights(path: str):
    """A checkpoint and its model weights (a training checkpoint's ``model``, or a bare state dict)."""
    if not os.path.isfile(path):
        raise SystemExit(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001  (torch.load fails on a non-checkpoint in many ways)
        raise SystemExit(f"{path} is not a model checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict):
        raise SystemExit(f"{path} is not a model checkpoint (a {type(ckpt).__name__})")
    return ckpt, ckpt.get("model", ckpt)


def save_weights(state: dict, path: str, iteration=None) -> dict:
    """Write ``state`` as a FOSS-D2 checkpoint (``model``, ``iteration``) at ``path``, through a
    temporary file so that a stop never leaves half a file; returns what was written."""
    out = {"model": state, "__author__": "FOSS-D2", "iteration": iteration}
    save_atomic(out, path)
    return out


def save_atomic(obj, path: str):
    """``torch.save`` through a temporary file (``atomic_path``), so that a stop never leaves half a
    file. Encoded in memory and written by Python: a full disk is then an OSError naming ``path``
    (torch.save to a file raised its own RuntimeError, "unexpected pos ...", naming nothing)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(buf.getbuffer())
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from e


def blend_states(state: dict, other: dict, weight: float) -> dict:
    """(1 - weight) * state + weight * other, for every floating-point tensor; integer buffers
    (BatchNorm's batch counters) are taken from ``state``. Both must hold the same tensors."""
    if set(state) != set(other):
        only = sorted(set(state) ^ set(other))
        raise SystemExit(f"--blend: the checkpoints hold different tensors ({len(only)}, e.g. {only[0]})")
    out = {}
    for k, v in state.items():
        w = other[k]
        if v.shape != w.shape:
            raise SystemExit(f"--blend: {k} is {tuple(v.shape)} in one checkpoint, {tuple(w.shape)} in the other")
        if v.is_floating_point():
            out[k] = v.float() * (1.0 - weight) + w.float() * weight
        else:
            out[k] = v
    return out


def export_onnx_graphs(checkpoint: str, out_dir: str, config_file=None, calibration=None, count: int = 32):
    """The checkpoint's detector and age network as ONNX graphs in ``out_dir``; int8 ones
    calibrated on the ``calibration`` photos when given. Either set is written into a staging
    folder beside ``out_dir`` and published whole, its fingerprint last (``staged_onnx_dir``): an
    export that fails or is interrupted leaves ``out_dir`` as it was (a folder that was not there
    is not made)."""
    from ..config import get_foss_cfg
    from ..engine.onnx_backend import export_onnx
    from ..engine.predictor import load_model

    cfg = get_foss_cfg(config_file, weights=checkpoint, device="cpu")
    # the check FOSSPredictor makes: weights of another architecture (no --config-file for a paper
    # model) or a --detector-only file would export graphs with random parts
    model = load_model(cfg)
    created = not os.path.exists(out_dir)
    try:
        if calibration:
            with tempfile.TemporaryDirectory() as tmp:
                fp32_dir = os.path.join(tmp, "float")
                export_onnx(model, fp32_dir)
                # the int8 graphs come from the same weights: quantize_graphs publishes them with the
                # float graphs' fingerprint, which FOSSPredictor checks
                paths = quantize_to_int8(cfg, fp32_dir, out_dir, calibration, count)
        else:
            paths = export_onnx(model, out_dir)
    except BaseException:
        if created and os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)  # a publication cut short before its first file leaves no empty folder behind
        raise
    for name, path in paths.items():
        print(f"{name}: {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")


def quantize_to_int8(cfg, fp32_dir: str, out_dir: str, calibration, count: int):
    """int8 graphs of ``fp32_dir``'s in ``out_dir``, calibrated on a sample of the ``calibration`` photos."""
    from tqdm import tqdm

    from ..engine import FOSSPredictor, read_image_file
    from ..engine.quantize import quantize_graphs, record_graph_inputs, sample_calibration_files
    from .runner import collect_inputs

    groups = [[path for path, _ in collect_inputs([arg])[0]] for arg in calibration]
    files = sample_calibration_files(groups, count)
    if not files:
        raise SystemExit(f"no photo found in --calibration {' '.join(calibration)}")
    predictor = FOSSPredictor(cfg, backend="onnxruntime", onnx_dir=fp32_dir)

    def images():
        for f in tqdm(files, desc="calibration photos"):
            try:
                yield read_image_file(f, cfg.INPUT.FORMAT)
            except (OSError, ValueError) as e:
                print(f"skipped {f}: {e}")

    return quantize_graphs(fp32_dir, out_dir, record_graph_inputs(predictor, images()))


def main(argv=None, prog=None):
    p = get_parser(prog)
    args = p.parse_args(argv)
    if args.detector_only and args.age_head_from:
        p.error("--detector-only and --age-head-from exclude each other")
    if args.blend and (args.detector_only or args.age_head_from):
        p.error("--blend averages two whole models: no --detector-only or --age-head-from")
    if args.blend_weight is not None and not args.blend:  # it was ignored: a plain export, said to be done
        p.error("--blend-weight is the share of --blend's checkpoint: give --blend CKPT")
    args.blend_weight = 0.5 if args.blend_weight is None else args.blend_weight
    if not 0.0 <= args.blend_weight <= 1.0:
        p.error(f"--blend-weight must lie in [0, 1], got {args.blend_weight}")
    if args.format == "onnx" and os.path.isfile(args.output):
        p.error(f"--format onnx writes a folder: {args.output} is a file")
    on_the_way = nearest_existing(args.output if args.format == "onnx" else os.path.dirname(args.output) or ".")
    if not os.path.isdir(on_the_way):
        p.error(f"cannot write {args.output}: {on_the_way} is a file, not a folder")
    if args.format == "pth" and os.path.isdir(args.output):
        p.error(
            f"--format pth writes a file: {args.output} is a folder "
            f"(e.g. {os.path.join(args.output, 'model.pth')}; --format onnx writes a folder)"
        )
    if args.format == "onnx":
        if args.detector_only or args.age_head_from or args.blend:
            p.error("--format onnx exports one model as it is: no --detector-only, --age-head-from or --blend")
        if args.int8 != bool(args.calibration):
            p.error("--int8 and --calibration go together")
        if args.calibration_count < 1:
            p.error(f"--calibration-count is a number of photos, at least 1: got {args.calibration_count}")
        calibration = args.calibration if args.int8 else None
        from ..engine.predictor import IncompleteWeightsError

        try:
            return export_onnx_graphs(
                args.checkpoint, args.output, args.config_file, calibration, args.calibration_count
            )
        except IncompleteWeightsError as e:  # weights that do not fill the config's model
            other = e.parts != ["age_head"]  # a detector-only checkpoint has its own hint
            p.error(f"{e}{' (a model of another config: --config-file)' if other else ''}")
        except ValueError as e:  # no checkpoint at all
            p.error(str(e))
    if args.int8:
        p.error("--int8 needs --format onnx")
    ckpt, state = load_weights(args.checkpoint)
    own_age = {k: v for k, v in state.items() if not k.startswith(DETECTOR_PREFIXES)}
    if args.detector_only or args.age_head_from:
        state = {k: v for k, v in state.items() if k.startswith(DETECTOR_PREFIXES)}
        if not state:
            raise SystemExit(f"{args.checkpoint} holds no detector weights ({', '.join(DETECTOR_PREFIXES)})")
    if args.age_head_from:
        rest = {k: v for k, v in load_weights(args.age_head_from)[1].items() if not k.startswith(DETECTOR_PREFIXES)}
        if not any(k.startswith("age_head.") for k in rest):
            raise SystemExit(f"{args.age_head_from} holds no age network (age_head.*)")
        # the checkpoint's own age network (when it has one) shows which architecture fits its detector
        for k, v in rest.items():
            if k in own_age and tuple(own_age[k].shape) != tuple(v.shape):
                raise SystemExit(
                    f"{args.age_head_from}'s age network does not fit {args.checkpoint}'s model: {k} is "
                    f"{tuple(v.shape)} there, {tuple(own_age[k].shape)} here (--age-head-from joins models "
                    "of one config)"
                )
        state.update(rest)
    if args.blend:
        state = blend_states(state, load_weights(args.blend)[1], args.blend_weight)
    small = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        out = save_weights(small, args.output, ckpt.get("iteration"))
    except OSError as e:  # a folder that cannot be written
        p.error(f"cannot write {args.output}: {e.strerror or e}")
    print(
        f"{len(small)} tensors, iteration {out['iteration']} -> {args.output} "
        f"({os.path.getsize(args.output) / 2**20:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
