"""The figures an evaluation wrote: ``tools/train_net.py --eval-only``'s and ``foss-d2 evaluate
predictions``'s ``eval_results.json``, {dataset: {task: {metric: value}}}."""

import glob
import json
import os


def load_eval_results(path: str, datasets=()) -> dict:
    """{dataset: {task: {metric: value}}} from an evaluation's folder or its eval_results.json.
    detectron2 gives one dataset's tasks without its name: if none of ``datasets`` is a key, the
    run's only ``inference/<dataset>/`` folder names it."""
    file = os.path.join(path, "eval_results.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"no eval_results.json at {path} (tools/train_net.py --eval-only or tools/evaluate.py predictions "
            "--output writes it)"
        )
    with open(file) as f:
        results = json.load(f)
    if datasets and not any(d in results for d in datasets):
        folders = glob.glob(os.path.join(os.path.dirname(os.path.abspath(file)), "inference", "*", ""))
        if len(folders) == 1:
            results = {os.path.basename(os.path.dirname(folders[0])): results}
    return results


def eval_figure(results: dict, dataset: str, task: str, metric: str):
    """One figure as a float, None where the run did not measure it."""
    value = results.get(dataset, {}).get(task, {}).get(metric)
    return None if value is None else float(value)
