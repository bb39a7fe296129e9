"""The age stage trained from a cache of its inputs (tools/research/train_age_cached.py): the cached
faces give the online step's losses, the cache's packing by hand, and the tool end to end on a real
photo (frozen detector untouched, resumable)."""

import os

import pytest
import torch
from conftest import load_script, tiny_cfg

from foss_d2.data import dataset_to_coco, save_coco
from foss_d2.utils.image_io import read_image_file

from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

cached = load_script("tools/research/train_age_cached.py")
FAMILY = os.path.join(os.path.dirname(__file__), "..", "demo", "family.jpg")


def _sample(seed):
    g = torch.Generator().manual_seed(seed)
    inst = Instances((160, 200))
    inst.gt_boxes = Boxes(torch.tensor([[20.0, 30.0, 80.0, 100.0], [120.0, 40.0, 170.0, 110.0]]))
    inst.gt_classes = torch.zeros(2, dtype=torch.long)
    inst.gt_ages = torch.tensor([25.0, -1.0])
    inst.gt_genders = torch.tensor([-1.0, 0.0])
    return {"image": torch.randint(0, 256, (3, 160, 200), dtype=torch.uint8, generator=g), "instances": inst}


def test_pack_by_hand():
    crops = torch.tensor([0.0, 0.5, 1.0, 0.2]).view(1, 1, 2, 2)
    packed = cached.pack({"crops": crops, "feature": None, "ages": torch.tensor([3.0]), "genders": torch.tensor([1.0])})
    # 0.5 * 255 = 127.5 rounds half to even: 128; 0.2 * 255 = 51
    assert packed["crops"].dtype == torch.uint8 and packed["crops"].flatten().tolist() == [0, 128, 255, 51]
    assert (packed["crops"].float() / 255 - crops).abs().max() <= 1 / 510 + 1e-7
    assert packed["feature"] is None and packed["teacher_age"] is None and packed["teacher_gender"] is None
    both = cached.concat([packed, packed])
    assert both["ages"].tolist() == [3.0, 3.0] and both["feature"] is None


def test_stretched_schedule_keeps_the_fractions():
    cfg = tiny_cfg()
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS = 400, (300, 370), 20
    c = cached.stretched_schedule(cfg, 800)
    assert c.SOLVER.MAX_ITER == 800 and c.SOLVER.STEPS == (600, 740) and c.SOLVER.WARMUP_ITERS == 20
    # a short run: steps that round onto the end are dropped, warmup at most a tenth
    c = cached.stretched_schedule(cfg, 4)
    assert c.SOLVER.STEPS == (3,) and c.SOLVER.WARMUP_ITERS == 1


def test_cached_faces_give_the_online_losses(tmp_path):
    """On the same batch (no crop jitter, one detector side, no dropout), the age network's losses over the
    cached faces alone equal those of the online step over all K boxes: the boxes that match no
    face count in no term, and the teacher's answers are the ones it gave online."""
    overrides = {
        "MODEL.FOSS.ADD_GT_BOXES": True,
        "MODEL.AGE_HEAD.LAMBDA_TEACHER_GEN": 1.0,
        "MODEL.AGE_HEAD.LAMBDA_TEACHER_AGE": 1.0,
        "MODEL.AGE_HEAD.TEACHER_AGE_GATE": 100.0,
        "MODEL.AGE_HEAD.DROPOUT": 0.0,  # the two passes must draw the same network
    }
    torch.manual_seed(0)
    teacher = build_model(tiny_cfg(**overrides))
    torch.save({"model": teacher.state_dict()}, tmp_path / "teacher.pth")
    cfg = tiny_cfg(**overrides)
    cfg.MODEL.FOSS.TEACHER_WEIGHTS = str(tmp_path / "teacher.pth")
    torch.manual_seed(1)
    model = build_model(cfg)
    model.train()
    cached.hold_batchnorm(model.age_head)  # batch statistics would differ: the online batch holds non-faces
    batch = [_sample(0), _sample(1)]
    online = model(batch)
    inputs = model.age_training_inputs(batch)
    # ADD_GT_BOXES: every ground-truth face is matched by its own box, at least
    assert len(inputs["ages"]) >= 4 and inputs["crops"].shape[1:] == (3, 112, 80)
    assert sorted(set(inputs["ages"].tolist())) == [-1.0, 25.0] and sorted(set(inputs["genders"].tolist())) == [-1, 0]
    head = model.age_head
    age_logits, gender_logits = head.net(inputs["crops"], inputs["feature"])
    n = len(inputs["ages"])
    matches = (inputs["ages"], inputs["genders"], torch.ones(n, dtype=torch.bool))
    offline = head.losses(age_logits, gender_logits, matches, inputs["teacher_age"], inputs["teacher_gender"])
    assert set(offline) == set(online) == {"loss_age", "loss_gender", "loss_teacher_gender", "loss_teacher_age"}
    for k in online:
        assert offline[k].item() == pytest.approx(online[k].item(), rel=1e-4, abs=1e-6), k
    assert float(online["loss_teacher_age"]) > 0 and float(online["loss_teacher_gender"]) > 0
    # the cache's rounding of the crops moves the losses by float noise only
    packed = cached.pack(inputs)
    crops, feat, m, t_age, t_gender = cached.batch_from_cache(
        packed, torch.arange(n), torch.zeros(n, dtype=torch.bool), torch.contiguous_format
    )
    again = head.losses(*head.net(crops, feat), m, t_age, t_gender)
    for k in online:
        assert again[k].item() == pytest.approx(online[k].item(), rel=2e-2, abs=1e-3), k


