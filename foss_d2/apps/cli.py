"""``foss-d2 <command> ...``: the console entry point, and the command-line convention of every tool.

Each command is the ``main`` function that the script of the same name under tools/ calls:

    foss-d2 demo --input demo/family.jpg --output output/demo        # tools/demo.py
    foss-d2 train --config-file configs/quick_schedules/FOSS-CPU-quick.yaml DATASETS.ROOT ../shared/data

The convention is detectron2's: ``--config-file`` (default: the shipped model), ``--input`` (one or
more), ``--output``, and config overrides as trailing ``KEY VALUE`` pairs (the data root too:
``DATASETS.ROOT /path``).
"""

import argparse
import importlib
import os
import re
import sys

# command -> (module whose main(argv, prog) runs it, one line of help)
COMMANDS = {
    "demo": ("foss_d2.apps.demo", "draw every face with age and gender on images, folders, videos or a webcam"),
    "survey": ("foss_d2.apps.survey", "count faces per age group and gender over photos or a video"),
    "train": ("foss_d2.apps.train", "train or evaluate (--eval-only) a model with detectron2's trainer"),
    "evaluate": ("foss_d2.apps.evaluate", "score a predictions.json, or the model on tiled held-out faces"),
    "benchmark": ("foss_d2.apps.benchmark", "inference time: FOSS vs two models, or one model's test-time settings"),
    "benchmark-loader": ("foss_d2.apps.benchmark_loader", "training-loader throughput, images/s per core"),
    "benchmark-train": ("foss_d2.apps.benchmark_train", "training-step cost in CPU-s, before and after the speed-ups"),
    "export": (
        "foss_d2.apps.export",
        "a checkpoint as small fp16 inference weights, or as ONNX graphs (--format onnx, --int8)",
    ),
}


def _config_top_keys():
    from detectron2.config import get_cfg

    from ..config import add_foss_config

    cfg = get_cfg()
    add_foss_config(cfg)
    return set(cfg.keys())


# SECTION.KEY in capitals: a config key, or a misspelt one (DATASET.ROOT), which must reach the
# config and fail there rather than be read as an input path.
_KEY_LIKE = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")
_VIDEO_SUFFIXES = (".MP4", ".AVI", ".MOV")


