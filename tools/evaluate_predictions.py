#!/usr/bin/env python
"""Score any predictions.json (FOSS-D2 schema, keyed by image path) with FOSS-D2's evaluators.

    python tools/evaluate_predictions.py --dataset wider_face_val --write-list out/wider_val_files.txt
    .venv-peer/bin/python tools/peer/run_peer.py --list out/wider_val_files.txt --output out/peer.json
    python tools/evaluate_predictions.py --dataset wider_face_val --predictions out/peer.json --output out/peer_eval

Faces: age/gender evaluation (FaceAgeEvaluator) and, on multi-face data, COCO face AP.
"""
import argparse
import json
import os

import torch

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances

from foss_d2 import add_foss_config
from foss_d2.data.datasets import register_all_foss
from foss_d2.evaluation import build_foss_evaluator


def faces_to_instances(faces, h, w):
    inst = Instances((h, w))
    inst.pred_boxes = Boxes(torch.tensor([f["box"] for f in faces], dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor([f["score"] for f in faces], dtype=torch.float32)
    inst.pred_classes = torch.zeros(len(faces), dtype=torch.long)
    inst.pred_ages = torch.tensor([f["age"] if f["age"] is not None else float("nan") for f in faces], dtype=torch.float32)
    inst.pred_female_probs = torch.tensor([f["p_female"] if f["p_female"] is not None else float("nan") for f in faces], dtype=torch.float32)
    return inst


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", default=None, help="datasets root (default: $DETECTRON2_DATASETS or ./datasets)")
    p.add_argument("--write-list", help="write the dataset's image paths here and exit")
    p.add_argument("--predictions")
    p.add_argument("--output", default=None)
    args = p.parse_args()
    register_all_foss(args.root)
    records = DatasetCatalog.get(args.dataset)
    if args.write_list:
        os.makedirs(os.path.dirname(os.path.abspath(args.write_list)), exist_ok=True)
        with open(args.write_list, "w") as f:
            f.writelines(r["file_name"] + "\n" for r in records)
        print(f"{len(records)} paths -> {args.write_list}")
        return
    preds = json.load(open(args.predictions))
    cfg = get_cfg()
    add_foss_config(cfg)
    cfg.MODEL.FOSS.K_TEST = 100
    evaluator = build_foss_evaluator(cfg, args.dataset, args.output)
    evaluator.reset()
    missing = 0
    for r in records:
        faces = preds.get(r["file_name"])
        if faces is None:
            missing += 1
            faces = []
        h, w = r.get("height", 1), r.get("width", 1)
        evaluator.process([{"image_id": r["image_id"], "file_name": r["file_name"], "height": h, "width": w}], [{"instances": faces_to_instances(faces, h, w)}])
    res = evaluator.evaluate()
    print(f"{args.dataset}: {len(records)} images, {missing} without predictions")
    print(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
