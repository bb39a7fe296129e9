#!/usr/bin/env python
"""Gender targets for group photos from a trained FOSS-D2 model (issue 16: gender in the wild).

Fine-tuning the age network on close-ups (UTKFace, FG-NET) moves how it reads gender on real group
photos, whose faces carry no gender label here (docs/RESULTS.md at 58d4fa8, section 10). This writes a COCO
JSON of a box-annotated dataset (e.g. ``wider_face_train``) in which every ground-truth face that
the teacher model finds (IoU >= --iou with one of its boxes) and that is at least --min-height
pixels high gets the teacher's P(female) as a soft ``gender`` target, the others -1 (no label);
ages stay unlabelled. Training on it beside the close-ups keeps the teacher's reading of gender on
group photos while the age network learns ages ("learning without forgetting", Li & Hoiem 2016).

    python tools/research/teacher_genders.py --dataset wider_face_train \\
        --output output/teacher/wider_face_train.json DATASETS.ROOT ../shared/data

then train with it registered: ``DATASETS.COCO (("wider_face_train_teacher",
"output/teacher/wider_face_train.json", ""),)`` and the name in DATASETS.TRAIN. Without
--config-file the shipped model (its test-time settings) is the teacher. Writes OUTPUT,
OUTPUT.summary.json; an unreadable photo is skipped with a warning (its faces keep no label).
"""

import logging
import os

import numpy as np
import torch
from tqdm import tqdm

from foss_d2 import FaceAgeEstimator
from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.data.datasets import register_config_datasets
from foss_d2.data.utils import absolute_annotations
from foss_d2.evaluation.age_evaluator import match_faces
from foss_d2.utils.json_io import write_json_atomic

from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode

logger = logging.getLogger("foss_d2.teacher_genders")


def label_record(record: dict, faces: list, min_height: float, iou_thresh: float) -> dict:
    """A copy of ``record`` whose annotations (XYXY_ABS) carry the matched teacher face's P(female)
    as ``gender`` (one teacher face per ground-truth face, greedy by score as the age evaluator
    matches), -1 elsewhere; ages -1."""
    h, w = record.get("height"), record.get("width")
    annos = []
    for a in absolute_annotations(record.get("annotations", []), h, w):
        box = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
        annos.append({**a, "bbox": [float(v) for v in box], "bbox_mode": BoxMode.XYXY_ABS, "age": -1, "gender": -1})
    if annos and faces:
        # The evaluator's matching, so that a face gets a target when evaluation would count it found.
        match = match_faces(
            torch.tensor([f["box"] for f in faces], dtype=torch.float32),
            torch.tensor([f["score"] for f in faces], dtype=torch.float32),
            torch.tensor([a["bbox"] for a in annos], dtype=torch.float32),
            iou_thresh,
        )
        for a, fi in zip(annos, match):
            x1, y1, x2, y2 = a["bbox"]
            if fi >= 0 and y2 - y1 >= min_height and faces[fi].get("p_female") is not None:
                a["gender"] = float(faces[fi]["p_female"])
    return {**record, "annotations": annos}


def main(argv=None):
    p = foss_argument_parser(__doc__, config_help="the teacher's config (default: the shipped model's)")
    p.add_argument("--dataset", required=True, help="a registered dataset with face boxes")
    p.add_argument("--output", required=True, help="the COCO JSON to write")
    p.add_argument("--min-height", type=float, default=24.0, help="faces lower than this (px) get no label")
    p.add_argument("--iou", type=float, default=0.5, help="IoU a teacher box needs with a face")
    p.add_argument("--limit", type=int, default=0, help="only the first N photos (0: all)")
    args = parse_foss_args(p, argv)
    est = FaceAgeEstimator(args.config_file or None, opts=args.opts)
    register_config_datasets(est.cfg)
    records = DatasetCatalog.get(args.dataset)
    if args.limit:
        records = records[: args.limit]
    out, skipped = [], []
    for r in tqdm(records, desc=f"teacher on {args.dataset}"):
        try:
            faces = est(r["file_name"])
        except (OSError, ValueError) as e:
            logger.warning("skipping %s: %s", r["file_name"], e)
            skipped.append(r["file_name"])
            faces = []
        out.append(label_record(r, faces, args.min_height, args.iou))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    save_coco(dataset_to_coco(out, f"{args.dataset}, gender from a teacher model"), args.output)
    g = np.array([a["gender"] for r in out for a in r["annotations"]], dtype=np.float64)
    lab = g[g >= 0]
    summary = {
        "dataset": args.dataset,
        "photos": len(out),
        "unreadable": skipped,
        "faces": int(len(g)),
        "labelled": int(len(lab)),
        "female_share": round(float((lab > 0.5).mean()), 4) if len(lab) else None,
        "confident_share": round(float((np.abs(lab - 0.5) > 0.3).mean()), 4) if len(lab) else None,
        "min_height": args.min_height,
        "iou": args.iou,
    }
    write_json_atomic(args.output + ".summary.json", summary, indent=1)
    print(summary)
    return summary


if __name__ == "__main__":
    main()
