import numpy as np
import pytest

from foss_d2.data.annotate import annotate_records

from detectron2.structures import BoxMode


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


def test_progress_is_kept_by_file_and_survives_a_cut_last_line(tmp_path, caplog):
    """Found by a fresh-user audit: the progress was keyed by image id, and COCO ids are 1..N in
    every file, so an --output reused for another dataset gave its images the boxes found on the
    first one's without running the detector; a last line cut short by a kill stopped every later
    run with json's own message."""
    import json
    import logging

    progress = str(tmp_path / "p.jsonl")
    annotate_records(_recs(), fake_detect([]), "train", 0.3, progress, "det A")
    other = [dict(r, file_name=f"other{r['image_id']}.jpg") for r in _recs()]  # the same ids, other files
    calls = []
    kept, counts = annotate_records(other, fake_detect(calls), "train", 0.3, progress, "det A")
    assert calls == [f"other{i}.jpg" for i in range(4)] and kept == []  # detected afresh: none readable here
    with open(progress) as f:
        text = f.read()
    with open(progress, "w") as f:
        f.write(text[:-20])  # a kill while the last line was written
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="foss_d2.data.annotate"):
        kept, counts = annotate_records(_recs(), fake_detect(calls), "train", 0.3, progress, "det A")
    assert "its last line was cut short" in caplog.text and calls == ["img3.jpg"]
    assert [r["image_id"] for r in kept] == [0] and counts["kept"] == 1
    assert all(json.loads(line) for line in open(progress))  # the file is whole again
    with open(progress, "a") as f:
        f.write("not json\n")
        f.write(json.dumps({"image_id": 9, "boxes": None}) + "\n")
    with pytest.raises(ValueError, match=r"p.jsonl:\d+ is not a line of progress"):
        annotate_records(_recs(), fake_detect([]), "train", 0.3, progress, "det A")


def test_a_cut_last_line_of_a_windows_progress_file_is_cut_at_the_right_byte(tmp_path):
    """A progress file written on Windows (\r\n line ends) whose last line a kill cut short: it is
    cut back to the last whole line. Counted in text read with newline translation, the cut fell
    one byte a line too early, into the last good line, which the next row then ran into."""
    import json

    progress = tmp_path / "p.jsonl"
    annotate_records(_recs(), fake_detect([]), "train", 0.3, str(progress), "det A")
    lines = progress.read_bytes().splitlines()
    progress.write_bytes(b"\r\n".join(lines) + b"\r\n" + b'{"image_id": "9", "fi')
    calls = []
    annotate_records(_recs(), fake_detect(calls), "train", 0.3, str(progress), "det A")
    assert calls == ["img3.jpg"]  # the others' boxes kept
    rows = [json.loads(line) for line in progress.read_bytes().splitlines()]
    assert [r.get("file") for r in rows[: len(lines)]] == [json.loads(line).get("file") for line in lines]


def test_test_mode_keeps_all_and_targets_largest():
    kept, counts = annotate_records(_recs(), fake_detect([]), "test", 0.3)
    assert [r["image_id"] for r in kept] == [0, 1, 2]  # the unreadable one cannot be kept
    assert kept[1]["annotations"][0]["bbox"] == [10.0, 10.0, 50.0, 60.0]  # the larger of the two
    assert kept[2]["annotations"][0]["detected"] is False
    with pytest.raises(ValueError, match="mode must be train or test, got 'val'"):
        annotate_records([], fake_detect([]), "val")


