#!/usr/bin/env python
r"""Dump what the model is fed: N mapped training samples (tiled or not) with boxes, ages, genders.

    python tools/visualize_data.py --config-file configs/quick_schedules/FOSS-CPU-quick.yaml \
        --num 8 --output output/visualize_data DATASETS.ROOT ../shared/data
"""

import os

import cv2
from tqdm import tqdm

from foss_d2.apps.cli import config_from_args, foss_argument_parser, parse_foss_args, register_datasets, run_tool
from foss_d2.apps.runner import positive_int
from foss_d2.data import build_foss_train_loader
from foss_d2.data.augmentation import apply_color_jitter
from foss_d2.utils import draw_faces
from foss_d2.utils.image_io import swap_red_blue


def main(argv=None):
    p = foss_argument_parser(__doc__, config_help="the training config (default: the shipped model's)")
    p.add_argument("--output", default="output/visualize_data", help="folder for the pictures")
    p.add_argument("--num", type=positive_int, default=8, help="number of samples to dump")
    p.add_argument(
        "--max-side", type=positive_int, default=800, help="downscale saved pictures to this longer side (pixels)"
    )
    args = parse_foss_args(p, argv)
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        p.error(f"--output {args.output} is a file, not a folder")
    cfg = config_from_args(p, args, opts_after=["DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "1"])
    register_datasets(p, cfg)
    os.makedirs(args.output, exist_ok=True)
    try:
        loader = iter(build_foss_train_loader(cfg))
    except (FileNotFoundError, ValueError) as e:  # a dataset not under DATASETS.ROOT, a mistake in a file
        p.error(f"{e} (DATASETS.ROOT is {cfg.DATASETS.ROOT!r})")
    for i in tqdm(range(args.num), desc="samples"):
        d = next(loader)[0]
        # INPUT.AUG.COLOR_ON_DEVICE: the loader leaves the colour jitter to the model; apply it as it does
        image = apply_color_jitter(d["image"], d["color_jitter"]) if "color_jitter" in d else d["image"]
        img = image.permute(1, 2, 0).numpy()
        rgb = swap_red_blue(img) if cfg.INPUT.FORMAT == "BGR" else img
        inst = d["instances"]
        scale = min(1.0, args.max_side / max(rgb.shape[:2]))
        out = draw_faces(
            rgb, inst.gt_boxes.tensor.numpy(), inst.gt_ages.tolist(), inst.gt_genders.tolist(), scale=scale
        )
        name = f"{i:03d}_{d.get('dataset_name', 'data')}_{len(inst)}faces.png"
        cv2.imwrite(os.path.join(args.output, name), swap_red_blue(out))
    print(f"wrote {args.num} images to {args.output}")


if __name__ == "__main__":
    run_tool(main)
