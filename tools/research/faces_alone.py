#!/usr/bin/env python
"""Each face of a photo read twice: in the photo, and cut out as a close-up (the face and
``--margin`` x its longer side around its centre, as UTKFace's 200 px crops frame a face). If a
face is read as an adult in both, the cause is the face's look, not the group photo around it.

    python tools/research/faces_alone.py --input demo/family.jpg --output output/faces_alone

Prints one line a face and writes OUT/faces_alone.json. Config overrides (KEY VALUE) go last.
"""

import os

import cv2

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.engine import FaceAgeEstimator
from foss_d2.utils.json_io import write_json_atomic


def cut_out(img, box, margin: float):
    """The square of side 2 x ``margin`` x the box's longer side around its centre, clipped."""
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, margin * max(x2 - x1, y2 - y1)
    h, w = img.shape[:2]
    return img[max(0, int(cy - half)) : min(h, int(cy + half)), max(0, int(cx - half)) : min(w, int(cx + half))]


def main(argv=None):
    p = foss_argument_parser(description=__doc__)
    p.add_argument("--input", required=True, help="a photo")
    p.add_argument("--margin", type=float, default=0.75, help="half the close-up's side, in face sizes")
    p.add_argument("--output", default=None, help="folder for faces_alone.json")
    args = parse_foss_args(p, argv)
    img = cv2.imread(args.input)
    if img is None:
        p.error(f"cannot read {args.input}")
    est = FaceAgeEstimator(args.config_file, opts=args.opts)
    rows = []
    for f in est(img):
        crop = cut_out(img, f["box"], args.margin)
        found = est(crop)
        alone = max(found, key=lambda g: g["score"]) if found else None
        rows.append({"in_photo": f, "close_up_px": list(crop.shape[:2]), "alone": alone})
        said = f"{alone['age']:.0f} {alone['gender']}" if alone else "no face found"
        box = [round(v) for v in f["box"]]
        print(f"{box} score {f['score']:.2f}: in the photo {f['age']:.0f} {f['gender']}, alone {said}")
    if args.output:
        write_json_atomic(os.path.join(args.output, "faces_alone.json"), {"input": args.input, "faces": rows}, indent=1)


if __name__ == "__main__":
    main()
