#!/usr/bin/env python
"""Choose the extra test-time detector sizes (MODEL.FOSS.TEST_SIZES, TEST_SIZES_MAX_BOX) on a face
detection dataset: face AP / AP50 of every combination, scored by detectron2's COCOEvaluator.

    python tools/research/sweep_test_sizes.py --dataset wider_face_train --num 150 \\
        --sizes 640 800 960 --max-boxes 96 128 160 224 --output output/sweep_test_sizes DATASETS.ROOT ../shared/data

Each photo goes through the detector once per size (the costly part); every combination is then
merged as the model merges at test time (FOSSWithTTA.keep_small_faces, merge_passes), so the sweep
costs one pass per size, not one per combination. Choose on photos that are not reported on;
training photos the detector has learned at DET_INPUT_SIZE barely separate the settings
(docs/MODEL_ZOO.md, "Small faces"). Writes OUT/sweep.json (every row) and OUT/sweep.md (the table, best AP50 first).
"""

import contextlib
import io
import itertools
import logging
import os

import torch
from tqdm import tqdm

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.config import get_foss_cfg
from foss_d2.data import FOSSDatasetMapper
from foss_d2.data.datasets import register_config_datasets
from foss_d2.meta_arch import FOSSWithTTA
from foss_d2.utils.json_io import write_json_atomic, write_text_atomic

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.evaluation import COCOEvaluator
from detectron2.modeling import build_model
from detectron2.modeling.postprocessing import detector_postprocess


@torch.no_grad()
def run_passes(tta, inputs, sizes):
    """One record per input: its id, output size, and per detector size the faces and (sx, sy).
    The extra sizes run only where the model would run them (images its first pass shrank).
    ``tta`` is the model's FOSSWithTTA (its detector passes apply MODEL.CENTERNET.TEST_FLIP)."""
    x = inputs[0]
    image = x["image"].to(tta.model.device)
    rec = {
        "image_id": x.get("image_id"),
        "hw": (x.get("height", image.shape[1]), x.get("width", image.shape[2])),
        "passes": {},
    }
    # the first pass at the model's own size: with DET_INPUT_FIT_SMALL a small photo's, not DET_INPUT_SIZE
    rec["first"] = tta.model.test_input_size([image])
    run = [rec["first"]] + (list(sizes) if tta.shrunk_by_first_pass(image) else [])
    for s in run:
        _, proposals, scales = tta.detect_pass([image], s)
        rec["passes"][s] = (proposals[0].to("cpu"), scales[0])
    return rec


def merge_cached(tta, rec, extra_sizes, max_box):
    """The faces the model reports (boxes, scores) for one record with these TEST_SIZES."""
    per_pass = [rec["passes"][rec["first"]][0]]
    for s in extra_sizes:
        if s in rec["passes"]:
            q, (sx, sy) = rec["passes"][s]
            per_pass.append(tta.keep_small_faces(q, sx, sy, max_box))
    return detector_postprocess(tta.model.confident_faces(tta.merge_passes(per_pass)), *rec["hw"])


def combinations(sizes, max_boxes):
    """The paper's single pass, then every non-empty subset of ``sizes`` with every box limit."""
    yield (), None
    for r in range(1, len(sizes) + 1):
        for sub in itertools.combinations(sizes, r):
            for mb in max_boxes:
                yield sub, mb


def coco_figures(evaluator, records, tta, extra_sizes, max_box):
    evaluator.reset()
    for rec in records:
        evaluator.process(
            [{"image_id": rec["image_id"]}], [{"instances": merge_cached(tta, rec, extra_sizes, max_box)}]
        )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its whole table
        bbox = evaluator.evaluate(img_ids=[rec["image_id"] for rec in records])["bbox"]  # only the photos run
    return bbox["AP"], bbox["AP50"]


def main(argv=None):
    ap = foss_argument_parser(__doc__)
    ap.add_argument("--dataset", default="wider_face_train", help="a registered dataset with face boxes")
    ap.add_argument("--num", type=int, default=150, help="N photos, evenly spaced through the dataset")
    ap.add_argument("--sizes", type=int, nargs="+", default=[640, 800, 960])
    ap.add_argument("--max-boxes", type=float, nargs="+", default=[96, 128, 160, 224])
    ap.add_argument("--output", default="output/sweep_test_sizes", help="folder for sweep.json and sweep.md")
    args = parse_foss_args(ap, argv)
    cfg = get_foss_cfg(args.config_file, opts=args.opts)
    register_config_datasets(cfg)  # DATASETS.COCO's files too: --dataset may name one
    dicts = DatasetCatalog.get(args.dataset)
    dicts = dicts[:: max(1, len(dicts) // args.num)][: args.num]  # spread over the dataset's events
    if not dicts:
        ap.error(f"dataset {args.dataset} is empty")
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    tta = FOSSWithTTA(cfg, model)
    loader = build_detection_test_loader(dicts, mapper=FOSSDatasetMapper(cfg, False), num_workers=1)
    records = [run_passes(tta, x, args.sizes) for x in tqdm(loader, total=len(dicts), desc="detector passes")]
    logging.getLogger("detectron2").setLevel(logging.WARNING)
    evaluator = COCOEvaluator(
        args.dataset,
        tasks=("bbox",),
        output_dir=os.path.join(args.output, "coco"),
        use_fast_impl=False,
        max_dets_per_image=cfg.MODEL.FOSS.K_TEST,
    )
    rows = []
    for sub, mb in tqdm(list(combinations(args.sizes, args.max_boxes)), desc="combinations"):
        ap_all, ap50 = coco_figures(evaluator, records, tta, sub, mb)
        rows.append({"test_sizes": list(sub), "max_box": mb, "AP": ap_all, "AP50": ap50})
        # every row is on disk as soon as it is computed
        write_json_atomic(
            os.path.join(args.output, "sweep.json"),
            {"dataset": args.dataset, "photos": len(records), "opts": args.opts, "rows": rows},
            indent=1,
        )
    lines = [
        f"{args.dataset}, {len(records)} photos evenly spaced; DET_INPUT_SIZE {model.det_input_size}",
        "",
        "| TEST_SIZES | TEST_SIZES_MAX_BOX | AP | AP50 |",
        "|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["AP50"]):
        lines.append(f"| {r['test_sizes'] or '-'} | {r['max_box'] or '-'} | {r['AP']:.1f} | {r['AP50']:.1f} |")
    write_text_atomic(os.path.join(args.output, "sweep.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
