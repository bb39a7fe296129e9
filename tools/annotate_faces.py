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

from foss_d2 import FOSSPredictor
from foss_d2.apps.cli import config_from_args, foss_argument_parser, parse_foss_args, register_datasets, run_tool
from foss_d2.apps.runner import positive_int, probability
from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.data.annotate import annotate_records

from detectron2.data import DatasetCatalog, MetadataCatalog


def main(argv=None):
    p = foss_argument_parser(__doc__, config_help="the detector's config (default: the shipped model's)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--mode", choices=["train", "test"], default="train")
    p.add_argument("--output", required=True, help="the COCO JSON to write")
    p.add_argument("--score", type=probability, default=0.3, help="detection score threshold, in [0, 1]")
    p.add_argument("--num", type=positive_int, default=None, help="only the dataset's first NUM images (a trial run)")
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
    try:
        predictor = FOSSPredictor(cfg)
    except ValueError as e:  # weights of another model (the paper's DLA-34 config with the shipped weights)
        p.error(f"{e} (without --config-file and MODEL.WEIGHTS the shipped model's detector annotates)")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    weights = os.path.abspath(cfg.MODEL.WEIGHTS)
    # the detector: its weights file (path, size, time) and its MODEL and INPUT config, the weights
    # named by their absolute path (the same file named otherwise resumes)
    model = cfg.MODEL.clone()
    model.defrost()
    model.WEIGHTS = weights
    stamp = f"{weights}:{os.path.getsize(weights)}:{os.path.getmtime(weights)}:{model.dump()}:{cfg.INPUT.dump()}"
    detector_id = f"{weights} {hashlib.sha1(stamp.encode()).hexdigest()[:12]}"

    def detect(path):
        inst = predictor(path)
        return inst.pred_boxes.tensor.numpy(), inst.scores.numpy()

    try:
        records = DatasetCatalog.get(args.dataset)[: args.num]
    except (FileNotFoundError, ValueError) as e:  # a built-in dataset not under DATASETS.ROOT
        p.error(f"{e} (DATASETS.ROOT is {cfg.DATASETS.ROOT!r})")
    several = [r["file_name"] for r in records if len(r.get("annotations", [])) > 1]
    if several:  # its first face's labels would go to the largest detection, its other faces kept too
        p.error(
            f"--dataset {args.dataset}: {len(several)} of its images hold several faces (first: {several[0]}); "
            "annotate_faces.py boxes datasets of one face a photo (paper 4.2)"
        )
    try:
        records, counts = annotate_records(
            records, detect, args.mode, args.score, args.output + ".progress.jsonl", detector_id
        )
    except ValueError as e:
        p.error(str(e))
    meta = MetadataCatalog.get(args.dataset)  # its age groups go with it, as prepare_coco.py writes them
    groups = (meta.age_groups, meta.age_group_lower) if meta.get("age_groups") else None
    coco = dataset_to_coco(records, description=f"{args.dataset} annotated by {cfg.MODEL.WEIGHTS}", age_groups=groups)
    save_coco(coco, args.output)
    summary = {"dataset": args.dataset, "mode": args.mode, "score": args.score, **counts, "written": len(records)}
    with open(args.output + ".summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    run_tool(main)
