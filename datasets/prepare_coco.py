#!/usr/bin/env python
"""Convert any registered FOSS-D2 dataset to a COCO JSON carrying age / gender / age_group.

python datasets/prepare_coco.py --dataset utkface_train --output datasets/coco/utkface_train.json
# then, in your code:  foss_d2.data.register_foss_coco("my_utk", "datasets/coco/utkface_train.json")
"""

import argparse

from tqdm import tqdm

from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.data.datasets import register_all_foss
from foss_d2.data.datasets.builtin import FOSS_DATASETS

from detectron2.data import DatasetCatalog, MetadataCatalog


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="a registered dataset name, e.g. utkface_train")
    p.add_argument("--output", required=True)
    p.add_argument("--root", default=None, help="datasets root (default: $DETECTRON2_DATASETS or ./datasets)")
    args = p.parse_args()
    register_all_foss(args.root)
    if args.dataset not in FOSS_DATASETS:
        p.error(f"--dataset {args.dataset} is none of FOSS-D2's datasets: {', '.join(sorted(FOSS_DATASETS))}")
    try:
        records = DatasetCatalog.get(args.dataset)
    except (FileNotFoundError, ValueError) as e:
        p.error(f"{e} (--root: the folder holding the datasets, e.g. --root ../shared/data)")
    meta = MetadataCatalog.get(args.dataset)
    groups = (meta.age_groups, meta.age_group_lower) if meta.get("age_groups") else None
    coco = dataset_to_coco(tqdm(records, desc=args.dataset), description=args.dataset, age_groups=groups)
    save_coco(coco, args.output)
    print(f"{args.dataset}: {len(coco['images'])} images, {len(coco['annotations'])} faces -> {args.output}")


if __name__ == "__main__":
    main()
