#!/usr/bin/env python
r"""Annotate a single-face age dataset with a trained FOSS-D2 face detector (paper 4.2).

    python tools/annotate_faces.py --config-file configs/paper/FOSS-DLA34-detector.yaml \
        --dataset utkface_train --mode train --output datasets/coco/utkface_train_annotated.json \
        MODEL.WEIGHTS output/FOSS-DLA34-detector/model_final.pth DATASETS.ROOT ../shared/data

Writes a COCO JSON (register it with foss_d2.data.register_foss_coco), a resumable progress file
(<output>.progress.jsonl) and a summary (<output>.summary.json) of what was kept and dropped.
Without --config-file, the shipped model's detector annotates.
"""

import hashlib
import json
import os

from detectron2.data import DatasetCatalog

from foss_d2 import FOSSPredictor
from foss_d2.apps.cli import config_from_args, foss_argument_parser, parse_foss_args, register_datasets, run_tool
from foss_d2.apps.runner import probability
from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.data.annotate import annotate_records


def main(argv=None):
    p = foss_argument_parser(__doc__, config_help="the detector's config (default: the shipped model's)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--mode", choices=["train", "test"], default="train")
    p.add_argument("--output", required=True, help="the COCO JSON to write")
    p.add_argument("--score", type=probability, default=0.3, help="detection score threshold, in [0, 1]")
    p.add_argument("--num", type=int, default=None, help="only the dataset's first NUM images (a trial run)")
    args = parse_foss_args(p, argv)
    if os.path.isdir(args.output):
        p.error(f"--output is the COCO JSON file to write: {args.output} is a folder")
    # thresholding happens here, with --score
    cfg = config_from_args(p, args, opts_after=["MODEL.FOSS.SCORE_THRESH_TEST", "0.0"])
    if not cfg.MODEL.WEIGHTS:
        p.error("the detector's weights: MODEL.WEIGHTS path/to/model_final.pth")
    register_datasets(p, cfg)  # the built-in ones and the config's DATASETS.COCO
    if args.dataset not in DatasetCatalog.list():
        p.error(f"--dataset {args.dataset} is not registered (a COCO file: DATASETS.COCO in the config)")
    predictor = FOSSPredictor(cfg)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    weights = os.path.abspath(cfg.MODEL.WEIGHTS)
    # the detector: its weights file (path, size, time) and its MODEL and INPUT config
    stamp = f"{weights}:{os.path.getsize(weights)}:{os.path.getmtime(weights)}:{cfg.MODEL.dump()}:{cfg.INPUT.dump()}"
    detector_id = f"{weights} {hashlib.sha1(stamp.encode()).hexdigest()[:12]}"

    def detect(path):
        inst = predictor(path)
        return inst.pred_boxes.tensor.numpy(), inst.scores.numpy()

    try:
        records = DatasetCatalog.get(args.dataset)[: args.num]
    except (FileNotFoundError, ValueError) as e:  # a built-in dataset not under DATASETS.ROOT
        p.error(f"{e} (DATASETS.ROOT is {cfg.DATASETS.ROOT!r})")
    try:
        records, counts = annotate_records(
            records, detect, args.mode, args.score, args.output + ".progress.jsonl", detector_id
        )
    except ValueError as e:
        p.error(str(e))
    save_coco(dataset_to_coco(records, description=f"{args.dataset} annotated by {cfg.MODEL.WEIGHTS}"), args.output)
    summary = {"dataset": args.dataset, "mode": args.mode, "score": args.score, **counts, "written": len(records)}
    with open(args.output + ".summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    run_tool(main)
