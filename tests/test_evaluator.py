import pytest
import torch

from foss_d2.evaluation import FaceAgeEvaluator, age_to_group, match_faces, summarize_rows

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, BoxMode, Instances

IOG_LOWER = [0, 3, 8, 13, 20, 37, 66]


def test_age_to_group_bounds():
    assert [age_to_group(a, IOG_LOWER) for a in (0, 2.9, 3, 19.99, 20, 36.5, 37, 66, 99)] == [0, 0, 1, 3, 4, 4, 5, 6, 6]


def test_match_faces_greedy_by_score():
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10]])
    preds = torch.tensor([[1.0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]])
    # both predictions overlap face 0; the higher-scored one (index 1) takes it
    assert match_faces(preds, torch.tensor([0.5, 0.9, 0.99]), gt) == [1, -1]


def _row(age=-1, gender=-1, group=-1, pred=None, pf=None):
    r = {"age": age, "gender": gender, "age_group": group, "detected": pred is not None}
    if pred is not None:
        r.update(pred_age=pred, p_female=pf)
    return r


def test_perfect_predictions_score_100():
    rows = [_row(30, 1, 4, 30.0, 0.9), _row(70, 0, 6, 70.0, 0.1), _row(5, 0, 1, 5.0, 0.2)]
    res = summarize_rows(rows, IOG_LOWER)
    assert res["MAE"] == 0 and res["CS@5"] == 100 and res["gender_acc"] == 100
    assert res["group_acc"] == 100 and res["group_1off"] == 100 and res["detection_rate"] == 100
    assert res["confusion"][4][4] == 1 and res["confusion"][6][6] == 1


def test_one_off_shift_and_undetected_face():
    # faces in groups 4, 4, 5; predictions land in groups 5 (one off), 4 (right); the third face is missed
    rows = [_row(30, 1, 4, 40.0, 0.9), _row(25, 0, 4, 25.0, 0.7), _row(50, 0, 5)]
    res = summarize_rows(rows, IOG_LOWER)
    assert res["group_acc"] == 50.0 and res["group_1off"] == 100.0  # over the 2 detected faces
    assert res["group_acc_strict"] == pytest.approx(100 / 3) and res["group_1off_strict"] == pytest.approx(200 / 3)
    assert res["gender_acc"] == 50.0 and res["gender_acc_strict"] == pytest.approx(100 / 3)
    assert res["MAE"] == 5.0 and res["CS@5"] == 50.0  # errors 10 and 0: mean 5, one of two within 5
    assert res["MAE_21_60"] == 5.0
    assert res["undetected"] == 1 and res["detection_rate"] == pytest.approx(200 / 3)
    assert res["per_group"][4] == {"faces": 2, "detected": 2, "age": 50.0, "1-off": 100.0, "gender": 50.0}
    assert res["per_group"][5]["detected"] == 0


def test_found_faces_without_an_answer_are_not_scored_as_oldest_or_male():
    nan = float("nan")
    wider = [0, 30, 45, 65]
    # a found Senior man without answers (NaN would fall in the oldest group and read as male: both
    # "right"), a found Young Adult woman read 25 and female, a missed Adult man
    rows = [_row(-1, 0, 3, nan, nan), _row(-1, 1, 0, 25.0, 0.9), _row(-1, 0, 2)]
    res = summarize_rows(rows, wider)
    assert res["group_acc"] == 100.0 and res["gender_acc"] == 100.0  # the one face answered
    assert res["group_acc_strict"] == pytest.approx(100 / 3) and res["gender_acc_strict"] == pytest.approx(100 / 3)
    assert res["group_1off_strict"] == pytest.approx(100 / 3)
    assert res["confusion"][3] == [0, 0, 0, 0] and res["confusion"][0][0] == 1
    assert res["per_group"][3]["detected"] == 1 and res["per_group"][3]["age"] != res["per_group"][3]["age"]  # NaN
    assert res["detection_rate"] == pytest.approx(200 / 3)
    # a detector's answers (no age, no gender): faces found, no age or gender figure at all
    nulls = dict(_row(20, 1, 0, 0.0), pred_age=None, p_female=None)  # a predictions.json's nulls
    res = summarize_rows([_row(40, 0, 2, nan, nan), nulls, _row(33, 1, 1)], wider)
    assert res["detection_rate"] == pytest.approx(200 / 3)
    assert not {"MAE", "per_band", "gender_acc", "gender_acc_strict", "group_acc", "group_acc_strict"} & set(res)
    # ages but no gender (MODEL.AGE_HEAD.GENDER_ON False): the ages scored, gender left out
    res = summarize_rows([_row(40, 0, 1, 41.0, nan), _row(20, 1, 0, 26.0, nan)], wider)
    assert res["MAE"] == 3.5 and res["group_acc"] == 100.0 and "gender_acc" not in res
    assert res["per_band"]["40-59"]["gender"] != res["per_band"]["40-59"]["gender"]  # NaN, not 100 (male)
    # nothing found: the strict figures are 0, as before
    res = summarize_rows([_row(40, 0, 1), _row(20, 1, 0)], wider)
    assert res["gender_acc_strict"] == 0.0 and res["group_acc_strict"] == 0.0 and "gender_acc" not in res


