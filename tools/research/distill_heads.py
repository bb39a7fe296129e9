#!/usr/bin/env python
"""CenterNet's heads at another width, distilled from a trained model's on its frozen backbone
(issue 19: the shipped detector's 3x3 heatmap conv of 256 channels at stride 4 is a quarter of its
multiply-adds at 512 px). By default only the heatmap head is narrowed
(``MODEL.CENTERNET.HEATMAP_HEAD_CONV``): at test time the size and offset heads run only at the
peaks, and they keep the trained model's weights; ``--heads heatmap size offset`` narrows all three
(``MODEL.CENTERNET.HEAD_CONV``).

The backbone and the age network stay the trained model's, so the age network reads the same
feature and a face's age and gender change only through its box. ``harvest`` runs the model's
detector once over the photos, at the side the model's inference uses for each (the shipped
config: 512 px, or a smaller photo's own), and keeps the backbone's stride-4 feature (float16), the
heatmap logits and, where the heatmap exceeds ``--min-heat``, the size and offset heads' answers.
The narrower heads start as the trained ones pruned to their ``--head-conv`` most used hidden
channels (mean ReLU output over the harvest, times the weight that reads it), then learn the
trained heads' answers for ``--epochs`` over the cache: the heatmap by binary cross-entropy (less
the target's own entropy) against the trained heatmap's probabilities (each pixel weighted 1 + 30 x that probability, so
that faces count beside the background), sizes and offsets by L1 where the trained heatmap
exceeds ``--min-heat`` (weighted by it; sizes x CenterNet's lambda_size).

    python tools/research/distill_heads.py --head-conv 64 --epochs 15 --output output/heads64 \\
        DATASETS.ROOT ../shared/data

Writes OUTPUT/model_final.pth (the trained model with the new heads: evaluate it with the override
the tool prints, e.g. ``MODEL.CENTERNET.HEATMAP_HEAD_CONV 64``), OUTPUT/model_pruned.pth (the same
with the pruned heads, before training) and OUTPUT/log.json (the losses per epoch).
"""

import json
import logging
import os
import random
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from tqdm import tqdm

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.apps.export import save_weights
from foss_d2.config import get_foss_cfg
from foss_d2.data.datasets import register_config_datasets
from foss_d2.data.utils import photo_paths
from foss_d2.engine.predictor import load_model, read_photos
from foss_d2.proposal_generator.build import build_face_detector
from foss_d2.proposal_generator.centernet import _point_head, copy_hidden_channels, head_at
from foss_d2.solver import cosine_schedule, distill_epochs

from detectron2.utils.logger import setup_logger

logger = logging.getLogger("foss_d2.distill_heads")
HEADS = ("heatmap", "size", "offset")


@torch.no_grad()
def harvest_one(model, image, min_heat: float) -> dict:
    """One photo (uint8 CHW tensor) through the detector as inference sees it: its stride-4 feature,
    heatmap logits, and the size / offset heads' answers where the heatmap exceeds ``min_heat``."""
    pg = model.proposal_generator
    size = model.test_input_size([image])
    feats = model.backbone(model.preprocess_detector([image], size))
    x = feats[pg.in_feature]
    logits = pg.heat_logits(feats)
    pix = (logits.sigmoid().amax(dim=1)[0].flatten() > min_heat).nonzero()[:, 0]
    bidx = torch.zeros_like(pix)
    return {
        "feature": x[0].half().contiguous(),
        "heat": logits[0].half(),
        "pix": pix,
        "size": head_at(pg.size, x, bidx, pix).t().contiguous(),
        "offset": head_at(pg.offset, x, bidx, pix).t().contiguous(),
    }


def harvest(model, paths, input_format: str, max_side: int, min_heat: float):
    photos = read_photos(tqdm(paths, desc="harvest"), input_format, max_side)
    return [harvest_one(model, image, min_heat) for _, image in photos]


def hidden_use(head, feature_batches) -> torch.Tensor:
    """Each hidden channel's mean ReLU output over the batches, times the norm of the 1x1 weights
    that read it: how much of the head's answer goes through it."""
    conv3, conv1 = _point_head(head)
    total, n = 0.0, 0
    with torch.no_grad():
        for x in feature_batches:
            total = total + F.relu(conv3(x)).mean(dim=(0, 2, 3)) * x.shape[0]
            n += x.shape[0]
    return (total / max(n, 1)) * conv1.weight.flatten(1).norm(dim=0)


def batches(samples, batch_size: int, shuffle: bool = True):
    """Lists of samples of one feature size (photos at their own side have others)."""
    by_size = defaultdict(list)
    for s in samples:
        by_size[tuple(s["feature"].shape[1:])].append(s)
    out = []
    for group in by_size.values():
        if shuffle:
            random.shuffle(group)
        out += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    if shuffle:
        random.shuffle(out)
    return out


