"""Evaluation outside training: any predictions.json, or the model on held-out faces at group-photo scale.

``predictions``: score a predictions.json (FOSS-D2 schema, keyed by image path, or by the path
relative to the folder ``foss-d2 demo`` was given) with FOSS-D2's evaluators: age/gender
(FaceAgeEvaluator) and, on multi-face data, COCO face AP. Printed; with ``--output`` also written
there, the figures to eval_results.json as ``tools/train_net.py --eval-only`` writes them (each
dataset scored into the folder kept). The peer pipeline:

    foss-d2 evaluate predictions --dataset wider_face_val --write-list output/wider_val_files.txt \\
        DATASETS.ROOT ../shared/data
    .venv-peer/bin/python tools/peer/run_peer.py --list output/wider_val_files.txt --output output/peer.json
    foss-d2 evaluate predictions --dataset wider_face_val --predictions output/peer.json --output output/peer_eval \\
        DATASETS.ROOT ../shared/data

``tiled``: age on held-out UTKFace faces shown alone and at group-photo scale: the same faces (a
seeded shuffle of ``utkface_test``) alone, or 4 or 9 to a 480x480 canvas (foss_d2/evaluation/tiled.py
says how cells are scored). Printed, and written to OUT/tiled.json: faces found, MAE, Pearson
correlation of predicted and true age, gender accuracy, per grid size, and the same per band of the
true age (with the mean answer: children read as adults show there), and how often the true age lies
within one and two of the answers' age_stds. Runs on CPU unless MODEL.DEVICE says otherwise.

    foss-d2 evaluate tiled --output output/tiled DATASETS.ROOT ../shared/data MODEL.WEIGHTS model.pth

``pasted``: do the surroundings set the age? Held-out single faces (``--faces``, UTKFace's by
default; ``--per-band`` of each age band) alone, pasted over faces of real group photos
(``--photos``, WIDER val by default), and pasted at the same size and place on black
(foss_d2/evaluation/pasted.py). Printed and written to OUT/pasted.json, per band of the true age;
the first ``--examples`` pasted photos are drawn to OUT.

    foss-d2 evaluate pasted --output output/pasted DATASETS.ROOT ../shared/data

(``python tools/evaluate.py`` takes the same arguments.)
"""

import argparse
import json
import math
import os
import random
import sys
import tempfile

import torch
from tqdm import tqdm

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

from ..data.datasets import register_config_datasets
from ..data.datasets.builtin import FOSS_DATASETS, datasets_root
from ..data.datasets.utkface import load_utkface
from ..data.utils import DatasetError
from ..engine import FaceAgeEstimator
from ..evaluation import build_foss_evaluator
from ..evaluation.pasted import CONDITIONS, evaluate_pasted, iou, stratified_faces
from ..evaluation.results import load_eval_results
from ..evaluation.tiled import evaluate_grid
from ..model_zoo import DEFAULT_WEIGHTS
from ..utils.image_io import read_image_file, unreadable_images
from ..utils.json_io import nan_as_null, write_json_atomic, write_text_atomic
from .cli import OneLineErrorParser, config_from_args, foss_argument_parser, parse_foss_args
from .runner import load_predictions, positive_int, probability

ON_CPU = ["MODEL.DEVICE", "cpu"]  # tiled and pasted run on CPU unless the overrides say otherwise


def valid_face(f) -> bool:
    """A face of FOSS-D2's prediction schema, as the evaluators read it (age and p_female may be None)."""
    try:
        return (
            len(f["box"]) == 4
            and all(isinstance(v, (int, float)) for v in (*f["box"], f["score"]))
            and all(f[k] is None or isinstance(f[k], (int, float)) for k in ("age", "p_female"))
        )
    except (KeyError, TypeError):
        return False