def test_age_bands_split_the_error_by_true_age():
    # a 2- and an 8-year-old read as 30 and 10 (errors 28, 2), a 45-year-old right, a 70-year-old missed
    rows = [_row(2, 1, pred=30.0, pf=0.2), _row(8, 0, pred=10.0, pf=0.3), _row(45, 1, pred=45.0, pf=0.9), _row(70, 0)]
    res = summarize_rows(rows)
    assert list(res["per_band"]) == ["0-2", "3-9", "40-59", "60+"]  # bands without faces are left out
    assert res["per_band"]["0-2"] == {"faces": 1, "detected": 1, "MAE": 28.0, "gender": 0.0}
    assert res["per_band"]["3-9"] == {"faces": 1, "detected": 1, "MAE": 2.0, "gender": 100.0}
    assert res["per_band"]["40-59"]["MAE"] == 0.0
    assert (
        res["per_band"]["60+"]["detected"] == 0 and res["per_band"]["60+"]["MAE"] != res["per_band"]["60+"]["MAE"]
    )  # NaN
    assert res["MAE"] == 10.0  # (28 + 2 + 0) / 3: the overall figure hides the 2-year-old's error


def test_evaluator_end_to_end_on_registered_dataset(tmp_path):
    name = "foss_test_eval_groups"
    recs = [
        {
            "file_name": "x.jpg",
            "image_id": "x",
            "height": 100,
            "width": 100,
            "annotations": [
                {
                    "bbox": [0, 0, 20, 20],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "age": -1,
                    "gender": 1,
                    "age_group": 4,
                    "category_id": 0,
                },
                {
                    "bbox": [50, 50, 20, 20],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "age": -1,
                    "gender": 0,
                    "age_group": 5,
                    "category_id": 0,
                },
            ],
        }
    ]
    DatasetCatalog.register(name, lambda: recs)
    MetadataCatalog.get(name).set(
        evaluator_type="age_group",
        age_groups=["0-2", "3-7", "8-12", "13-19", "20-36", "37-65", "66+"],
        age_group_lower=IOG_LOWER,
    )
    ev = FaceAgeEvaluator(name, str(tmp_path))
    inst = Instances((100, 100))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0, 20, 20], [50, 50, 70, 70]]))
    inst.scores = torch.tensor([0.9, 0.8])
    inst.pred_ages = torch.tensor([25.0, 40.0])
    inst.pred_female_probs = torch.tensor([0.8, 0.3])
    ev.reset()
    ev.process([{"image_id": "x"}], [{"instances": inst}])
    res = ev.evaluate()["age"]
    assert res["group_acc"] == 100 and res["gender_acc"] == 100
    assert (tmp_path / "age_group_confusion.png").exists() and (tmp_path / "face_predictions.json").exists()
    assert _png_size(tmp_path / "boxes_by_threshold.png") == (768, 528)  # 6.4x4.4 in at 120 dpi
    assert not (tmp_path / "age_predicted_vs_true.png").exists()  # no true ages here
    import json

    full = json.load(open(tmp_path / "age_results.json"))  # the tables too, which the csv printout drops
    assert full["by_threshold"]["0.8"] == {"boxes": 2, "are_faces": 100.0, "found": 100.0}
    assert "| score >= |" in (tmp_path / "age_results.md").read_text()


def _png_size(path):
    import cv2

    img = cv2.imread(str(path))
    assert img is not None, f"{path} missing or unreadable"
    return img.shape[1], img.shape[0]


def _single_face_evaluator(name: str, ages, tmp_path):
    """A FaceAgeEvaluator, reset, on a dataset ``name`` (age_single) of 100x100 images "0.jpg", ...,
    each with one male face at [20, 20, 80, 80] of the given age."""
    recs = [
        {
            "file_name": f"{i}.jpg",
            "image_id": str(i),
            "height": 100,
            "width": 100,
            "annotations": [
                {"bbox": [20, 20, 80, 80], "bbox_mode": BoxMode.XYXY_ABS, "age": age, "gender": 0, "category_id": 0}
            ],
        }
        for i, age in enumerate(ages)
    ]
    DatasetCatalog.register(name, lambda: recs)
    MetadataCatalog.get(name).set(evaluator_type="age_single")
    ev = FaceAgeEvaluator(name, str(tmp_path))
    ev.reset()
    return ev


def test_single_face_target_on_face_counts_boxes_off_the_face(tmp_path):
    ev = _single_face_evaluator("foss_test_eval_single", [30.0, 30.0, 30.0], tmp_path)
    # image 0: largest box is the face (IoU 1); image 1: the largest box is a strip (IoU 600/6000) although
    # a smaller box sits on the face; image 2: nothing found
    for i, boxes in enumerate([[[20.0, 20, 80, 80], [0, 0, 5, 5]], [[0.0, 0, 100, 30], [25, 25, 75, 75]], []]):
        inst = Instances((100, 100))
        inst.pred_boxes = Boxes(torch.tensor(boxes).reshape(-1, 4))
        inst.scores = torch.full((len(boxes),), 0.9)
        inst.pred_ages = torch.tensor([32.0, 50.0][: len(boxes)])
        inst.pred_female_probs = torch.zeros(len(boxes))
        ev.process([{"image_id": str(i)}], [{"instances": inst}])
    res = ev.evaluate()["age"]
    assert res["detection_rate"] == pytest.approx(200 / 3)
    assert res["target_on_face"] == 50.0  # 1 of the 2 images with a box
    assert res["MAE"] == 2.0  # the largest boxes were scored: |32 - 30| twice
    assert _png_size(tmp_path / "age_predicted_vs_true.png") == (1320, 552)  # 11x4.6 in at 120 dpi
    assert not (tmp_path / "boxes_by_threshold.png").exists()  # single faces: no box precision