def distill_losses(student, batch, min_heat: float, lambda_size: float, heads=HEADS) -> dict:
    x = torch.stack([s["feature"] for s in batch]).float().contiguous(memory_format=torch.channels_last)
    target = torch.stack([s["heat"] for s in batch]).float().sigmoid()
    logits = student.heatmap(x)
    w = 1 + 30 * target
    # the cross-entropy less the target's own entropy (the same gradient): 0 when the heatmaps agree
    kl = F.binary_cross_entropy_with_logits(logits, target, reduction="none") - F.binary_cross_entropy(
        target, target, reduction="none"
    )
    heat = (w * kl).sum() / w.sum()
    bidx = torch.cat([torch.full_like(s["pix"], i) for i, s in enumerate(batch)])
    pix = torch.cat([s["pix"] for s in batch])
    out = {"heat": heat}
    boxes = [name for name in ("size", "offset") if name in heads]
    if pix.numel() == 0:
        return {**out, **{name: logits.sum() * 0 for name in boxes}}
    wp = target.flatten(1)[bidx, pix]
    wp = wp / wp.sum()
    for name in boxes:
        pred = head_at(getattr(student, name), x, bidx, pix)
        ref = torch.cat([s[name] for s in batch], dim=1).t()
        out[name] = ((pred - ref).abs().sum(dim=1) * wp).sum() * (lambda_size if name == "size" else 1.0)
    return out


def save_with_heads(teacher, student, path: str):
    """The teacher's checkpoint with the student's heads in place of its own."""
    state = {k: v for k, v in teacher.state_dict().items() if not k.startswith("proposal_generator.")}
    state.update({f"proposal_generator.{k}": v for k, v in student.state_dict().items()})
    save_weights(state, path)


def get_parser():
    p = foss_argument_parser(__doc__)
    p.add_argument("--head-conv", type=int, default=64, help="the new heads' hidden channels")
    p.add_argument(
        "--heads",
        nargs="+",
        default=["heatmap"],
        choices=HEADS,
        help="the heads to narrow (size and offset share one width: both or neither)",
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        default=["wider_face_train", "wider_face_train_more", "utkface_train:500"],
        help="registered datasets whose photos to read; NAME:N takes N of them, spread over the dataset",
    )
    p.add_argument("--max-images", type=int, default=0, help="at most this many photos a dataset (0: all)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-heat", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    return p


def main(argv=None):
    parser = get_parser()
    args = parse_foss_args(parser, argv)
    heads = set(args.heads)
    if ("size" in heads) != ("offset" in heads):
        parser.error("--heads: size and offset share MODEL.CENTERNET.HEAD_CONV, name both or neither")
    if "heatmap" not in heads:
        parser.error("--heads: the heatmap is the head that costs (size and offset run at the peaks only)")
    setup_logger(name="foss_d2")
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    cfg = get_foss_cfg(args.config_file or None, opts=["MODEL.DEVICE", "cpu", *args.opts])
    register_config_datasets(cfg)
    teacher = load_model(cfg)
    paths = []
    for spec in args.datasets:
        files = photo_paths([spec])
        paths += files[: args.max_images] if args.max_images else files
    t0 = time.time()
    samples = harvest(teacher, paths, cfg.INPUT.FORMAT, cfg.INPUT.MAX_SIDE, args.min_heat)
    logger.info("harvested %d photos in %.0f s", len(samples), time.time() - t0)

    student_cfg = cfg.clone()
    student_cfg.defrost()
    key = "HEAD_CONV" if "size" in heads else "HEATMAP_HEAD_CONV"
    setattr(student_cfg.MODEL.CENTERNET, key, args.head_conv)
    if key == "HEAD_CONV":
        student_cfg.MODEL.CENTERNET.HEATMAP_HEAD_CONV = 0
    student = build_face_detector(student_cfg, teacher.backbone.output_shape()).to(memory_format=torch.channels_last)
    probe = [s["feature"][None].float() for s in samples[:64]]
    for name in HEADS:
        mine, trained = getattr(student, name), getattr(teacher.proposal_generator, name)
        if name in heads:
            copy_hidden_channels(mine, trained, hidden_use(trained, probe).topk(args.head_conv).indices)
        else:
            mine.load_state_dict(trained.state_dict())
    save_with_heads(teacher, student, os.path.join(args.output, "model_pruned.pth"))
    student.train()
    params = [p for n in heads for p in getattr(student, n).parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    steps = args.epochs * len(batches(samples, args.batch, shuffle=False))
    sched = cosine_schedule(opt, steps)
    lambda_size = cfg.MODEL.CENTERNET.LAMBDA_SIZE
    # epoch 0: the pruned heads, not trained
    log = distill_epochs(
        args.epochs,
        lambda epoch: batches(samples, args.batch),
        lambda batch: (distill_losses(student, batch, args.min_heat, lambda_size, heads), len(batch)),
        opt,
        sched,
        logger,
    )
    save_with_heads(teacher, student, os.path.join(args.output, "model_final.pth"))
    with open(os.path.join(args.output, "log.json"), "w") as f:
        json.dump({"args": vars(args), "photos": len(samples), "epochs": log}, f, indent=1)
    print(f"wrote {args.output}/model_final.pth: evaluate it with MODEL.CENTERNET.{key} {args.head_conv}")


if __name__ == "__main__":
    main()
