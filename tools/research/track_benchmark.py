#!/usr/bin/env python
"""Video tracking benchmark on footage built from real photos (issue 18; docs/DESIGN.md "Video").

    python tools/research/track_benchmark.py --output output/track_benchmark DATASETS.ROOT ../shared/data

Footage (640x480, 25 fps, a camera panning and zooming over each photo, foss_d2/utils/footage.py):
``pan`` (demo/family.jpg, 30 frames), ``reenter`` (family.jpg, the camera leaves the left faces and
comes back), ``cuts`` (4 WIDER val photos, 10 frames each) and ``utk`` (12 canvases of 3x2 held-out
UTKFace faces, 15 frames each: true ages). The model runs once per frame (the "fast" preset, for
CPU; detections cached in OUT/<footage>_detections.json), then each tracker runs on the cached
detections: norfair as shipped, norfair with its Kalman filter and ByteTrack (Roboflow's
``trackers``, if importable), each with and without the scene-cut reset. Ground truth: each face's
box mapped through the camera (WIDER's annotated boxes, family.jpg's too, a WIDER val photo; without
them, the boxes the model finds in the still photo; UTKFace: the tile), matched to the detections
at IoU >= 0.25. Writes OUT/tracking.json, OUT/jitter.json and OUT/people_rule.json (what the people rule of
``--min-track-frames`` and a best score of 0.4 drops) and prints them.
"""

import argparse
import json
import os
import random
from collections import Counter, defaultdict

import cv2
import numpy as np

from foss_d2 import FaceAgeEstimator
from foss_d2.apps.tracking import (
    DEFAULT_CUT_THRESHOLD,
    DEFAULT_MIN_FRAMES,
    DEFAULT_MIN_SCORE,
    FaceTracker,
    SceneCuts,
    VideoPeople,
    aggregate,
)
from foss_d2.data.datasets.utkface import load_utkface
from foss_d2.data.datasets.wider_face import parse_wider_bbx_gt
from foss_d2.utils.footage import map_boxes, shot