def test_single_face_protocol_on_group_photos_is_warned_about(caplog):
    """age_single reads one face an image; a dataset whose images hold several faces (a user's
    group photos registered without an evaluator type) is evaluated that way with a warning."""
    import logging

    name = "foss_test_eval_single_on_groups"
    face = {"bbox": [20, 20, 40, 40], "bbox_mode": BoxMode.XYXY_ABS, "age": 30.0, "gender": 0, "category_id": 0}
    recs = [
        {"file_name": f"{i}.jpg", "image_id": i, "height": 100, "width": 100, "annotations": [face] * (i + 1)}
        for i in range(3)
    ]
    DatasetCatalog.register(name, lambda: recs)
    MetadataCatalog.get(name).set(evaluator_type="age_single")
    with caplog.at_level(logging.WARNING, logger="foss_d2.evaluation.age_evaluator"):
        FaceAgeEvaluator(name)
    assert "but 2 of its 3 images hold several faces: register it as age_group" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="foss_d2.evaluation.age_evaluator"):
        FaceAgeEvaluator(name, single_face=False)
    assert "several faces" not in caplog.text
    DatasetCatalog.remove(name)


def test_grid_evaluation_scores_each_cell_by_hand():
    import numpy as np

    from foss_d2.evaluation.tiled import evaluate_grid, grid_canvas

    imgs = {f"{v}.jpg": np.full((50, 40, 3), v, np.uint8) for v in (10, 20, 30, 40)}
    canvas = grid_canvas(list(imgs.values()), 2, canvas=100)
    assert canvas.shape == (100, 100, 3)
    assert (canvas[0, 0, 0], canvas[0, 99, 0], canvas[99, 0, 0], canvas[99, 99, 0]) == (10, 20, 30, 40)
    recs = [
        {"file_name": n, "annotations": [{"age": a, "gender": g}]}
        for n, a, g in zip(imgs, (20.0, 30.0, 40.0, 50.0), (0, 1, 0, 1))
    ]

    def estimate(image):
        assert image.shape == (100, 100, 3)
        return [
            {
                "box": [5, 5, 40, 40],
                "score": 0.9,
                "age": 22.0,
                "age_std": 3.0,
                "gender": "male",
            },  # cell 0: |22 - 20| = 2
            {"box": [0, 0, 48, 48], "score": 0.5, "age": 99.0, "age_std": 1.0, "gender": "male"},  # cell 0, lower score
            {
                "box": [55, 5, 95, 45],
                "score": 0.8,
                "age": 36.0,
                "age_std": 4.0,
                "gender": "male",
            },  # cell 1: 6, gender wrong
            {"box": [55, 55, 95, 95], "score": 0.7, "age": 50.0, "age_std": 1.0, "gender": "female"},  # cell 3: 0
        ]  # cell 2: nothing found

    res = evaluate_grid(estimate, recs, 2, canvas=100, read=lambda name: imgs[name])
    assert (res["tiles"], res["faces"], res["found"]) == (4, 4, 3)
    assert res["MAE"] == pytest.approx(8 / 3)
    assert res["gender_acc"] == pytest.approx(200 / 3)
    assert res["corr"] == pytest.approx(np.corrcoef([20, 30, 50], [22, 36, 50])[0, 1])
    # errors over stds 2/3, 6/4, 0/1: two of three within one std, all within two; the 68.27th
    # percentile of [0, 2/3, 1.5] lies 0.6827 x 2 = 1.3654 places along: 2/3 + 0.3654 x (1.5 - 2/3)
    assert res["age_in_1std"] == pytest.approx(200 / 3) and res["age_in_2std"] == 100.0
    assert res["std_scale_68"] == pytest.approx(2 / 3 + 0.3654 * (1.5 - 2 / 3))
    # per band of the true age: 20 and 30 (found, |2| and |6|, one gender right), 40 (missed) and 50
    assert res["per_band"] == {
        "20-39": {"faces": 2, "found": 2, "MAE": 4.0, "gender_acc": 50.0, "mean_pred_age": 29.0},
        "40-59": {"faces": 2, "found": 1, "MAE": 0.0, "gender_acc": 100.0, "mean_pred_age": 50.0},
    }


def test_grid_answers_without_a_gender_are_not_scored_as_male():
    import numpy as np

    from foss_d2.evaluation.tiled import evaluate_grid

    img = np.zeros((50, 50, 3), np.uint8)
    recs = [{"file_name": "a.jpg", "annotations": [{"age": 30.0, "gender": 0}]}]
    face = {"box": [5, 5, 40, 40], "score": 0.9, "age": 33.0, "gender": None, "p_female": None}
    res = evaluate_grid(lambda image: [face], recs, 1, canvas=50, read=lambda name: img)
    assert res["found"] == 1 and res["MAE"] == 3.0 and res["gender_acc"] is None  # a man: "male" would be 100
    res = evaluate_grid(lambda image: [dict(face, gender="male")], recs, 1, canvas=50, read=lambda name: img)
    assert res["gender_acc"] == 100.0


