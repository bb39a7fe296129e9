import logging
import os

import cv2
import numpy as np
import pytest
import torch
from conftest import needs_shared_data, shared_data_path, tiny_cfg

from foss_d2.data import DatasetWeightedTrainingSampler, FOSSDatasetMapper, TilingAugmentation
from foss_d2.data.datasets import load_utkface, load_wider_face, parse_utkface_name, parse_wider_bbx_gt
from foss_d2.data.datasets.utkface import UTKFACE_PRIOR_BOX

from detectron2.structures import BoxMode


def test_parse_utkface_names():
    assert parse_utkface_name("26_1_2_20170116174525125.jpg.chip.jpg") == {"age": 26, "gender": 1, "race": 2}
    for bad in [
        "24_0_1_20170116220224657 .jpg.chip.jpg",
        "39_1_20170116174525125.jpg.chip.jpg",
        "55_0_0_20170116232725357jpg.chip.jpg",
    ]:
        assert parse_utkface_name(bad) is None


def test_load_utkface_fixture(tmp_path, caplog):
    img = np.zeros((200, 200, 3), np.uint8)
    for name in ["30_0_0_1.jpg.chip.jpg", "5_1_3_2.jpg.chip.jpg", "bad_name.jpg.chip.jpg", "notes.txt"]:
        cv2.imwrite(str(tmp_path / name), img) if name.endswith(".jpg") else (tmp_path / name).write_text("x")
    with caplog.at_level(logging.WARNING):
        recs = load_utkface(str(tmp_path))
    assert [r["annotations"][0]["age"] for r in recs] == [30.0, 5.0]
    assert [r["annotations"][0]["gender"] for r in recs] == [0, 1]
    x1, y1, x2, y2 = UTKFACE_PRIOR_BOX
    assert recs[0]["annotations"][0]["bbox"] == [x1 * 200, y1 * 200, x2 * 200, y2 * 200]
    assert sum("bad_name" in m for m in caplog.messages) == 1
    with pytest.raises(FileNotFoundError):
        load_utkface(str(tmp_path / "nope"))


@needs_shared_data
def test_utkface_real_counts_and_split(caplog):
    root = shared_data_path("utkface", "UTKFace")
    with caplog.at_level(logging.WARNING):
        recs = load_utkface(root)
    assert len(recs) == 10_016
    assert len([m for m in caplog.messages if "malformed" in m]) == 3
    train, test = load_utkface(root, "train"), load_utkface(root, "test")
    assert len(train) + len(test) == 10_016
    assert not {r["image_id"] for r in train} & {r["image_id"] for r in test}
    assert 0.17 < len(test) / 10_016 < 0.23


def test_evenly_spaced_subset_by_hand():
    from foss_d2.data.datasets.utkface import evenly_spaced

    recs = list(range(10))
    assert evenly_spaced(recs, 4) == [0, 2, 5, 7]  # i * 10 // 4 for i = 0..3
    assert evenly_spaced(recs, 0) == recs and evenly_spaced(recs, 20) == recs


@needs_shared_data
def test_utkface_test_500_is_a_spread_subset_of_the_held_out_part():
    from foss_d2.data.datasets import register_all_foss

    from detectron2.data import DatasetCatalog, MetadataCatalog

    register_all_foss("/nonexistent")  # as an earlier call in the same process may have: the new root wins
    register_all_foss(shared_data_path())
    small = DatasetCatalog.get("utkface_test_500")
    test_ids = {r["image_id"] for r in load_utkface(shared_data_path("utkface", "UTKFace"), "test")}
    ids = [r["image_id"] for r in small]
    assert len(ids) == len(set(ids)) == 500 and set(ids) <= test_ids
    ages = [r["annotations"][0]["age"] for r in small]
    # the sorted names put ages 1-116 in lexicographic order; a spread sample keeps children and elders
    assert min(ages) <= 2 and max(ages) >= 80
    assert MetadataCatalog.get("utkface_test_500").evaluator_type == "age_single"