def faces_to_instances(faces, h, w):
    inst = Instances((h, w))
    inst.pred_boxes = Boxes(torch.tensor([f["box"] for f in faces], dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor([f["score"] for f in faces], dtype=torch.float32)
    inst.pred_classes = torch.zeros(len(faces), dtype=torch.long)
    inst.pred_ages = torch.tensor(
        [f["age"] if f["age"] is not None else float("nan") for f in faces], dtype=torch.float32
    )
    inst.pred_female_probs = torch.tensor(
        [f["p_female"] if f["p_female"] is not None else float("nan") for f in faces], dtype=torch.float32
    )
    if faces and all(isinstance(f.get("age_std"), (int, float)) for f in faces):
        inst.pred_age_stds = torch.tensor([f["age_std"] for f in faces], dtype=torch.float32)
    return inst


def match_prediction_keys(preds: dict, file_names) -> dict:
    """{dataset file name: faces}: a key is the file's path (the same file however named: through a
    link, relative to the working directory), or (``foss-d2 demo`` over the dataset's folder or
    files) its path relative to that folder, matched on whole path components at the end; a
    ValueError when such a key would answer for two of the dataset's files (cam1/0001.jpg and
    cam2/0001.jpg from a demo over cam1/ alone: both got cam1's faces)."""
    real = {}
    for key in preds:
        if os.path.isabs(key) or os.path.exists(key):
            real.setdefault(os.path.realpath(key), key)
    by_path, by_end = {}, {}  # by_end: {key matched by its end: the dataset files it answers}
    for name in file_names:
        if name in preds:
            by_path[name] = preds[name]
            continue
        key = real.get(os.path.realpath(name))
        if key is not None:
            by_path[name] = preds[key]
            continue
        parts = os.path.normpath(name).split(os.sep)
        for i in range(1, len(parts)):  # the longest matching end first
            key = "/".join(parts[i:])
            if key in preds:
                by_path[name] = preds[key]
                by_end.setdefault(key, []).append(name)
                break
    for key, names in by_end.items():
        if len(names) > 1:
            raise ValueError(
                f"its image {key!r} ends {len(names)} of the dataset's paths ({names[0]}, {names[1]}"
                f"{', ...' if len(names) > 2 else ''}): which one it answers is unknown; run the demo over "
                "the dataset's own root folder, or on the paths --write-list gives"
            )
    return by_path


def evaluate_predictions(args, parser):
    cfg = config_from_args(parser, args)
    register_config_datasets(cfg)
    if args.dataset not in DatasetCatalog.list():
        parser.error(f"--dataset {args.dataset} is not registered; FOSS-D2's: {', '.join(FOSS_DATASETS)}")
    try:
        records = DatasetCatalog.get(args.dataset)
    except (OSError, ValueError) as e:  # e.g. DATASETS.ROOT not given, or without this dataset
        parser.error(f"--dataset {args.dataset}: {e}")
    if args.write_list:
        os.makedirs(os.path.dirname(os.path.abspath(args.write_list)), exist_ok=True)
        write_text_atomic(args.write_list, "".join(r["file_name"] + "\n" for r in records))  # (whole or not at all)
        print(f"{len(records)} paths -> {args.write_list}")
        return
    if not args.predictions:
        parser.error("give --predictions (or --write-list)")
    try:
        preds = load_predictions(args.predictions)  # a demo's predictions.json, its .jsonl journal or its folder
    except (OSError, ValueError) as e:
        parser.error(f"--predictions: {e}")
    try:
        matched = match_prediction_keys(preds, [r["file_name"] for r in records])
    except ValueError as e:
        parser.error(f"--predictions {args.predictions}: {e}")
    if not matched:
        example = next(iter(preds), None)
        parser.error(
            f"none of the {len(preds)} images of {args.predictions} is one of {args.dataset}'s {len(records)} "
            f"(first key: {example!r}): run the demo on the dataset's own files (--write-list gives their paths)"
        )
    used = {id(faces) for faces in matched.values()}
    foreign = [k for k, faces in preds.items() if id(faces) not in used]
    if foreign:  # other photos' answers: left out, said before the figures
        print(
            f"{len(foreign)} of the {len(preds)} images of {args.predictions} are not {args.dataset}'s and are "
            f"left out (the first: {foreign[0]!r})",
            file=sys.stderr,
        )
    bad = [(k, i) for k, faces in preds.items() for i, f in enumerate(faces) if not valid_face(f)]
    if bad:
        parser.error(
            f"--predictions {args.predictions}: {len(bad)} faces without a 4-number box, a score, an age and "
            f"p_female (the first: image {bad[0][0]!r}, face {bad[0][1]})"
        )
    if args.min_score is not None:
        before = sum(map(len, matched.values()))
        matched = {k: [f for f in faces if f["score"] >= args.min_score] for k, faces in matched.items()}
        left = before - sum(map(len, matched.values()))
        print(f"--min-score {args.min_score}: {left} boxes scored under it are left out", file=sys.stderr)
    # COCO AP reads at most K_TEST boxes an image: unless the overrides set it, every box of every
    # image here (COCO's 100 at least), as --eval-only reads every box the model gives; with 100 a
    # crowd's boxes were cut
    if "MODEL.FOSS.K_TEST" not in args.opts[::2]:
        cfg.defrost()
        cfg.MODEL.FOSS.K_TEST = max([100, *(len(faces) for faces in preds.values())])
        cfg.freeze()
    if args.output is None:
        # detectron2's COCOEvaluator needs a folder for the ground truth it converts to COCO format
        with tempfile.TemporaryDirectory() as tmp:
            try:
                score_predictions(cfg, args.dataset, records, matched, tmp)
                return
            finally:
                # COCOEvaluator remembers the json it wrote there: a second call in this process
                # would look for it in the deleted folder
                meta = MetadataCatalog.get(args.dataset)
                if str(getattr(meta, "json_file", "")).startswith(tmp):
                    delattr(meta, "json_file")
    res = score_predictions(cfg, args.dataset, records, matched, args.output)
    # beside the other datasets' figures scored into the same folder, as train_net writes them
    # (tools/benchmark.py peer --accuracy and ship_check read them)
    path = os.path.join(args.output, "eval_results.json")
    try:
        results = load_eval_results(path) if os.path.isfile(path) else {}
    except ValueError:  # not JSON: replaced
        results = {}
    results[args.dataset] = res
    write_json_atomic(path, nan_as_null(results), indent=1)
    print(f"figures -> {path}")


def score_predictions(cfg, dataset: str, records, by_path: dict, output: str):
    """Feeds saved predictions ({dataset file name: faces}) to the dataset's evaluators; prints the figures."""
    evaluator = build_foss_evaluator(cfg, dataset, output)
    evaluator.reset()
    missing = 0
    for r in records:
        faces = by_path.get(r["file_name"])
        if faces is None:
            missing += 1
            faces = []
        h, w = r.get("height", 1), r.get("width", 1)
        evaluator.process(
            [{"image_id": r["image_id"], "file_name": r["file_name"], "height": h, "width": w}],
            [{"instances": faces_to_instances(faces, h, w)}],
        )
    res = evaluator.evaluate()
    print(f"{dataset}: {len(records)} images, {missing} without predictions")
    print(json.dumps(nan_as_null(res), indent=1, default=float))
    return res


def require_weights(parser, cfg):
    """A usage error when the model to evaluate has no trained weights (figures of a random network,
    which --eval-only refuses too); checked before any data is read."""
    if not cfg.MODEL.WEIGHTS:
        parser.error(
            "the model to evaluate has no weights: MODEL.WEIGHTS path/to/model.pth (the shipped model's config "
            "names its own: leave out --config-file)"
        )


def trained_estimator(parser, config_file, opts) -> FaceAgeEstimator:
    """The estimator to evaluate (``require_weights`` checked first): a usage error for weights that
    leave part of it untrained (a --detector-only export)."""
    try:
        return FaceAgeEstimator(config_file, opts=opts)
    except ValueError as e:
        parser.error(str(e))


def read_bgr(path: str):
    return read_image_file(path, "BGR")


def readable(records: list, what: str) -> list:
    """The records whose image FOSS-D2's reader decodes (cv2.imread gave a truncated JPEG part grey:
    a face scored as not found); the others left out, said in one line."""
    bad = unreadable_images(((r["file_name"], None) for r in records), desc=f"reading {what}")
    ok = [r for r in records if r["file_name"] not in bad]
    if bad:
        first = next(iter(bad.values()))
        print(
            f"{what}: {len(records) - len(ok)} of {len(records)} images cannot be read and are left out ({first})",
            file=sys.stderr,
        )
    return ok


def evaluate_tiled(args, parser):
    # every grid scores the same faces: a number of faces that fills whole canvases of each size
    whole = math.lcm(*(g * g for g in args.grids))
    if args.num < whole:
        sizes = " and ".join(f"{g}x{g}" for g in sorted(set(args.grids)))
        parser.error(f"--num {args.num} faces fill no whole {sizes} canvases alike: give at least {whole}")
    if args.num % whole:
        print(
            f"--num {args.num}: {args.num - args.num % whole} faces scored (a multiple of {whole}), so that "
            "every grid size shows the same faces",
            file=sys.stderr,
        )
        args.num -= args.num % whole
    cfg = config_from_args(parser, args, opts_before=ON_CPU)
    opts = [*ON_CPU, *args.opts]
    require_weights(parser, cfg)
    image_dir = os.path.join(cfg.DATASETS.ROOT or datasets_root(), "utkface", "UTKFace")
    if not os.path.isdir(image_dir):
        parser.error(f"no UTKFace folder at {image_dir} (set DATASETS.ROOT)")
    records = load_utkface(image_dir, "test")
    random.Random(args.seed).shuffle(records)
    records = readable(records[: 2 * args.num], "utkface_test")[: args.num]  # (the first --num that can be read)
    records = records[: len(records) - len(records) % whole]
    est = trained_estimator(parser, args.config_file, opts)
    results = [evaluate_grid(est, records, g, read=read_bgr) for g in tqdm(args.grids, desc="grid sizes")]
    # written before printing: nothing computed is lost whatever the figures are
    if args.output:
        weights = "shipped" if cfg.MODEL.WEIGHTS == DEFAULT_WEIGHTS else cfg.MODEL.WEIGHTS
        write_json_atomic(
            os.path.join(args.output, "tiled.json"),
            {"weights": weights, "opts": args.opts, "seed": args.seed, "results": results},
            indent=1,
        )
    for r in results:
        print_by_band(f"{r['tiles']} per canvas", r)


def print_by_band(title: str, r: dict):
    # MAE / corr / gender are None when no face (or too few) was found
    fig = {k: "-" if r[k] is None else f"{r[k]:.{d}f}" for k, d in (("MAE", 2), ("corr", 3), ("gender_acc", 1))}
    within = (
        f", true age within 1 / 2 std {r['age_in_1std']:.1f}% / {r['age_in_2std']:.1f}%" if "age_in_1std" in r else ""
    )
    print(
        f"{title}: {r['found']}/{r['faces']} found, MAE {fig['MAE']}, corr {fig['corr']}, "
        f"gender {fig['gender_acc']}%{within}"
    )
    for band, b in r["per_band"].items():
        if b["found"]:
            gender = "-" if b["gender_acc"] is None else f"{b['gender_acc']:.1f}"  # None: no gender labels
            print(
                f"    ages {band}: {b['found']}/{b['faces']} found, MAE {b['MAE']:.2f}, "
                f"mean answer {b['mean_pred_age']:.1f}, gender {gender}%"
            )


def evaluate_pasted_faces(args, parser):
    cfg = config_from_args(parser, args, opts_before=ON_CPU)
    opts = [*ON_CPU, *args.opts]
    require_weights(parser, cfg)
    register_config_datasets(cfg)
    for flag, name in (("--photos", args.photos), ("--faces", args.faces)):
        if name not in DatasetCatalog.list():
            parser.error(f"unknown dataset {name!r} for {flag}")
    try:
        photos, faces = DatasetCatalog.get(args.photos), DatasetCatalog.get(args.faces)
    except FileNotFoundError as e:
        parser.error(f"{e} (set DATASETS.ROOT)")
    if any(len(r["annotations"]) != 1 or r["annotations"][0].get("age", -1) < 0 for r in faces):
        parser.error(f"--faces {args.faces}: every image must hold one face with its age")
    faces = stratified_faces(readable(faces, args.faces), args.per_band, args.seed)
    photos = readable(photos, args.photos)
    est = trained_estimator(parser, args.config_file, opts)
    if args.output:
        os.makedirs(args.output, exist_ok=True)
    bar = tqdm(total=len(faces), desc="pasted faces")

    def on_photo(k, picture, boxes, found):
        bar.update(len(boxes))
        if args.output and k < args.examples:
            import cv2

            from .runner import draw_predictions

            shown = [f for f in found if any(iou(f["box"], b) > 0.3 for b in boxes)]
            cv2.imwrite(os.path.join(args.output, f"pasted_{k:02d}.jpg"), draw_predictions(picture, shown, 1024))

    results = evaluate_pasted(
        est, faces, photos, args.per_photo, args.min_side, seed=args.seed, on_photo=on_photo, read=read_bgr
    )
    bar.close()
    if args.output:
        weights = "shipped" if cfg.MODEL.WEIGHTS == DEFAULT_WEIGHTS else cfg.MODEL.WEIGHTS
        write_json_atomic(
            os.path.join(args.output, "pasted.json"),
            {
                "weights": weights,
                "opts": args.opts,
                **{k: getattr(args, k) for k in ("faces", "photos", "per_band", "per_photo", "min_side", "seed")},
                "results": results,
            },
            indent=1,
        )
    for c in CONDITIONS:
        print_by_band(c.replace("_", " "), results[c])


def get_parser(prog=None):
    p = OneLineErrorParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True, metavar="{predictions,tiled,pasted}")
    pred = sub.add_parser(
        "predictions",
        help="score a predictions.json on a registered dataset",
        parents=[
            foss_argument_parser(
                config_help="only its DATASETS.ROOT, DATASETS.COCO (a dataset of one's own) and MODEL.FOSS.K_TEST "
                "matter",
                add_help=False,
            )
        ],
    )
    pred.add_argument("--dataset", required=True)
    pred.add_argument("--write-list", metavar="FILE", help="write the dataset's image paths here and exit")
    pred.add_argument("--predictions", help="predictions.json (FOSS-D2 schema, keyed by image path)")
    pred.add_argument(
        "--output", default=None, help="folder for the evaluators' files and eval_results.json (default: none written)"
    )
    pred.add_argument(
        "--min-score",
        type=probability,
        default=None,
        help="leave out boxes scored under this (default: every box of the file is an answer, as its maker "
        "thresholded them; a demo run's predictions.json holds those over its --confidence-threshold)",
    )
    tiled = sub.add_parser(
        "tiled",
        help="held-out UTKFace faces alone and 4 / 9 to a canvas",
        parents=[foss_argument_parser(add_help=False)],
    )
    tiled.add_argument("--num", type=positive_int, default=180, help="held-out faces per grid size")
    tiled.add_argument("--grids", type=positive_int, nargs="+", default=[1, 2, 3], help="N for N x N canvases")
    tiled.add_argument("--seed", type=int, default=1)
    tiled.add_argument("--output", default=None, help="folder for tiled.json (default: printed only)")
    pasted = sub.add_parser(
        "pasted",
        help="held-out UTKFace faces alone, pasted into group photos and on black",
        parents=[foss_argument_parser(add_help=False)],
    )
    pasted.add_argument("--faces", default="utkface_test", help="registered dataset of single faces with ages")
    pasted.add_argument("--per-band", type=positive_int, default=40, help="faces per age band")
    pasted.add_argument("--photos", default="wider_face_val", help="registered dataset of group photos")
    pasted.add_argument("--per-photo", type=positive_int, default=4, help="faces pasted into one photo")
    pasted.add_argument("--min-side", type=float, default=40.0, help="smallest face (px) to paste over")
    pasted.add_argument("--seed", type=int, default=0)
    pasted.add_argument("--examples", type=int, default=3, help="pasted photos drawn to --output")
    pasted.add_argument("--output", default=None, help="folder for pasted.json and the drawn examples")
    return p


def main(argv=None, prog=None):
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    out = getattr(args, "output", None)
    if out and os.path.exists(out) and not os.path.isdir(out):  # found before the model runs, not after
        parser.error(f"--output {out} is a file, not a folder")
    try:
        if args.mode == "predictions":
            evaluate_predictions(args, parser)
        elif args.mode == "pasted":
            evaluate_pasted_faces(args, parser)
        else:
            evaluate_tiled(args, parser)
    except (FileNotFoundError, DatasetError) as e:  # DATASETS.COCO: a missing file, or one with a mistake
        parser.error(str(e))


if __name__ == "__main__":
    main()