def test_prediction_keys_match_dataset_paths():
    """`foss-d2 demo` keys a folder's photos by their path inside it: those keys find the dataset's
    full paths by whole trailing components (the longest first); full paths are used as they are."""
    from foss_d2.apps.evaluate import match_prediction_keys

    names = ["/d/WIDER_val/images/0--Parade/a.jpg", "/d/WIDER_val/images/1--Handshaking/a.jpg", "/u/b.jpg", "/u/xb.jpg"]
    preds = {"0--Parade/a.jpg": [1], "a.jpg": [2], "/u/b.jpg": [3], "b.jpg": [4]}
    assert match_prediction_keys(preds, names) == {
        "/d/WIDER_val/images/0--Parade/a.jpg": [1],
        "/d/WIDER_val/images/1--Handshaking/a.jpg": [2],
        "/u/b.jpg": [3],
    }
    # a demo over cam1/ alone keys its photo 0001.jpg: it answered for cam2/0001.jpg as well
    cams = ["/d/cam1/0001.jpg", "/d/cam2/0001.jpg"]
    with pytest.raises(ValueError, match=r"its image '0001.jpg' ends 2 of the dataset's paths \(/d/cam1/0001.jpg"):
        match_prediction_keys({"0001.jpg": [1]}, cams)
    assert match_prediction_keys({"cam1/0001.jpg": [1]}, cams) == {cams[0]: [1]}


def test_prediction_keys_of_the_same_files_named_otherwise(tmp_path, monkeypatch):
    """Keys written as absolute paths matched a dataset read through a linked DATASETS.ROOT by none
    of its images, and keys relative to another working directory (../shared/data/...) likewise;
    the same file is the same image however it is named."""
    from foss_d2.apps.evaluate import match_prediction_keys

    (tmp_path / "data" / "val").mkdir(parents=True)
    for n in ("a.jpg", "b.jpg"):
        (tmp_path / "data" / "val" / n).write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    names = [str(tmp_path / "link" / "val" / n) for n in ("a.jpg", "b.jpg")]
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    preds = {str(tmp_path / "data" / "val" / "a.jpg"): [1], "../data/val/b.jpg": [2]}
    assert match_prediction_keys(preds, names) == {names[0]: [1], names[1]: [2]}


def test_box_precision_by_threshold_by_hand():
    """Boxes that are faces, per score threshold: 4 boxes on 3 faces; a box on an invalid (crowd)
    face is left out, as COCO ignores it."""
    import torch

    from foss_d2.evaluation.age_evaluator import box_outcomes, box_precision, match_faces

    gt = torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]])
    crowd = torch.tensor([[60.0, 0, 70, 10]])
    boxes = torch.tensor([[0.0, 0, 10, 10], [20, 0, 30, 10], [100, 0, 110, 10], [60, 0, 70, 10], [0, 50, 9, 59]])
    scores = torch.tensor([0.9, 0.35, 0.5, 0.8, 0.25])
    match = match_faces(boxes, scores, gt)
    assert match == [0, 1, -1]
    outcomes = box_outcomes(boxes, scores, match, crowd, 0.5)
    assert outcomes == [(pytest.approx(0.9), True), (pytest.approx(0.35), True), (0.5, False), (0.25, False)]
    res = box_precision(outcomes, num_faces=3, thresholds=(0.2, 0.3, 0.4, 0.6, 0.95))
    assert res["boxes_are_faces"] == 50.0  # 2 of 4
    assert res["by_threshold"] == {
        "0.2": {"boxes": 4, "are_faces": 50.0, "found": pytest.approx(200 / 3)},
        "0.3": {"boxes": 3, "are_faces": pytest.approx(200 / 3), "found": pytest.approx(200 / 3)},
        "0.4": {"boxes": 2, "are_faces": 50.0, "found": pytest.approx(100 / 3)},
        "0.6": {"boxes": 1, "are_faces": 100.0, "found": pytest.approx(100 / 3)},
    }


