"""Train / evaluate FOSS-D2 with detectron2's DefaultTrainer.

    foss-d2 train --config-file configs/quick_schedules/FOSS-CPU-quick.yaml DATASETS.ROOT ../shared/data
    foss-d2 train --config-file ... --eval-only MODEL.WEIGHTS path/to/model.pth

Without --config-file, the shipped model's config and weights (``--eval-only`` evaluates it).
(``python tools/train_net.py`` takes the same arguments: detectron2's ``default_argument_parser``.)
"""

import contextlib
import logging
import os

import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog, build_detection_test_loader, get_detection_dataset_dicts
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config import check_device, get_foss_cfg
from ..data import FOSSDatasetMapper, build_foss_train_loader
from ..data.datasets import register_config_datasets
from ..data.utils import DatasetError
from ..engine.hooks import DivergenceGuard, TrainingCurves
from ..engine.predictor import load_all_weights
from ..evaluation import build_foss_evaluator
from ..meta_arch import FOSSWithTTA
from ..solver import build_foss_optimizer
from ..utils.json_io import nan_as_null, write_json_atomic, write_text_atomic
from .cli import dataset_folder_error, one_line_errors, parse_foss_args
from .export import save_atomic
from .runner import FULL_DISK, WRITE_ERRORS, RunError, config_from_args, output_lock

logger = logging.getLogger(__name__)


class AtomicCheckpointer(DetectionCheckpointer):
    """detectron2's checkpointer, its files written whole: fvcore writes ``model_final.pth`` in place,
    so a run stopped while saving left a truncated file that --resume (at MAX_ITER: nothing to train)
    and tools/research/train_cpu_route.sh (a stage with a model_final.pth is done) took for the model.
    Each file is written beside its name and renamed over it, ``last_checkpoint`` after it."""

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **{k: v.state_dict() for k, v in self.checkpointables.items()}}
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        save_atomic(data, path)  # (a full disk: an OSError naming the file)
        write_text_atomic(os.path.join(self.save_dir, "last_checkpoint"), basename)


class Trainer(DefaultTrainer):
    @classmethod
    def build_train_loader(cls, cfg):
        return build_foss_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        # training skips a missing image; evaluation would score its faces as missed, or stop
        # halfway in a loader worker: said before it starts
        dicts = get_detection_dataset_dicts([dataset_name], filter_empty=False)  # loaded once, for both
        files = sorted({d["file_name"] for d in dicts})
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise DatasetError(
                f"{dataset_name}: {len(missing)} of its {len(files)} images are missing (first: {missing[0]}); "
                "evaluation needs every image: fix its image root, or leave them out of its file"
            )
        return build_detection_test_loader(
            dicts, mapper=FOSSDatasetMapper(cfg, False), num_workers=cfg.DATALOADER.NUM_WORKERS
        )

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_foss_optimizer(cfg, model)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_foss_evaluator(cfg, dataset_name, output_folder)

    def state_dict(self):
        # detectron2 0.6's DefaultTrainer checkpoints only the iteration and its hooks (the LR
        # schedule's position among them): the optimizer's state (Adam's moments and the learning
        # rate of the next step) was lost on --resume.
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:  # absent from checkpoints written before
            self._trainer.load_state_dict(state_dict["_trainer"])

    def build_hooks(self):
        # (called by DefaultTrainer.__init__ once its checkpointer exists; the hooks take this one)
        c = self.checkpointer
        self.checkpointer = AtomicCheckpointer(c.model, c.save_dir, **c.checkpointables)
        # The guard first, so that a diverged step raises before the periodic checkpointer saves
        # it; the curves last, after the writer of metrics.json.
        cfg = self.cfg
        curves = TrainingCurves(cfg.OUTPUT_DIR, cfg.SOLVER.CHECKPOINT_PERIOD)
        return [DivergenceGuard(cfg.SOLVER.DIVERGENCE_LOSS_FACTOR)] + super().build_hooks() + [curves]

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        # The test-time options that are not in the paper (TEST_SIZES, TEST_FLIPs) wrap its single pass.
        if FOSSWithTTA.enabled(cfg):
            model = FOSSWithTTA(cfg, model)
        return super().test(cfg, model, evaluators)