def test_annotate_faces_tool_on_real_faces(tmp_path, capsys):
    """tools/annotate_faces.py with the shipped model on a COCO dataset of real pictures cut from
    demo/family.jpg: the father's and the mother's close-ups (one face each: kept, their box
    replaced by the detector's, inside the close-up, labels kept) and the whole photo (six people:
    dropped in train mode). The COCO file reads back with its labels; the progress of another
    detector's weights is refused (exit 2)."""
    import json
    import os
    import shutil

    import cv2
    import torch
    from conftest import load_script

    from foss_d2.data import dataset_to_coco, load_foss_coco, save_coco
    from foss_d2.model_zoo import DEFAULT_WEIGHTS

    from detectron2.structures import Boxes, pairwise_iou

    demo = cv2.imread(os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg"))
    root = tmp_path / "imgs"
    root.mkdir()
    cv2.imwrite(str(root / "father.jpg"), demo[190:390, 650:780])  # WIDER's box there: [28, 43, 101, 158]
    cv2.imwrite(str(root / "mother.jpg"), demo[180:370, 170:340])  # WIDER's box there: [50, 55, 125, 130]
    wider = {"father.jpg": [28.0, 43.0, 101.0, 158.0], "mother.jpg": [50.0, 55.0, 125.0, 130.0]}
    cv2.imwrite(str(root / "group.jpg"), demo)
    labels = {"father.jpg": (45.0, 0), "mother.jpg": (42.0, 1), "group.jpg": (40.0, 1)}
    recs = [
        {
            "file_name": str(root / name),
            "image_id": i,
            "height": cv2.imread(str(root / name)).shape[0],
            "width": cv2.imread(str(root / name)).shape[1],
            "annotations": [{"bbox": [0, 0, 1, 1], "bbox_mode": BoxMode.XYXY_REL, "age": a, "gender": g}],
        }
        for i, (name, (a, g)) in enumerate(labels.items())
    ]
    for r in recs:  # COCO holds absolute boxes: the whole picture
        r["annotations"][0].update(bbox=[0, 0, r["width"], r["height"]], bbox_mode=BoxMode.XYXY_ABS)
    save_coco(dataset_to_coco(recs), str(tmp_path / "mine.json"))
    coco = f"(('my_faces','{tmp_path / 'mine.json'}','{root}'),)"
    tool = load_script("tools/annotate_faces.py")
    out = tmp_path / "annotated.json"
    tool.main(["--dataset", "my_faces", "--output", str(out), "--score", "0.3", "DATASETS.COCO", coco])
    summary = json.load(open(str(out) + ".summary.json"))
    assert {k: summary.get(k) for k in ("kept", "multiple_faces", "written")} == {
        "kept": 2,
        "multiple_faces": 1,
        "written": 2,
    }
    back = {os.path.basename(r["file_name"]): r["annotations"][0] for r in load_foss_coco(str(out), "")}
    assert sorted(back) == ["father.jpg", "mother.jpg"]
    for name, a in back.items():
        box = BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
        iou = pairwise_iou(Boxes(torch.tensor([box])), Boxes(torch.tensor([wider[name]])))
        assert float(iou) >= 0.4, (name, box)  # the detector's box on the face, not the whole picture
        assert (a["age"], a["gender"]) == labels[name]
    capsys.readouterr()
    other = tmp_path / "other.pth"
    shutil.copy(DEFAULT_WEIGHTS, other)
    with pytest.raises(SystemExit) as e:
        tool.main(["--dataset", "my_faces", "--output", str(out), "MODEL.WEIGHTS", str(other), "DATASETS.COCO", coco])
    assert e.value.code == 2 and "another detector" in capsys.readouterr().err
    # the same weights named by their path (the run above took them by default): resumed, not refused
    rel = os.path.relpath(DEFAULT_WEIGHTS)
    tool.main(["--dataset", "my_faces", "--output", str(out), "MODEL.WEIGHTS", rel, "DATASETS.COCO", coco])
    assert json.load(open(str(out) + ".summary.json"))["kept"] == 2
    # a dataset of several faces a photo (its first face's labels went to the largest detection, the
    # others kept beside it), and --num 0 (an empty file, exit 0): one-line errors
    recs[2]["annotations"].append(dict(recs[2]["annotations"][0], bbox=[10, 10, 60, 60]))
    save_coco(dataset_to_coco(recs), str(tmp_path / "group.json"))
    group = f"(('group_faces','{tmp_path / 'group.json'}','{root}'),)"
    capsys.readouterr()
    for argv, message in (
        (["--dataset", "group_faces", "DATASETS.COCO", group], "1 of its images hold several faces (first: "),
        (["--dataset", "my_faces", "--num", "0", "DATASETS.COCO", coco], "argument --num: 0 is not at least 1"),
    ):
        with pytest.raises(SystemExit) as e:
            tool.main(["--output", str(tmp_path / "x.json"), *argv])
        assert e.value.code == 2 and message in capsys.readouterr().err, argv
