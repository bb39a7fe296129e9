#!/usr/bin/env python
"""Annotate a single-face age dataset with a trained FOSS-D2 face detector (paper 4.2).

    python tools/annotate_faces.py --config-file configs/paper/FOSS-DLA34-detector.yaml \
        --dataset utkface_train --mode train --output datasets/coco/utkface_train_annotated.json \
        MODEL.WEIGHTS output/FOSS-DLA34-detector/model_final.pth DATASETS.ROOT ../shared/data

Writes a COCO JSON (register it with foss_d2.data.register_foss_coco), a resumable progress file
(<output>.progress.jsonl) and a summary (<output>.summary.json) of what was kept and dropped.
Without --config-file, the shipped model's detector annotates.
"""

import json

from detectron2.data import DatasetCatalog

from foss_d2 import FOSSPredictor
from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.config import get_foss_cfg
from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.data.annotate import annotate_records
from foss_d2.data.datasets import register_all_foss


def main(argv=None):
    p = foss_argument_parser(__doc__, config_help="the detector's config (default: the shipped model's)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--mode", choices=["train", "test"], default="train")
    p.add_argument("--output", required=True, help="the COCO JSON to write")
    p.add_argument("--score", type=float, default=0.3, help="detection score threshold")
    args = parse_foss_args(p, argv)
    # thresholding happens here, with --score
    cfg = get_foss_cfg(args.config_file, opts=[*args.opts, "MODEL.FOSS.SCORE_THRESH_TEST", "0.0"])
    if not cfg.MODEL.WEIGHTS:
        p.error("the detector's weights: MODEL.WEIGHTS path/to/model_final.pth")
    register_all_foss(cfg.DATASETS.ROOT or None)
    predictor = FOSSPredictor(cfg)

    def detect(path):
        inst = predictor(path)
        return inst.pred_boxes.tensor.numpy(), inst.scores.numpy()

    records, counts = annotate_records(
        DatasetCatalog.get(args.dataset), detect, args.mode, args.score, args.output + ".progress.jsonl"
    )
    save_coco(dataset_to_coco(records, description=f"{args.dataset} annotated by {cfg.MODEL.WEIGHTS}"), args.output)
    summary = {"dataset": args.dataset, "mode": args.mode, "score": args.score, **counts, "written": len(records)}
    with open(args.output + ".summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
