#!/usr/bin/env python
"""Inference time of one model under its test-time settings, in one run on the same photos.

    python tools/benchmark_settings.py --inputs demo/family.jpg "../shared/data/widerface/WIDER_val/images/*/*.jpg" \\
        --max-inputs 12 --output docs/benchmark_settings

Variants are config overrides of the model's config (the shipped one by default): the shipped
settings (a 480 px detector pass plus an 800 px one for small faces, answers averaged with the
mirror image), the 480 px pass alone (the paper's), mirror off, both, and the detector's flip test
(MODEL.CENTERNET.TEST_FLIP, off in the shipped config) added. For every photo and
repeat the variants run one after the other in a rotating order, so that machine noise hits them
alike. Reported per variant: the median seconds per photo (over repeats, then over photos), the
median over photos of its time divided by the first variant's, and the faces found. Writes
settings.json and settings.md under --output.
"""
import argparse
import os
import platform
import statistics
import sys
import time

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from foss_d2 import FaceAgeEstimator  # noqa: E402
from foss_d2.engine import expand_inputs  # noqa: E402
from foss_d2.utils import write_json_atomic  # noqa: E402

VARIANTS = {
    "shipped: 480 + 800 px passes, mirror on": [],
    "480 px pass only": ["MODEL.FOSS.TEST_SIZES", "[]"],
    "mirror off": ["MODEL.AGE_HEAD.TEST_FLIP", "False"],
    "480 px only, mirror off": ["MODEL.FOSS.TEST_SIZES", "[]", "MODEL.AGE_HEAD.TEST_FLIP", "False"],
    "detector flip test on": ["MODEL.CENTERNET.TEST_FLIP", "True"],
}


def summarize(times, faces):
    """times[variant][photo] = seconds per repeat -> per-variant medians and ratios to the first variant."""
    names = list(times)
    per_photo = {n: [statistics.median(t) for t in times[n]] for n in names}
    base = per_photo[names[0]]
    return {
        n: {
            "median_s": statistics.median(per_photo[n]),
            "ratio_to_first": statistics.median(t / b for t, b in zip(per_photo[n], base)),
            "faces": sum(faces[n]),
        }
        for n in names
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", nargs="+", default=[os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")])
    p.add_argument("--max-inputs", type=int, default=12, help="the first N photos of --inputs")
    p.add_argument("--config-file", default=None, help="default: the shipped model's")
    p.add_argument("--weights", default=None, help="default: the shipped model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", default="docs/benchmark_settings")
    args = p.parse_args()
    paths = [path for path, _ in expand_inputs(args.inputs)][: args.max_inputs]
    if not paths:
        p.error("no input photos")
    ests = {n: FaceAgeEstimator(args.config_file, args.weights, args.device, opts=o) for n, o in VARIANTS.items()}
    first = next(iter(ests.values()))
    photos = [first.to_array(path) for path in paths]
    for est in ests.values():  # warm-up: first-call allocations stay out of the timings
        est(photos[0])
    names = list(ests)
    times = {n: [[] for _ in photos] for n in names}
    faces = {n: [0] * len(photos) for n in names}
    for r in tqdm(range(args.repeats), desc="repeats"):
        for i, photo in enumerate(photos):
            shift = (r + i) % len(names)
            for n in names[shift:] + names[:shift]:
                t0 = time.perf_counter()
                found = ests[n](photo)
                times[n][i].append(time.perf_counter() - t0)
                faces[n][i] = len(found)
    report = {
        "photos": paths,
        "repeats": args.repeats,
        "device": args.device,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "variants": {n: {"opts": VARIANTS[n], **s} for n, s in summarize(times, faces).items()},
        "seconds": times,
    }
    os.makedirs(args.output, exist_ok=True)
    write_json_atomic(os.path.join(args.output, "settings.json"), report, indent=1)
    lines = [
        f"{len(paths)} photos x {args.repeats} repeats on {args.device} ({report['machine']}), {report['date']}",
        "",
        "| variant | median s / photo | time / shipped (median over photos) | faces found |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {v['median_s']:.3f} | {v['ratio_to_first']:.2f} | {v['faces']} |" for n, v in report["variants"].items()]
    with open(os.path.join(args.output, "settings.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
