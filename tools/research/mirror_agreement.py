#!/usr/bin/env python
"""How far apart a model reads a face and its mirror image (issue 16), from two evaluation runs.

    python tools/research/mirror_agreement.py output/eval output/eval-nomirror --output output/mirror

The first argument is a ``tools/train_net.py --eval-only`` OUTPUT_DIR with MODEL.AGE_HEAD.TEST_FLIP
on, the second the same weights and settings with it off. With the mirror average each face's age
distribution is the mean of the crop's and the mirror image's, so its mean age is the mean of the
two readings (the "mean" AGE_READOUT is linear in the distribution): the mirror image alone reads
2 x averaged - plain years, and the two readings differ by 2 x |averaged - plain|. The detector
does not depend on TEST_FLIP, so both runs list the same found faces in the same order. Per dataset
(``inference/<dataset>/face_predictions.json``): the mean, median and 90th percentile of that
difference in years over the found faces, and the share of faces whose P(female) (averaged the
same way) crosses 0.5 between the plain crop and its mirror image. Writes ``mirror_agreement.md``
and ``.json`` under --output.
"""

import argparse
import glob
import json
import os

import numpy as np
import yaml

from foss_d2.utils.json_io import write_report

# what may differ between the two runs: the mirror average itself, and where and on what they ran
FREE_KEYS = {"OUTPUT_DIR", "MODEL.AGE_HEAD.TEST_FLIP", "DATASETS.TEST"}


def run_config(run: str) -> dict:
    """A run's config.yaml flattened to {"MODEL.AGE_HEAD.TEST_FLIP": value, ...} ({} without one)."""
    path = os.path.join(run, "config.yaml")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        cfg = yaml.safe_load(f)

    def flat(node, prefix=""):
        for k, v in node.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    return dict(flat(cfg))


def check_runs(averaged: dict, plain: dict) -> None:
    """Raises ValueError unless the two configs' common keys differ only in FREE_KEYS, the first has the mirror
    average on and the second off, and both read ages as the mean."""
    if not averaged and not plain:
        return
    if not averaged or not plain:
        raise ValueError("one run has a config.yaml and the other none: not two runs of train_net.py --eval-only")
    if not averaged.get("MODEL.AGE_HEAD.TEST_FLIP") or plain.get("MODEL.AGE_HEAD.TEST_FLIP"):
        raise ValueError("the first run needs MODEL.AGE_HEAD.TEST_FLIP True and the second False")
    # a key only one of them has is one that another version of FOSS-D2 added: not a difference
    differ = sorted(k for k in set(averaged) & set(plain) if k not in FREE_KEYS and averaged[k] != plain[k])
    if differ:
        raise ValueError(f"the runs differ in {', '.join(differ)}: not the same weights and settings")
    if averaged.get("MODEL.AGE_HEAD.AGE_READOUT", "mean") != "mean":
        raise ValueError("the mirror image's reading is only recoverable from the mean AGE_READOUT")


def found_faces(run: str, dataset: str) -> list:
    with open(os.path.join(run, "inference", dataset, "face_predictions.json")) as f:
        return json.load(f)


def agreement(averaged: list, plain: list) -> dict:
    """The figures of one dataset from its two runs' face rows (``face_predictions.json``)."""
    if len(averaged) != len(plain):
        raise ValueError(f"the runs list {len(averaged)} and {len(plain)} faces: not the same dataset")
    for a, p in zip(averaged, plain):
        if (a.get("image_id"), a.get("age")) != (p.get("image_id"), p.get("age")):
            raise ValueError(
                f"the runs list their faces in another order ({a.get('image_id')} against {p.get('image_id')})"
            )
        if a["detected"] != p["detected"]:
            raise ValueError(
                f"the runs found different faces in {a.get('image_id')}: not the same detector and settings"
            )
    pairs = [(a, p) for a, p in zip(averaged, plain) if a["detected"]]
    if not pairs:
        return {"faces": 0}
    diff = np.array([2 * abs(a["pred_age"] - p["pred_age"]) for a, p in pairs])
    # the mirror image's P(female): 2 x averaged - plain; the gender flips where the two sit on
    # either side of 0.5
    crossed = [
        (p["p_female"] > 0.5) != (2 * a["p_female"] - p["p_female"] > 0.5)
        for a, p in pairs
        if a.get("p_female") is not None and not np.isnan(a["p_female"])
    ]
    out = {
        "faces": len(pairs),
        "mean_years": round(float(diff.mean()), 3),
        "median_years": round(float(np.median(diff)), 3),
        "p90_years": round(float(np.percentile(diff, 90)), 3),
    }
    if crossed:
        out["gender_flips_pct"] = round(100 * sum(crossed) / len(crossed), 2)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("averaged", help="an --eval-only OUTPUT_DIR run with MODEL.AGE_HEAD.TEST_FLIP True")
    p.add_argument("plain", help="the same weights and settings with MODEL.AGE_HEAD.TEST_FLIP False")
    p.add_argument("--output", required=True, help="folder for mirror_agreement.md / .json")
    args = p.parse_args(argv)
    try:
        check_runs(run_config(args.averaged), run_config(args.plain))
    except ValueError as e:
        p.error(str(e))
    datasets = sorted(
        os.path.basename(os.path.dirname(d)) for d in glob.glob(os.path.join(args.averaged, "inference", "*", ""))
    )
    datasets = [
        d for d in datasets if os.path.isfile(os.path.join(args.plain, "inference", d, "face_predictions.json"))
    ]
    if not datasets:
        p.error("the two runs share no dataset with face_predictions.json")
    report = {d: agreement(found_faces(args.averaged, d), found_faces(args.plain, d)) for d in datasets}
    lines = [
        f"Plain crop against its mirror image: {args.averaged} (averaged) and {args.plain} (plain).",
        "",
        "| dataset | found faces | years apart: mean / median / 90th pct | P(female) on either side of 0.5 |",
        "|---|---|---|---|",
    ]
    for d, r in report.items():
        years = f"{r['mean_years']} / {r['median_years']} / {r['p90_years']}" if r["faces"] else "-"
        flips = f"{r['gender_flips_pct']}%" if "gender_flips_pct" in r else "-"
        lines.append(f"| {d} | {r['faces']} | {years} | {flips} |")
    write_report(args.output, "mirror_agreement", report, lines)
    return report


if __name__ == "__main__":
    main()
