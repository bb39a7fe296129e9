"""Training-step cost: CPU-seconds per step of a training config on its own data, as this project
trained before 2026-12-03 (CenterNet's size and offset heads run densely, as in CenterNet's reference
implementation, and every tensor channels-first) against the heads run at the faces' centres only
(``CenterNet.sparse_train``) and then the weights channels-last as well (``MODEL.FOSS.CHANNELS_LAST``);
both are the defaults now.

All variants train the same model on the same batches, drawn once from the config's loader; one
torch thread and CPU time, so that other jobs on a shared machine cost the measurement little;
the variants alternate within each round. The optimizer's learning rate is 0, so every variant
sees the same weights and, with the same random draws, the first batch's losses must agree (reported).

    foss-d2 benchmark-train --config-file configs/zoo/next-detector-cpu.yaml DATASETS.ROOT output/compact \\
        MODEL.WEIGHTS foss_d2/model_zoo/foss_default.pth

(``python tools/benchmark_train.py`` takes the same arguments.) Writes OUT/train.json and .md.
"""

import statistics
import time

import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from ..data import build_foss_train_loader
from ..utils.json_io import write_report
from .benchmark_loader import run_header
from .cli import config_from_args, dataset_folder_error, foss_argument_parser, parse_foss_args, register_datasets
from .runner import positive_int

# name -> (CenterNet.sparse_train, channels-last weights)
VARIANTS = {
    "dense size/offset heads, channels-first (before)": (False, False),
    "heads at the centres, channels-first": (True, False),
    "heads at the centres, channels-last": (True, True),
}


def set_variant(model, name):
    sparse, channels_last = VARIANTS[name]
    model.proposal_generator.sparse_train = sparse
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def get_parser(prog=None):
    p = foss_argument_parser(__doc__, prog, config_help="a training config (default: the shipped model's)")
    p.add_argument(
        "--batches", type=positive_int, default=3, help="distinct batches, each timed once per round and variant"
    )
    p.add_argument("--rounds", type=positive_int, default=3, help="rounds; the variants alternate within each")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--output", default="output/benchmark_train")
    return p


def _step(model, opt, batch):
    """One training step; (CPU-seconds, {loss: value})."""
    t0 = time.process_time()
    losses = model(batch)
    opt.zero_grad()
    sum(losses.values()).backward()
    opt.step()
    return time.process_time() - t0, {k: v.item() for k, v in losses.items()}


def run(model, batches, rounds):
    """{variant: [CPU-seconds per step]} and {variant: the first batch's losses}."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.0)
    names = list(VARIANTS)
    times = {n: [] for n in names}
    first_losses = {}
    model.train()
    for n in names:  # warm-up: first-call allocations stay out of the timings
        set_variant(model, n)
        torch.manual_seed(0)  # the same dropout and crop jitter for every variant's first batch
        first_losses[n] = _step(model, opt, batches[0])[1]
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            set_variant(model, n)
            times[n].extend(_step(model, opt, b)[0] for b in batches)
    return times, first_losses


def main(argv=None, prog=None):
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    # a few batches: the decoded-picture cache would decode the whole training set for nothing
    base_opts = ["DATALOADER.NUM_WORKERS", "0", "INPUT.CACHE_DECODED", "False", "MODEL.DEVICE", "cpu"]
    cfg = config_from_args(parser, args, opts_before=base_opts)
    register_datasets(parser, cfg)
    torch.set_num_threads(args.threads)
    model = build_model(cfg)
    if not hasattr(model.proposal_generator, "sparse_train"):
        raise SystemExit(f"benchmark-train: {type(model.proposal_generator).__name__} has no sparse_train switch")
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    try:
        it = iter(build_foss_train_loader(cfg))
        batches = [next(it) for _ in range(args.batches)]
    except FileNotFoundError as e:  # a built-in dataset's folder, most often: DATASETS.ROOT
        dataset_folder_error(parser, cfg, e)
    times, first_losses = run(model, batches, args.rounds)
    base = statistics.median(times[next(iter(VARIANTS))])
    batch = cfg.SOLVER.IMS_PER_BATCH
    report = {
        **run_header(args, cfg),
        "threads": args.threads,
        "cpu_s_per_step": {n: statistics.median(v) for n, v in times.items()},
        "steps": times,
        "x_before": {n: base / statistics.median(v) for n, v in times.items()},
        "first_batch_losses": first_losses,
    }
    lines = [
        f"Training steps of `{report['config']}` {' '.join(args.opts)}; batch {batch}, {args.batches} batches x "
        f"{args.rounds} rounds per variant, alternating; CPU time, {args.threads} torch thread(s), "
        f"{report['cores']} cores ({report['cpu']}), torch {report['torch']}, {report['date']}.",
        "",
        "| variant | CPU-s / step (median) | images / CPU-s | x before | first batch: total loss |",
        "|---|---|---|---|---|",
    ]
    for n, s in report["cpu_s_per_step"].items():
        lines.append(f"| {n} | {s:.2f} | {batch / s:.2f} | {base / s:.2f} | {sum(first_losses[n].values()):.6f} |")
    write_report(args.output, "train", report, lines)


if __name__ == "__main__":
    main()