def test_mirrored_rows_flip_crop_and_feature_together():
    crops = torch.arange(2 * 3 * 2 * 4, dtype=torch.uint8).view(2, 3, 2, 4)
    feat = torch.arange(2 * 5 * 1 * 3, dtype=torch.float16).view(2, 5, 1, 3)
    cache = {"crops": crops, "feature": feat, "ages": torch.tensor([1.0, 2.0]), "genders": torch.tensor([0.0, 1.0])}
    cache.update(teacher_age=None, teacher_gender=None)
    c, f, (ages, _, valid), _, _ = cached.batch_from_cache(
        cache, torch.tensor([1, 0]), torch.tensor([True, False]), torch.contiguous_format
    )
    assert torch.equal(c[0], crops[1].flip(-1).float() / 255) and torch.equal(c[1], crops[0].float() / 255)
    assert torch.equal(f[0], feat[1].flip(-1).float()) and torch.equal(f[1], feat[0].float())
    assert ages.tolist() == [2.0, 1.0] and valid.all()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cached")
    torch.manual_seed(0)
    cfg = tiny_cfg(**{"MODEL.FOSS.ADD_GT_BOXES": True})
    start = str(tmp / "start.pth")
    torch.save({"model": build_model(cfg).state_dict()}, start)
    boxes = [[100, 60, 160, 140], [300, 80, 340, 130], [500, 100, 580, 200]]
    labels = [(8, 1), (35, 0), (41, -1)]
    annos = [
        {"bbox": b, "bbox_mode": 0, "category_id": 0, "iscrowd": 0, "age": a, "gender": g}
        for b, (a, g) in zip(boxes, labels)
    ]
    h, w = read_image_file(FAMILY).shape[:2]
    recs = [
        {"file_name": os.path.abspath(FAMILY), "image_id": i, "height": h, "width": w, "annotations": annos}
        for i in range(4)
    ]
    coco = str(tmp / "faces.json")
    save_coco(dataset_to_coco(recs), coco)
    cfg.MODEL.FOSS.TEACHER_WEIGHTS = start
    cfg.MODEL.AGE_HEAD.LAMBDA_TEACHER_GEN = 1.0
    cfg.DATASETS.COCO = [("toy_cached_faces", coco, "")]
    cfg.DATASETS.TRAIN = ("toy_cached_faces",)
    cfg.INPUT.TILING.DATASETS = []
    cfg.INPUT.AUG.CROP_FRACTION = 1.0  # no random crop: every face stays in its photo
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.BASE_LR = 1e-3
    cfg_file = str(tmp / "tiny.yaml")
    with open(cfg_file, "w") as f:
        f.write(cfg.dump())
    return tmp, cfg_file, start


def _run(toy, out, epochs, batches=3):
    tmp, cfg_file, start = toy
    argv = ["--config-file", cfg_file, "--output", str(tmp / out), "--batches", str(batches), "--part-size", "2"]
    argv += ["--epochs", str(epochs), "--batch", "4", "--keep-epochs", "MODEL.WEIGHTS", start]
    return cached.main(argv)


def test_the_tool_end_to_end_on_a_real_photo(toy):
    tmp, _, start = toy
    log = _run(toy, "run", 2)
    out = tmp / "run"
    parts = sorted(os.listdir(out / "cache"))
    assert parts == ["part_0000.pt", "part_0001.pt"]  # 3 batches, 2 to a part
    cache = cached.load_cache(str(out / "cache"))
    # 3 batches x 2 photos x 3 faces, each matched by its own box (and maybe by detections)
    assert log["harvested_faces_this_run"] == len(cache["ages"]) >= 18
    assert set(cache["ages"].tolist()) <= {8.0, 35.0, 41.0} and set(cache["genders"].tolist()) <= {1.0, 0.0, -1.0}
    assert log["with_teacher"] and cache["teacher_gender"] is not None
    assert [r["epoch"] for r in log["epochs"]] == [1, 2] and log["epochs"][0]["iterations"] == len(cache["ages"]) // 4
    before = torch.load(start, weights_only=False)["model"]
    after = torch.load(out / "model_final.pth", weights_only=False)["model"]
    assert os.path.isfile(out / "model_epoch01.pth") and os.path.isfile(out / "model_epoch02.pth")
    # the detector and BatchNorm's statistics are the start's; the age network learnt
    detector = [k for k in before if k.startswith(("backbone.", "proposal_generator."))]
    assert detector and all(torch.equal(before[k], after[k]) for k in detector)
    stats = [k for k in before if k.startswith("age_head.") and k.endswith("running_mean")]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    assert not torch.equal(before["age_head.net.age_branch.fc.weight"], after["age_head.net.age_branch.fc.weight"])