def is_config_key(word: str, top_keys=None) -> bool:
    """``MODEL.WEIGHTS``, ``OUTPUT_DIR`` or a misspelt ``MODLE.WEIGHTS`` yes; ``photo.jpg``,
    ``IMG_1.JPG`` or an existing file no."""
    if word.upper() != word or os.path.exists(word):
        return False
    from .runner import IMAGE_EXTS  # the tools that parse overrides have loaded it already

    top_keys = _config_top_keys() if top_keys is None else top_keys
    pictures = tuple(e.upper() for e in IMAGE_EXTS) + _VIDEO_SUFFIXES
    return word.split(".")[0] in top_keys or (bool(_KEY_LIKE.match(word)) and not word.endswith(pictures))


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are the one line that says what is wrong (argparse puts
    the whole usage block, a dozen lines for the demo, in front of it)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` (e.g. detectron2's ``default_argument_parser()``) with one-line usage errors."""
    if type(parser) is argparse.ArgumentParser:
        parser.__class__ = OneLineErrorParser
    return parser


def foss_argument_parser(
    description: str = None, prog: str = None, config_help: str = "default: the shipped model", add_help: bool = True
):
    """An ArgumentParser with ``--config-file`` and the trailing ``opts``; add the tool's own options to it
    (``add_help=False`` for a parent of subcommand parsers)."""
    p = OneLineErrorParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=add_help
    )
    p.add_argument("--config-file", default=None, metavar="FILE", help=config_help)
    p.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides, e.g. MODEL.WEIGHTS model.pth DATASETS.ROOT ../shared/data",
    )
    return p


def _list_options(parser):
    """The destinations of the parser's (and its subcommands') one-or-more options."""
    dests = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                dests += _list_options(sub)
        elif action.nargs == "+":
            dests.append(action.dest)
    return dests


def parse_foss_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args``, then config overrides that a list option (``--input a.jpg MODEL.X 1``)
    swallowed are moved back to ``opts``; a ``--`` before the overrides is dropped."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _config_top_keys()
    # The overrides start at the first config key that is not an option's value: split there, so
    # that a list option of numbers or choices (--grids 1 2 DATASETS.ROOT x) never sees them.
    cut = next(
        (i for i, w in enumerate(argv) if is_config_key(w, top) and not (i and argv[i - 1].startswith("-"))), None
    )
    trailing = argv[cut:] if cut is not None else []
    args = parser.parse_args(argv[:cut] if cut is not None else argv)
    opts = list(getattr(args, "opts", None) or []) + trailing
    if opts[:1] == ["--"]:
        opts = opts[1:]
    flag = next((o for o in opts if o.startswith("--")), None)
    if flag is not None and hasattr(args, "opts"):
        parser.error(f"{flag} comes after the KEY VALUE overrides ({' '.join(opts)}): put the options first")
    lists = [d for d in _list_options(parser) if isinstance(getattr(args, d, None), list)]
    if lists:
        for dest in lists:
            values = getattr(args, dest)
            cut = next(
                (i for i, v in enumerate(values) if i > 0 and isinstance(v, str) and is_config_key(v, top)), None
            )
            if cut is not None:
                setattr(args, dest, values[:cut])
                opts = [str(v) for v in values[cut:]] + opts
    if hasattr(args, "opts"):
        if len(opts) % 2:
            parser.error(f"config overrides come as KEY VALUE pairs, got {' '.join(opts)}")
        args.opts = opts
    return args


def config_from_args(parser: argparse.ArgumentParser, args, opts_before=(), opts_after=(), **kwargs):
    """``get_foss_cfg`` from --config-file, --preset, the KEY VALUE overrides (between the tool's own
    ``opts_before`` and ``opts_after``) and --confidence-threshold; a missing file, an unknown key or
    a wrong value is a one-line ``parser.error`` (exit 2)."""
    from ..config import get_foss_cfg
    from ..engine.api import PRESETS

    # (an option after the overrides is parse_foss_args's error, before this)
    preset = PRESETS[getattr(args, "preset", None) or "shipped"]
    opts = [*opts_before, *preset, *(args.opts or []), *opts_after]
    if getattr(args, "backend", None) == "onnxruntime" and "MODEL.DEVICE" not in opts[::2]:
        # onnxruntime runs on the CPU: MODEL.DEVICE's default is cuda on a machine with a GPU, and the
        # README's --backend onnxruntime commands stopped there (FaceAgeEstimator already chose cpu)
        kwargs.setdefault("device", "cpu")
    try:
        return get_foss_cfg(
            args.config_file, opts=opts, confidence_threshold=getattr(args, "confidence_threshold", None), **kwargs
        )
    except (FileNotFoundError, KeyError, ValueError, AssertionError, TypeError) as e:
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        parser.error(f"bad configuration: {' '.join(msg.split())}")


def register_datasets(parser: argparse.ArgumentParser, cfg):
    """The built-in datasets and the config's DATASETS.COCO; a missing file or a mistake in one is a
    one-line ``parser.error``."""
    from ..data.datasets import register_config_datasets
    from ..data.utils import DatasetError

    try:
        register_config_datasets(cfg)
    except (FileNotFoundError, DatasetError) as e:
        parser.error(str(e))


def dataset_folder_error(parser: argparse.ArgumentParser, cfg, e: Exception):
    """A built-in dataset's folder not found (most often: DATASETS.ROOT not given, or wrong): one
    line, exit 2, saying where the tools looked."""
    parser.error(f"{e} (a dataset's folder? DATASETS.ROOT is {cfg.DATASETS.ROOT!r})")


def run_tool(main, hint: str = ""):
    """``python tools/<tool>.py``: ``main`` (a callable, or the name of a module that has one) run,
    and Ctrl-C anywhere (torch loading, a model being built or exported, images being checked) said
    in one line with exit 130, as ``foss-d2`` says it, instead of Python's traceback."""
    try:
        (importlib.import_module(main).main if isinstance(main, str) else main)()
    except KeyboardInterrupt:
        print(f"{os.path.basename(sys.argv[0])}: interrupted{hint}", file=sys.stderr)
        sys.exit(130)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: foss-d2 <command> [options] [KEY VALUE ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "foss-d2 <command> --help describes each one."]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(usage(), file=sys.stderr)
        print(f"\nfoss-d2: unknown command {command!r}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[command][0])
        return module.main(rest, prog=f"foss-d2 {command}")
    except KeyboardInterrupt:  # outside a run's own handler: imports, the model loading, training
        print(f"foss-d2 {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