def test_parse_wider_fixture(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text(
        "a/x.jpg\n2\n1 2 3 4 0 0 0 0 0 0 \n5 6 0 8 1 0 0 1 0 0 \n"
        "b/empty.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \nc/y.jpg\n1\n9 9 9 9 0 0 0 1 0 0 \n"
    )
    parsed = parse_wider_bbx_gt(str(gt))
    assert parsed == [
        ("a/x.jpg", [[1, 2, 3, 4, 0, 0, 0, 0, 0, 0], [5, 6, 0, 8, 1, 0, 0, 1, 0, 0]]),
        ("b/empty.jpg", []),
        ("c/y.jpg", [[9, 9, 9, 9, 0, 0, 0, 1, 0, 0]]),
    ]
    for rel in ["a/x.jpg", "b/empty.jpg", "c/y.jpg"]:
        os.makedirs(tmp_path / "images" / os.path.dirname(rel), exist_ok=True)
        cv2.imwrite(str(tmp_path / "images" / rel), np.zeros((20, 30, 3), np.uint8))
    recs = load_wider_face(str(tmp_path / "images"), str(gt))
    assert [len(r["annotations"]) for r in recs] == [1, 0, 1]  # the zero-width face is dropped
    assert recs[2]["annotations"][0]["iscrowd"] == 1  # invalid -> ignore
    assert (recs[0]["height"], recs[0]["width"]) == (20, 30)
    # the demographics CSV is a separate download: without it the faces have no groups or genders
    # (it was a FileNotFoundError, so not even face AP could be measured on wider_face_val)
    import logging

    from foss_d2.data.datasets import wider_face

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    wider_face.logger.addHandler(handler)
    try:
        recs = load_wider_face(str(tmp_path / "images"), str(gt), str(tmp_path / "demographics_val.csv"))
    finally:
        wider_face.logger.removeHandler(handler)
    assert [len(r["annotations"]) for r in recs] == [1, 0, 1]
    assert all(a["gender"] == -1 and a["age_group"] == -1 for r in recs for a in r["annotations"])
    assert any("demographics_val.csv not found" in r.getMessage() for r in records)


@needs_shared_data
def test_wider_real_counts_and_demographics_join():
    root = shared_data_path("widerface")
    train = load_wider_face(
        os.path.join(root, "WIDER_train", "images"),
        os.path.join(root, "wider_face_split", "wider_face_train_bbx_gt.txt"),
    )
    assert len(train) == 600
    assert sum(len(r["annotations"]) for r in train) == 3184
    val = load_wider_face(
        os.path.join(root, "WIDER_val", "images"),
        os.path.join(root, "wider_face_split", "wider_face_val_bbx_gt.txt"),
        os.path.join(root, "wider_face_split", "demographics_val.csv"),
    )
    assert len(val) == 130
    faces = {(r["image_id"], a["face_index"]): a for r in val for a in r["annotations"]}
    # Rows checked by hand against demographics_val.csv and wider_face_val_bbx_gt.txt:
    # 24,images/0--Parade/0_Parade_marchingband_1_379.jpg,Male,Adult,Not Sure,3 -> box "695 289 23 32"
    a = faces[("0--Parade/0_Parade_marchingband_1_379.jpg", 3)]
    assert (a["bbox"], a["gender"], a["age_group"]) == ([695.0, 289.0, 23.0, 32.0], 0, 1)
    # 30,...marchingband_1_379.jpg,Male,Not Sure,Not Sure,25 -> box "188 322 19 28", no age group
    a = faces[("0--Parade/0_Parade_marchingband_1_379.jpg", 25)]
    assert (a["bbox"], a["gender"], a["age_group"]) == ([188.0, 322.0, 19.0, 28.0], 0, -1)
    # 94,images/0--Parade/0_Parade_Parade_0_125.jpg,Female,Middle age,I,0 -> box "519 337 26 38"
    a = faces[("0--Parade/0_Parade_Parade_0_125.jpg", 0)]
    assert (a["bbox"], a["gender"], a["age_group"]) == ([519.0, 337.0, 26.0, 38.0], 1, 2)
    # 95,...Parade_0_125.jpg,Female,Young Adult,I,1 -> box "583 277 18 25"
    a = faces[("0--Parade/0_Parade_Parade_0_125.jpg", 1)]
    assert (a["bbox"], a["gender"], a["age_group"]) == ([583.0, 277.0, 18.0, 25.0], 1, 0)
    # 21,...marchingband_1_379.jpg,Not Sure,Not Sure,Not Sure,0 -> unlabelled
    a = faces[("0--Parade/0_Parade_marchingband_1_379.jpg", 0)]
    assert (a["gender"], a["age_group"]) == (-1, -1)
    labelled = [a for a in faces.values() if a["gender"] >= 0]
    assert len(labelled) == 439 and len([a for a in faces.values() if a["age_group"] >= 0]) == 408


COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def _face_record(i, h=100, w=80):
    """A synthetic single-face image: grey background, one face square of COLORS[i]."""
    img = np.full((h, w, 3), 128, np.uint8)
    box = [20, 30, 60, 80]
    img[box[1] : box[3], box[0] : box[2]] = COLORS[i]
    rec = {
        "file_name": f"img{i}",
        "image_id": i,
        "height": h,
        "width": w,
        "annotations": [
            {
                "bbox": list(map(float, box)),
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "age": 10.0 * (i + 1),
                "gender": i % 2,
            }
        ],
    }
    return rec, img


def _box_color(img, box):
    x1, y1, x2, y2 = [int(round(v)) for v in box]
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    return tuple(int(c) for c in img[cy - 2 : cy + 3, cx - 2 : cx + 3].reshape(-1, 3).mean(0).round())


@pytest.mark.parametrize("n", [1, 4, 9])
def test_tiling_boxes_land_on_their_faces(n):
    recs, imgs = zip(*[_face_record(i) for i in range(5)])
    reads = []

    def read(r):
        reads.append(r["image_id"])
        return imgs[r["image_id"]]

    tiler = TilingAugmentation(list(recs), read, num_tiles=[n], max_images=4, canvas_size=300)
    for seed in range(5):
        reads.clear()
        canvas, annos = tiler(recs[seed % 5], np.random.default_rng(seed))
        assert len(reads) == min(n, 4)  # at most 4 images are loaded
        assert len(annos) == n and canvas.shape == (300, 300, 3)
        for a in annos:
            src = int(round(a["age"] / 10)) - 1  # age identifies the source image
            assert _box_color(canvas, a["bbox"]) == COLORS[src]
            assert a["gender"] == src % 2
            # the box covers the face square: its border pixels just inside are face-coloured
            x1, y1, x2, y2 = a["bbox"]
            assert tuple(canvas[int(y1) + 1, int(x1) + 1]) == COLORS[src]
            assert tuple(canvas[int(y2) - 2, int(x2) - 2]) == COLORS[src]


def test_mapper_augmentations_keep_boxes_on_faces(tmp_path):
    rec, img = _face_record(2, 240, 320)
    path = str(tmp_path / "face.png")
    cv2.imwrite(path, img)
    rec["file_name"] = path
    cfg = tiny_cfg()
    cfg.INPUT.AUG.COLOR_JITTER = 0.0  # keep colours exact for the check
    cfg.INPUT.AUG.BLUR_PROB = 0.0
    cfg.INPUT.AUG.ROTATION = 15.0
    mapper = FOSSDatasetMapper(cfg, True)
    np.random.seed(0)
    for _ in range(20):
        out = mapper(rec)
        inst = out["instances"]
        image = out["image"].permute(1, 2, 0).numpy()
        assert len(inst) == 1 and inst.gt_ages.tolist() == [30.0] and inst.gt_genders.tolist() == [0.0]
        color = _box_color(image, inst.gt_boxes.tensor[0].tolist())
        assert np.abs(np.array(color) - COLORS[2]).max() <= 10
        # after rotation the box encloses the face: its area is at least the face's
        s = image.shape[0] * image.shape[1] / (240 * 320)
        assert float(inst.gt_boxes.area()[0]) >= 0.6 * 40 * 50 * s


def test_zoom_out_shrinks_picture_and_box_together():
    # a 200x100 black picture with a white 80x40 face at (40, 20); zoomed out 4x the face is 20x10,
    # placed where the picture's top-left corner landed, on the picture's mean grey
    from foss_d2.data.augmentation import RandomZoomOut

    from detectron2.data import transforms as T

    img = np.zeros((100, 200, 3), np.uint8)
    img[20:60, 40:120] = 255
    np.random.seed(3)
    inp = T.AugInput(img, boxes=np.array([[40, 20, 120, 60]], np.float32))
    tf = RandomZoomOut(1.0, (4.0, 4.0))(inp)
    pad = tf.transforms[1]
    x0, y0 = pad.x0, pad.y0
    assert inp.image.shape == (100, 200, 3)
    assert 0 <= x0 <= 150 and 0 <= y0 <= 75  # the 50x25 copy fits
    assert inp.boxes.tolist() == [[x0 + 10, y0 + 5, x0 + 30, y0 + 15]]
    ys, xs = np.where(inp.image[..., 0] > 200)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (x0 + 10, x0 + 30, y0 + 5, y0 + 15)
    # the fill is the picture's mean: 80*40*255 / (200*100) = 40.8
    assert abs(int(inp.image[0, 0, 0]) - 40.8) <= 1 and abs(int(inp.image[-1, -1, 0]) - 40.8) <= 1
    # probability 0 (the default) leaves pictures alone
    assert isinstance(RandomZoomOut(0.0)(T.AugInput(img)), T.NoOpTransform)


def test_mapper_zoom_out_keeps_labels_on_small_faces(tmp_path):
    rec, img = _face_record(2, 240, 320)
    rec["file_name"] = str(tmp_path / "face.png")
    cv2.imwrite(rec["file_name"], img)
    cfg = tiny_cfg()
    for k, v in (
        ("FLIP", False),
        ("SCALE_RANGE", [1.0, 1.0]),
        ("CROP_FRACTION", 1.0),
        ("ROTATION", 0.0),
        ("COLOR_JITTER", 0.0),
        ("BLUR_PROB", 0.0),
        ("ZOOM_OUT_PROB", 1.0),
        ("ZOOM_OUT_RANGE", [3.0, 3.0]),
    ):
        cfg.INPUT.AUG[k] = v
    np.random.seed(1)
    out = FOSSDatasetMapper(cfg, True)(rec)
    inst = out["instances"]
    assert tuple(out["image"].shape) == (3, 240, 320)
    assert inst.gt_ages.tolist() == [30.0] and inst.gt_genders.tolist() == [0.0]
    x1, y1, x2, y2 = inst.gt_boxes.tensor[0].tolist()
    ((ox1, oy1, ox2, oy2),) = [a["bbox"] for a in rec["annotations"]]
    assert x2 - x1 == pytest.approx((ox2 - ox1) / 3, abs=0.5) and y2 - y1 == pytest.approx((oy2 - oy1) / 3, abs=0.5)
    image = out["image"].permute(1, 2, 0).numpy()
    assert np.abs(np.array(_box_color(image, [x1, y1, x2, y2])) - COLORS[2]).max() <= 10


def _four_tile_mapper(recs):
    """A training mapper that tiles dataset "single" four to a 200 px canvas, without the
    augmentations that move boxes."""
    cfg = tiny_cfg()
    cfg.INPUT.TILING.ENABLED = True
    cfg.INPUT.TILING.NUM_TILES = [4]
    cfg.INPUT.TILING.PROBS = [1.0]
    cfg.INPUT.TILING.CANVAS_SIZE = 200
    cfg.INPUT.AUG.SCALE_RANGE = [1.0, 1.0]
    cfg.INPUT.AUG.CROP_FRACTION = 1.0
    cfg.INPUT.AUG.ROTATION = 0.0
    return FOSSDatasetMapper(cfg, True, pools={"single": recs})


def test_mapper_tiles_only_named_datasets(tmp_path):
    recs = []
    for i in range(3):
        rec, img = _face_record(i)
        rec["file_name"] = str(tmp_path / f"f{i}.png")
        cv2.imwrite(rec["file_name"], img)
        rec["dataset_name"] = "single"
        recs.append(rec)
    mapper = _four_tile_mapper(recs)
    assert len(mapper(recs[0])["instances"]) == 4
    other = dict(recs[0], dataset_name="wider")
    assert len(mapper(other)["instances"]) == 1


def test_tiling_skips_an_unreadable_tile_and_one_of_another_size(tmp_path, caplog):
    """With tiling, a missing file or one whose size is not its record's drew an extra tile and
    blamed the record being tiled: after a few canvases every record was "bad" and training
    stopped; a wrong width/height trained its boxes in the wrong place without a word. Now such a
    tile is skipped with a warning (never drawn again) and such a record is skipped as untiled."""
    from foss_d2.data.build import RetryingMapDataset

    recs = []
    for i in range(5):
        rec, img = _face_record(i)
        rec["file_name"] = str(tmp_path / f"f{i}.png")
        rec["dataset_name"] = "single"
        if i == 1:
            rec["file_name"] = str(tmp_path / "missing.png")
        if i == 3:  # the file is 80x100, its record says 160x200 (boxes in those pixels)
            rec.update(width=160, height=200)
            rec["annotations"][0]["bbox"] = [40.0, 60.0, 120.0, 160.0]
        if i != 1:
            cv2.imwrite(rec["file_name"], img)
        recs.append(rec)
    mapper = _four_tile_mapper(recs)
    ds = RetryingMapDataset(recs, mapper, seed=0)
    with caplog.at_level(logging.WARNING):
        samples = [ds[i % 5] for i in range(40)]
    assert ds.bad == {1, 3}  # only the two bad records, never a good one blamed for a bad tile
    ages = {float(a) for d in samples for a in d["instances"].gt_ages}
    assert ages == {10.0, 30.0, 50.0}  # faces of the readable, right-sized records alone
    assert all(len(d["instances"]) == 4 for d in samples)  # four cells (fewer images: repeated)
    assert any("skipping a tile:" in m and "missing.png" in m for m in caplog.messages)
    assert any("f3.png is 80x100, its record says 160x200" in m for m in caplog.messages)


def test_sampler_ratios_match_weights():
    s = DatasetWeightedTrainingSampler([100, 300, 50], weights=[1, 1, 2], seed=3)
    it = iter(s)
    idx = np.array([next(it) for _ in range(40_000)])
    counts = np.array([(idx < 100).sum(), ((idx >= 100) & (idx < 400)).sum(), (idx >= 400).sum()]) / len(idx)
    assert np.allclose(counts, [0.25, 0.25, 0.5], atol=0.01)
    # default: proportional to size; epoch = largest dataset
    d = DatasetWeightedTrainingSampler([100, 300], seed=0)
    assert d.epoch_length == 300 and torch.allclose(d.dataset_probs, torch.tensor([0.25, 0.75], dtype=torch.float64))
    with pytest.raises(ValueError, match="every dataset must be non-empty"):
        DatasetWeightedTrainingSampler([10, 0])


def test_mapper_skips_unreadable_training_image(tmp_path, caplog):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    rec = {"file_name": str(bad), "image_id": 0, "annotations": []}
    with caplog.at_level(logging.WARNING):
        assert FOSSDatasetMapper(tiny_cfg(), True)(rec) is None  # detectron2 then draws another sample
    assert any("bad.jpg" in m for m in caplog.messages)
    with pytest.raises(ValueError, match="cannot read image"):
        FOSSDatasetMapper(tiny_cfg(), False)(rec)


@pytest.mark.parametrize(
    "text, line, words",
    [
        # a typo in a coordinate: the file, the line and the bad field are named
        ("a/x.jpg\n1\n213 225 2x5 40 0 0 0 0 0 0\n", 3, "'2x5' is not an integer"),
        # a face count one too high, mid-file: the next entry's name is read as a face line
        (
            "a/x.jpg\n2\n1 2 3 4 0 0 0 0 0 0\nb/y.jpg\n1\n5 6 7 8 0 0 0 0 0 0\n",
            4,
            "face count 2 of 'a/x.jpg' on line 2 too high",
        ),
        # a short face line
        ("a/x.jpg\n1\n213 225\n", 3, "expected 10 integers"),
        # a count that runs past the end of the file
        ("a/x.jpg\n3\n1 2 3 4 0 0 0 0 0 0\n", 4, "the file ends inside the faces of 'a/x.jpg'"),
        # a name with no count after it
        ("a/x.jpg\n1\n1 2 3 4 0 0 0 0 0 0\nb/y.jpg\n", 4, "the file ends after 'b/y.jpg'"),
        ("a/x.jpg\nmany\n", 2, "expected a face count after 'a/x.jpg'"),
    ],
)
def test_parse_wider_errors_name_file_and_line(tmp_path, text, line, words):
    gt = tmp_path / "gt.txt"
    gt.write_text(text)
    with pytest.raises(ValueError) as e:
        parse_wider_bbx_gt(str(gt))
    assert str(e.value).startswith(f"{gt}:{line}: "), str(e.value)
    assert words in str(e.value)


def test_training_loader_draws_another_record_for_an_unreadable_one():
    """RetryingMapDataset: a record the mapper cannot read (None) is replaced by another, drawn at
    random among the readable ones; the bad one is never handed out; all bad is an error naming
    DATASETS.ROOT (detectron2 0.6's MapDataset raised TypeError on Python 3.11 at the first bad one)."""
    from foss_d2.data.build import RetryingMapDataset

    records = [{"i": i} for i in range(6)]
    ds = RetryingMapDataset(records, lambda r: None if r["i"] in (1, 4) else r["i"], seed=0)
    got = [ds[i] for i in range(6) for _ in range(5)]
    assert set(got) <= {0, 2, 3, 5} and {ds[0], ds[2], ds[3], ds[5]} == {0, 2, 3, 5}
    assert ds.bad == {1, 4}
    named = [{"file_name": f"/nowhere/{i}.jpg"} for i in range(3)]
    with pytest.raises(
        RuntimeError,
        match=r"3 training records drawn one after another could not be read \(3 of 3 so far; one "
        r"of them: /nowhere/0.jpg\): is DATASETS.ROOT",
    ):
        RetryingMapDataset(named, lambda r: None)[0]


def test_config_coco_datasets_are_checked_and_keep_their_age_groups(tmp_path):
    """DATASETS.COCO: a built-in's name, a name taken by another file and an unknown evaluator type
    are errors (the first two silently used the other dataset); an age_group file's groups come
    from its info (prepare_coco.py writes them) or are the paper's Images of Groups seven."""
    from PIL import Image

    from foss_d2.data import dataset_to_coco, save_coco
    from foss_d2.data.datasets.builtin import register_config_datasets

    from detectron2.data import MetadataCatalog

    img = tmp_path / "a.jpg"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(img)
    rec = {"file_name": str(img), "height": 20, "width": 20, "annotations": [
        {"bbox": [1, 1, 8, 8], "bbox_mode": BoxMode.XYWH_ABS, "age": -1, "gender": 1, "age_group": 2}]}  # fmt: skip
    plain, grouped = str(tmp_path / "plain.json"), str(tmp_path / "grouped.json")
    save_coco(dataset_to_coco([rec]), plain)
    save_coco(dataset_to_coco([rec], age_groups=(["young", "old", "older"], [0, 40, 70])), grouped)

    def register(*entries):
        cfg = tiny_cfg()
        cfg.defrost()
        cfg.DATASETS.COCO = [tuple(e) for e in entries]
        register_config_datasets(cfg)

    register(("coco_iog", plain, "", "age_group"), ("coco_mine", grouped, "", "age_group"))
    register(("coco_iog", plain, "", "age_group"))  # the same again: fine
    assert MetadataCatalog.get("coco_iog").age_group_lower == [0, 3, 8, 13, 20, 37, 66]
    assert MetadataCatalog.get("coco_mine").age_groups == ["young", "old", "older"]
    assert MetadataCatalog.get("coco_mine").age_group_lower == [0, 40, 70]
    for entry, message in [
        (("wider_face_val", plain, ""), "is a built-in dataset's name"),
        (("coco_iog", grouped, ""), "already registered, for another file"),
        (("coco_typo", plain, "", "age-group"), "evaluator type 'age-group' is none of"),
    ]:
        with pytest.raises(ValueError, match=message):
            register(entry)


def test_coco_fields_are_checked_when_the_dataset_loads(tmp_path, caplog):
    """A user's COCO file: each mistake is an error naming the JSON file (and the image) when the
    dataset loads, not a KeyError, an assertion or a float() error mid-training or after a whole
    evaluation; null labels are unknown; unusable boxes and missing images are warned about."""
    import json
    import re

    from foss_d2.data import register_foss_coco

    from detectron2.data import DatasetCatalog

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((20, 20, 3), np.uint8))

    def coco(image=None, categories=None, **fields):
        ann = {"id": 1, "image_id": 1, "bbox": [1, 1, 8, 8], "category_id": 1, "iscrowd": 0, "area": 64.0}
        img = {"id": 1, "file_name": "a.jpg", "height": 20, "width": 20}
        ann = {k: v for k, v in dict(ann, **fields).items() if v != "drop"}
        return {"images": [{k: v for k, v in dict(img, **(image or {})).items() if v != "drop"}],
                "annotations": [ann], "categories": categories or [{"id": 1, "name": "face"}]}  # fmt: skip

    cases = [
        (coco(age="thirty"), "age 'thirty' is not a number (age: the age in years, in [0, 120]"),
        (coco(age=150), "age 150 is outside [0, 120]"),
        (coco(age=-5), "age -5 is outside [0, 120]"),
        (coco(gender=2), "gender 2 is neither -1 nor in [0, 1] (gender: 0 male, 1 female"),
        (coco(gender="M"), "gender 'M' is not a number (gender: 0 male, 1 female"),
        (coco(age_group=9), "age_group 9 is not an index of the dataset's 7 groups"),
        (coco(categories=[{"id": 1, "name": "Face"}]), "one category, named 'face' (id any); this file has ['Face']"),
        (coco(categories=[{"id": 1, "name": "face"}, {"id": 2, "name": "person"}]), "has ['face', 'person']"),
        (coco(image={"height": "drop"}), "image 1 has no height"),
        (coco(bbox="drop"), "annotation 1 has no bbox"),
        (coco(area="drop"), "annotation 1 has no area (COCO's AP reads area and iscrowd"),
        (coco(image={"file_name": "b.jpg"}), "none of the 1 images of"),
        # what detectron2's loader or the mapper would crash on, or silently misread
        (coco(iscrowd="0"), "annotation 1: iscrowd '0' is neither 0 (a face) nor 1 (a crowd region)"),
        (coco(bbox=[10, 10, 50]), "annotation 1: bbox [10, 10, 50] is not [x, y, width, height]"),
        (coco(bbox=["1", "1", "8", "8"]), "bbox ['1', '1', '8', '8'] is not [x, y, width, height]"),
        (coco(bbox=None), "bbox None is not [x, y, width, height]"),
        (coco(category_id=7), "annotation 1: category_id 7 is not the face category's id"),
        (coco(category_id="drop"), "annotation 1 has no category_id"),
        (coco(id="drop"), "annotation ? has no id"),
        (coco(image={"width": "200"}), "image 1: width and height must be positive numbers, got '200', 20"),
        (coco(image={"id": 1.5}), "image 1.5: its id 1.5 is neither an integer nor a string"),
        (coco(image={"file_name": None}), "image 1: file_name None is not a path"),
        ('{"images": [', "is not valid JSON: Expecting value: line 1 column 13"),
    ]
    twice = coco()
    twice["annotations"].append(dict(twice["annotations"][0]))
    cases.append((twice, "annotation 1: the id is used twice"))
    # a TypeError in detectron2's sort, and AttributeErrors of the checks themselves, naming no file
    mixed = coco()
    mixed["images"].append({"id": "2", "file_name": "a.jpg", "height": 20, "width": 20})
    cases.append((mixed, "image 2: its id '2' mixes integers and strings among the image ids"))
    cases.append((dict(coco(), images=[["a.jpg", 20, 20]]), "images[0] is not an object: ['a.jpg', 20, 20]"))
    cases.append((dict(coco(), annotations=[None]), "annotations[0] is not an object: None"))
    cases.append((dict(coco(), annotations={"1": {}}), "'annotations' is a list of objects, got dict"))
    cases.append((dict(coco(), categories=["face"]), "categories[0] is not an object: 'face'"))
    for i, (content, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(ValueError, match=re.escape(message)):  # at registration or when it loads
            register_foss_coco(f"foss_test_bad_coco_{i}", str(path), str(tmp_path), "age_group")
            DatasetCatalog.get(f"foss_test_bad_coco_{i}")
    path = tmp_path / "strid.json"  # detectron2's convert_to_coco_dict keeps a loader's string image ids
    content = coco(image_id="0--Parade/a.jpg")
    content["images"][0]["id"] = "0--Parade/a.jpg"
    path.write_text(json.dumps(content))
    register_foss_coco("foss_test_strid_coco", str(path), str(tmp_path))
    assert len(DatasetCatalog.get("foss_test_strid_coco")[0]["annotations"]) == 1
    DatasetCatalog.remove("foss_test_strid_coco")
    path = tmp_path / "good.json"
    path.write_text(json.dumps(coco(age=31, gender=0.8, age_group=4)))
    register_foss_coco("foss_test_good_coco", str(path), str(tmp_path), "age_group")
    (a,) = DatasetCatalog.get("foss_test_good_coco")[0]["annotations"]
    assert (a["age"], a["gender"], a["age_group"], a["category_id"]) == (31, 0.8, 4, 0)
    # what pandas writes for a missing value: unknown; area and iscrowd are only needed for COCO's AP
    path = tmp_path / "nulls.json"
    path.write_text(json.dumps(coco(age=None, gender=None, area="drop", iscrowd="drop")))
    register_foss_coco("foss_test_null_coco", str(path), str(tmp_path))
    (a,) = DatasetCatalog.get("foss_test_null_coco")[0]["annotations"]
    assert (a["age"], a["gender"], a["age_group"]) == (-1, -1, -1)
    # a box without an area or outside its image is left out, with a warning; a missing image too
    content = coco()
    content["annotations"] += [
        dict(content["annotations"][0], id=2, bbox=[5, 5, 0, 8]),
        dict(content["annotations"][0], id=3, bbox=[30, 2, 5, 5]),
        # an infinite corner (trained as a box to the image's edge before)
        dict(content["annotations"][0], id=4, bbox=[4, 4, float("inf"), 8]),
        # [x1, y1, x2, y2] written for [x, y, width, height]: kept, cut at the edge, but said
        dict(content["annotations"][0], id=5, bbox=[10, 6, 18, 12]),
    ]
    content["images"].append({"id": 2, "file_name": "missing.jpg", "height": 20, "width": 20})
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(content))
    register_foss_coco("foss_test_mixed_coco", str(path), str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="foss_d2.data.coco"):
        recs = DatasetCatalog.get("foss_test_mixed_coco")
    assert [a["id"] for a in recs[0]["annotations"]] == [1, 5]
    assert "3 face boxes without an area or outside their image are left out" in caplog.text
    assert "1 face boxes run past their image's edge by over a tenth of their size" in caplog.text
    assert "annotation 5, bbox [10, 6, 18, 12] in a 20x20 image" in caplog.text
    assert "1 of 2 images are missing" in caplog.text and "missing.jpg" in caplog.text
    # one photo under two image ids, and a file without a face box: warned about
    content = coco()
    content["images"].append(dict(content["images"][0], id=2))
    content["annotations"] = []
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(content))
    register_foss_coco("foss_test_twice_coco", str(path), str(tmp_path))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="foss_d2.data.coco"):
        assert len(DatasetCatalog.get("foss_test_twice_coco")) == 2
    assert "1 image is listed more than once under other ids (first: " in caplog.text
    assert "holds no face box" in caplog.text
    DatasetCatalog.remove("foss_test_twice_coco")
    # age groups named in the file need their lower bounds
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(dict(coco(), info={"age_groups": ["young", "middle", "old"]})))
    with pytest.raises(ValueError, match="age_groups and age_group_lower go together"):
        register_foss_coco("foss_test_groups_coco", str(path), str(tmp_path), "age_group")
    for i in range(len(cases)):
        if f"foss_test_bad_coco_{i}" in DatasetCatalog.list():
            DatasetCatalog.remove(f"foss_test_bad_coco_{i}")
    for name in ("good", "null", "mixed"):
        DatasetCatalog.remove(f"foss_test_{name}_coco")


