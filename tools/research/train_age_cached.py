#!/usr/bin/env python
"""The age network's stage on the frozen detector, trained from a cache of its inputs (issue 16,
item 2: a CPU route that makes progress).

With the detector frozen (paper 4.2's first schedule) an online step spends most of its time in
passes that learn nothing: the detector's on every canvas and, with MODEL.FOSS.TEACHER_WEIGHTS, the
teacher's. ``harvest`` runs the config's training loader and those passes once, keeping for every
face the age network learns from (best IoU > th_iou) what a training step hands it
(``FOSS.age_training_inputs``: the crop, its ROIAligned detector feature, the labels and the
teacher's answers, drawn as that step draws them: detector side, tiling, zoom-out, crop jitter);
``train`` then runs the age network over that cache for several epochs, each crop mirrored with
its feature half of the time, with the config's optimizer, learning-rate schedule (stretched to the
epochs) and losses (``TResNetAgeHead.train_losses``). Only the faces are cached, so BatchNorm keeps the
start's statistics by default (``--bn-stats update`` learns them from the faces alone).

    python tools/research/train_age_cached.py --config-file configs/zoo/next-age-teacher-online-cpu.yaml \\
        --batches 300 --epochs 6 --output output/cached MODEL.WEIGHTS START.pth DATASETS.ROOT ../shared/data

Writes OUTPUT/cache/part_NNNN.pt (--part-size harvested batches each; --cache puts them
elsewhere, so that runs with other training settings share one harvest; a part harvested with
another detector, teacher, data or augmentation is refused: ``harvest_fingerprint``), OUTPUT/last.pth (model,
optimizer and schedule after each epoch), OUTPUT/model_final.pth (a checkpoint that
``train_net.py --eval-only`` and ``export_model.py`` read) and OUTPUT/log.json. A rerun goes on
where a stop left it: the parts on disk count towards --batches (a larger --batches adds new draws
to them), and training resumes from last.pth.
"""

import glob
import hashlib
import json
import logging
import os
import time
from collections import defaultdict

import torch
from torch import nn
from tqdm import tqdm

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.apps.export import save_atomic, save_weights
from foss_d2.config import get_foss_cfg
from foss_d2.data import build_foss_train_loader
from foss_d2.data.datasets import register_config_datasets
from foss_d2.engine.onnx_backend import weights_fingerprint
from foss_d2.solver import build_foss_optimizer
from foss_d2.utils.json_io import write_json_atomic

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler
from detectron2.utils.logger import setup_logger

logger = logging.getLogger("foss_d2.train_age_cached")
KEYS = ("crops", "feature", "ages", "genders", "teacher_age", "teacher_gender")


def pack(inputs: dict) -> dict:
    """One batch's ``age_training_inputs`` in cache form: crops as uint8 (their [0, 1] values x 255,
    rounded: at most 1/510 off), features and teacher age logits as float16."""
    out = {"crops": (inputs["crops"] * 255).round().clamp(0, 255).to(torch.uint8).cpu()}
    halves = ("feature", "teacher_age")
    for k in KEYS[1:]:
        v = inputs.get(k)
        out[k] = None if v is None else v.to(torch.float16 if k in halves else v.dtype).cpu()
    return out


def concat(parts: list) -> dict:
    """The packed batches ``parts`` as one cache (a key that some part lacks is dropped)."""
    out = {}
    for k in KEYS:
        vals = [p.get(k) for p in parts]
        out[k] = torch.cat(vals) if vals and all(v is not None for v in vals) else None
    return out


