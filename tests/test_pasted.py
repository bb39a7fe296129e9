"""Faces pasted into group photos (foss_d2/evaluation/pasted.py): the paste, the slots and the
three conditions, checked by hand; the command on real data when ../shared/data is there."""

import numpy as np
import pytest
from conftest import SHARED_DATA, needs_shared_data

from foss_d2.evaluation.pasted import best_match, evaluate_pasted, iou, paste_face, photo_slots, stratified_faces

from detectron2.structures import BoxMode


def test_paste_scales_centres_and_feathers_by_hand():
    src = np.full((20, 20, 3), 200, np.uint8)
    dst = np.zeros((100, 100, 3), np.uint8)
    # face 10x10 -> 20x20: scale 2; the region is the face +- 0.25 x 10 = 2.5 px -> src 2..18 -> dst 34..66
    box = paste_face(dst, src, [5, 5, 15, 15], [40, 40, 60, 60], margin=0.25, feather=0.5)
    assert box == [40.0, 40.0, 60.0, 60.0]
    assert dst[50, 50, 0] == 200
    # the fade is 0.5 x 2.5 x 2 = 2.5 px wide: the outermost pixel centre (0.5 px in) has alpha 0.2
    assert dst[50, 34, 0] == 40 and dst[50, 65, 0] == 40
    assert dst[34, 34, 0] == 8  # 0.2 x 0.2 x 200
    assert dst[50, 33, 0] == 0 and dst[50, 66, 0] == 0 and dst[33, 50, 0] == 0
    assert dst[50, 36, 0] == 200  # 2.5 px in: alpha 1


def test_paste_keeps_the_source_aspect_and_clips_at_the_border():
    src = np.full((40, 20, 3), 90, np.uint8)
    dst = np.zeros((50, 50, 3), np.uint8)
    # a 10x20 face onto a 20x20 box: same area (scale sqrt(400 / 200)), aspect 1:2 kept, centred
    box = paste_face(dst, src, [5, 10, 15, 30], [-5, -5, 15, 15])
    s = np.sqrt(2)
    np.testing.assert_allclose(box, [5 - 5 * s, 5 - 10 * s, 5 + 5 * s, 5 + 10 * s])
    assert dst[5, 5, 0] == 90 and dst[49, 49, 0] == 0
    with pytest.raises(ValueError, match="empty box"):
        paste_face(dst, src, [5, 10, 5, 30], [0, 0, 10, 10])