def test_a_stopped_run_goes_on_from_its_last_epoch(toy, monkeypatch):
    real_save = cached.save_weights

    def stop_after_the_first_epoch(state, path, iteration=None):
        real_save(state, path, iteration)
        raise KeyboardInterrupt  # the stop comes after epoch 1's last.pth and weights are written

    monkeypatch.setattr(cached, "save_weights", stop_after_the_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        _run(toy, "resume", 3)
    monkeypatch.setattr(cached, "save_weights", real_save)
    out = toy[0] / "resume"
    assert torch.load(out / "last.pth", weights_only=False)["epoch"] == 1
    again = _run(toy, "resume", 3)
    assert again["harvested_faces_this_run"] == 0  # the cache on disk already holds the 3 batches
    assert [r["epoch"] for r in again["epochs"]] == [1, 2, 3]
    # on the same few faces the loss falls from the first epoch to the third
    total = [sum(v for k, v in r.items() if k.startswith("loss_")) for r in again["epochs"]]
    assert total[2] < total[0]
    # the schedule is the run's: another --epochs on the same output is refused
    with pytest.raises(SystemExit, match="rerun with --epochs 3"):
        _run(toy, "resume", 4)


def test_a_larger_batches_adds_new_draws_not_a_replay(toy):
    """Extending a harvest (--batches 2, then 4 into the same cache) must not replay the first
    draws, even with a fixed SEED: one photo per age, so the ages cached name the photos drawn."""
    tmp, cfg_file, start = toy
    cfg = cached.get_foss_cfg(cfg_file)
    cfg.defrost()
    h, w = read_image_file(FAMILY).shape[:2]
    recs = [
        {
            "file_name": os.path.abspath(FAMILY),
            "image_id": i,
            "height": h,
            "width": w,
            "annotations": [
                {"bbox": [100, 60, 160, 140], "bbox_mode": 0, "category_id": 0, "iscrowd": 0, "age": 10 + i}
            ],
        }
        for i in range(8)
    ]
    coco = str(tmp / "eight.json")
    save_coco(dataset_to_coco(recs), coco)
    cfg.DATASETS.COCO = [("toy_cached_eight", coco, "")]
    cfg.DATASETS.TRAIN = ("toy_cached_eight",)
    cfg.MODEL.FOSS.TEACHER_WEIGHTS = ""
    cfg.SEED = 3
    seeded = str(tmp / "seeded.yaml")
    with open(seeded, "w") as f:
        f.write(cfg.dump())

    def ages_drawn(batches):
        argv = ["--config-file", seeded, "--output", str(tmp / "extend"), "--batches", str(batches)]
        cached.main(argv + ["--part-size", "2", "--epochs", "0", "MODEL.WEIGHTS", start])
        return [
            sorted(set(torch.load(p, weights_only=False)["ages"].tolist()))
            for p in cached.part_paths(str(tmp / "extend" / "cache"))
        ]

    first = ages_drawn(2)
    assert len(first) == 1 and len(first[0]) >= 2  # 2 batches x 2 photos
    both = ages_drawn(4)
    assert len(both) == 2 and both[0] == first[0]
    assert both[1] != both[0]  # the same SEED would draw the same photos again


def test_a_cache_of_another_harvest_is_refused(toy):
    """A run with other augmentations (or a detector trained again under the same file name) pointed
    at a cache trained on the old inputs: only MODEL.WEIGHTS' path was recorded, and a mismatch was
    a warning at most. The same config goes on with the cache; another is refused."""
    tmp, cfg_file, start = toy
    base = ["--config-file", cfg_file, "--cache", str(tmp / "shared"), "--part-size", "1", "--epochs", "0"]
    cached.main([*base, "--output", str(tmp / "a"), "--batches", "1", "MODEL.WEIGHTS", start])
    log = cached.main([*base, "--output", str(tmp / "b"), "--batches", "2", "MODEL.WEIGHTS", start])
    assert log["harvested_faces_this_run"] > 0 and len(os.listdir(tmp / "shared")) == 2  # one part added
    other = ["MODEL.AGE_HEAD.CROP_JITTER", "[0.1, 0.1, 0.1]"]
    with pytest.raises(SystemExit, match="part_0000.pt was harvested with another detector, teacher, data or aug"):
        cached.main([*base, "--output", str(tmp / "c"), "--batches", "3", "MODEL.WEIGHTS", start, *other])