def test_threshold_curve_in_steps_of_0_05_by_hand():
    """The picture's curve starts at the lowest score (the model's own threshold), floored to 0.05;
    0.25 and 0.2 are separate entries."""
    from foss_d2.evaluation.age_evaluator import box_precision, plot_thresholds

    assert plot_thresholds([0.2001, 0.37, 0.52]) == [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    assert plot_thresholds([0.31]) == [0.3]
    assert plot_thresholds([0.1999999, 0.26]) == [0.15, 0.2, 0.25]  # the lowest box is in the first point
    boxes = [(0.21, True), (0.27, False), (0.33, True), (0.61, False)]
    table = box_precision(boxes, 4, plot_thresholds([b[0] for b in boxes]))["by_threshold"]
    assert list(table) == ["0.2", "0.25", "0.3", "0.35", "0.4", "0.45", "0.5", "0.55", "0.6"]
    assert table["0.2"] == {"boxes": 4, "are_faces": 50.0, "found": 50.0}
    assert table["0.25"] == {"boxes": 3, "are_faces": pytest.approx(100 / 3), "found": 25.0}
    assert table["0.3"] == {"boxes": 2, "are_faces": 50.0, "found": 25.0}
    assert table["0.35"] == table["0.6"] == {"boxes": 1, "are_faces": 0.0, "found": 0.0}


def _score_saved(tmp_path, monkeypatch, capsys, dataset: str, preds: dict, *opts: str) -> dict:
    """`evaluate.py predictions` on ``preds`` written to tmp_path/preds.json, run from tmp_path
    without --output: the figures it prints."""
    import json

    from foss_d2.apps.evaluate import main

    (tmp_path / "preds.json").write_text(json.dumps(preds))
    monkeypatch.chdir(tmp_path)
    main(["predictions", "--dataset", dataset, "--predictions", "preds.json", *opts])
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_saved_predictions_scored_without_an_output_folder(tmp_path, monkeypatch, capsys):
    """`evaluate.py predictions` with no --output: detectron2's COCOEvaluator gets a temporary folder
    (it needs one for the ground truth it converts) and nothing is written beside the user."""

    name = "foss_test_saved_predictions"
    face = {"bbox_mode": BoxMode.XYWH_ABS, "age": -1, "category_id": 0, "iscrowd": 0}
    recs = [
        {
            "file_name": "/photos/x.jpg",
            "image_id": "x",
            "height": 100,
            "width": 100,
            "annotations": [
                dict(face, bbox=[0, 0, 20, 20], gender=1, age_group=4),
                dict(face, bbox=[50, 50, 20, 20], gender=0, age_group=5),
            ],
        }
    ]
    DatasetCatalog.register(name, lambda: recs)
    MetadataCatalog.get(name).set(
        evaluator_type="age_group",
        thing_classes=["face"],
        age_groups=["0-2", "3-7", "8-12", "13-19", "20-36", "37-65", "66+"],
        age_group_lower=IOG_LOWER,
    )
    # both faces boxed and in the right age group; the second face's gender wrong
    preds = {
        "/photos/x.jpg": [
            {"box": [0, 0, 20, 20], "score": 0.9, "age": 25.0, "p_female": 0.8},
            {"box": [50, 50, 70, 70], "score": 0.8, "age": 40.0, "p_female": 0.7},
        ]
    }
    res = _score_saved(tmp_path, monkeypatch, capsys, name, preds)
    assert res["bbox"]["AP50"] == pytest.approx(100.0)
    assert res["age"]["group_acc"] == 100 and res["age"]["gender_acc"] == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.json"]
    # a box of no face scored 0.05: an answer as given (its maker's threshold), or left out by --min-score
    preds["/photos/x.jpg"].append({"box": [80, 0, 95, 15], "score": 0.05, "age": 30.0, "p_female": 0.5})
    res = _score_saved(tmp_path, monkeypatch, capsys, name, preds)
    assert res["age"]["boxes_are_faces"] == pytest.approx(200 / 3)
    res = _score_saved(tmp_path, monkeypatch, capsys, name, preds, "--min-score", "0.2")
    assert res["age"]["boxes_are_faces"] == 100.0 and res["age"]["gender_acc"] == 50
    del preds["/photos/x.jpg"][-1]
    # answers for a photo that is not the dataset's: left out, and said (they were dropped silently)
    preds["family.jpg"] = preds["/photos/x.jpg"][:1]
    import json

    from foss_d2.apps.evaluate import main

    (tmp_path / "preds.json").write_text(json.dumps(preds))

    main(["predictions", "--dataset", name, "--predictions", "preds.json"])
    said = capsys.readouterr().err
    assert f"1 of the 2 images of preds.json are not {name}'s and are left out (the first: 'family.jpg')" in said
    # with --output: the figures and pictures, and no empty lock file of the COCO conversion left there;
    # the figures also in eval_results.json, beside another dataset's scored into the same folder before
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "eval_results.json").write_text(json.dumps({"utkface_test": {"age": {"MAE": 5.5}}}))
    main(["predictions", "--dataset", name, "--predictions", "preds.json", "--output", "out"])
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "age_results.json" in written and not [n for n in written if n.endswith(".lock")], written
    saved = json.load(open(tmp_path / "out" / "eval_results.json"))
    assert saved["utkface_test"] == {"age": {"MAE": 5.5}}
    assert saved[name]["bbox"]["AP50"] == pytest.approx(100.0)
    assert saved[name]["age"]["group_acc"] == 100 and saved[name]["age"]["gender_acc"] == 50