class SetupError(ValueError):
    """A run that would waste its time (weights that leave part of the model untrained, to
    evaluate): said in one line by ``main``, exit 2."""


def setup(args):
    cfg = get_foss_cfg(args.config_file or None, opts=args.opts)
    default_setup(cfg, args)
    # detectron2 sets up its own and fvcore's loggers: FOSS-D2's lines (sampling, skipped samples)
    # go to the console and OUTPUT_DIR/log.txt the same way
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="foss_d2")
    register_config_datasets(cfg)
    return cfg


def run(args):
    """One process's training or evaluation (what detectron2's ``launch`` starts)."""
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        checkpointer = DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR)
        if args.resume and checkpointer.has_checkpoint():
            checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=True)
        else:
            # not detectron2's load, which only warns: weights that leave part of the model untrained
            # (a --detector-only export) would be evaluated as a random age network
            try:
                load_all_weights(model, cfg.MODEL.WEIGHTS)
            except ValueError as e:
                raise SetupError(str(e)) from None
        check_test_images(cfg)
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            # The printed tables, also as a file that scripts (tools/research/run_ablations.py) can read.
            write_json_atomic(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), nan_as_null(results), indent=1)
        return results
    check_test_images(cfg)  # before training too: it evaluates at TEST.EVAL_PERIOD and at its end
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def check_dataset_names(parser, cfg, eval_only: bool):
    """DATASETS.TRAIN / TEST name registered datasets, each once (detectron2: a KeyError listing
    hundreds of COCO names; a name twice: twice its share of the draws, hidden in the log)."""
    from ..data.datasets.builtin import FOSS_DATASETS

    lists = [("DATASETS.TEST", cfg.DATASETS.TEST)] + ([] if eval_only else [("DATASETS.TRAIN", cfg.DATASETS.TRAIN)])
    for key, names in lists:
        twice = sorted({n for n in names if list(names).count(n) > 1})
        if twice:
            parser.error(f"{key} names {', '.join(twice)} more than once: each dataset once")
        unknown = [n for n in names if n not in DatasetCatalog.list()]
        if unknown:
            own = [e[0] for e in cfg.DATASETS.COCO]
            parser.error(
                f"{key}: {', '.join(unknown)} is not a dataset here; FOSS-D2's are {', '.join(sorted(FOSS_DATASETS))}"
                f"{'; DATASETS.COCO adds ' + ', '.join(own) if own else ''} (a file of one's own: DATASETS.COCO, "
                "datasets/README.md)"
            )


def check_test_images(cfg):
    """Every image of DATASETS.TEST decoded and its size compared with its record's, before training
    or evaluation starts: evaluation needs every image, and a file that cannot be read (a truncated
    JPEG, a photo whose EXIF turn swaps its listed width and height) stopped it halfway with a loader
    worker's traceback, or a training run at its first evaluation, before any checkpoint."""
    from ..utils.image_io import unreadable_images

    for name in cfg.DATASETS.TEST:
        dicts = DatasetCatalog.get(name)
        files = {d["file_name"]: (d.get("width"), d.get("height")) for d in dicts}
        missing = [f for f in sorted(files) if not os.path.isfile(f)]
        if missing:
            raise DatasetError(
                f"{name}: {len(missing)} of its {len(files)} images are missing (first: {missing[0]}); "
                "evaluation needs every image: fix its image root, or leave them out of its file"
            )
        bad = list(unreadable_images(sorted(files.items()), cfg.INPUT.FORMAT, f"checking {name}'s images").values())
        if bad:
            raise DatasetError(
                f"{name}: {len(bad)} of its {len(files)} images cannot be evaluated (first: {bad[0]}); evaluation "
                "needs every image: fix them, or leave them out of its file"
            )


