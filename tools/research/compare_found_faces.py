#!/usr/bin/env python
"""Two models on the same labelled faces: when one detector finds more faces than the other, its
accuracy over *found* faces mixes two things, how it reads the faces both find and how it reads the
(usually harder) faces only it finds. This splits them.

    python tools/research/compare_found_faces.py output/eval_a/inference/wider_face_val \\
        output/eval_b/inference/wider_face_val --names shipped new --output output/compare_found

Reads each folder's ``face_predictions.json`` (written by the age evaluator of ``train_net.py
--eval-only``: one row per labelled face, in the dataset's order) and reports, for the faces both
found, only A found and only B found: their count and each model's gender accuracy and age-group
accuracy where the face has that label. Writes OUT/compare.json and OUT/compare.md.
"""

import argparse
import json
import os

from foss_d2.data.datasets.wider_face import WIDER_GROUP_LOWER
from foss_d2.evaluation.age_evaluator import age_to_group, gender_right
from foss_d2.utils.json_io import write_json_atomic, write_text_atomic


def _group_ok(r, lower) -> bool:
    return age_to_group(r["pred_age"], lower) == r["age_group"]


def _acc(rows, ok):
    return round(100.0 * sum(map(ok, rows)) / len(rows), 2) if rows else None


def compare(rows_a, rows_b, group_lower=WIDER_GROUP_LOWER) -> dict:
    """Per subset ("both", "only A", "only B"): faces, and per model ("A", "B") the gender and
    age-group accuracy over the faces of that subset it found that carry the label."""
    if len(rows_a) != len(rows_b):
        raise ValueError(f"the two runs have {len(rows_a)} and {len(rows_b)} faces: not the same dataset")
    for i, (a, b) in enumerate(zip(rows_a, rows_b)):
        if (a["image_id"], a["gender"], a["age_group"]) != (b["image_id"], b["gender"], b["age_group"]):
            raise ValueError(f"face {i} differs between the runs ({a['image_id']} / {b['image_id']})")
    subsets = {
        "both": [(a, b) for a, b in zip(rows_a, rows_b) if a["detected"] and b["detected"]],
        "only A": [(a, b) for a, b in zip(rows_a, rows_b) if a["detected"] and not b["detected"]],
        "only B": [(a, b) for a, b in zip(rows_a, rows_b) if b["detected"] and not a["detected"]],
    }
    res = {}
    for name, pairs in subsets.items():
        entry = {"faces": len(pairs)}
        for side, k in (("A", 0), ("B", 1)):
            found = [p[k] for p in pairs if p[k]["detected"]]
            if not found:
                continue
            gendered = [r for r in found if r["gender"] >= 0]
            grouped = [r for r in found if r["age_group"] >= 0]
            entry[side] = {
                "gender_faces": len(gendered),
                "gender_acc": _acc(gendered, gender_right),
                "group_faces": len(grouped),
                "group_acc": _acc(grouped, lambda r: _group_ok(r, group_lower)),
            }
        res[name] = entry
    return res


def to_markdown(res, names) -> str:
    lines = [
        f"| faces found by | faces | gender: {names[0]} / {names[1]} | age group: {names[0]} / {names[1]} |",
        "|---|---|---|---|",
    ]
    label = {"both": "both", "only A": f"{names[0]} only", "only B": f"{names[1]} only"}

    def cell(entry, key, n_key):
        vals = [entry[s][key] if s in entry else None for s in ("A", "B")]
        counts = [entry[s][n_key] for s in ("A", "B") if s in entry]
        shown = " / ".join("-" if v is None else f"{v:.1f}%" for v in vals)
        return f"{shown} ({max(counts) if counts else 0} labelled)"

    for key, entry in res.items():
        lines.append(
            f"| {label[key]} | {entry['faces']} | {cell(entry, 'gender_acc', 'gender_faces')} | "
            f"{cell(entry, 'group_acc', 'group_faces')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a", help="an evaluator output folder holding face_predictions.json")
    ap.add_argument("run_b")
    ap.add_argument("--names", nargs=2, default=("A", "B"), help="the two models' names in the table")
    ap.add_argument("--output", required=True)
    args = ap.parse_args(argv)
    rows = []
    for run in (args.run_a, args.run_b):
        path = os.path.join(run, "face_predictions.json")
        if not os.path.isfile(path):
            ap.error(f"no face_predictions.json in {run} (the folder of one dataset under <eval>/inference/)")
        with open(path) as f:
            rows.append(json.load(f))
    try:
        res = compare(*rows)
    except ValueError as e:
        ap.error(str(e))
    os.makedirs(args.output, exist_ok=True)
    write_json_atomic(os.path.join(args.output, "compare.json"), {"names": list(args.names), **res}, indent=1)
    md = to_markdown(res, args.names)
    write_text_atomic(os.path.join(args.output, "compare.md"), md)
    print(md, end="")


if __name__ == "__main__":
    main()
