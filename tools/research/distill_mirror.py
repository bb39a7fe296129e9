#!/usr/bin/env python
"""The mirror average taught to the age network itself (issue 19): one pass per face instead of
two, for the answers of ``MODEL.AGE_HEAD.TEST_FLIP`` (the shipped config averages each face's age
distribution and P(female) over the crop and its mirror image, which doubles the age network's
time; the ``fast`` preset leaves the mirror out and loses 1.8 points of WIDER val's age groups).

``harvest`` runs the trained model over the photos as inference does (its detector, the faces
above the score threshold, their crops and ROIAligned features) and keeps, for every face, the
crop (uint8), its feature (float16) and the mirror-averaged answers. The age network (a copy of
the trained one, BatchNorm statistics and dropout as at test time) then learns those answers from
one view for ``--epochs``: the age distribution by KL divergence, P(female) by binary
cross-entropy less its own entropy (both 0 when the one view answers as the two); each face is
shown mirrored half of the time, with the same target. The detector is untouched.

    python tools/research/distill_mirror.py --datasets wider_face_train wider_face_train_more \\
        utkface_train:3000 fgnet_train --epochs 4 --output output/mirror DATASETS.ROOT ../shared/data

Writes OUTPUT/model_final.pth (run it with ``MODEL.AGE_HEAD.TEST_FLIP False``) and OUTPUT/log.json.
"""

import copy
import json
import logging
import math
import os
import random
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.apps.export import save_weights
from foss_d2.config import get_foss_cfg
from foss_d2.data.datasets import register_config_datasets
from foss_d2.data.utils import photo_paths
from foss_d2.engine.fusion import optimize_for_inference
from foss_d2.engine.predictor import load_model, read_photos
from foss_d2.solver import cosine_schedule, distill_epochs

from detectron2.utils.logger import setup_logger

logger = logging.getLogger("foss_d2.distill_mirror")


@torch.no_grad()
def harvest_one(model, image) -> dict:
    """One photo (uint8 CHW tensor) through the detector as inference runs it; for its faces above
    the threshold the crops (uint8), features (float16) and the mirror-averaged answers."""
    images = [image]
    features, proposals, scales = model.detect_pass(images)
    proposals = [model.age_candidates(p) for p in proposals]
    head = model.age_head
    _, crops, feat = head.crops_and_features(images, proposals, features, model.feature_scales(scales))
    probs, female = head.predict(crops, feat, mirror=True)
    return {
        "crops": (crops * 255).round().clamp(0, 255).to(torch.uint8),
        "feature": None if feat is None else feat.half(),
        "probs": probs.half(),
        "female": None if female is None else female.float(),
    }


def harvest(model, paths, input_format: str, max_side: int) -> dict:
    parts = []
    for _, image in read_photos(tqdm(paths, desc="harvest"), input_format, max_side):
        part = harvest_one(model, image)
        if part["crops"].shape[0]:
            parts.append(part)
    if not parts:
        raise SystemExit("distill_mirror: no face above MODEL.FOSS.SCORE_THRESH_TEST in the photos, nothing to learn")
    return {k: None if parts[0][k] is None else torch.cat([p[k] for p in parts]) for k in parts[0]}


def distill_losses(head, crops, feat, probs, female) -> dict:
    """KL(target || one view) of the age distributions and the gender cross-entropy less the
    target's entropy: 0 when the one view answers as the mirror average."""
    age_logits, gender_logits = head.net(crops, feat)
    log_p = F.log_softmax(age_logits, dim=1)
    target = probs.clamp_min(1e-8)
    out = {"age": (target * (target.log() - log_p)).sum(dim=1).mean()}
    if gender_logits is not None and female is not None:
        ce = F.binary_cross_entropy_with_logits(gender_logits, female, reduction="none")
        out["gender"] = (ce - F.binary_cross_entropy(female, female, reduction="none")).mean()
    return out


def get_parser():
    p = foss_argument_parser(__doc__)
    p.add_argument(
        "--datasets",
        nargs="+",
        default=["wider_face_train", "wider_face_train_more", "utkface_train:3000", "fgnet_train"],
        help="registered datasets whose photos to read; NAME:N takes N of them, spread over the dataset",
    )
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    return p


def main(argv=None):
    args = parse_foss_args(get_parser(), argv)
    setup_logger(name="foss_d2")
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    cfg = get_foss_cfg(args.config_file or None, opts=["MODEL.DEVICE", "cpu", *args.opts])
    register_config_datasets(cfg)
    model = load_model(cfg)
    paths = photo_paths(args.datasets)
    t0 = time.time()
    # the harvest on a copy made fast for inference (the same answers to float rounding); the
    # network that learns keeps its BatchNorms
    fast = optimize_for_inference(copy.deepcopy(model))
    data = harvest(fast, paths, cfg.INPUT.FORMAT, cfg.INPUT.MAX_SIDE)
    del fast
    n = data["crops"].shape[0]
    logger.info("harvested %d faces from %d photos in %.0f s", n, len(paths), time.time() - t0)

    head = model.age_head
    params = [p for p in head.net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    steps_per_epoch = math.ceil(n / args.batch)
    steps = args.epochs * steps_per_epoch
    # a warmup: Adam's first steps are lr-sized whatever the gradient
    sched = cosine_schedule(opt, steps, warmup=min(100, steps // 10 + 1))

    def epoch_batches(epoch):
        order = torch.randperm(n)
        for i in tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", leave=False):
            yield order[i * args.batch : (i + 1) * args.batch]

    def losses_of(idx):
        crops = data["crops"][idx].float() / 255
        feat = None if data["feature"] is None else data["feature"][idx].float()
        flip = torch.rand(len(idx)) < 0.5  # the same target either way: the average is symmetric
        crops = torch.where(flip.view(-1, 1, 1, 1), crops.flip(-1), crops)
        if feat is not None:
            feat = torch.where(flip.view(-1, 1, 1, 1), feat.flip(-1), feat)
        female = None if data["female"] is None else data["female"][idx]
        return distill_losses(head, crops, feat, data["probs"][idx].float(), female), len(idx)

    # epoch 0: the trained network, not trained further
    log = distill_epochs(args.epochs, epoch_batches, losses_of, opt, sched, logger, digits=5)
    os.makedirs(args.output, exist_ok=True)
    save_weights(model.state_dict(), os.path.join(args.output, "model_final.pth"))
    with open(os.path.join(args.output, "log.json"), "w") as f:
        json.dump({"args": vars(args), "faces": n, "photos": len(paths), "epochs": log}, f, indent=1)
    print(f"wrote {args.output}/model_final.pth: run it with MODEL.AGE_HEAD.TEST_FLIP False")


if __name__ == "__main__":
    main()
