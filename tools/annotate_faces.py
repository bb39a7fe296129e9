#!/usr/bin/env python
"""Annotate a single-face age dataset with a trained FOSS-D2 face detector (paper 4.2).

    python tools/annotate_faces.py --config-file configs/FOSS-DLA34-detector.yaml \
        --weights output/FOSS-DLA34-detector/model_final.pth \
        --dataset utkface_train --mode train --output datasets/coco/utkface_train_annotated.json

Writes a COCO JSON (register it with foss_d2.data.register_foss_coco), a resumable progress file
(<output>.progress.jsonl) and a summary (<output>.summary.json) of what was kept and dropped.
"""
import argparse
import json

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog

from foss_d2 import FOSSPredictor, add_foss_config
from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.data.annotate import annotate_records
from foss_d2.data.datasets import register_all_foss


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--mode", choices=["train", "test"], default="train")
    p.add_argument("--output", required=True)
    p.add_argument("--score", type=float, default=0.3, help="detection score threshold")
    p.add_argument("opts", nargs=argparse.REMAINDER)
    args = p.parse_args()
    cfg = get_cfg()
    add_foss_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.WEIGHTS = args.weights
    cfg.MODEL.FOSS.SCORE_THRESH_TEST = 0.0  # thresholding happens here, with --score
    register_all_foss(cfg.DATASETS.ROOT or None)
    predictor = FOSSPredictor(cfg)

    def detect(path):
        inst = predictor(path)
        return inst.pred_boxes.tensor.numpy(), inst.scores.numpy()

    records, counts = annotate_records(
        DatasetCatalog.get(args.dataset), detect, args.mode, args.score, args.output + ".progress.jsonl"
    )
    save_coco(dataset_to_coco(records, description=f"{args.dataset} annotated by {args.weights}"), args.output)
    summary = {"dataset": args.dataset, "mode": args.mode, "score": args.score, **counts, "written": len(records)}
    with open(args.output + ".summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
