#!/usr/bin/env python
"""Rows of configs trained with one budget from the same weights and evaluated alike: by default the
paper's Table 1 rows and the two-model baseline.

    python tools/export_model.py output/FOSS-DLA34-detector/model_final.pth output/detector.pth --detector-only
    python tools/research/run_ablations.py --detector output/detector.pth --max-iter 20000 --output output/ablations \\
        DATASETS.ROOT ../shared/data

Each row (a name in configs/paper/ such as Table1-tiling, or the path of any config, e.g. the
rows of configs/zoo/wild-ablation/) starts from the same weights (paper 4.3: the detector is
trained first) and trains for the same number of iterations and batch size; the learning rate
drops x0.1 at 62.5% and 87.5% of them (paper 4.2: epochs 50 and 70 of 80). Then
``tools/train_net.py --eval-only`` runs on the evaluation datasets. The table is rewritten after
every row (``ablations.md`` / ``ablations.json``), rows already trained or evaluated are not run
again, and a row that fails is reported and skipped. The trailing KEY VALUE overrides apply to every row (e.g.
the CPU sizes of configs/quick_schedules).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from tqdm import tqdm

from foss_d2.apps.cli import parse_foss_args
from foss_d2.config import get_foss_cfg
from foss_d2.utils.json_io import write_json_atomic, write_text_atomic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROWS = ("Table1-baseline", "Table1-intermediate", "Table1-tiling", "Table1-end2end", "two-models")
# (task, metric) per kind of evaluation data, in table order; missing figures print as "-".
GROUP_COLUMNS = (("age", "group_acc"), ("age", "group_1off"), ("age", "gender_acc"), ("bbox", "AP50"))
SINGLE_COLUMNS = (("age", "MAE"), ("age", "MAE_3_9"), ("age", "MAE_10_19"), ("age", "CS@5"), ("age", "gender_acc"))
# (settings key, column head): a column is shown when the rows differ in it.
SETTING_COLUMNS = (
    ("intermediate_feature", "feature"),
    ("tiling", "tiling"),
    ("end_to_end", "end-to-end"),
    ("crop_jitter", "crop jitter"),
    ("pixel_looks", "pixel looks"),
    ("age_balance", "age balance"),
)


def row_settings(config_file: str, opts) -> dict:
    cfg = get_foss_cfg(config_file, opts=opts)
    wild = cfg.INPUT.AUG.WILD
    return {
        "intermediate_feature": bool(cfg.MODEL.AGE_HEAD.INTERMEDIATE_FEATURE),
        "tiling": bool(cfg.INPUT.TILING.ENABLED),
        "end_to_end": not cfg.MODEL.FOSS.FREEZE_DETECTOR,
        "crop_jitter": any(j > 0 for j in cfg.MODEL.AGE_HEAD.CROP_JITTER),
        "pixel_looks": any(
            getattr(wild, k) > 0 for k in ("JPEG_PROB", "DOWNSCALE_PROB", "GREY_PROB", "OCCLUDER_PROB", "GAMMA_PROB")
        ),
        "age_balance": cfg.DATALOADER.AGE_BALANCE > 0,
        "batch": int(cfg.SOLVER.IMS_PER_BATCH),
    }


def row_config(row: str) -> str:
    """A row's config file: a path ending in .yaml, or a name in configs/paper/."""
    if row.endswith(".yaml"):
        return os.path.abspath(row)
    return os.path.join(ROOT, "configs", "paper", row + ".yaml")


def row_name(row: str) -> str:
    return os.path.basename(row)[: -len(".yaml")] if row.endswith(".yaml") else row