def test_best_match_and_slots_by_hand():
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    faces = [{"box": [0, 0, 10, 10], "age": 1}, {"box": [4, 0, 14, 10], "age": 2}, {"box": [0, 0, 30, 30], "age": 3}]
    assert best_match(faces, [5, 0, 15, 10])["age"] == 2  # IoU 0.82 beats 0.33
    assert best_match(faces, [50, 50, 60, 60]) is None
    assert best_match([faces[0]], [5, 0, 15, 10], th_iou=0.34) is None  # IoU 1/3: not more than 0.34
    record = {
        "annotations": [
            {"bbox": [0, 0, 50, 50], "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 0},
            {"bbox": [55, 0, 105, 50], "bbox_mode": BoxMode.XYXY_ABS, "iscrowd": 0},  # 50 px, touches the first
            {"bbox": [200, 200, 10, 10], "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 0},  # too small
            {"bbox": [300, 300, 60, 60], "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 1},  # crowd
        ]
    }
    for seed in range(5):  # either of the two large faces, never both: grown by 25% they overlap
        slots = photo_slots(record, 40, 0.25, np.random.default_rng(seed), limit=4)
        assert len(slots) == 1 and slots[0] in ([0, 0, 50, 50], [55, 0, 105, 50])
    assert len(photo_slots(record, 40, 0.0, np.random.default_rng(0), limit=4)) == 2
    assert len(photo_slots(record, 40, 0.0, np.random.default_rng(0), limit=1)) == 1


def test_three_conditions_differ_only_where_the_estimate_reads_the_surroundings():
    """A fake model that reads the age from the face's pixels and adds 10 years when the photo
    around it is not black: alone and on black are exact, in the photo 10 years off."""
    photo = np.full((200, 200, 3), 77, np.uint8)
    photos = [
        {
            "file_name": "photo.jpg",
            "annotations": [
                {"bbox": [20, 20, 60, 60], "bbox_mode": BoxMode.XYXY_ABS},
                {"bbox": [120, 120, 160, 160], "bbox_mode": BoxMode.XYXY_ABS},
            ],
        }
    ]
    ages, genders = (5.0, 30.0, 65.0), (1, 0, 1)
    images = {"photo.jpg": photo}
    faces = []
    for i, (age, g) in enumerate(zip(ages, genders)):
        images[f"{i}.jpg"] = np.full((20, 20, 3), int(age * 3), np.uint8)
        faces.append(
            {
                "file_name": f"{i}.jpg",
                "annotations": [{"bbox": [5, 5, 15, 15], "bbox_mode": BoxMode.XYXY_ABS, "age": age, "gender": g}],
            }
        )

    def estimate(img):
        if img.shape[0] == 20:
            return [
                {"box": [5, 5, 15, 15], "score": 0.9, "age": img[10, 10, 0] / 3, "age_std": 5.0, "gender": "female"}
            ]
        extra = 10.0 if img[0, 0, 0] else 0.0
        out = []
        for b in ([20, 20, 60, 60], [120, 120, 160, 160]):
            v = img[(b[1] + b[3]) // 2, (b[0] + b[2]) // 2, 0]
            if v != 77:  # a face was pasted there
                out.append({"box": b, "score": 0.8, "age": v / 3 + extra, "age_std": 5.0, "gender": "female"})
        return out

    seen = []
    res = evaluate_pasted(
        estimate, faces, photos, per_photo=4, min_side=30, read=images.__getitem__, on_photo=lambda *a: seen.append(a)
    )
    # two slots a photo: faces 0-1 in the first pasted photo, face 2 in the second
    assert [(k, len(boxes)) for k, _, boxes, _ in seen] == [(0, 2), (1, 1)]
    for c in ("alone", "on_black"):
        assert (res[c]["faces"], res[c]["found"], res[c]["MAE"]) == (3, 3, 0.0)
    assert res["in_photo"]["MAE"] == pytest.approx(10.0)
    assert res["in_photo"]["per_band"]["3-9"] == {
        "faces": 1,
        "found": 1,
        "MAE": 10.0,
        "gender_acc": 100.0,
        "mean_pred_age": 15.0,
    }
    assert res["alone"]["gender_acc"] == pytest.approx(200 / 3)  # the man is read "female"
    # every answer's std 5: alone and on black exact (within one std), in the photo 10 off (within two)
    assert [(res[c]["age_in_1std"], res[c]["age_in_2std"]) for c in ("alone", "on_black", "in_photo")] == [
        (100.0, 100.0),
        (100.0, 100.0),
        (0.0, 100.0),
    ]
    with pytest.raises(ValueError, match="no photo has a face"):
        evaluate_pasted(estimate, faces, photos, min_side=100, read=images.__getitem__)


def test_stratified_faces_draw_per_band():
    recs = [{"annotations": [{"age": float(a)}]} for a in [1, 1, 1, 5, 25, 25, 25, 25, 70]]
    picked = stratified_faces(recs, 2, seed=3)
    got = sorted(r["annotations"][0]["age"] for r in picked)
    assert got == [1.0, 1.0, 5.0, 25.0, 25.0, 70.0]
    assert stratified_faces(recs, 2, seed=3) == picked


@needs_shared_data
def test_pasted_command_on_real_photos(tmp_path):
    """The shipped model on 6 held-out UTKFace faces pasted into WIDER val photos: the json and the
    drawn examples are written, every face is found alone, and the figures are plausible."""
    import json

    from foss_d2.apps.evaluate import main

    main(["pasted", "--per-band", "1", "--examples", "1", "--output", str(tmp_path), "DATASETS.ROOT", SHARED_DATA])
    res = json.load(open(tmp_path / "pasted.json"))["results"]
    assert (tmp_path / "pasted_00.jpg").is_file()
    assert res["alone"]["faces"] == res["alone"]["found"] == 6
    assert res["in_photo"]["faces"] == 6 and res["in_photo"]["found"] >= 4
    assert 0 < res["alone"]["MAE"] < 20


def test_figures_print_without_gender_labels(capsys):
    """FG-NET has no gender: its figures print '-' where the gender accuracy would be."""
    from foss_d2.apps.evaluate import print_by_band
    from foss_d2.evaluation.tiled import summarize_by_band

    res = summarize_by_band([5.0, 30.0], [7.0, 26.0], [None, None], [5.0, 30.0])
    assert res["gender_acc"] is None and res["MAE"] == 3.0
    print_by_band("in photo", {"faces": 2, **res})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "in photo: 2/2 found, MAE 3.00, corr -, gender -%"
    assert out[1] == "    ages 3-9: 1/1 found, MAE 2.00, mean answer 7.0, gender -%"
    # with the answers' stds (errors 2 and 4 over stds 3 and 2): whether they hold the true age
    res = summarize_by_band([5.0, 30.0], [7.0, 26.0], [None, None], [5.0, 30.0], stds=[3.0, 2.0])
    print_by_band("in photo", {"faces": 2, **res})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "in photo: 2/2 found, MAE 3.00, corr -, gender -%, true age within 1 / 2 std 50.0% / 100.0%"
    assert out[1] == "    ages 3-9: 1/1 found, MAE 2.00, mean answer 7.0, gender -%"


def test_faces_alone_cuts_out_each_face_and_reads_it_twice(tmp_path, capsys):
    """tools/research/faces_alone.py: the close-up is the square of 2 x margin x the longer side
    around the box centre, clipped to the photo; on demo/family.jpg every face of the photo gets
    a line and a row, its in-photo answer the model's own."""
    import json
    import os

    import cv2
    from conftest import load_script

    mod = load_script("tools/research/faces_alone.py")
    img = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(100, 80, 3)
    crop = mod.cut_out(img, [10, 20, 30, 60], 0.75)  # centre (20, 40), half side 0.75 x 40 = 30
    assert crop.shape[:2] == (60, 50) and (crop[0, 0] == img[10, 0]).all()  # x clipped at 0, y 10..70
    demo = os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")
    mod.main(["--input", demo, "--output", str(tmp_path)])
    rows = json.load(open(tmp_path / "faces_alone.json"))["faces"]
    from foss_d2.engine import FaceAgeEstimator

    assert [r["in_photo"] for r in rows] == FaceAgeEstimator(device="cpu")(cv2.imread(demo))
    assert len(capsys.readouterr().out.strip().splitlines()) == len(rows) >= 6
    # the six people of the photo (its six best scores) are found again alone, each read as someone
    people = sorted(rows, key=lambda r: -r["in_photo"]["score"])[:6]
    assert all(r["alone"] is not None and 1 <= r["alone"]["age"] <= 100 for r in people)
    assert all(r["alone"]["gender"] in ("female", "male") for r in people)