OUT_WH = (640, 480)
FPS = 25.0
FAMILY = "20--Family_Group/20_Family_Group_Family_Group_20_1026.jpg"  # demo/family.jpg in WIDER val
CUT_PHOTOS = [  # WIDER val photos of 3-4 faces of at least 100 px: 15 faces
    "0--Parade/0_Parade_Parade_0_960.jpg",
    "13--Interview/13_Interview_Interview_On_Location_13_847.jpg",
    "19--Couple/19_Couple_Couple_19_125.jpg",
    "20--Family_Group/20_Family_Group_Family_Group_20_1003.jpg",
]


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def build_footage(est, data_root):
    """{name: [(frame, shot index, [(person id, gt box in frame px, true age or None)])]}."""
    family = cv2.imread("demo/family.jpg")
    wider = os.path.join(data_root, "widerface")
    gt_file = os.path.join(wider, "wider_face_split", "wider_face_val_bbx_gt.txt")
    gt = dict(parse_wider_bbx_gt(gt_file)) if os.path.isfile(gt_file) else {}
    if FAMILY in gt:  # WIDER FACE's own six faces (demo/README.md)
        still = [[x, y, x + w, y + h] for x, y, w, h, *_ in gt[FAMILY]]
    else:
        print(f"{gt_file} not there: family.jpg's true faces are the model's boxes in the still photo")
        still = [f["box"] for f in est(family)]
    fam_gt = [(f"family/{i}", b, None) for i, b in enumerate(still)]
    footage = {
        "pan": [(0, family, dict(zoom=(1.0, 1.5), center_from=(0.45, 0.4), center_to=(0.55, 0.45)), 30, fam_gt)],
        "reenter": [],
    }
    # the camera moves right until the two left faces leave the view, then back
    for i, (c0, c1) in enumerate([((0.5, 0.4), (0.85, 0.4)), ((0.85, 0.4), (0.5, 0.4))]):
        footage["reenter"].append((0, family, dict(zoom=(1.6, 1.6), center_from=c0, center_to=c1), 15, fam_gt))
    if gt:
        footage["cuts"] = []
        for s, rel in enumerate(CUT_PHOTOS):
            img = cv2.imread(os.path.join(wider, "WIDER_val", "images", rel))
            boxes = [(f"{rel}/{k}", [x, y, x + w, y + h], None) for k, (x, y, w, h, *_) in enumerate(gt[rel])]
            footage["cuts"].append((s, img, dict(zoom=(1.0, 1.25), center_to=(0.52, 0.48)), 10, boxes))
    utk_dir = os.path.join(data_root, "utkface", "UTKFace")
    if os.path.isdir(utk_dir):
        recs = load_utkface(utk_dir, "test")
        random.Random(0).shuffle(recs)
        footage["utk"] = []
        for s in range(12):
            canvas = np.full((400, 600, 3), 110, np.uint8)
            people = []
            for k, r in enumerate(recs[6 * s : 6 * s + 6]):
                x, y = 200 * (k % 3), 200 * (k // 3)
                canvas[y : y + 200, x : x + 200] = cv2.resize(cv2.imread(r["file_name"]), (200, 200))
                a = r["annotations"][0]
                bx = [
                    x + v * 200 / r["width"] if j % 2 == 0 else y + v * 200 / r["height"]
                    for j, v in enumerate(a["bbox"])
                ]
                people.append((r["image_id"], bx, (a["age"], "female" if a["gender"] == 1 else "male")))
            footage["utk"].append((s, canvas, dict(zoom=(0.9, 1.2), center_to=(0.55, 0.52)), 15, people))
    out = {}
    for name, shots in footage.items():
        frames = []
        for s, img, kw, n, people in shots:
            for frame, m in shot(img, n, OUT_WH, **kw):
                boxes = map_boxes([b for _, b, _ in people], m, OUT_WH)
                frames.append((frame, s, [(p, list(b), a) for (p, _, a), b in zip(people, boxes)]))
        out[name] = frames
    return out


def detect(est, frames, cache):
    if os.path.isfile(cache):
        with open(cache) as f:
            return json.load(f)
    dets = [est(frame) for frame, _, _ in frames]
    with open(cache, "w") as f:
        json.dump(dets, f)
    return dets


class ByteTrackFaces:
    """Roboflow's ByteTrack (``trackers``) behind FaceTracker's interface, for the comparison."""

    def __init__(self, fps=FPS, cut_threshold=DEFAULT_CUT_THRESHOLD, **_):
        import supervision as sv
        from trackers import ByteTrackTracker

        self.sv, self.cls = sv, ByteTrackTracker
        # thresholds at this model's scores (0.2-0.7; the library's defaults are for COCO detectors)
        self.kw = dict(
            lost_track_buffer=int(fps),
            frame_rate=fps,
            track_activation_threshold=0.3,
            minimum_consecutive_frames=1,
            high_conf_det_threshold=0.4,
            minimum_iou_threshold=0.3,
        )
        self.cuts = SceneCuts(cut_threshold) if cut_threshold is not None else None
        self.n_cuts, self.offset, self.max_id = 0, 0, 0
        self.tracker = self.cls(**self.kw)

    def update(self, faces, frame=None, cut=None, time_s=None):
        """FaceTracker.update's call; ``time_s`` unused (the benchmark's footage has no pauses)."""
        if cut is None:
            cut = self.cuts is not None and frame is not None and self.cuts(frame)
        if cut and self.cuts is not None:
            self.n_cuts += 1
            self.offset, self.tracker = self.max_id + 1, self.cls(**self.kw)  # its ids start at 0
        ids = [None] * len(faces)
        if not faces:
            self.tracker.update(self.sv.Detections.empty())
            return ids
        det = self.sv.Detections(
            xyxy=np.array([f["box"] for f in faces], np.float32),
            confidence=np.array([f["score"] for f in faces], np.float32),
            class_id=np.zeros(len(faces), int),
            data={"i": np.arange(len(faces))},
        )
        res = self.tracker.update(det)
        for i, t in zip(res.data["i"], res.tracker_id):
            if t >= 0:
                ids[int(i)] = self.offset + int(t)
                self.max_id = max(self.max_id, ids[int(i)])
        return ids


def match_truth(faces, truth, thr=0.25):
    """Per face: the person id of the best-overlapping true box (IoU >= thr), one face per person."""
    pairs = sorted(
        ((iou(f["box"], b), i, p) for i, f in enumerate(faces) for p, b, _ in truth if iou(f["box"], b) >= thr),
        reverse=True,
    )
    out, used = [None] * len(faces), set()
    for _, i, p in pairs:
        if out[i] is None and p not in used:
            out[i], used = p, used | {p}
    return out


def run_tracker(make, frames, dets, min_frames):
    vp = VideoPeople(fps=FPS, min_frames=min_frames, thumbnails=False, cut_threshold=None)
    vp.tracker = make()
    per_frame = []
    for idx, ((frame, s, truth), faces) in enumerate(zip(frames, dets)):
        faces = [dict(f) for f in faces]
        shown = vp.update(idx, frame, faces)
        per_frame.append((s, faces, shown, match_truth(faces, truth)))
    return vp, per_frame


def tracking_metrics(vp, per_frame, min_frames):
    track_people, track_shots, person_tracks = defaultdict(Counter), defaultdict(set), defaultdict(list)
    for s, faces, _, who in per_frame:
        for f, p in zip(faces, who):
            if f["track_id"] is None:
                continue
            track_shots[f["track_id"]].add(s)
            if p is not None:
                track_people[f["track_id"]][p] += 1
                person_tracks[p].append(f["track_id"])
    long_tracks = {p["track_id"] for p in vp.people()}
    persons = [p for p, ts in person_tracks.items() if len(ts) >= min_frames]
    owner = {t: track_people[t].most_common(1)[0][0] for t in long_tracks if track_people[t]}
    switches = sum(sum(a != b for a, b in zip(ts, ts[1:])) for ts in person_tracks.values())
    return {
        "frames": len(per_frame),
        "true_people": len(persons),
        "tracks": len(long_tracks),
        "tracks_per_true_person": round(sum(owner.get(t) in persons for t in long_tracks) / max(len(persons), 1), 2),
        "tracks_without_true_person": sum(t not in owner for t in long_tracks),
        "id_switches": switches,
        "tracks_crossing_cuts": sum(len(track_shots[t]) > 1 for t in long_tracks),
        "dropped_tracks": len(vp.tracks) - len(long_tracks),
    }


def track_filter_counts(vp, per_frame, min_frames, min_score):
    """What VideoPeople's rule (a person: ``min_frames`` faces, one scoring ``min_score``) keeps and
    drops (docs/DESIGN.md, "Which tracks are people"): the tracks that matched no true face by their
    length in frames and the best score of the longer ones, and the tracks of true faces shorter
    than ``min_frames`` (fragments the rule drops)."""
    matched = {f["track_id"] for _, faces, _, who in per_frame for f, p in zip(faces, who) if p is not None}
    false = [t for tid, t in vp.tracks.items() if tid not in matched]
    longer = [t for t in false if t.frames_seen >= min_frames]
    return {
        "false_tracks": len(false),
        "false_tracks_by_frames": {str(n): sum(t.frames_seen == n for t in false) for n in range(1, min_frames)}
        | {f"{min_frames}+": len(longer)},
        f"false_tracks_{min_frames}+_under_min_score": sum(t.best_score < min_score for t in longer),
        "false_tracks_best_scores": [round(f(t.best_score for t in false), 2) for f in (min, max)] if false else [],
        "true_tracks_under_min_frames": sum(
            t.frames_seen < min_frames for tid, t in vp.tracks.items() if tid in matched
        ),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default="output/track_benchmark")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--min-frames", type=int, default=DEFAULT_MIN_FRAMES)
    ap.add_argument("opts", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    opts = dict(zip(args.opts[::2], args.opts[1::2]))
    data_root = opts.get("DATASETS.ROOT", (os.environ.get("FOSS_SHARED_DATA") or "../shared/data"))
    os.makedirs(args.output, exist_ok=True)
    est = FaceAgeEstimator(preset=args.preset, device="cpu")
    footage = build_footage(est, data_root)
    trackers = {
        "norfair": lambda cut: FaceTracker(fps=FPS, cut_threshold=cut),
        "norfair+Kalman": lambda cut: FaceTracker(fps=FPS, cut_threshold=cut, kalman=True),
    }
    try:
        import trackers as _  # noqa: F401

        trackers["bytetrack"] = lambda cut: ByteTrackFaces(fps=FPS, cut_threshold=cut)
    except ImportError:
        print("trackers (ByteTrack) not importable: norfair only")
    table, jit, kept = {}, {}, {}
    for name, frames in footage.items():
        dets = detect(est, frames, os.path.join(args.output, f"{name}_detections.json"))
        truth = {p: a for _, _, tr in frames for p, _, a in tr}
        for tname, make in trackers.items():
            for cut in (DEFAULT_CUT_THRESHOLD, None):
                label = f"{tname}{'' if cut is not None else ' (no cut reset)'}"
                vp, per_frame = run_tracker(lambda: make(cut), frames, dets, args.min_frames)
                table[f"{name} | {label}"] = tracking_metrics(vp, per_frame, args.min_frames)
                if tname == "norfair" and cut is not None:
                    kept[name] = track_filter_counts(vp, per_frame, args.min_frames, DEFAULT_MIN_SCORE)
                if name == "utk" and tname == "norfair" and cut is not None:
                    jit = age_jitter(per_frame, truth, args.min_frames)
    for k, v in table.items():
        print(f"{k:40s} {v}")
    print(json.dumps(jit, indent=1))
    print("which tracks are people (norfair, cut reset):", json.dumps(kept, indent=1))
    with open(os.path.join(args.output, "tracking.json"), "w") as f:
        json.dump(table, f, indent=1)
    with open(os.path.join(args.output, "jitter.json"), "w") as f:
        json.dump(jit, f, indent=1)
    with open(os.path.join(args.output, "people_rule.json"), "w") as f:
        json.dump(kept, f, indent=1)


def age_jitter(per_frame, truth, min_frames):
    """Mean over true people (seen in >= min_frames frames, one track) of: the std over frames of the
    per-frame age and of the drawn running answer; MAE against the true age of the per-frame ages
    and of each aggregation of the faces of the person's track (every frame's, as the tracker
    assigned them: a track keeps running sums, not its faces), and the share of faces (per
    person) and of people whose true age lies within the frame's or the aggregation's age_std."""
    by_person, of_track = defaultdict(list), defaultdict(list)
    for _, faces, shown, who in per_frame:
        for f in faces:
            if f["track_id"] is not None:
                of_track[f["track_id"]].append(f)
        for f, sh, p in zip(faces, shown, who):
            if p is not None and f["age"] is not None and f["track_id"] is not None:
                by_person[p].append((f, sh))
    std_frame, std_shown, err_frame, gender_frame, within_frame = [], [], [], [], []
    err, right, within = defaultdict(list), defaultdict(list), defaultdict(list)
    for p, obs in by_person.items():
        if len(obs) < min_frames:
            continue
        ages = np.array([f["age"] for f, _ in obs])
        std_frame.append(ages.std())
        std_shown.append(np.std([sh["age"] for _, sh in obs]))
        age, gender = truth[p]
        err_frame.append(np.abs(ages - age).mean())
        within_frame.append(np.mean([abs(f["age"] - age) <= f["age_std"] for f, _ in obs]))
        gender_frame.append(np.mean([f["gender"] == gender for f, _ in obs]))
        track = Counter(f["track_id"] for f, _ in obs).most_common(1)[0][0]
        for m in ("inverse_variance", "weighted", "mean", "median"):
            answer = aggregate(of_track[track], m)
            err[m].append(abs(answer["age"] - age))
            within[m].append(abs(answer["age"] - age) <= answer["age_std"])  # is people.json's age_std an error bar
            right[m].append(answer["gender"] == gender)
    r = lambda v: round(float(np.mean(v)), 2)  # noqa: E731
    return {
        "people": len(std_frame),
        "age_std_over_frames_per_frame": r(std_frame),
        "age_std_over_frames_drawn_running_answer": r(std_shown),
        "mae_per_frame": r(err_frame),
        **{f"mae_per_person_{m}": r(v) for m, v in err.items()},
        "age_in_1std_per_frame": r(within_frame),
        **{f"age_in_1std_per_person_{m}": r(v) for m, v in within.items()},
        "gender_accuracy_per_frame": r(gender_frame),
        **{f"gender_accuracy_per_person_{m}": r(v) for m, v in right.items()},
    }


if __name__ == "__main__":
    main()