def check_weights_fit(parser, cfg, args):
    """Weights that do not fit the config's model, said before the run starts (and before
    default_setup writes OUTPUT_DIR/config.yaml over the earlier run's): --resume from a checkpoint
    of another model (a traceback from the optimizer's state after fvcore's hundreds of warnings),
    or a frozen detector whose MODEL.WEIGHTS are another model's (the age network trained to the
    end on a random detector)."""
    m = cfg.MODEL
    last = os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")
    resuming = args.resume and os.path.isfile(last)
    if resuming:
        with open(last) as f:
            path = os.path.join(cfg.OUTPUT_DIR, f.read().strip())
        parts = ("backbone", "proposal_generator", "age_head")
    elif m.WEIGHTS and m.FOSS.FREEZE_DETECTOR and not m.FOSS.DETECTOR_ONLY and not args.eval_only:
        path, parts = m.WEIGHTS, ("backbone", "proposal_generator")
    else:
        return
    if not os.path.isfile(path):
        return  # the run's own load says so
    from detectron2.modeling import build_model

    from ..engine.predictor import RecordingCheckpointer

    on_cpu = cfg.clone()
    on_cpu.defrost()
    on_cpu.MODEL.DEVICE = "cpu"
    checkpointer = RecordingCheckpointer(build_model(on_cpu))
    try:
        checkpointer.load(path, checkpointables=[])
    except Exception:  # noqa: BLE001  (not a checkpoint: the run's own load says so)
        return
    missing = [k for k in checkpointer.missing if k.split(".")[0] in parts]
    if not missing:
        return
    where = ", ".join(sorted({k.split(".")[0] for k in missing}))
    other = [k for k in checkpointer.other_shapes if k.split(".")[0] in parts]
    shapes = f", {len(other)} of them in another shape" if other else ""
    if resuming:
        parser.error(
            f"--resume: OUTPUT_DIR {cfg.OUTPUT_DIR} holds a run of another model: {path} has no weights for "
            f"{len(missing)} of this config's tensors{shapes}, in {where}. Resume it with its own config "
            f"(--config-file {os.path.join(cfg.OUTPUT_DIR, 'config.yaml')}), or give another OUTPUT_DIR"
        )
    parser.error(
        f"the detector is frozen (MODEL.FOSS.FREEZE_DETECTOR) but MODEL.WEIGHTS {path} has no weights for "
        f"{len(missing)} of its tensors{shapes}, in {where}: it would stay random. Give a detector of this "
        "config (a stage-1 run of it, or the shipped weights for the shipped architecture)"
    )


def get_parser(prog=None):
    p = one_line_errors(default_argument_parser())
    p.prog = prog or p.prog
    p.description = __doc__
    return p