def test_training_loader_wires_weights_balance_and_tile_pools(monkeypatch, caplog):
    """build_foss_train_loader hands the config to its pieces. Two datasets: ages 1, 30 and 30
    (one of them a two-face picture: 30 and 35) and two pictures without ages. DATASET_WEIGHTS
    [3, 1]; AGE_BALANCE 1: band 0-2 holds 1 face, band 20-39 holds 3, so the face weights are 1
    and 1/3, the pictures' (1, 1/3, 1/3) rescaled to sum to 3: (1.8, 0.6, 0.6); unlabelled
    pictures keep 1. The tiles are drawn from the datasets INPUT.TILING.DATASETS names, with the
    same weights. The log's share of draws per band: 1.8 / 3 = 0.6 and 0.4."""
    from foss_d2.data import build as build_mod

    from detectron2.data import DatasetCatalog

    def rec(i, *ages):
        return {"file_name": f"x{i}.jpg", "annotations": [{"age": a} for a in ages] or [{"age": -1}]}

    DatasetCatalog.register("_t_ages", lambda: [rec(0, 1), rec(1, 30), rec(2, 30, 35)])
    DatasetCatalog.register("_t_det", lambda: [rec(3), rec(4)])
    DatasetCatalog.register("_t_empty", lambda: [])
    seen = {}

    class Sampler(build_mod.DatasetWeightedTrainingSampler):
        def __init__(self, sizes, weights, seed=None, image_weights=None):
            seen["sampler"] = (list(sizes), weights, image_weights)
            super().__init__(sizes, weights, seed=seed, image_weights=image_weights)

    def mapper(cfg, is_train, pools=None, read_image=None, pool_weights=None):
        seen["mapper"] = (is_train, pools, pool_weights, read_image)
        return lambda d: d

    monkeypatch.setattr(build_mod, "DatasetWeightedTrainingSampler", Sampler)
    monkeypatch.setattr(build_mod, "FOSSDatasetMapper", mapper)
    monkeypatch.setattr(build_mod, "build_detection_train_loader", lambda **kw: kw)
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = ("_t_ages", "_t_det")
    cfg.DATALOADER.DATASET_WEIGHTS = [3.0, 1.0]
    cfg.DATALOADER.AGE_BALANCE = 1.0
    cfg.INPUT.TILING.DATASETS = ("_t_ages",)
    try:
        with caplog.at_level(logging.INFO, logger="foss_d2.data.build"):
            loader = build_mod.build_foss_train_loader(cfg)
        sizes, weights, image_weights = seen["sampler"]
        assert sizes == [3, 2] and list(weights) == [3.0, 1.0]
        assert np.allclose(image_weights[0], [1.8, 0.6, 0.6]) and image_weights[1] == [1.0, 1.0]
        is_train, pools, pool_weights, cache = seen["mapper"]
        assert is_train and cache is None and list(pools) == ["_t_ages"]
        assert [d["file_name"] for d in pools["_t_ages"]] == ["x0.jpg", "x1.jpg", "x2.jpg"]
        assert np.allclose(pool_weights["_t_ages"], [1.8, 0.6, 0.6])
        records = loader["dataset"].records
        assert [(d["file_name"], d["dataset_name"]) for d in records] == [
            ("x0.jpg", "_t_ages"),
            ("x1.jpg", "_t_ages"),
            ("x2.jpg", "_t_ages"),
            ("x3.jpg", "_t_det"),
            ("x4.jpg", "_t_det"),
        ]
        assert loader["total_batch_size"] == cfg.SOLVER.IMS_PER_BATCH and loader["mapper"] is None
        shares = build_mod.band_shares(pools["_t_ages"], image_weights[0])
        assert shares == {"0-2": 0.6, "3-9": 0.0, "10-19": 0.0, "20-39": 0.4, "40-59": 0.0, "60+": 0.0}
        assert "share of draws per age band" in caplog.text and "'0-2': 0.6" in caplog.text
        cfg.DATASETS.TRAIN = ("_t_ages", "_t_empty")
        with pytest.raises(ValueError, match="training dataset '_t_empty' is empty"):
            build_mod.build_foss_train_loader(cfg)
    finally:
        for name in ("_t_ages", "_t_det", "_t_empty"):
            DatasetCatalog.remove(name)


