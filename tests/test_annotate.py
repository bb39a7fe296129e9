import numpy as np
import pytest
from detectron2.structures import BoxMode

from foss_d2.data.annotate import annotate_records


def _recs():
    return [
        {
            "file_name": f"img{i}.jpg",
            "image_id": i,
            "annotations": [{"bbox": [0, 0, 1, 1], "bbox_mode": BoxMode.XYXY_REL, "age": 20.0 + i, "gender": 1}],
        }
        for i in range(4)
    ]


DETECTIONS = {
    "img0.jpg": ([[10, 10, 50, 60]], [0.9]),  # one face: kept
    "img1.jpg": ([[10, 10, 50, 60], [60, 10, 70, 20]], [0.9, 0.8]),  # two faces
    "img2.jpg": ([[10, 10, 50, 60]], [0.1]),  # below the threshold: no face
}


def fake_detect(calls):
    def detect(path):
        calls.append(path)
        if path not in DETECTIONS:
            raise OSError("cannot read")
        boxes, scores = DETECTIONS[path]
        return np.array(boxes, float), np.array(scores)

    return detect


def test_train_mode_drops_multi_and_no_face(tmp_path):
    calls = []
    kept, counts = annotate_records(_recs(), fake_detect(calls), "train", 0.3, str(tmp_path / "p.jsonl"))
    assert [r["image_id"] for r in kept] == [0]
    a = kept[0]["annotations"][0]
    assert a["bbox"] == [10.0, 10.0, 50.0, 60.0] and a["bbox_mode"] == BoxMode.XYXY_ABS and a["age"] == 20.0
    assert counts == {"kept": 1, "multiple_faces": 1, "no_face": 1, "unreadable": 1}
    # resumable: a second run reads the progress file and calls the detector only for the image it
    # could not read (a file the user may have fixed since)
    calls.clear()
    kept2, counts2 = annotate_records(_recs(), fake_detect(calls), "train", 0.3, str(tmp_path / "p.jsonl"))
    assert calls == ["img3.jpg"] and counts2 == counts and kept2 == kept
    assert len(open(tmp_path / "p.jsonl").read().splitlines()) == 1 + 4 + 1  # the detector's line first


def test_progress_keeps_scores_and_its_detector(tmp_path):
    """Another --score reuses the progress (every box is saved with its score); the progress of
    another detector is refused instead of passed off as this one's."""
    progress = str(tmp_path / "p.jsonl")
    annotate_records(_recs(), fake_detect([]), "train", 0.3, progress, "det A")
    calls = []
    kept, counts = annotate_records(_recs(), fake_detect(calls), "train", 0.05, progress, "det A")
    assert calls == ["img3.jpg"]  # only the unreadable one again
    assert counts == {"kept": 2, "multiple_faces": 1, "unreadable": 1}  # img2's 0.1 face now counts
    assert [r["image_id"] for r in kept] == [0, 2]
    with pytest.raises(ValueError, match="holds the progress of another detector"):
        annotate_records(_recs(), fake_detect([]), "train", 0.3, progress, "det B")


def test_test_mode_keeps_all_and_targets_largest():
    kept, counts = annotate_records(_recs(), fake_detect([]), "test", 0.3)
    assert [r["image_id"] for r in kept] == [0, 1, 2]  # the unreadable one cannot be kept
    assert kept[1]["annotations"][0]["bbox"] == [10.0, 10.0, 50.0, 60.0]  # the larger of the two
    assert kept[2]["annotations"][0]["detected"] is False
    with pytest.raises(ValueError):
        annotate_records([], fake_detect([]), "val")
