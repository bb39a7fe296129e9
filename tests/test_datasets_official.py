"""Loaders of the datasets absent here, on small files written in each official layout."""

import numpy as np
import pytest
import torch
from scipy.io import savemat

from foss_d2.data.datasets import (
    box_from_eyes,
    load_appa_real,
    load_images_of_groups,
    load_imdb_wiki,
    load_megaage_asian,
    register_all_foss,
)
from foss_d2.data.datasets.imdb_wiki import CROP_FACE_BOX
from foss_d2.data.utils import absolute_annotations

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

DATENUM_1970 = 719529  # MATLAB datenum(1970, 1, 1)
DATENUM_1990 = DATENUM_1970 + 7305  # + 20 years incl. 5 leap days


def _cell(strings):
    c = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        c[0, i] = np.array([s])
    return c


def test_imdb_wiki_age_at_the_middle_of_the_photos_year():
    """The photo taken mid-year: a birthday from July on makes the person a year younger than the
    years' difference (it was the difference alone: half the labels a year too old)."""
    import datetime

    from foss_d2.data.datasets.imdb_wiki import age_in_photo

    def datenum(y, m, d):  # MATLAB's serial date number
        return datetime.date(y, m, d).toordinal() + 366

    assert datenum(1970, 1, 1) == DATENUM_1970
    assert [age_in_photo(2000, datenum(1990, m, d)) for m, d in ((1, 15), (6, 30), (7, 1), (10, 15))] == [10, 10, 9, 9]


def test_imdb_wiki_mat_and_cleaning(tmp_path):
    paths = ["01/a.jpg", "02/two_faces.jpg", "03/no_face.jpg", "04/no_gender.jpg", "05/too_old.jpg", "06/b.jpg"]
    fields = {
        "dob": np.array([[DATENUM_1970 + 0.5, DATENUM_1970, DATENUM_1970, DATENUM_1970, 690000.0, DATENUM_1990]]),
        "photo_taken": np.array([[2000, 2000, 2000, 2000, 2000, 2010]]),
        "full_path": _cell(paths),
        "gender": np.array([[1.0, 1.0, 0.0, np.nan, 1.0, 0.0]]),
        "face_location": _cell(["x"] * 6),
        "face_score": np.array([[3.2, 4.0, -np.inf, 2.0, 2.5, 1.5]]),
        "second_face_score": np.array([[np.nan, 2.0, np.nan, np.nan, np.nan, np.nan]]),
    }
    mat = tmp_path / "imdb_crop" / "imdb.mat"
    mat.parent.mkdir()
    savemat(str(mat), {"imdb": fields})
    recs = load_imdb_wiki(str(mat))
    assert [r["image_id"] for r in recs] == ["01/a.jpg", "06/b.jpg"]
    a, b = recs[0]["annotations"][0], recs[1]["annotations"][0]
    assert (a["age"], a["gender"]) == (30.0, 0)  # 2000 - 1970; IMDB male (1) -> 0
    assert (b["age"], b["gender"]) == (20.0, 1)  # 2010 - 1990; IMDB female (0) -> 1
    assert recs[0]["file_name"] == str(tmp_path / "imdb_crop" / "01" / "a.jpg")
    assert len(load_imdb_wiki(str(mat), clean=False)) == 6
    # the crop's 40% margins: the face is the central 1/1.8 of a 180-px crop, i.e. 40..140
    abs_box = absolute_annotations([a], 180, 180)[0]
    assert abs_box["bbox_mode"] == BoxMode.XYXY_ABS
    assert abs_box["bbox"] == pytest.approx([40.0, 40.0, 140.0, 140.0])
    assert CROP_FACE_BOX[0] == pytest.approx(0.4 / 1.8)


def test_appa_real_csvs(tmp_path):
    (tmp_path / "gt_avg_train.csv").write_text(
        "file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age\n000000.jpg,36,5.0,1.146423008,4\n000001.jpg,63,20.079365079,4.096423,18\n"
    )
    (tmp_path / "allcategories_train.csv").write_text(
        "file,gender,race,makeup,time,happiness\n000000.jpg,female,caucasian,no,young,happy\n"
    )
    recs = load_appa_real(str(tmp_path), "train")
    assert [r["file_name"] for r in recs] == [
        str(tmp_path / "train" / "000000.jpg_face.jpg"),
        str(tmp_path / "train" / "000001.jpg_face.jpg"),
    ]
    a, b = recs[0]["annotations"][0], recs[1]["annotations"][0]
    assert (a["age"], a["apparent_age"], a["apparent_age_std"], a["gender"]) == (4.0, 5.0, 1.146423008, 1)
    assert (b["age"], b["apparent_age"], b["gender"]) == (18.0, 20.079365079, -1)
    with pytest.raises(FileNotFoundError):
        load_appa_real(str(tmp_path), "test")