def test_training_config_mistakes_are_named_before_training(caplog):
    """DATASET_WEIGHTS that do not match DATASETS.TRAIN (the shipped config's two weights with one
    dataset of one's own), tiling from a dataset not trained on, and an age stage on data without
    labels: a one-line error or a warning, not a sampler traceback or a run that trains nothing."""
    from foss_d2.data.build import check_train_config

    ages = [{"file_name": "a.jpg", "annotations": [{"age": 30.0, "gender": -1}]}]
    boxes = [{"file_name": "b.jpg", "annotations": [{"bbox": [0, 0, 5, 5]}]}]
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = ("mine",)
    cfg.DATALOADER.DATASET_WEIGHTS = [1.0, 1.0]
    with pytest.raises(ValueError, match=r"DATASET_WEIGHTS \[1.0, 1.0\] for DATASETS.TRAIN \('mine',\).*\"\[\]\""):
        check_train_config(cfg, [ages])
    cfg.DATALOADER.DATASET_WEIGHTS = [0.0]
    with pytest.raises(ValueError, match="not all 0"):
        check_train_config(cfg, [ages])
    cfg.DATALOADER.DATASET_WEIGHTS = []
    cfg.INPUT.TILING.ENABLED, cfg.INPUT.TILING.DATASETS = True, ("mine", "utkface_train")
    with caplog.at_level(logging.WARNING, logger="foss_d2.data.build"):
        check_train_config(cfg, [ages])
    assert "names ['utkface_train'], not in DATASETS.TRAIN ('mine',): no canvases are tiled from it" in caplog.text
    cfg.MODEL.FOSS.FREEZE_DETECTOR = True
    with pytest.raises(ValueError, match="holds no face with an age or a gender and the detector is frozen"):
        check_train_config(cfg, [boxes])
    check_train_config(cfg, [boxes, ages])  # one labelled face is something to learn from
    cfg.MODEL.AGE_HEAD.LAMBDA_FLIP = 0.1  # the mirror term learns from unlabelled faces
    check_train_config(cfg, [boxes])
    cfg.MODEL.AGE_HEAD.LAMBDA_FLIP, cfg.MODEL.FOSS.FREEZE_DETECTOR = 0.0, False  # the detector learns
    check_train_config(cfg, [boxes])
    # faces with age groups only (Images of Groups' labels): the age loss reads years, said so
    groups = [{"file_name": "g.jpg", "annotations": [{"bbox": [0, 0, 5, 5], "age": -1, "age_group": 4}]}]
    cfg.INPUT.TILING.ENABLED = False
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="foss_d2.data.build"):
        check_train_config(cfg, [groups])
    assert "mine: its faces carry age groups but no ages: training learns ages from 'age'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="foss_d2.data.build"):
        check_train_config(cfg, [groups + ages])
    assert "age groups" not in caplog.text
    # UTKFace's ages 101-116: past the 101 classes, trained without an age (the loss masks them), said
    old = [{"file_name": "o.jpg", "annotations": [{"age": a, "gender": 1}]} for a in (100.0, 105.0, 116.0)]
    with caplog.at_level(logging.WARNING, logger="foss_d2.data.build"):
        check_train_config(cfg, [old])
    assert "mine: 2 faces are older than the age network's last class (100 years; ages 105-116)" in caplog.text
