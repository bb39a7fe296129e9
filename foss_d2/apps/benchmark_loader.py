"""Training-loader throughput: images per second the data pipeline delivers, without the model.

A GPU run is loader-bound when the loader delivers fewer images per second than the GPU trains on
(issue 16: the detector stage ran at 155 images/s on an H200 with 12 workers). This times the
loader of a training config in-process (``DATALOADER.NUM_WORKERS 0``) in CPU time, i.e. per CPU
core, as it is, with the decoded-image cache (``INPUT.CACHE_DECODED``) and with the colour jitter
moved to the model's device (``INPUT.AUG.COLOR_ON_DEVICE``), alternating the variants in one run,
and says how many workers a target rate needs at that per-core speed.

    foss-d2 benchmark-loader --config-file configs/zoo/step1-detector.yaml DATASETS.ROOT ../shared/data

(``python tools/benchmark_loader.py`` takes the same arguments.) Writes OUT/loader.json and .md.
"""

import os
import platform
import statistics
import time

import torch

from ..data import build_foss_train_loader
from ..utils.json_io import write_report
from .cli import config_from_args, dataset_folder_error, foss_argument_parser, parse_foss_args, register_datasets
from .runner import non_negative_int, positive_int, positive_number


def get_parser(prog=None):
    p = foss_argument_parser(__doc__, prog, config_help="a training config (default: the shipped model's)")
    p.add_argument("--batches", type=positive_int, default=6, help="timed batches per variant and round")
    p.add_argument("--rounds", type=positive_int, default=3, help="rounds; the variants alternate within each")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="untimed batches per variant first")
    p.add_argument("--target", type=positive_number, default=775.0, help="images/s to size the workers for (5x 155)")
    p.add_argument("--output", default="output/benchmark_loader")
    return p


# name -> (INPUT.CACHE_DECODED, INPUT.AUG.COLOR_ON_DEVICE)
VARIANTS = {
    "files": (False, False),
    "decoded cache": (True, False),
    "decoded cache + colour on device": (True, True),
}


def _time_batches(it, n):
    """Images per CPU-second of this process: the loader's cost per core, whatever else the
    machine runs at the time (a shared machine's wall clock would measure its neighbours)."""
    t0 = time.process_time()
    images = sum(len(next(it)) for _ in range(n))
    return images / (time.process_time() - t0)


def run(cfg_base, batches, rounds, warmup):
    """{variant: [images per CPU-second, per round]}, the variants alternating."""
    loaders = {}
    for name, (cached, colour_on_device) in VARIANTS.items():
        cfg = cfg_base.clone()
        cfg.defrost()
        cfg.DATALOADER.NUM_WORKERS = 0
        cfg.INPUT.CACHE_DECODED = cached
        cfg.INPUT.AUG.COLOR_ON_DEVICE = colour_on_device
        cfg.freeze()
        t0 = time.perf_counter()
        it = iter(build_foss_train_loader(cfg))
        build_s = time.perf_counter() - t0
        for _ in range(warmup):
            next(it)
        loaders[name] = (it, build_s)
    rates = {k: [] for k in loaders}
    order = list(loaders)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            rates[name].append(_time_batches(loaders[name][0], batches))
    return rates, {k: v[1] for k, v in loaders.items()}


def run_header(args, cfg):
    """What a training benchmark ran on: the config, its overrides and data, the batch, the machine."""
    return {
        "config": args.config_file or "the shipped model's (foss_d2/model_zoo/FOSS-default.yaml)",
        "opts": args.opts,
        "datasets": list(cfg.DATASETS.TRAIN),
        "batch": cfg.SOLVER.IMS_PER_BATCH,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def main(argv=None, prog=None):
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    cfg = config_from_args(parser, args)
    register_datasets(parser, cfg)
    torch.set_num_threads(1)
    try:
        rates, build_s = run(cfg, args.batches, args.rounds, args.warmup)
    except FileNotFoundError as e:  # a built-in dataset's folder, most often: DATASETS.ROOT
        dataset_folder_error(parser, cfg, e)
    report = {
        **run_header(args, cfg),
        "images_per_s_per_core": {k: statistics.median(v) for k, v in rates.items()},
        "rounds": rates,
        "loader_build_s": build_s,
        "target": args.target,
    }
    report["workers_for_target"] = {
        k: int(-(-args.target // v)) for k, v in report["images_per_s_per_core"].items() if v > 0
    }
    lines = [
        f"Loader of `{report['config']}` {' '.join(args.opts)}; batch {report['batch']}, one process, "
        f"CPU time, torch threads 1, {report['cores']} cores ({report['cpu']}), {report['date']}; "
        f"median of {args.rounds} rounds of {args.batches} batches, variants alternating.",
        "",
        "| images from | images/s per core (median) | rounds | loader start-up (s) | workers for "
        f"{args.target:.0f} images/s |",
        "|---|---|---|---|---|",
    ]
    for k, v in report["images_per_s_per_core"].items():
        rounds_txt = ", ".join(f"{x:.1f}" for x in rates[k])
        lines.append(
            f"| {k} | {v:.1f} | {rounds_txt} | {build_s[k]:.1f} | {report['workers_for_target'].get(k, '-')} |"
        )
    write_report(args.output, "loader", report, lines)


if __name__ == "__main__":
    main()