def main(argv=None, prog=None):
    parser = get_parser(prog)
    args = parse_foss_args(parser, argv)
    cfg = config_from_args(parser, args)  # a missing file, an unknown key or a bad value: one line, exit 2
    # What can be checked before the processes start (with --num-gpus 2 an error in one of them is
    # a traceback per process): the config's own datasets, and a frozen detector without weights.
    try:
        register_config_datasets(cfg)
    except (FileNotFoundError, DatasetError) as e:  # e.g. a DATASETS.COCO file teacher_genders.py writes first
        parser.error(str(e))
    check_dataset_names(parser, cfg, args.eval_only)
    if cfg.SOLVER.AMP.ENABLED and not args.eval_only and torch.device(cfg.MODEL.DEVICE).type != "cuda":
        # detectron2's AMPTrainer asserts a CUDA GPU at its first step, after the data has loaded
        parser.error(
            f"SOLVER.AMP.ENABLED is mixed precision on a CUDA GPU; MODEL.DEVICE is {cfg.MODEL.DEVICE}: "
            "set SOLVER.AMP.ENABLED False (or MODEL.DEVICE cuda on a machine with a GPU)"
        )
    m = cfg.MODEL
    # (--resume without a checkpoint in OUTPUT_DIR starts from MODEL.WEIGHTS, as detectron2 does)
    resumable = args.resume and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"))
    untrained = not m.WEIGHTS and not resumable and not args.eval_only
    if untrained and m.FOSS.FREEZE_DETECTOR and not m.FOSS.DETECTOR_ONLY and not m.FOSS.ADD_GT_BOXES:
        parser.error(
            "the detector is frozen (MODEL.FOSS.FREEZE_DETECTOR, the paper's stage 2) but MODEL.WEIGHTS is empty: "
            "it would stay random and find no face to train the age network on. Give the stage-1 detector: "
            "MODEL.WEIGHTS output/.../model_final.pth"
        )
    if args.eval_only:
        if not cfg.MODEL.WEIGHTS and not resumable:
            # detectron2 would evaluate the untrained model: figures of random weights, no warning
            parser.error(
                "--eval-only needs trained weights: MODEL.WEIGHTS (the shipped model: "
                "foss_d2/model_zoo/foss_default.pth), or --resume with a checkpoint in OUTPUT_DIR"
            )
        if not cfg.DATASETS.TEST:  # detectron2 would evaluate nothing and exit 0
            parser.error(
                "--eval-only with an empty DATASETS.TEST: name what to evaluate, e.g. "
                "DATASETS.TEST \"('wider_face_val','utkface_test')\" DATASETS.ROOT ../shared/data"
            )
    try:
        check_device(cfg.MODEL.DEVICE)
    except ValueError as e:  # else a traceback from the model's .to() in each process
        parser.error(str(e))
    if args.num_gpus > 1 and torch.cuda.device_count() < args.num_gpus:
        parser.error(f"--num-gpus {args.num_gpus}, but torch sees {torch.cuda.device_count()} CUDA GPUs here")
    check_weights_fit(parser, cfg, args)
    with contextlib.ExitStack() as held:
        if not args.eval_only and args.machine_rank == 0:
            # two trainings into one OUTPUT_DIR would write over each other's checkpoints, and the
            # second would move the first's metrics.json aside (below); an --eval-only beside a
            # training (of one of its checkpoints) is left free
            try:
                held.enter_context(output_lock(cfg.OUTPUT_DIR, "OUTPUT_DIR"))
            except RunError as e:
                parser.error(str(e))
        if not args.eval_only and not args.resume and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")):
            # detectron2 appends to metrics.json: the earlier run's lines are moved aside, not mixed in
            metrics = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
            kept = ""
            if os.path.isfile(metrics):
                n = 1
                while os.path.exists(os.path.join(cfg.OUTPUT_DIR, f"metrics.before{n}.json")):
                    n += 1
                os.replace(metrics, os.path.join(cfg.OUTPUT_DIR, f"metrics.before{n}.json"))
                kept = f"; its metrics.json is now metrics.before{n}.json"
            logger.warning(
                "OUTPUT_DIR %s holds an earlier run's checkpoints: this run starts afresh and writes over its "
                "model_final.pth%s (--resume continues it; another OUTPUT_DIR keeps it)",
                cfg.OUTPUT_DIR,
                kept,
            )
        print("Command Line Args:", args)
        try:
            launch(
                run,
                args.num_gpus,
                num_machines=args.num_machines,
                machine_rank=args.machine_rank,
                dist_url=args.dist_url,
                args=(args,),
            )
        except (DatasetError, SetupError) as e:  # a mistake in a dataset file, the datasets or the weights: one line
            parser.exit(2, f"{parser.prog}: error: {e}\n")
        except FileNotFoundError as e:  # a built-in dataset's folder, most often: DATASETS.ROOT
            dataset_folder_error(parser, cfg, e)
        except OSError as e:  # a full disk, a folder that stops taking writes: checkpoints are atomic
            if e.errno not in WRITE_ERRORS:
                raise
            then = "free some space" if e.errno in FULL_DISK else "make it writable"
            if args.eval_only:
                how = f"{then}, then run the same command again"
            else:
                how = (
                    f"the checkpoints saved before are whole (OUTPUT_DIR/last_checkpoint names the last); {then}, "
                    "then run the same command with --resume to go on from it"
                )
            parser.exit(1, f"{parser.prog}: error: {e.strerror} writing {e.filename or cfg.OUTPUT_DIR}: {how}\n")


if __name__ == "__main__":
    main()
