"""Age-group survey (the paper's motivating use, section 1: a shop's customer age survey).

Counts faces per age group and gender over a folder or a video's frames, from FOSS-D2 predictions
(``predictions.json`` of tools/demo.py, or computed on the fly by tools/survey.py).
"""
import csv
import json
import os
from typing import Dict, Iterable, List, Sequence

import numpy as np

from ..evaluation.age_evaluator import age_to_group

PAPER_GROUP_LOWER = (0, 3, 8, 13, 20, 37, 66)  # Images of Groups: 0-2, 3-7, 8-12, 13-19, 20-36, 37-65, 66+
GENDERS = ("male", "female", "unknown")


def group_names(lower: Sequence[int]) -> List[str]:
    """[0, 3, 8] -> ["0-2", "3-7", "8+"]."""
    names = [f"{lo}-{hi - 1}" for lo, hi in zip(lower[:-1], lower[1:])]
    return names + [f"{lower[-1]}+"]


def count_faces(faces: Iterable[dict], lower: Sequence[int] = PAPER_GROUP_LOWER) -> Dict[str, Dict[str, int]]:
    """{group name: {"male": n, "female": n, "unknown": n}} for faces with an ``age``."""
    names = group_names(lower)
    counts = {n: {g: 0 for g in GENDERS} for n in names}
    for f in faces:
        if f.get("age") is None:
            continue
        g = f.get("gender") if f.get("gender") in ("male", "female") else "unknown"
        counts[names[age_to_group(f["age"], lower)]][g] += 1
    return counts


def counts_over_time(frames: Dict[str, List[dict]], fps: float, bucket_seconds: float, lower=PAPER_GROUP_LOWER):
    """Video: [(start second, counts)] per ``bucket_seconds`` window, from {frame index: faces}."""
    buckets: Dict[int, List[dict]] = {}
    for key, faces in frames.items():
        b = int(int(key) / fps // bucket_seconds)
        buckets.setdefault(b, []).extend(faces)
    return [(b * bucket_seconds, count_faces(buckets[b], lower)) for b in sorted(buckets)]


def save_survey(counts: Dict[str, Dict[str, int]], out_dir: str, title: str = "FOSS-D2 age survey", timeline=None):
    """survey.json, survey.csv and survey.png (stacked bars per group); with ``timeline`` also
    survey_timeline.csv / .png (faces per group over time)."""
    os.makedirs(out_dir, exist_ok=True)
    total = sum(sum(v.values()) for v in counts.values())
    with open(os.path.join(out_dir, "survey.json"), "w") as f:
        json.dump({"total_faces": total, "groups": counts, "timeline": timeline}, f, indent=1)
    with open(os.path.join(out_dir, "survey.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", *GENDERS, "total"])
        for name, c in counts.items():
            w.writerow([name, *[c[g] for g in GENDERS], sum(c.values())])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(counts)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = np.zeros(len(names))
    for g, color in zip(GENDERS, ("#3973f2", "#f24d73", "#999999")):
        vals = np.array([counts[n][g] for n in names])
        if vals.sum() or g != "unknown":
            ax.bar(x, vals, bottom=bottom, label=g, color=color)
        bottom += vals
    ax.set_xticks(x, names)
    ax.set_xlabel("age group (years)")
    ax.set_ylabel("faces")
    ax.set_title(f"{title} ({total} faces)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "survey.png"), dpi=110)
    plt.close(fig)
    if timeline:
        with open(os.path.join(out_dir, "survey_timeline.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["start_s", *names])
            for t, c in timeline:
                w.writerow([t, *[sum(c[n].values()) for n in names]])
        fig, ax = plt.subplots(figsize=(8, 4))
        ts = [t for t, _ in timeline]
        for n in names:
            ax.plot(ts, [sum(c[n].values()) for _, c in timeline], marker="o", label=n)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("faces seen")
        ax.legend(ncol=4, fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "survey_timeline.png"), dpi=110)
        plt.close(fig)
    return total