def schedule_opts(max_iter: int):
    return [
        "SOLVER.MAX_ITER",
        str(max_iter),
        "SOLVER.STEPS",
        f"({int(0.625 * max_iter)}, {int(0.875 * max_iter)})",
        "SOLVER.CHECKPOINT_PERIOD",
        str(max(1, max_iter // 5)),
    ]


def run_logged(cmd, log_path) -> int:
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        return subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def per_dataset(results: dict, datasets) -> dict:
    """train_net's results: {dataset: {task: {metric}}}, or {task: {metric}} for a single dataset."""
    if len(datasets) == 1 and datasets[0] not in results:
        return {datasets[0]: results}
    return results


def fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def markdown(records, datasets) -> str:
    varied = [
        (key, title)
        for key, title in SETTING_COLUMNS
        if len(records) == 1 or len({r.get("settings", {}).get(key) for r in records}) > 1
    ]
    head = ["row", *(title for _, title in varied), "iterations", "train min"]
    cols = []
    for ds in datasets:
        is_single = any(r.get("results", {}).get(ds, {}).get("age", {}).get("MAE") is not None for r in records)
        for task, key in SINGLE_COLUMNS if is_single else GROUP_COLUMNS:
            cols.append((ds, task, key))
            head.append(f"{ds} {key}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        s = r.get("settings", {})
        cells = [
            r["row"],
            *("yes" if s.get(k) else "no" for k, _ in varied),
            str(r.get("max_iter", "-")),
            fmt(r.get("train_minutes")),
        ]
        for ds, task, key in cols:
            cells.append(fmt(r.get("results", {}).get(ds, {}).get(task, {}).get(key)))
        if r.get("error"):
            cells[0] += f" ({r['error']})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides for every row")
    p.add_argument(
        "--weights",
        "--detector",
        dest="detector",
        required=True,
        help="weights every row starts from: a detector (export_model.py --detector-only) or a whole model",
    )
    p.add_argument("--max-iter", type=int, required=True, help="the equal training budget of every row")
    p.add_argument("--rows", nargs="+", default=list(ROWS), help="config names in configs/paper/ or config paths")
    p.add_argument("--datasets", nargs="+", default=["wider_face_val", "utkface_test"])
    p.add_argument("--output", default="output/ablations", help="folder for the rows' runs and the table")
    p.add_argument("--python", default=sys.executable)
    args = parse_foss_args(p, argv)

    if not os.path.isfile(args.detector):
        p.error(f"--weights {args.detector} does not exist")
    configs = {row_name(row): row_config(row) for row in args.rows}
    if len(configs) != len(args.rows):
        p.error("two --rows have the same name")
    missing = [c for c in configs.values() if not os.path.isfile(c)]
    if missing:
        p.error(f"no such ablation config: {', '.join(missing)}")
    os.makedirs(args.output, exist_ok=True)
    train_net = os.path.join(ROOT, "tools", "train_net.py")
    records = []
    for row in tqdm(configs, desc="ablation rows", unit="row"):
        out = os.path.abspath(os.path.join(args.output, row))
        os.makedirs(out, exist_ok=True)
        rec = {"row": row, "max_iter": args.max_iter, "settings": row_settings(configs[row], args.opts)}
        final = os.path.join(out, "model_final.pth")
        log = os.path.join(out, "run.log")
        timing = os.path.join(out, "train_minutes.json")
        if not os.path.isfile(final):
            t0 = time.time()
            cmd = [
                args.python,
                train_net,
                "--config-file",
                configs[row],
                *(["--resume"] if os.path.isfile(os.path.join(out, "last_checkpoint")) else []),
                "MODEL.WEIGHTS",
                os.path.abspath(args.detector),
                *schedule_opts(args.max_iter),
                *args.opts,
                "OUTPUT_DIR",
                out,
                # no evaluation at the end of training: the --eval-only step below evaluates
                # every row once, on --datasets
                "DATASETS.TEST",
                "()",
            ]
            if run_logged(cmd, log) != 0 or not os.path.isfile(final):
                rec["error"] = f"training failed, see {log}"
            else:
                write_json_atomic(timing, {"minutes": (time.time() - t0) / 60})
        if os.path.isfile(timing):
            rec["train_minutes"] = json.load(open(timing))["minutes"]
        results_path = os.path.join(out, "eval", "eval_results.json")
        if "error" not in rec and not os.path.isfile(results_path):
            ds = "(" + ",".join(repr(d) for d in args.datasets) + ",)"
            cmd = [
                args.python,
                train_net,
                "--config-file",
                configs[row],
                "--eval-only",
                "MODEL.WEIGHTS",
                final,
                *args.opts,
                "DATASETS.TEST",
                ds,
                "OUTPUT_DIR",
                os.path.join(out, "eval"),
            ]
            if run_logged(cmd, log) != 0 or not os.path.isfile(results_path):
                rec["error"] = f"evaluation failed, see {log}"
        if os.path.isfile(results_path):
            rec["results"] = per_dataset(json.load(open(results_path)), args.datasets)
        records.append(rec)
        write_json_atomic(os.path.join(args.output, "ablations.json"), records, indent=1)
        table = markdown(records, args.datasets)
        write_text_atomic(os.path.join(args.output, "ablations.md"), table)
    print(table)
    return 0 if not any(r.get("error") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
