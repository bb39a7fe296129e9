"""Soft gender targets from a teacher model (tools/research/teacher_genders.py), their COCO JSON
registered from the config (DATASETS.COCO), and the gender loss on them."""

import json
import math
import re

import pytest
import torch
from conftest import load_script

from foss_d2 import add_foss_config
from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.data.dataset_mapper import annotations_to_face_instances
from foss_d2.data.datasets import register_config_datasets
from foss_d2.roi_heads import age_gender_losses

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, Instances

teacher = load_script("tools/research/teacher_genders.py")


def _record():
    # Four faces (XYWH): a tall one, a second tall one beside it, one 20 px high, one nobody found.
    boxes = [[0, 0, 40, 50], [30, 0, 40, 50], [200, 200, 16, 20], [300, 0, 40, 50]]
    annos = [{"bbox": b, "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0, "iscrowd": 0} for b in boxes]
    return {"file_name": "x.jpg", "image_id": 1, "height": 400, "width": 400, "annotations": annos}


def test_label_record_matches_one_teacher_face_per_face_by_iou_and_height():
    faces = [
        # face 0: IoU 38*50 / (40*50) = 0.95; face 1: IoU 500/3400
        {"box": [2, 0, 40, 50], "score": 0.9, "p_female": 0.9},
        {"box": [32, 0, 70, 50], "score": 0.8, "p_female": 0.2},  # face 1: IoU 38/40 = 0.95
        {"box": [200, 200, 216, 220], "score": 0.7, "p_female": 0.7},  # face 2 exactly, but 20 px < 24
        {"box": [310, 25, 350, 75], "score": 0.6, "p_female": 0.6},  # face 3: IoU 30*25 / (2000 + 2000 - 750) = 0.23
    ]
    out = teacher.label_record(_record(), faces, min_height=24, iou_thresh=0.5)
    assert [a["gender"] for a in out["annotations"]] == [0.9, 0.2, -1, -1]
    assert [a["age"] for a in out["annotations"]] == [-1] * 4
    assert out["annotations"][1]["bbox"] == [30.0, 0.0, 70.0, 50.0]  # XYXY now
    assert out["annotations"][1]["bbox_mode"] == BoxMode.XYXY_ABS
    # One teacher face between two faces goes to the better match only.
    out = teacher.label_record(_record(), [{"box": [12, 0, 52, 50], "score": 0.5, "p_female": 0.4}], 24, 0.3)
    # IoU with face 0: 28*50 / (4000 - 1400) = 0.54; with face 1: 22*50 / (4000 - 1100) = 0.38
    assert [a["gender"] for a in out["annotations"]] == [0.4, -1, -1, -1]
    # The record itself is not changed.
    assert "gender" not in _record()["annotations"][0]


def _coco_file(tmp_path):
    rec = teacher.label_record(_record(), [{"box": [0, 0, 40, 50], "score": 0.5, "p_female": 0.8125}], 24, 0.5)
    path = str(tmp_path / "teacher.json")
    save_coco(dataset_to_coco([rec]), path)
    return path


def _cfg(entries):
    cfg = get_cfg()
    add_foss_config(cfg)
    cfg.DATASETS.ROOT = "/nonexistent"
    cfg.DATASETS.COCO = entries
    return cfg


def test_config_registers_coco_json_with_soft_genders(tmp_path):
    path = _coco_file(tmp_path)
    (tmp_path / "x.jpg").write_bytes(b"")  # only looked for here: an image root without it is an error
    name = "test_teacher_genders_coco"
    register_config_datasets(_cfg([(name, path, str(tmp_path))]))
    recs = DatasetCatalog.get(name)
    assert len(recs) == 1 and recs[0]["file_name"] == str(tmp_path / "x.jpg")
    assert [a["gender"] for a in recs[0]["annotations"]] == [0.8125, -1, -1, -1]
    assert recs[0]["annotations"][0]["bbox"] == [0.0, 0.0, 40.0, 50.0]
    inst = annotations_to_face_instances(
        [dict(a, bbox_mode=BoxMode.XYWH_ABS) for a in recs[0]["annotations"]], (400, 400)
    )
    assert inst.gt_genders.tolist() == [0.8125, -1.0, -1.0, -1.0]


def test_config_coco_entries_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        register_config_datasets(_cfg([("test_teacher_missing", str(tmp_path / "missing.json"), "")]))
    with pytest.raises(ValueError, match="name, json_file, image_root"):
        register_config_datasets(_cfg([("test_teacher_short", _coco_file(tmp_path))]))
    # one dataset written without the comma that makes it a list of one: its strings are not entries
    one = ("test_teacher_one", _coco_file(tmp_path), "")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"got the entry 'test_teacher_one'; one dataset is written with a comma after it: "
            f'DATASETS.COCO "({one!r},)"'
        ),
    ):
        register_config_datasets(_cfg(one))
    with open(_coco_file(tmp_path)) as f:
        assert json.load(f)["annotations"][0]["gender"] == 0.8125


def test_soft_gender_target_loss_hand_computed():
    # BCE(σ(1), 0.25) = 0.25·log(1 + e^-1) + 0.75·log(1 + e^1) = 0.25·0.31326 + 0.75·1.31326 = 1.06326
    t = Instances((200, 200))
    t.gt_boxes = Boxes(torch.tensor([[0.0, 0.0, 100.0, 100.0]]))
    t.gt_ages = torch.tensor([-1.0])
    t.gt_genders = torch.tensor([0.25])
    boxes = torch.tensor([[0.0, 0.0, 100.0, 90.0]])
    lambdas = {"mean": 0.01, "var": 0.0025, "ce": 0.05, "gen": 0.1}
    age_logits = torch.zeros(1, 101, requires_grad=True)
    gender_logits = torch.ones(1, requires_grad=True)
    losses = age_gender_losses(age_logits, gender_logits, [boxes], [t], 0.3, lambdas)
    expected = 0.25 * math.log(1 + math.exp(-1)) + 0.75 * math.log(1 + math.e)
    assert float(losses["loss_gender"]) == pytest.approx(0.1 * expected, rel=1e-6)
    assert float(losses["loss_age"]) == 0.0  # the group photo's faces carry no age
    losses["loss_gender"].backward()
    # d/dx BCE = σ(x) - target: the teacher's 0.25 pulls the logit down from σ(1) = 0.731
    assert float(gender_logits.grad[0]) == pytest.approx(0.1 * (1 / (1 + math.exp(-1)) - 0.25), rel=1e-5)
