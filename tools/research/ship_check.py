#!/usr/bin/env python
"""Is a candidate model better than the shipped one on every figure? (issue 16, item 5)

    python tools/research/ship_check.py output/eval_default output/cand/eval [more candidates ...] \\
        --output output/ship_check

Each argument is a ``tools/train_net.py --eval-only`` OUTPUT_DIR (or its ``eval_results.json``),
the first the shipped model's, run on the same datasets (``wider_face_val``, ``utkface_test``,
``fgnet_test``; a dataset missing from a run leaves its figures out). The table lists the figures
of docs/MODEL_ZOO.md's table and FG-NET's MAE, each candidate's value and its difference to the
shipped one, and a last row that says whether the candidate is not worse on every figure (equal
counts as not worse: a candidate with the shipped detector has the same detection figures).
Writes ``ship_check.md`` / ``ship_check.json`` under --output; exits 0 only if every candidate
passes. On WIDER val's 300-odd labelled found faces a point is about three faces: the table gives
the differences so that a reader sees how close a verdict is.
"""

import argparse
import json
import os
import sys

from foss_d2.evaluation.results import eval_figure, load_eval_results
from foss_d2.utils.json_io import write_report

# (dataset, task, metric, title, higher is better)
FIGURES = (
    ("wider_face_val", "bbox", "AP50", "WIDER val: face AP50", True),
    ("wider_face_val", "age", "detection_rate", "WIDER val: faces found (%)", True),
    ("wider_face_val", "age", "group_acc", "WIDER val, found faces: age-group acc (%)", True),
    ("wider_face_val", "age", "gender_acc", "WIDER val, found faces: gender acc (%)", True),
    ("utkface_test", "age", "MAE", "UTKFace held out: MAE", False),
    ("utkface_test", "age", "gender_acc", "UTKFace held out: gender acc (%)", True),
    ("fgnet_test", "age", "MAE", "FG-NET test: MAE", False),
)

# a re-exported or blended checkpoint rounds the detector's fp16 weights anew: differences of
# that size are not a change in the model
TOLERANCE = 0.005


def load_results(path: str) -> dict:
    """train_net's {dataset: {task: {metric: value}}} from a run folder or its eval_results.json."""
    return load_eval_results(path, {dataset for dataset, *_ in FIGURES})


def compare(shipped: dict, candidates: dict, tolerance: float = TOLERANCE) -> dict:
    """Per candidate name: each figure's value, its difference to the shipped value and whether it
    is not worse (by more than ``tolerance``); ``passes`` when every figure that both runs have is
    not worse (and they share one). A figure the shipped run has and the candidate's run of that
    dataset lacks (null: a NaN) is worse."""
    out = {}
    for name, res in candidates.items():
        rows, shared = [], 0
        for dataset, task, metric, title, higher in FIGURES:
            base, value = eval_figure(shipped, dataset, task, metric), eval_figure(res, dataset, task, metric)
            row = {"figure": title, "shipped": base, "value": value, "diff": None, "not_worse": None}
            if base is not None and value is not None:
                shared += 1
                row["diff"] = value - base
                row["not_worse"] = (value - base if higher else base - value) >= -tolerance
            elif base is not None and dataset in res:
                # evaluated but without the figure (a NaN written as null: a diverged age network)
                row["not_worse"] = False
            rows.append(row)
        out[name] = {"figures": rows, "passes": shared > 0 and all(r["not_worse"] is not False for r in rows)}
    return out


def fmt(value, signed=False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def markdown(shipped_name: str, report: dict) -> list:
    names = list(report)
    head = ["figure", shipped_name, *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (_, _, _, title, higher) in enumerate(FIGURES):
        base = next(iter(report.values()))["figures"][i]["shipped"]
        cells = [title + ("" if higher else " (lower is better)"), fmt(base)]
        for name in names:
            r = report[name]["figures"][i]
            mark = "" if r["not_worse"] is None else (" ok" if r["not_worse"] else " **worse**")
            cells.append("-" if r["value"] is None else f"{fmt(r['value'])} ({fmt(r['diff'], True)}){mark}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        "| not worse on every figure | | " + " | ".join("yes" if report[n]["passes"] else "no" for n in names) + " |"
    )
    return lines


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shipped", help="the shipped model's --eval-only OUTPUT_DIR (or its eval_results.json)")
    p.add_argument("candidates", nargs="+", help="the candidates' --eval-only OUTPUT_DIRs")
    p.add_argument("--output", default="output/ship_check", help="folder for ship_check.md / .json")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help="differences this small count as equal")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        shipped = load_results(args.shipped)
        candidates = {path.rstrip("/"): load_results(path) for path in args.candidates}
    except (FileNotFoundError, json.JSONDecodeError) as e:
        print(f"ship_check: {e}", file=sys.stderr)
        return 2
    report = compare(shipped, candidates, args.tolerance)
    os.makedirs(args.output, exist_ok=True)
    write_report(args.output, "ship_check", report, markdown(args.shipped.rstrip("/"), report))
    return 0 if all(r["passes"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
