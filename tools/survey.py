#!/usr/bin/env python
"""Age-group / gender survey of a folder of photos or a video (counts, histogram, CSV/JSON).

    python tools/survey.py --input shop_photos/ --output survey/
    python tools/survey.py --video-input entrance.mp4 --output survey/ --bucket-seconds 60
    python tools/survey.py --predictions out/predictions.json --output survey/   # reuse tools/demo.py output
    python tools/survey.py --input photos/ --output survey/ --groups 0,18,30,45,65
"""
import argparse
import json
import os
import sys

import cv2

from detectron2.utils.logger import setup_logger

from foss_d2.engine import FOSSPredictor, expand_inputs, get_foss_cfg
from foss_d2.engine.batch import run_images, run_video
from foss_d2.engine.survey import PAPER_GROUP_LOWER, count_faces, counts_over_time, save_survey


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", nargs="+", help="image files, folders or globs")
    p.add_argument("--video-input")
    p.add_argument("--predictions", help="predictions.json written by tools/demo.py")
    p.add_argument("--fps", type=float, default=None, help="frame rate of the video behind --predictions")
    p.add_argument("--output", required=True)
    p.add_argument("--groups", default=",".join(map(str, PAPER_GROUP_LOWER)), help="lower bounds of the age groups, in years")
    p.add_argument("--bucket-seconds", type=float, default=10.0, help="video: width of each time window")
    p.add_argument("--config-file", default=None)
    p.add_argument("--confidence-threshold", type=float, default=None)
    p.add_argument("--opts", default=[], nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    setup_logger(name="foss_d2")
    lower = [int(v) for v in args.groups.split(",")]
    if lower != sorted(lower) or lower[0] != 0:
        sys.exit("--groups must be increasing lower bounds starting at 0, e.g. 0,18,30,45,65")
    fps = args.fps
    if args.predictions:
        pred_file = args.predictions
    else:
        cfg = get_foss_cfg(args.config_file, None, args.opts, confidence_threshold=args.confidence_threshold)
        predictor = FOSSPredictor(cfg)
        pred_dir = os.path.join(args.output, "predictions")
        if args.video_input:
            cap = cv2.VideoCapture(args.video_input)
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            cap.release()
            run_video(predictor, args.video_input, pred_dir, cfg.INPUT.FORMAT)
        elif args.input:
            run_images(predictor, expand_inputs(args.input), pred_dir, cfg.INPUT.FORMAT)
        else:
            p.error("give --input, --video-input or --predictions")
        pred_file = os.path.join(pred_dir, "predictions.json")
    with open(pred_file) as f:
        results = json.load(f)
    counts = count_faces((face for faces in results.values() for face in faces), lower)
    timeline = counts_over_time(results, fps, args.bucket_seconds, lower) if fps else None
    total = save_survey(counts, args.output, timeline=timeline)
    print(f"{total} faces in {len(results)} {'frames' if fps else 'images'} -> {args.output}/survey.png, survey.csv, survey.json")


if __name__ == "__main__":
    main()
