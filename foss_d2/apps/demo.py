"""FOSS-D2 demo: draw every face with "age, gender" on images, folders, globs, videos or a webcam.

    foss-d2 demo --input demo/family.jpg --output output/demo          # the shipped model
    foss-d2 demo --input photos/ "more/*.png" --output output/demo     # many inputs, progress bar
    foss-d2 demo --video-input clip.mp4 --output output/demo
    foss-d2 demo --config-file cfg.yaml --input img.jpg MODEL.WEIGHTS model.pth

(``python tools/demo.py`` takes the same arguments.) With --output, the pictures with the faces
drawn go to OUT/ (at most 2048 px on their longer side, --draw-max-side; none with --no-draw), and
OUT/predictions.jsonl (one line per image or frame, written as each finishes: key, size, which
pixels the boxes are in, faces), OUT/predictions.json ({input path relative to its --input
folder: [faces]}), OUT/predictions.csv (one row per face) and OUT/skipped.json (unreadable,
non-image or over --max-pixels inputs, with the reason) are written; boxes are in original-image
pixels (EXIF orientation applied). A bad file is reported and skipped; the batch goes on, and a run
where nothing could be processed exits 1. --output may not be, or hold, an input; an OUT with an
earlier run's results is refused unless --resume (finish it: skip what its journal holds) or
--overwrite (replace it). SIGTERM or Ctrl-C close the files before the run exits (143 / 130).
"""

import os

from detectron2.utils.logger import setup_logger

from .cli import foss_argument_parser, parse_foss_args
from .runner import add_run_arguments, build_predictor, config_from_args, one_kind_of_input, prepare_run, run_inputs


def get_parser(prog=None):
    p = foss_argument_parser(__doc__, prog)
    p.add_argument("--input", nargs="+", help="image files, folders or globs")
    p.add_argument("--video-input", help="a video file")
    p.add_argument(
        "--webcam",
        action="store_true",
        help="camera 0: with --output its frames are written (Ctrl-C stops); without, shown in a window "
        "(Esc stops; needs an OpenCV with GUI)",
    )
    p.add_argument("--output", help="output folder (pictures with the faces drawn + predictions.json/.csv)")
    add_run_arguments(p)  # --confidence-threshold, --max-pixels, --draw-max-side, --no-draw, --backend, --workers, ...
    return p


def opencv_has_gui() -> bool:
    """Whether cv2.imshow can open a window (opencv-python-headless, which setup.py installs, cannot)."""
    import re

    import cv2

    return not re.search(r"GUI:\s+NONE", cv2.getBuildInformation())


def main(argv=None, prog=None):
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    setup_logger(name="foss_d2")
    one_kind_of_input(parser, {"--input": args.input, "--video-input": args.video_input, "--webcam": args.webcam})
    if args.webcam and not args.output and not opencv_has_gui():
        parser.error(
            "--webcam without --output shows the frames in a window, which this OpenCV build (headless) cannot "
            "open: give --output to write the annotated video instead (Ctrl-C stops)"
        )
    cfg = config_from_args(parser, args, need_weights=True)  # a bad config is a one-line error
    items, skipped = prepare_run(parser, args, args.output, cfg=cfg)  # output and input checks, before the model loads
    predictor = build_predictor(cfg, args, len(items))
    s = run_inputs(predictor, args, args.output, cfg.INPUT.FORMAT, items, skipped)
    if args.output:
        if args.input:
            made = "" if args.no_draw else ", pictures with the faces drawn"
        else:
            tracked = os.path.isfile(os.path.join(args.output, "people.json"))
            thumbs = os.path.isdir(os.path.join(args.output, "thumbnails"))  # none when nobody was kept
            sheet = os.path.isfile(os.path.join(args.output, "people_sheet.jpg"))
            made = ("" if args.no_draw else ", the annotated video") + (
                ", people.json/.csv" + (", people_sheet.jpg" if sheet else "") + (" and thumbnails/" if thumbs else "")
                if tracked
                else ""
            )
        print(
            f"{s.done} new results, {s.before} from before, {s.skipped} skipped: in {args.output}/ "
            f"(predictions.jsonl/.json/.csv{', skipped.json' if s.skipped else ''}{made})"
        )


if __name__ == "__main__":
    main()
