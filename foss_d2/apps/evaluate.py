"""Evaluation outside training: any predictions.json, or the model on held-out faces at group-photo scale.

``predictions``: score a predictions.json (FOSS-D2 schema, keyed by image path, or by the path
relative to the folder ``foss-d2 demo`` was given) with FOSS-D2's evaluators: age/gender
(FaceAgeEvaluator) and, on multi-face data, COCO face AP. The peer pipeline:

    foss-d2 evaluate predictions --dataset wider_face_val --write-list output/wider_val_files.txt \\
        DATASETS.ROOT ../shared/data
    .venv-peer/bin/python tools/peer/run_peer.py --list output/wider_val_files.txt --output output/peer.json
    foss-d2 evaluate predictions --dataset wider_face_val --predictions output/peer.json --output output/peer_eval \\
        DATASETS.ROOT ../shared/data

``tiled``: age on held-out UTKFace faces shown alone and at group-photo scale: the same faces (a
seeded shuffle of ``utkface_test``) alone, or 4 or 9 to a 480x480 canvas (foss_d2/evaluation/tiled.py
says how cells are scored). Printed, and written to OUT/tiled.json: faces found, MAE, Pearson
correlation of predicted and true age, gender accuracy, per grid size, and the same per band of the
true age (with the mean answer: children read as adults show there). Runs on CPU unless MODEL.DEVICE
says otherwise.

    foss-d2 evaluate tiled --output output/tiled DATASETS.ROOT ../shared/data MODEL.WEIGHTS model.pth

(``python tools/evaluate.py`` takes the same arguments.)
"""

import argparse
import json
import os
import random

import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances
from tqdm import tqdm

from ..config import get_foss_cfg
from ..data.datasets import register_config_datasets
from ..data.datasets.builtin import datasets_root
from ..data.datasets.utkface import load_utkface
from ..engine import FaceAgeEstimator
from ..evaluation import build_foss_evaluator
from ..evaluation.tiled import evaluate_grid
from ..model_zoo import DEFAULT_WEIGHTS
from ..utils.json_io import write_json_atomic
from .cli import foss_argument_parser, parse_foss_args


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
    return inst


def match_prediction_keys(preds: dict, file_names) -> dict:
    """{dataset file name: faces}: a key is the file's path, or (``foss-d2 demo`` over the dataset's
    folder or files) its path relative to that folder, matched on whole path components at the end."""
    by_path = {}
    for name in file_names:
        if name in preds:
            by_path[name] = preds[name]
            continue
        parts = os.path.normpath(name).split(os.sep)
        for i in range(1, len(parts)):  # the longest matching end first
            key = "/".join(parts[i:])
            if key in preds:
                by_path[name] = preds[key]
                break
    return by_path


def evaluate_predictions(args, parser):
    # COCO's 100 detections per image; the predictions may come from any model
    cfg = get_foss_cfg(args.config_file, opts=["MODEL.FOSS.K_TEST", "100", *args.opts])
    register_config_datasets(cfg)
    records = DatasetCatalog.get(args.dataset)
    if args.write_list:
        os.makedirs(os.path.dirname(os.path.abspath(args.write_list)), exist_ok=True)
        with open(args.write_list, "w") as f:
            f.writelines(r["file_name"] + "\n" for r in records)
        print(f"{len(records)} paths -> {args.write_list}")
        return
    if not args.predictions:
        parser.error("give --predictions (or --write-list)")
    preds = json.load(open(args.predictions))
    evaluator = build_foss_evaluator(cfg, args.dataset, args.output)
    evaluator.reset()
    missing = 0
    by_path = match_prediction_keys(preds, [r["file_name"] for r in records])
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
    print(f"{args.dataset}: {len(records)} images, {missing} without predictions")
    print(json.dumps(res, indent=1, default=float))


def evaluate_tiled(args, parser):
    opts = ["MODEL.DEVICE", "cpu", *args.opts]
    cfg = get_foss_cfg(args.config_file, opts=opts)
    image_dir = os.path.join(cfg.DATASETS.ROOT or datasets_root(), "utkface", "UTKFace")
    if not os.path.isdir(image_dir):
        parser.error(f"no UTKFace folder at {image_dir} (set DATASETS.ROOT)")
    records = load_utkface(image_dir, "test")
    random.Random(args.seed).shuffle(records)
    records = records[: args.num]
    est = FaceAgeEstimator(args.config_file, opts=opts)
    results = [evaluate_grid(est, records, g) for g in tqdm(args.grids, desc="grid sizes")]
    # written before printing: nothing computed is lost whatever the figures are
    if args.output:
        weights = "shipped" if cfg.MODEL.WEIGHTS == DEFAULT_WEIGHTS else cfg.MODEL.WEIGHTS
        write_json_atomic(
            os.path.join(args.output, "tiled.json"),
            {"weights": weights, "opts": args.opts, "seed": args.seed, "results": results},
            indent=1,
        )
    for r in results:
        # MAE / corr / gender are None when no face (or too few) was found at that grid size
        fig = {k: "-" if r[k] is None else f"{r[k]:.{d}f}" for k, d in (("MAE", 2), ("corr", 3), ("gender_acc", 1))}
        print(
            f"{r['tiles']} per canvas: {r['found']}/{r['faces']} found, "
            f"MAE {fig['MAE']}, corr {fig['corr']}, gender {fig['gender_acc']}%"
        )
        for band, b in r["per_band"].items():
            if b["found"]:
                print(
                    f"    ages {band}: {b['found']}/{b['faces']} found, MAE {b['MAE']:.2f}, "
                    f"mean answer {b['mean_pred_age']:.1f}, gender {b['gender_acc']:.1f}%"
                )


def get_parser(prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True, metavar="{predictions,tiled}")
    pred = sub.add_parser(
        "predictions",
        help="score a predictions.json on a registered dataset",
        parents=[foss_argument_parser(config_help="only its DATASETS.ROOT and MODEL.FOSS keys matter", add_help=False)],
    )
    pred.add_argument("--dataset", required=True)
    pred.add_argument("--write-list", metavar="FILE", help="write the dataset's image paths here and exit")
    pred.add_argument("--predictions", help="predictions.json (FOSS-D2 schema, keyed by image path)")
    pred.add_argument("--output", default=None, help="folder for the evaluators' files (default: none written)")
    tiled = sub.add_parser(
        "tiled",
        help="held-out UTKFace faces alone and 4 / 9 to a canvas",
        parents=[foss_argument_parser(add_help=False)],
    )
    tiled.add_argument("--num", type=int, default=180, help="held-out faces per grid size")
    tiled.add_argument("--grids", type=int, nargs="+", default=[1, 2, 3])
    tiled.add_argument("--seed", type=int, default=1)
    tiled.add_argument("--output", default=None, help="folder for tiled.json (default: printed only)")
    return p


def main(argv=None, prog=None):
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    if args.mode == "predictions":
        evaluate_predictions(args, parser)
    else:
        evaluate_tiled(args, parser)


if __name__ == "__main__":
    main()