def harvest_fingerprint(cfg, model) -> str:
    """What decides the faces a harvest keeps: the frozen detector's and the teacher's weights as
    loaded, and the config's data, loader, input and augmentations, detector and crops (not the
    loader's workers, nor the seed: other draws of the same faces). A part of another harvest is
    refused: with only MODEL.WEIGHTS' path recorded, a detector trained again under the same name,
    or a run with other augmentations pointed at a shared --cache, trained on the old inputs."""
    h = hashlib.sha1()
    for part in (model.backbone, model.proposal_generator, *model._teacher):
        h.update(weights_fingerprint(part).encode())
    c = cfg.clone()
    c.defrost()
    c.DATALOADER.NUM_WORKERS = 0
    a = c.MODEL.AGE_HEAD
    for text in (c.INPUT.dump(), c.DATASETS.dump(), c.DATALOADER.dump(), c.MODEL.FOSS.dump(), c.MODEL.CENTERNET.dump()):
        h.update(text.encode())
    h.update(repr([a.CROP_SIZE, a.CROP_MARGINS, a.CROP_JITTER, a.FEATURE_ROI_SIZE, a.TH_IOU]).encode())
    return h.hexdigest()


def part_paths(cache_dir: str):
    return sorted(glob.glob(os.path.join(cache_dir, "part_*.pt")))


def harvest(cfg, model, cache_dir: str, batches: int, part_size: int, seed: int = 0) -> int:
    """Run ``batches`` batches of the training loader through the frozen passes, ``part_size`` to
    a file; the parts already on disk count. Returns the number of faces harvested this run."""
    os.makedirs(cache_dir, exist_ok=True)
    fingerprint = harvest_fingerprint(cfg, model)
    done = 0
    for p in part_paths(cache_dir):
        part = torch.load(p, mmap=True, weights_only=False)
        if part.get("fingerprint", fingerprint) != fingerprint:  # (parts from before fingerprints: as before)
            raise SystemExit(
                f"{p} was harvested with another detector, teacher, data or augmentation than this config's: "
                "give another --cache (or delete that one)"
            )
        done += part["batches"]
    if done >= batches:
        return 0
    # A resumed or extended harvest must draw new faces, not replay those on disk: the loader's
    # workers seed their augmentation and tiling from torch's generator, the sampler from SEED.
    torch.manual_seed(seed + done)
    if cfg.SEED >= 0:
        cfg = cfg.clone()
        cfg.defrost()
        cfg.SEED = cfg.SEED + done
    loader = iter(build_foss_train_loader(cfg))
    model.train()
    n_faces, index = 0, len(part_paths(cache_dir))
    bar = tqdm(total=batches, initial=done, desc="harvesting the age network's inputs", unit="batch")
    while done < batches:
        todo = min(part_size, batches - done)
        packed = []
        for _ in range(todo):
            packed.append(pack(model.age_training_inputs(next(loader))))
            bar.update(1)
        part = concat(packed)
        part["batches"] = todo
        part["weights"] = cfg.MODEL.WEIGHTS
        part["fingerprint"] = fingerprint
        path = os.path.join(cache_dir, f"part_{index:04d}.pt")
        save_atomic(part, path)
        n_faces += len(part["ages"])
        done += todo
        index += 1
        bar.set_postfix(faces=n_faces)
    bar.close()
    return n_faces


def load_cache(cache_dir: str) -> dict:
    paths = part_paths(cache_dir)
    if not paths:
        raise SystemExit(f"no cache in {cache_dir}: harvest first (--batches > 0)")
    parts = [torch.load(p, weights_only=False) for p in paths]
    cache = concat(parts)
    # the weights' paths of the parts from before fingerprints (harvest checks the others)
    cache["weights"] = sorted({p.get("weights", "") for p in parts if "fingerprint" not in p})
    if not len(cache["ages"]):
        raise SystemExit(f"the cache in {cache_dir} holds no face: check DATASETS.TRAIN and MODEL.WEIGHTS")
    return cache


