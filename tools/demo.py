#!/usr/bin/env python
"""FOSS-D2 demo: draw every face with "age, gender" on images, folders, globs, videos or a webcam.

    python tools/demo.py --input demo/group.jpg --output out/          # the shipped model
    python tools/demo.py --input photos/ "more/*.png" --output out/    # many inputs, progress bar
    python tools/demo.py --video-input clip.mp4 --output out/
    python tools/demo.py --config-file cfg.yaml --opts MODEL.WEIGHTS model.pth --input img.jpg

With --output, annotated pictures go to OUT/, and OUT/predictions.json ({input path relative to its
--input folder: [faces]}), OUT/predictions.csv (one row per face) and OUT/skipped.json are written;
boxes are in original-image pixels. A bad file is reported and skipped; the batch goes on.
"""
import argparse
import sys

from detectron2.utils.logger import setup_logger

from foss_d2.engine import FOSSPredictor, expand_inputs, get_foss_cfg
from foss_d2.engine.batch import run_images, run_video


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default=None, help="defaults to the shipped model")
    p.add_argument("--input", nargs="+", help="image files, folders or globs")
    p.add_argument("--video-input", help="a video file")
    p.add_argument("--webcam", action="store_true", help="camera 0; press Esc to stop")
    p.add_argument("--output", help="output folder (annotated pictures + predictions.json/.csv)")
    p.add_argument("--confidence-threshold", type=float, default=None, help="face score threshold")
    p.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logger(name="foss_d2")
    if not (args.input or args.video_input or args.webcam):
        get_parser().error("give --input, --video-input or --webcam")
    try:
        cfg = get_foss_cfg(args.config_file, None, args.opts, confidence_threshold=args.confidence_threshold)
    except FileNotFoundError as e:
        sys.exit(str(e))
    predictor = FOSSPredictor(cfg)
    if args.input:
        run_images(predictor, expand_inputs(args.input), args.output, cfg.INPUT.FORMAT)
    elif args.video_input:
        run_video(predictor, args.video_input, args.output, cfg.INPUT.FORMAT)
    else:
        run_video(predictor, 0, args.output, cfg.INPUT.FORMAT)
    if args.output:
        print(f"results in {args.output}/ (predictions.json, predictions.csv, annotated pictures)")


if __name__ == "__main__":
    main()
