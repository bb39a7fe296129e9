#!/usr/bin/env python
"""Train / evaluate FOSS-D2 with detectron2's DefaultTrainer.

    python tools/train_net.py --config-file configs/quick_schedules/FOSS-CPU-quick.yaml
    python tools/train_net.py --config-file ... --eval-only MODEL.WEIGHTS path/to/model.pth
"""
import os

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.data import build_detection_test_loader
from detectron2.utils import comm
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch

from foss_d2 import add_foss_config
from foss_d2.data import FOSSDatasetMapper, build_foss_train_loader
from foss_d2.data.datasets import register_all_foss
from foss_d2.engine import build_foss_optimizer
from foss_d2.evaluation import build_foss_evaluator
from foss_d2.utils.json_io import write_json_atomic


class Trainer(DefaultTrainer):
    @classmethod
    def build_train_loader(cls, cfg):
        return build_foss_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=FOSSDatasetMapper(cfg, False))

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_foss_optimizer(cfg, model)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_foss_evaluator(cfg, dataset_name, output_folder)


def setup(args):
    cfg = get_cfg()
    add_foss_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    register_all_foss(cfg.DATASETS.ROOT or None)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            # The printed tables, also as a file that scripts (tools/run_ablations.py) can read.
            write_json_atomic(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), results, indent=1)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