def test_megaage_asian_lists(tmp_path):
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "train_name.txt").write_text("1.jpg\n2.jpg\n3.jpg\n")
    (tmp_path / "list" / "train_age.txt").write_text("12\n45\n69\n")
    recs = load_megaage_asian(str(tmp_path), "train")
    assert [(r["file_name"], r["annotations"][0]["age"]) for r in recs] == [
        (str(tmp_path / "train" / "1.jpg"), 12.0),
        (str(tmp_path / "train" / "2.jpg"), 45.0),
        (str(tmp_path / "train" / "3.jpg"), 69.0),
    ]
    (tmp_path / "list" / "test_name.txt").write_text("a.jpg\nb.jpg\n")
    (tmp_path / "list" / "test_age.txt").write_text("3\n")
    with pytest.raises(ValueError, match="2 names but .* 1 ages"):
        load_megaage_asian(str(tmp_path), "test")


def _write_iog_images(folder):
    import cv2
    import numpy as np

    cv2.imwrite(str(folder / "1006149518_250f8036fc_1438_9284053@N07.jpg"), np.zeros((200, 300, 3), np.uint8))
    cv2.imwrite(str(folder / "2222_abc_1_1@N00.jpg"), np.zeros((40, 60, 3), np.uint8))


def test_images_of_groups_scored_with_face_ap(tmp_path, monkeypatch):
    """The paper's Table 1 dataset through build_foss_evaluator: its COCO face AP needs each image's
    size (a KeyError 'width' before the loader read them), its groups scored by hand."""
    import foss_d2.data.datasets.images_of_groups as iog
    from foss_d2 import add_foss_config
    from foss_d2.data.datasets.images_of_groups import box_from_eyes, register_images_of_groups
    from foss_d2.evaluation import build_foss_evaluator

    from detectron2.config import get_cfg
    from detectron2.structures import Boxes, Instances

    folder = tmp_path / "Fam2a"
    folder.mkdir()
    (folder / "PersonData.txt").write_text(
        "1006149518_250f8036fc_1438_9284053@N07.jpg\n100\t100\t120\t100\t28\t2\n200\t50\t218.5\t50\t1\t1\n"
    )
    _write_iog_images(folder)
    (tmp_path / "test_faces.txt").write_text(
        "Fam2a/1006149518_250f8036fc_1438_9284053@N07.jpg 100 100 120 100\n"
        "Fam2a/1006149518_250f8036fc_1438_9284053@N07.jpg 200 50 218.5 50\n"
    )
    monkeypatch.setattr(iog, "IOG_FOLDERS", ("Fam2a",))
    register_images_of_groups("foss_test_iog_ap", str(tmp_path), test_split=True)
    cfg = get_cfg()
    add_foss_config(cfg)
    ev = build_foss_evaluator(cfg, "foss_test_iog_ap", str(tmp_path / "eval"))
    ev.reset()
    inst = Instances((200, 300))
    # both faces boxed as labelled; the man read 30 (20-36: right) and male, the girl (0-2) read
    # 9 (8-12: two groups off, neither right nor 1-off) and female
    inst.pred_boxes = Boxes(torch.tensor([box_from_eyes(100, 100, 120, 100), box_from_eyes(200, 50, 218.5, 50)]))
    inst.scores = torch.tensor([0.9, 0.8])
    inst.pred_classes = torch.zeros(2, dtype=torch.long)
    inst.pred_ages = torch.tensor([30.0, 9.0])
    inst.pred_female_probs = torch.tensor([0.2, 0.7])
    image_id = "Fam2a/1006149518_250f8036fc_1438_9284053@N07.jpg"
    ev.process([{"image_id": image_id, "height": 200, "width": 300}], [{"instances": inst}])
    res = ev.evaluate()
    assert res["bbox"]["AP50"] == pytest.approx(100.0)
    assert res["age"]["group_acc"] == 50.0 and res["age"]["group_1off"] == 50.0 and res["age"]["gender_acc"] == 100.0