def stretched_schedule(cfg, iterations: int):
    """The config's solver with MAX_ITER = ``iterations`` and its STEPS at the same fractions."""
    c = cfg.clone()
    c.defrost()
    frac = [s / cfg.SOLVER.MAX_ITER for s in cfg.SOLVER.STEPS]
    c.SOLVER.MAX_ITER = iterations
    # fvcore wants every step inside the schedule: those that round onto its end are dropped
    c.SOLVER.STEPS = tuple(sorted({round(f * iterations) for f in frac} & set(range(1, iterations))))
    c.SOLVER.WARMUP_ITERS = min(cfg.SOLVER.WARMUP_ITERS, max(iterations // 10, 1))
    return c


def batch_from_cache(cache: dict, idx: torch.Tensor, flip: torch.Tensor, memory_format):
    """The rows ``idx`` as the age network reads them: crops back to [0, 1] floats; the rows where
    ``flip`` is set mirrored, crop and feature together (as MODEL.AGE_HEAD.TEST_FLIP mirrors them)."""
    crops = cache["crops"][idx].float() / 255
    crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops).contiguous(memory_format=memory_format)
    feat = cache["feature"]
    if feat is not None:
        feat = feat[idx].float()
        feat = torch.where(flip[:, None, None, None], feat.flip(-1), feat).contiguous(memory_format=memory_format)
    t_age = cache["teacher_age"][idx].float() if cache["teacher_age"] is not None else None
    t_gender = cache["teacher_gender"][idx] if cache["teacher_gender"] is not None else None
    matches = (cache["ages"][idx], cache["genders"][idx], torch.ones(len(idx), dtype=torch.bool))
    return crops, feat, matches, t_age, t_gender


def hold_batchnorm(module: nn.Module):
    """Every BatchNorm of ``module`` in eval mode: the start's statistics, weights still learnt."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def train(
    cfg,
    model,
    cache: dict,
    output: str,
    epochs: int,
    batch: int,
    bn_stats: str = "frozen",
    seed: int = 0,
    log_period: int = 20,
    keep_epochs: bool = False,
):
    """``epochs`` passes over the cache in shuffled batches of ``batch``; returns the log rows. With
    ``keep_epochs`` each epoch's weights are also written (OUTPUT/model_epochNN.pth)."""
    n = len(cache["ages"])
    per_epoch = max(1, n // batch)  # the last short batch is left out: BatchNorm and the loss means want full ones
    iterations = epochs * per_epoch
    scfg = stretched_schedule(cfg, iterations)
    optimizer = build_foss_optimizer(scfg, model)
    scheduler = build_lr_scheduler(scfg, optimizer)
    head = model.age_head
    last = os.path.join(output, "last.pth")
    start_epoch, rows = 0, []
    if os.path.isfile(last):
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state["epochs"] != epochs:
            raise SystemExit(
                f"{last} belongs to a run of {state['epochs']} epochs (its schedule): rerun with --epochs "
                f"{state['epochs']}, or give a new --output"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, rows = state["epoch"], state["log"]
        logger.info("resuming from %s after epoch %d", last, start_epoch)
    memory_format = torch.channels_last if cfg.MODEL.FOSS.CHANNELS_LAST else torch.contiguous_format
    for epoch in range(start_epoch, epochs):
        model.train()
        if bn_stats == "frozen":
            hold_batchnorm(head)
        g = torch.Generator().manual_seed(seed + epoch)
        perm = torch.randperm(n, generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        sums, t0 = defaultdict(float), time.perf_counter()
        bar = tqdm(range(per_epoch), desc=f"epoch {epoch + 1}/{epochs}", unit="it")
        for i in bar:
            idx = perm[i * batch : (i + 1) * batch]
            crops, feat, matches, t_age, t_gender = batch_from_cache(cache, idx, flips[idx], memory_format)
            losses = head.train_losses(crops, feat, matches, t_age, t_gender)
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise FloatingPointError(
                    f"loss became {float(total)} at epoch {epoch + 1}, batch {i}: lower SOLVER.BASE_LR"
                )
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            scheduler.step()
            for k, v in losses.items():
                sums[k] += float(v.detach())
            if (i + 1) % log_period == 0:
                bar.set_postfix(loss=f"{sum(sums.values()) / (i + 1):.3f}")
        row = {"epoch": epoch + 1, "iterations": per_epoch, "seconds": round(time.perf_counter() - t0, 1)}
        row.update({k: round(v / per_epoch, 4) for k, v in sums.items()})
        row["lr_end"] = optimizer.param_groups[0]["lr"]
        rows.append(row)
        logger.info("epoch %d: %s", epoch + 1, row)
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch + 1,
            "epochs": epochs,
            "log": rows,
        }
        save_atomic(state, last)
        if keep_epochs:
            save_weights(
                model.state_dict(), os.path.join(output, f"model_epoch{epoch + 1:02d}.pth"), per_epoch * (epoch + 1)
            )
    return rows


def main(argv=None):
    p = foss_argument_parser(__doc__, config_help="an age-stage config (MODEL.FOSS.FREEZE_DETECTOR True)")
    p.add_argument("--output", required=True, help="folder for the cache, the checkpoints and the log")
    p.add_argument(
        "--cache", default=None, help="the cache's folder (default OUTPUT/cache): several runs may share one"
    )
    p.add_argument("--batches", type=int, default=300, help="training-loader batches to harvest (default 300)")
    p.add_argument("--part-size", type=int, default=25, help="batches per cache file (default 25)")
    p.add_argument("--epochs", type=int, default=6, help="passes over the cache (default 6; 0: harvest only)")
    p.add_argument("--batch", type=int, default=64, help="faces per training step (default 64)")
    p.add_argument(
        "--bn-stats", choices=("frozen", "update"), default="frozen", help="BatchNorm statistics (default frozen)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles and mirror flips (default 0)")
    p.add_argument("--log-period", type=int, default=20, help="steps between progress-bar loss updates")
    p.add_argument("--keep-epochs", action="store_true", help="also write each epoch's weights")
    args = parse_foss_args(p, argv)
    for name in ("batches", "part_size", "batch", "log_period"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.epochs < 0:
        p.error("--epochs must be at least 0")
    setup_logger(name="foss_d2")
    cfg = get_foss_cfg(args.config_file or None, opts=args.opts)
    if cfg.MODEL.FOSS.DETECTOR_ONLY or not cfg.MODEL.FOSS.FREEZE_DETECTOR:
        raise SystemExit(
            "the cache holds the frozen detector's features: the config needs an age head and FREEZE_DETECTOR True"
        )
    if not cfg.MODEL.WEIGHTS:
        raise SystemExit("MODEL.WEIGHTS: the detector (and the age network to start from) must come from a checkpoint")
    torch.manual_seed(args.seed)
    register_config_datasets(cfg)
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    os.makedirs(args.output, exist_ok=True)
    t0 = time.perf_counter()
    cache_dir = args.cache or os.path.join(args.output, "cache")
    faces = harvest(cfg, model, cache_dir, args.batches, args.part_size, args.seed)
    harvest_s = time.perf_counter() - t0
    log = {"weights": cfg.MODEL.WEIGHTS, "harvested_faces_this_run": faces, "harvest_seconds": round(harvest_s, 1)}
    if args.epochs > 0:
        cache = load_cache(cache_dir)
        log["cache_faces"] = len(cache["ages"])
        if cache["weights"] and cache["weights"] != [cfg.MODEL.WEIGHTS]:
            logger.warning(
                "the cache was harvested with MODEL.WEIGHTS %s, this run starts from %s: its features are those "
                "of the harvest's detector",
                cache["weights"],
                cfg.MODEL.WEIGHTS,
            )
        log["with_teacher"] = cache["teacher_age"] is not None
        log["epochs"] = train(
            cfg,
            model,
            cache,
            args.output,
            args.epochs,
            args.batch,
            args.bn_stats,
            args.seed,
            args.log_period,
            args.keep_epochs,
        )
        iterations = sum(row["iterations"] for row in log["epochs"])
        save_weights(model.state_dict(), os.path.join(args.output, "model_final.pth"), iterations)
    write_json_atomic(os.path.join(args.output, "log.json"), log, indent=1)
    print(json.dumps(log, indent=1))
    return log


if __name__ == "__main__":
    main()
