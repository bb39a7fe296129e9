#!/usr/bin/env python
"""Compare ways of reading one age off each face's distribution (MODEL.AGE_HEAD.AGE_READOUT: mean,
median, mode) in one inference pass per dataset: the model runs once, every readout is scored by
its own FaceAgeEvaluator on the same faces.

    python tools/research/age_readouts.py --datasets utkface_test wider_face_val fgnet_test \\
        --output output/age_readouts DATASETS.ROOT ../shared/data

Boxes and genders do not depend on the readout, so only the age figures differ between columns.
Writes OUT/<readout>/<dataset>/ (the evaluator's files, as ``train_net.py --eval-only`` writes
them), OUT/readouts.json (every figure) and OUT/readouts.md (the table).
"""

import logging
import os

from foss_d2.apps.cli import foss_argument_parser, parse_foss_args
from foss_d2.apps.train import Trainer
from foss_d2.config import get_foss_cfg
from foss_d2.data.datasets import register_config_datasets
from foss_d2.engine.predictor import load_all_weights
from foss_d2.evaluation import FaceAgeEvaluator
from foss_d2.meta_arch import FOSSWithTTA
from foss_d2.utils.ages import AGE_READOUTS, read_age
from foss_d2.utils.json_io import write_json_atomic, write_text_atomic

from detectron2.evaluation import DatasetEvaluator, inference_on_dataset
from detectron2.modeling import build_model
from detectron2.structures import Instances

# (figure, its key in FaceAgeEvaluator's results); a dataset reports those its labels allow
FIGURES = (
    ("MAE", "MAE"),
    ("MAE 21-60", "MAE_21_60"),
    ("MAE 0-2", "MAE_0_2"),
    ("MAE 3-9", "MAE_3_9"),
    ("MAE 10-19", "MAE_10_19"),
    ("MAE 20-39", "MAE_20_39"),
    ("MAE 40-59", "MAE_40_59"),
    ("MAE 60+", "MAE_60_up"),
    ("CS@5", "CS@5"),
    ("age group (found faces)", "group_acc"),
    ("1-off (found faces)", "group_1off"),
)


class ReadoutEvaluators(DatasetEvaluator):
    """Hands the same outputs to one FaceAgeEvaluator per readout, each face's ``pred_ages`` read
    from its ``pred_age_probs`` the readout's way."""

    def __init__(self, evaluators):
        self.evaluators = dict(evaluators)  # readout -> FaceAgeEvaluator

    def reset(self):
        for e in self.evaluators.values():
            e.reset()

    def process(self, inputs, outputs):
        for how, e in self.evaluators.items():
            mine = []
            for out in outputs:
                src = out["instances"]
                inst = Instances(src.image_size, **src.get_fields())  # copy.copy would share the field dict
                inst.pred_ages = read_age(inst.pred_age_probs, how)
                mine.append({"instances": inst})
            e.process(inputs, mine)

    def evaluate(self):
        return {how: e.evaluate()["age"] for how, e in self.evaluators.items()}


def table(results, readouts):
    lines = []
    for ds, res in results.items():
        keys = [(name, key) for name, key in FIGURES if any(key in res[r] for r in readouts)]
        lines += [f"*{ds}*", "", "| figure | " + " | ".join(readouts) + " |", "|---|" + "---|" * len(readouts)]
        for name, key in keys:
            vals = [res[r].get(key, float("nan")) for r in readouts]
            lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = foss_argument_parser(__doc__)
    ap.add_argument("--datasets", nargs="+", default=["utkface_test", "wider_face_val", "fgnet_test"])
    ap.add_argument("--readouts", nargs="+", default=list(AGE_READOUTS), choices=AGE_READOUTS)
    ap.add_argument("--output", default="output/age_readouts", help="folder for the tables and evaluator files")
    args = parse_foss_args(ap, argv)
    cfg = get_foss_cfg(args.config_file or None, opts=args.opts)
    register_config_datasets(cfg)
    model = build_model(cfg).eval()
    load_all_weights(model, cfg.MODEL.WEIGHTS)  # a checkpoint without the age network is an error
    run = FOSSWithTTA(cfg, model) if FOSSWithTTA.enabled(cfg) else model
    logging.basicConfig(level=logging.INFO)
    results = {}
    for ds in args.datasets:
        evaluators = {r: FaceAgeEvaluator(ds, os.path.join(args.output, r, ds)) for r in args.readouts}
        results[ds] = inference_on_dataset(run, Trainer.build_test_loader(cfg, ds), ReadoutEvaluators(evaluators))
        # each dataset's figures are on disk as soon as they are computed
        write_json_atomic(os.path.join(args.output, "readouts.json"), {"opts": args.opts, "results": results}, indent=1)
    text = table(results, args.readouts)
    write_text_atomic(os.path.join(args.output, "readouts.md"), text)
    print(text)


if __name__ == "__main__":
    main()