def test_saved_predictions_mistakes_are_one_line_errors(tmp_path, capsys):
    """The files a user may hand `evaluate.py predictions` by mistake: each a one-line error naming
    what is wrong (exit 2), never a traceback or a NaN table; a demo's folder or journal is read."""
    import json

    from foss_d2.apps.evaluate import main

    name = "foss_test_saved_predictions_errors"
    face = {"bbox_mode": BoxMode.XYWH_ABS, "age": 30, "category_id": 0, "iscrowd": 0, "gender": 1}
    recs = [{"file_name": "/photos/x.jpg", "image_id": "x", "height": 100, "width": 100,
             "annotations": [dict(face, bbox=[0, 0, 20, 20])]}]  # fmt: skip
    DatasetCatalog.register(name, lambda: recs)
    MetadataCatalog.get(name).set(evaluator_type="age_single", thing_classes=["face"])
    good = {"box": [0, 0, 20, 20], "score": 0.9, "age": 31.0, "p_female": 0.8}
    (tmp_path / "other.json").write_text(json.dumps({"family.jpg": [good]}))
    (tmp_path / "noage.json").write_text(json.dumps({"x.jpg": [{"box": [0, 0, 20, 20], "score": 0.9}]}))
    (tmp_path / "short.json").write_text(json.dumps({"x.jpg": [dict(good, box=[0, 0, 20])]}))
    (tmp_path / "text.json").write_text("image,face\n")
    for argv, message in [
        (["--dataset", "widerface_val"], "--dataset widerface_val is not registered; FOSS-D2's: utkface_train"),
        (["--predictions", str(tmp_path / "none.json")], "predictions not found"),
        (["--predictions", str(tmp_path / "text.json")], "text.json is not JSON (Expecting value"),
        (["--predictions", str(tmp_path / "other.json")], "none of the 1 images of"),
        (["--predictions", str(tmp_path / "noage.json")], "1 faces without a 4-number box"),
        (["--predictions", str(tmp_path / "short.json")], "(the first: image 'x.jpg', face 0)"),
    ]:
        argv = ["--dataset", name, *argv] if "--dataset" not in argv else [*argv, "--predictions", "x.json"]
        with pytest.raises(SystemExit) as e:
            main(["predictions", *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and "Traceback" not in err, (argv, err)
    demo_run = tmp_path / "demo"
    demo_run.mkdir()
    (demo_run / "predictions.jsonl").write_text(json.dumps({"key": "x.jpg", "faces": [good]}) + "\n")
    main(["predictions", "--dataset", name, "--predictions", str(demo_run)])
    out = capsys.readouterr().out
    res = json.loads(out[out.index("{") :])["age"]
    assert res["MAE"] == pytest.approx(1.0) and res["gender_acc"] == 100


def test_saved_predictions_of_a_crowd_count_every_box(tmp_path, monkeypatch, capsys):
    """120 faces, each boxed exactly: AP50 100. COCO's 100 boxes an image (the cap until
    2026-12-05) found 100 of the 120 and scored AP50 at about 83; the peer's crowd photo lost so."""

    name = "foss_test_saved_crowd"
    face = {"bbox_mode": BoxMode.XYWH_ABS, "age": -1, "gender": -1, "age_group": -1, "category_id": 0, "iscrowd": 0}
    cells = [(15 * (i % 12), 15 * (i // 12)) for i in range(120)]
    recs = [
        {
            "file_name": "/photos/crowd.jpg",
            "image_id": "crowd",
            "height": 150,
            "width": 180,
            "annotations": [dict(face, bbox=[x, y, 10, 10]) for x, y in cells],
        }
    ]
    DatasetCatalog.register(name, lambda: recs)
    MetadataCatalog.get(name).set(evaluator_type="face_detection", thing_classes=["face"])
    preds = {
        "/photos/crowd.jpg": [
            {"box": [x, y, x + 10, y + 10], "score": 0.9 - i * 0.005, "age": 30.0, "p_female": 0.5}
            for i, (x, y) in enumerate(cells)
        ]
    }
    res = _score_saved(tmp_path, monkeypatch, capsys, name, preds)
    assert res["bbox"]["AP50"] == pytest.approx(100.0)
    assert res["age"]["detection_rate"] == 100.0
    # an override still sets the cap: COCO's 100 boxes, 100 of 120 faces (AP50 ~ 100/120 by COCO's
    # 101-point interpolation)
    # (a second call in one process: the first one's COCO json lay in a temporary folder, now gone)
    capped = _score_saved(tmp_path, monkeypatch, capsys, name, preds, "MODEL.FOSS.K_TEST", "100")
    assert capped["bbox"]["AP50"] == pytest.approx(100 * 84 / 101)


def test_the_age_picture_shows_every_band_those_without_a_found_face_too(tmp_path, monkeypatch):
    """The right panel's bars were the bands' MAEs: a band with no face found (MAE NaN) at an end of
    the axis was dropped from it, so a run that found no child showed no 0-2 or 3-9 band at all."""
    from foss_d2.evaluation import age_evaluator

    drawn = {}
    monkeypatch.setattr(age_evaluator, "save_figure", lambda plt, fig, path, **kw: drawn.update(fig=fig))
    nan = float("nan")
    per_band = {
        "0-2": {"MAE": nan, "detected": 0, "faces": 131},
        "3-9": {"MAE": nan, "detected": 0, "faces": 113},
        "10-19": {"MAE": 4.0, "detected": 2, "faces": 50},
        "20-39": {"MAE": nan, "detected": 0, "faces": 1062},
        "40-59": {"MAE": 6.5, "detected": 1, "faces": 9},
        "60+": {"MAE": nan, "detected": 0, "faces": 7},
    }
    rows = [{"age": 15, "detected": True, "pred_age": 19}, {"age": 45, "detected": True, "pred_age": 38.5}]
    age_evaluator.save_age_png(rows, per_band, str(tmp_path / "age.png"))
    bx = drawn["fig"].axes[1]
    bx.figure.canvas.draw()
    lo, hi = bx.get_xlim()
    assert lo < 0 and hi > 5, (lo, hi)  # every band in view (it was 1.46-4.54: 3-9 and 0-2 cut off)
    assert [p.get_height() for p in bx.patches] == [0, 0, 4.0, 0, 6.5, 0]
    labels = [t.get_text() for t in bx.texts]
    assert labels == ["-\n0/131", "-\n0/113", "4.0\n2/50", "-\n0/1062", "6.5\n1/9", "-\n0/7"]


def test_figures_with_nothing_to_measure_are_written_as_json_null(tmp_path):
    """A band whose faces were all missed has no MAE: NaN in Python's results, written to
    age_results.json as null (Python wrote NaN, which strict JSON parsers refuse)."""
    import json

    ev = _single_face_evaluator("foss_test_eval_null", [30.0, 5.0], tmp_path)
    for i, boxes in enumerate([[[20.0, 20, 80, 80]], []]):  # the child's face not found
        inst = Instances((100, 100))
        inst.pred_boxes = Boxes(torch.tensor(boxes).reshape(-1, 4))
        inst.scores = torch.full((len(boxes),), 0.9)
        inst.pred_ages = torch.full((len(boxes),), 33.0)
        inst.pred_female_probs = torch.zeros(len(boxes))
        ev.process([{"image_id": str(i)}], [{"instances": inst}])
    assert ev.evaluate()["age"]["MAE"] == 3.0

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    saved = json.loads((tmp_path / "age_results.json").read_text(), parse_constant=refuse)
    band = saved["per_band"]["3-9"]
    assert (band["faces"], band["detected"], band["MAE"]) == (1, 0, None) and saved["per_band"]["20-39"]["MAE"] == 3.0


def test_confusion_picture_says_what_its_numbers_and_shading_are(monkeypatch, tmp_path):
    """The age-group confusion picture counts found faces only: each true group's label says how
    many of its faces that is, each predicted group's label the predicted ages it takes, the
    title the found faces in all, and a colour bar that the shading is the row's share (a count of
    9 in a row of 18 is darker than 44 in a row of 168)."""
    from foss_d2.evaluation import age_evaluator

    assert age_evaluator.group_ranges([0, 30, 45, 65]) == ["<30", "30-45", "45-65", "65+"]
    drawn = {}
    monkeypatch.setattr(age_evaluator, "save_figure", lambda plt, fig, path, **kw: drawn.update(fig=fig))
    conf = torch.tensor([[3, 1], [0, 2]]).numpy()
    per_group = {0: {"faces": 5, "detected": 4}, 1: {"faces": 2, "detected": 2}}
    age_evaluator.save_confusion_png(conf, ["young", "old"], str(tmp_path / "c.png"), [0, 40], per_group, "wider")
    ax, bar = drawn["fig"].axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["young\n4 of 5 found", "old\n2 of 2 found"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["young\n(<40)", "old\n(40+)"]
    assert ax.get_title() == "wider\n6 found faces"
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "2"]
    assert bar.get_ylabel() == "share of the row's found faces"
    shade = ax.images[0].get_array()
    assert shade[0, 0] == pytest.approx(0.75) and shade[1, 1] == pytest.approx(1.0)


def test_threshold_picture_names_the_bases_and_keeps_counts_off_the_curves(monkeypatch, tmp_path):
    """Two percentages with different bases on one axis: the legend says which (boxes kept; the
    dataset's labelled faces, counted), and the boxes kept are written in a row above 100%, where
    no point of either curve can be (a count beside a point sat on the other curve)."""
    from foss_d2.evaluation import age_evaluator

    drawn = {}
    monkeypatch.setattr(age_evaluator, "save_figure", lambda plt, fig, path, **kw: drawn.update(fig=fig))
    curve = {
        0.2: {"boxes": 2317, "are_faces": 32.4, "found": 53.3},
        0.25: {"boxes": 1555, "are_faces": 45.0, "found": 49.0},
    }
    age_evaluator.save_threshold_png(curve, str(tmp_path / "t.png"), num_faces=1408, title="wider_face_val")
    ax = drawn["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["boxes that are faces (% of boxes kept)", "faces found (% of the 1,408 labelled faces)"]
    counts = {t.get_text(): t.get_position() for t in ax.texts if t.get_text().isdigit()}
    assert counts == {"2317": (0.2, 112), "1555": (0.25, 112)}
    assert ax.get_title() == "wider_face_val"


def test_tables_write_a_dash_where_nothing_was_measured():
    """age_results.md: a figure with nothing to measure is "-" (the JSON's null), not "nan", and a
    row no column measures (FG-NET's gender: no labels) is left out."""
    from foss_d2.evaluation.age_evaluator import format_table

    nan = float("nan")
    res = {
        "num_faces": 3,
        "MAE": 4.5,
        "gender_acc": nan,
        "per_band": {
            "0-2": {"faces": 1, "detected": 0, "MAE": nan, "gender": nan},
            "3-9": {"faces": 2, "detected": 2, "MAE": 4.5, "gender": nan},
        },
    }
    lines = format_table(res).splitlines()
    assert lines[2] == "| 3 | 4.50 | - |"
    assert "| MAE | - | 4.50 |" in lines
    assert not any(line.startswith("| gender |") for line in lines)
    assert "nan" not in format_table(res)


def test_reported_stds_and_genders_checked_as_error_bars_by_hand():
    """age_in_1std / age_in_2std / std_scale_68 and gender_ece (MODEL.AGE_HEAD.AGE_STD_SCALE)."""

    def row(age, pred, std, gender, pf):
        return dict(_row(age, gender, pred=pred, pf=pf), pred_age_std=std)

    # errors over stds 1.5, 0.5, 2.5, 0: within one std 2 of 4, within two 3 of 4
    rows = [
        row(30, 33.0, 2.0, 1, 0.9),
        row(40, 41.0, 2.0, 0, 0.8),
        row(50, 60.0, 4.0, 1, 0.57),
        row(20, 20.0, 1.0, 0, 0.43),
    ]
    res = summarize_rows(rows)
    assert res["age_in_1std"] == 50.0 and res["age_in_2std"] == 75.0
    # the 68.27th percentile of [0, 0.5, 1.5, 2.5]: 0.6827 x 3 = 2.0481 places along, 1.5 + 0.0481
    assert res["std_scale_68"] == pytest.approx(1.5 + 0.0481)
    # confidences 0.9 (right), 0.8 (wrong), 0.57 and 0.57 (both right), each 0.9 / 0.8 alone in its bin:
    # 1/4 x |1 - 0.9| + 1/4 x |0 - 0.8| + 2/4 x |1 - 0.57| = 0.025 + 0.2 + 0.215
    assert res["gender_ece"] == pytest.approx(44.0)
    # ranked by std (1, 2, 2, 4; the tie in the rows' order): errors 0 | 3 | 1 | 10
    assert res["MAE_by_std_quarter"] == [0.0, 3.0, 1.0, 10.0]
    from foss_d2.evaluation.age_evaluator import format_table

    table = format_table(res)
    assert "| faces by their age_std | smallest 25% | 25-50% | 50-75% | largest 25% |" in table
    assert "| MAE | 0.00 | 3.00 | 1.00 | 10.00 |" in table
    # stds as wide as the errors or wider: every true age inside one std, no factor needed
    res = summarize_rows([row(30, 33.0, 3.0, 1, 0.9), row(40, 40.0, 2.0, 1, 0.9)])
    assert res["age_in_1std"] == 100.0 and res["std_scale_68"] == pytest.approx(0.6827)
    # rows of older files, without stds, or some faces without one: no coverage figures rather than
    # figures over some of the faces; a std that is not a number: none either
    assert "age_in_1std" not in summarize_rows([_row(30, 1, pred=33.0, pf=0.9)])
    assert "age_in_1std" not in summarize_rows([row(30, 33.0, 2.0, 1, 0.9), _row(40, 0, pred=41.0, pf=0.2)])
    assert "std_scale_68" not in summarize_rows([row(30, 33.0, float("nan"), 1, 0.9)])
    # confidences on the bins' edges go to the bin above (0.6 and 0.7 with the rest of their bin):
    # 0.6 right and 0.62 wrong share a bin (mean 0.61, accuracy 0.5); 0.7 and 0.72, both right, share one
    from foss_d2.evaluation.age_evaluator import calibration_error

    assert calibration_error([0.6, 0.38, 0.7, 0.72], [True, False, True, True]) == pytest.approx(
        100 * (0.5 * abs(0.5 - 0.61) + 0.5 * abs(1 - 0.71))
    )
    # the ends: P(female) 1.0 (confidence 1, in the last bin) and 0.5 (in the first), both right
    assert calibration_error([1.0, 0.5], [True, True]) == pytest.approx(100 * (0.5 * 0 + 0.5 * 0.5))


def test_saved_predictions_with_stds_give_the_coverage():
    """`evaluate.py predictions` reads each face's age_std (the demo writes it) into the rows."""
    from foss_d2.apps.evaluate import faces_to_instances

    faces = [
        {"box": [0, 0, 20, 20], "score": 0.9, "age": 25.0, "age_std": 4.0, "p_female": 0.8},
        {"box": [50, 50, 70, 70], "score": 0.8, "age": 40.0, "age_std": 2.5, "p_female": 0.7},
    ]
    assert faces_to_instances(faces, 100, 100).pred_age_stds.tolist() == [4.0, 2.5]
    faces[1]["age_std"] = None  # one face without: none of the photo's stds are read
    assert not faces_to_instances(faces, 100, 100).has("pred_age_stds")


def test_std_picture_draws_the_coverage_beside_a_normal_error(monkeypatch, tmp_path):
    """age_std.png: the share within k stds (the table's figures at k = 1 and 2), a normal error's
    share (68.27% at 1), and the MAE per quarter of std as bars."""
    import math

    from foss_d2.evaluation import age_evaluator

    drawn = {}
    monkeypatch.setattr(age_evaluator, "save_figure", lambda plt, fig, path, **kw: drawn.update(fig=fig))
    rows = [
        dict(_row(a, 1, pred=p, pf=0.9), pred_age_std=s)
        for a, p, s in ((30, 33.0, 2.0), (40, 41.0, 2.0), (50, 60.0, 4.0), (20, 20.0, 1.0))
    ]
    rows.append(_row(25, 0))  # not found: not drawn
    res = summarize_rows(rows)
    age_evaluator.save_std_png(rows, res, str(tmp_path / "s.png"), title="utk")
    ax, bx = drawn["fig"].axes
    model, normal = ax.lines[0], ax.lines[1]
    ks = list(model.get_xdata())
    at = {k: model.get_ydata()[ks.index(k)] for k in (0.0, 1.0, 2.0, 3.0)}
    # errors over stds 1.5, 0.5, 2.5, 0: within 0 stds 1 of 4 (the exact answer), 1: 2, 2: 3, 3: all
    assert at == {0.0: 25.0, 1.0: 50.0, 2.0: 75.0, 3.0: 100.0}
    assert normal.get_ydata()[ks.index(1.0)] == pytest.approx(100 * math.erf(1 / math.sqrt(2)))  # 68.27
    assert [b.get_height() for b in bx.patches] == res["MAE_by_std_quarter"] == [0.0, 3.0, 1.0, 10.0]
    assert ax.get_title() == "4 faces found; one std would need x1.55 for 68.3%"
    assert drawn["fig"]._suptitle.get_text() == "utk"