def test_images_of_groups_person_data(tmp_path):
    folder = tmp_path / "Fam2a"
    folder.mkdir()
    (folder / "PersonData.txt").write_text(
        "1006149518_250f8036fc_1438_9284053@N07.jpg\n"
        "100\t100\t120\t100\t28\t2\n"
        "200\t50\t218.5\t50\t1\t1\n"
        "2222_abc_1_1@N00.jpg\n"
        "10\t10\t30\t10\t75\t2\n"
        "missing.jpg\n"
        "10\t10\t30\t10\t75\t2\n"
    )
    _write_iog_images(folder)
    recs = load_images_of_groups(str(tmp_path), folders=["Fam2a"])
    assert [len(r["annotations"]) for r in recs] == [2, 1]  # missing.jpg skipped, with a warning
    assert [(r["width"], r["height"]) for r in recs] == [(300, 200), (60, 40)]  # read from the headers
    a, b = recs[0]["annotations"]
    # eyes (100,100)-(120,100): d = 20, centre (110, 100) -> [110-24, 100-18, 110+24, 100+42]
    assert a["bbox"] == pytest.approx([86.0, 82.0, 134.0, 142.0])
    assert (a["age_group"], a["gender"]) == (4, 0)  # code 28 = 20-36, 2 = male
    assert (b["age_group"], b["gender"]) == (0, 1)  # code 1 = 0-2, 1 = female
    assert recs[1]["annotations"][0]["age_group"] == 6  # code 75 = 66+
    # the paper's median face, 18.5 px between the eyes, gets a 44.4 x 55.5 px box
    x1, y1, x2, y2 = box_from_eyes(0, 0, 18.5, 0)
    assert (x2 - x1, y2 - y1) == pytest.approx((44.4, 55.5))
    # the paper's test split (4.3): the listed faces scored; their photos' other faces unlabelled
    # boxes; photos without a listed face left out (test_list was accepted and ignored before)
    split = tmp_path / "test_faces.txt"
    split.write_text("Fam2a/1006149518_250f8036fc_1438_9284053@N07.jpg 100 100 120.0 100\n\n")
    (test,) = load_images_of_groups(str(tmp_path), folders=["Fam2a"], test_faces=str(split))
    assert test["image_id"] == "Fam2a/1006149518_250f8036fc_1438_9284053@N07.jpg"
    assert [(a["age_group"], a["gender"]) for a in test["annotations"]] == [(4, 0), (-1, -1)]
    assert test["annotations"][1]["bbox"] == b["bbox"]  # still a face for the detector's figures
    split.write_text("Fam2a/2222_abc_1_1@N00.jpg 11 10 30 10\n")
    with pytest.raises(ValueError, match=r"1 of its faces are no face of PersonData.txt \(first: Fam2a/2222"):
        load_images_of_groups(str(tmp_path), folders=["Fam2a"], test_faces=str(split))
    split.write_text("Fam2a/2222_abc_1_1@N00.jpg 11 10\n")
    with pytest.raises(ValueError, match=r"test_faces.txt:1: expected '<folder>/<image> <xl> <yl> <xr> <yr>'"):
        load_images_of_groups(str(tmp_path), folders=["Fam2a"], test_faces=str(split))
    with pytest.raises(FileNotFoundError, match="The paper's test split .* is not marked in PersonData.txt"):
        load_images_of_groups(str(tmp_path), folders=["Fam2a"], test_faces=str(tmp_path / "none.txt"))
    (folder / "PersonData.txt").write_text("img.jpg\n1 2 3\n")
    with pytest.raises(ValueError, match="6 face fields"):
        load_images_of_groups(str(tmp_path), folders=["Fam2a"])


def test_all_six_datasets_registered(tmp_path):
    """Every dataset of the paper registered under DATASETS.ROOT, read from its official layout
    there, with the evaluator its labels call for."""
    (tmp_path / "megaage_asian" / "list").mkdir(parents=True)
    (tmp_path / "megaage_asian" / "list" / "train_name.txt").write_text("1.jpg\n2.jpg\n")
    (tmp_path / "megaage_asian" / "list" / "train_age.txt").write_text("12\n45\n")
    register_all_foss(str(tmp_path))
    evaluators = {
        "utkface_train": "age_single",
        "utkface_test": "age_single",
        "wider_face_train": "face_detection",
        "wider_face_val": "age_group",
        "imdb_train": "age_single",
        "wiki_test": "age_single",
        "clap2016_train": "age_single",
        "megaage_asian_train": "age_single",
        "images_of_groups": "age_group",
        "images_of_groups_test": "age_group",
    }
    assert set(evaluators) <= set(DatasetCatalog.list())
    assert {n: MetadataCatalog.get(n).evaluator_type for n in evaluators} == evaluators
    recs = DatasetCatalog.get("megaage_asian_train")
    assert [(r["file_name"], r["annotations"][0]["age"]) for r in recs] == [
        (str(tmp_path / "megaage_asian" / "train" / "1.jpg"), 12.0),
        (str(tmp_path / "megaage_asian" / "train" / "2.jpg"), 45.0),
    ]
    with pytest.raises(FileNotFoundError, match="MegaAge-Asian list not found"):
        DatasetCatalog.get("megaage_asian_test")  # not in this root: a clear error when asked for


def test_coco_round_trip_keeps_age_gender(tmp_path):
    import cv2

    from foss_d2.data import dataset_to_coco, load_foss_coco, save_coco

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((90, 180, 3), np.uint8))
    recs = [
        {
            "file_name": str(tmp_path / "a.jpg"),
            "image_id": "a",
            "annotations": [
                {
                    "bbox": [0.0, 0.0, 0.5, 1.0],
                    "bbox_mode": BoxMode.XYXY_REL,
                    "category_id": 0,
                    "age": 42.0,
                    "gender": 1,
                },
                {
                    "bbox": [10, 20, 30, 40],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "category_id": 0,
                    "age_group": 3,
                    "iscrowd": 1,
                },
            ],
        }
    ]
    path = str(tmp_path / "out" / "faces.json")
    save_coco(dataset_to_coco(recs), path)
    back = load_foss_coco(path)
    a, b = back[0]["annotations"]
    assert (back[0]["height"], back[0]["width"]) == (90, 180)
    assert a["bbox"] == [0.0, 0.0, 90.0, 90.0] and (a["age"], a["gender"], a["age_group"]) == (42.0, 1, -1)
    assert b["bbox"] == [10, 20, 30, 40] and (b["age"], b["age_group"], b["iscrowd"]) == (-1, 3, 1)
