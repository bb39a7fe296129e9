"""Inference time, in one run on the same images: FOSS against the two-model baseline (``models``),
or one model under its test-time settings (``settings``).

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
settings (a 480 px detector pass plus an 800 px one for small faces, answers averaged with the
mirror image), the 480 px pass alone (the paper's), mirror off, both, and the detector's flip test
(MODEL.CENTERNET.TEST_FLIP, off in the shipped config) added. For every photo and
repeat the variants run one after the other in a rotating order, so that machine noise hits them
alike. Reported per variant: the median seconds per photo (over repeats, then over photos), the
median over photos of its time divided by the first variant's, and the faces found. Runs on CPU
unless MODEL.DEVICE says otherwise. Writes settings.json and settings.md under --output.

(``python tools/benchmark.py`` takes the same arguments.)
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from tqdm import tqdm

from ..config import get_foss_cfg
from ..engine import FaceAgeEstimator
from ..meta_arch import FOSSWithTTA
from ..utils import write_json_atomic
from .cli import foss_argument_parser, parse_foss_args
from .runner import expand_inputs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER_CFG = os.path.join(REPO, "configs", "paper", "FOSS-DLA34-TResNetS.yaml")
DEMO_PHOTO = os.path.join(REPO, "demo", "family.jpg")

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


class StageTimer:
    """Forward hooks that accumulate wall time per named module (synchronising CUDA when used)."""

    def __init__(self, modules: dict, device: str):
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        self.total = {k: 0.0 for k in modules}
        self._t0 = {}
        for name, m in modules.items():
            m.register_forward_pre_hook(self._pre(name))
            m.register_forward_hook(self._post(name))

    def _pre(self, name):
        def hook(module, inputs):
            self.sync()
            self._t0[name] = time.perf_counter()

        return hook

    def _post(self, name):
        def hook(module, inputs, output):
            self.sync()
            self.total[name] += time.perf_counter() - self._t0[name]

        return hook

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
            "age_head": model.age_head,
            "age_network": model.age_head.net,
        },
        device,
    )
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
        "cropping": t["age_head"] - t["age_network"],
        "age_network": t["age_network"],
        "resize_post": total - t["detector_backbone"] - t["detector_head"] - t["age_head"],
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for device, res in report["results"].items():
        for name, style in (("FOSS", "-o"), ("two-model", "--s")):
            ax.plot(ks, [res[name][k]["total"]["median"] * 1000 for k in ks], style, label=f"{name} ({device})")
    ax.set_xlabel("K (faces per image sent to the age network)")
    ax.set_ylabel("ms per image (median)")
    ax.set_xticks(ks)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def benchmark_settings(args, parser):
    paths = [path for path, _ in expand_inputs(args.input)][: args.max_inputs]
    if not paths:
        parser.error("no input photos")
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
    write_json_atomic(os.path.join(args.output, "settings.json"), report, indent=1)
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
    with open(os.path.join(args.output, "settings.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def get_parser(prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True, metavar="{models,settings}")
    models = sub.add_parser(
        "models",
        help="FOSS vs the two-model baseline over K (paper 4.3)",
        parents=[foss_argument_parser(config_help="default: the paper's model", add_help=False)],
    )
    models.add_argument("--ks", type=int, nargs="+", default=[1, 3, 10, 20])
    models.add_argument("--repeats", type=int, default=5, help="timed passes over the images per K and model")
    models.add_argument("--images", type=int, default=3, help="synthetic 1280x960 photos per pass")
    models.add_argument("--warmup", type=int, default=2)
    models.add_argument("--train-iters", type=int, default=3)
    models.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    models.add_argument("--output", default="output/benchmark")
    settings = sub.add_parser(
        "settings", help="one model under its test-time settings", parents=[foss_argument_parser(add_help=False)]
    )
    settings.add_argument("--input", nargs="+", default=[DEMO_PHOTO], help="photos, folders or globs")
    settings.add_argument("--max-inputs", type=int, default=12, help="the first N photos of --input")
    settings.add_argument("--repeats", type=int, default=3)
    settings.add_argument("--output", default="output/benchmark_settings")
    return p


def main(argv=None, prog=None):
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    if args.mode == "models":
        benchmark_models(args)
    else:
        benchmark_settings(args, parser)


if __name__ == "__main__":
    main()
