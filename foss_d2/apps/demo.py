"""FOSS-D2 demo: draw every face with "age, gender" on images, folders, globs, videos or a webcam.

    foss-d2 demo --input demo/family.jpg --output output/demo          # the shipped model
    foss-d2 demo --input photos/ "more/*.png" --output output/demo     # many inputs, progress bar
    foss-d2 demo --video-input clip.mp4 --output output/demo
    foss-d2 demo --config-file cfg.yaml --input img.jpg MODEL.WEIGHTS model.pth

(``python tools/demo.py`` takes the same arguments.) With --output, the pictures with the faces
drawn go to OUT/, and OUT/predictions.json ({input path relative to its --input folder: [faces]}),
OUT/predictions.csv (one row per face) and OUT/skipped.json are written; boxes are in
original-image pixels. A bad file is reported and skipped; the batch goes on.
"""

import sys

from detectron2.utils.logger import setup_logger

from ..engine import FOSSPredictor, get_foss_cfg
from .cli import foss_argument_parser, parse_foss_args
from .runner import expand_inputs, run_images, run_video


def get_parser(prog=None):
    p = foss_argument_parser(__doc__, prog)
    p.add_argument("--input", nargs="+", help="image files, folders or globs")
    p.add_argument("--video-input", help="a video file")
    p.add_argument("--webcam", action="store_true", help="camera 0; press Esc to stop")
    p.add_argument("--output", help="output folder (pictures with the faces drawn + predictions.json/.csv)")
    p.add_argument("--confidence-threshold", type=float, default=None, help="face score threshold")
    return p


def main(argv=None, prog=None):
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    setup_logger(name="foss_d2")
    if not (args.input or args.video_input or args.webcam):
        parser.error("give --input, --video-input or --webcam")
    try:
        cfg = get_foss_cfg(args.config_file, opts=args.opts, confidence_threshold=args.confidence_threshold)
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
        print(f"results in {args.output}/ (predictions.json, predictions.csv, pictures with the faces drawn)")


if __name__ == "__main__":
    main()
