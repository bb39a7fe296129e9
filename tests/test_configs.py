"""Every config under configs/ and foss_d2/model_zoo/: it merges onto add_foss_config's keys (an unknown
key raises), it is at most two _BASE_ levels below a base, and the paper's and the shipped model's
configs hold what docs/MODEL_ZOO.md says they do."""

import glob
import os

import pytest
import yaml

from foss_d2.config import get_foss_cfg

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)) + sorted(
    glob.glob(os.path.join(ROOT, "foss_d2", "model_zoo", "*.yaml"))
)
SHIPPED = os.path.join(ROOT, "foss_d2", "model_zoo", "FOSS-default.yaml")
SHIPPED_WEIGHTS = "foss_d2/model_zoo/foss_default.pth"
ZOO_BASE = os.path.join(ROOT, "configs", "zoo", "Base-FOSS-zoo.yaml")
ZOO_STEPS = sorted(glob.glob(os.path.join(ROOT, "configs", "zoo", "step*.yaml")))
# what the GPU recipe (tools/research/train_gpu_model.sh) trains next: held to the steps' rules
ZOO_NEXT = sorted(glob.glob(os.path.join(ROOT, "configs", "zoo", "next-*.yaml")))


def rel(path):
    return os.path.relpath(path, ROOT)


def raw(path):
    with open(path) as f:
        return yaml.safe_load(f)


def base_chain(path):
    """The files that ``path`` inherits from, nearest first."""
    chain = []
    while "_BASE_" in raw(path):
        path = os.path.normpath(os.path.join(os.path.dirname(path), raw(path)["_BASE_"]))
        chain.append(path)
    return chain


def load(path, *opts):
    return get_foss_cfg(path, opts=opts)


@pytest.mark.parametrize("path", CONFIGS, ids=rel)
def test_config_merges_and_is_at_most_two_levels_below_a_base(path):
    cfg = load(path)  # an unknown key, or one of the wrong type, raises
    assert cfg.MODEL.META_ARCHITECTURE == "FOSS"
    assert len(base_chain(path)) <= 2, [rel(p) for p in base_chain(path)]


def test_shipped_config_is_self_contained():
    """It travels in the installed package, without configs/."""
    assert "_BASE_" not in raw(SHIPPED)


def test_paper_config_defaults():
    cfg = load(os.path.join(ROOT, "configs", "paper", "FOSS-DLA34-TResNetS.yaml"))
    f, a = cfg.MODEL.FOSS, cfg.MODEL.AGE_HEAD
    assert (f.DET_INPUT_SIZE, f.K_TRAIN, f.K_TEST, f.SCORE_THRESH_TEST) == (480, 9, 20, 0.2)
    assert list(a.CROP_SIZE) == [160, 224] and list(a.CROP_MARGINS) == [0.2, 0.1, 0.1, 0.1]
    assert list(a.FEATURE_ROI_SIZE) == [10, 14] and a.WIDTH_REDUCTION == 48 and a.NUM_AGE_CLASSES == 101
    assert (a.TH_IOU, a.LAMBDA_MEAN, a.LAMBDA_VAR, a.LAMBDA_CE, a.LAMBDA_GEN, a.DROPOUT) == (
        0.3,
        0.01,
        0.0025,
        0.05,
        0.1,
        0.2,
    )
    assert (cfg.MODEL.CENTERNET.LAMBDA_SIZE, cfg.MODEL.CENTERNET.LAMBDA_OFF) == (0.1, 1.0)
    assert list(cfg.INPUT.TILING.NUM_TILES) == [1, 4, 9] and cfg.INPUT.TILING.MAX_IMAGES == 4


def test_table1_configs_switch_one_thing_each():
    seen = {}
    for name in ("Table1-baseline", "Table1-intermediate", "Table1-tiling", "Table1-end2end", "two-models"):
        cfg = load(os.path.join(ROOT, "configs", "paper", name + ".yaml"))
        seen[name] = (cfg.MODEL.AGE_HEAD.INTERMEDIATE_FEATURE, cfg.INPUT.TILING.ENABLED, cfg.MODEL.FOSS.FREEZE_DETECTOR)
    assert seen == {
        "Table1-baseline": (False, False, True),
        "Table1-intermediate": (True, False, True),
        "Table1-tiling": (True, True, True),
        "Table1-end2end": (True, True, False),
        "two-models": (False, True, True),
    }


def test_zoo_steps_train_the_shipped_architecture():
    """The steps' weights become the shipped model, so only the keys that choose what trains may
    differ from the shipped config's model."""
    names = [os.path.basename(p) for p in ZOO_STEPS]
    assert names == [
        "step1-detector.yaml",
        "step2-age-continued.yaml",
        "step2-age.yaml",
        "step3-age-zoomout-cpu.yaml",
        "step4-detector.yaml",
        "step5-age-zoomout.yaml",
        "step6-age-zoomout.yaml",
        "step7-age-wild-cpu.yaml",
    ]
    assert [os.path.basename(p) for p in ZOO_NEXT] == [
        "next-age-branch-cpu.yaml",
        "next-age-cpu.yaml",
        "next-age-teacher-cpu.yaml",
        "next-age-teacher-online-cpu.yaml",
        "next-age-teacher-online.yaml",
        "next-age.yaml",
        "next-detector-cpu.yaml",
        "next-detector-warm.yaml",
        "next-detector.yaml",
        "next-gender-branch-cpu.yaml",
    ]
    shipped = load(SHIPPED).MODEL
    for path in ZOO_STEPS + ZOO_NEXT:
        assert base_chain(path) == [ZOO_BASE, SHIPPED]
        m = load(path).MODEL.clone()
        detector_step = "detector" in os.path.basename(path)
        assert (m.FOSS.DETECTOR_ONLY, m.FOSS.FREEZE_DETECTOR) == (detector_step, not detector_step), rel(path)
        m.defrost()
        m.FOSS.DETECTOR_ONLY, m.FOSS.FREEZE_DETECTOR, m.FOSS.K_TRAIN = False, False, shipped.FOSS.K_TRAIN
        # training-only, as K_TRAIN
        m.AGE_HEAD.CROP_JITTER = shipped.AGE_HEAD.CROP_JITTER
        m.AGE_HEAD.FROZEN_PARTS = shipped.AGE_HEAD.FROZEN_PARTS
        m.CENTERNET.IGNORE_BELOW = shipped.CENTERNET.IGNORE_BELOW
        m.FOSS.TEACHER_WEIGHTS = shipped.FOSS.TEACHER_WEIGHTS
        m.AGE_HEAD.LAMBDA_TEACHER_GEN = shipped.AGE_HEAD.LAMBDA_TEACHER_GEN
        m.AGE_HEAD.TEACHER_LABELLED_TOO = shipped.AGE_HEAD.TEACHER_LABELLED_TOO
        if os.path.basename(path) == "next-detector-warm.yaml":  # where it starts, the sides it draws
            m.WEIGHTS, m.FOSS.DET_INPUT_SIZES_TRAIN = shipped.WEIGHTS, shipped.FOSS.DET_INPUT_SIZES_TRAIN
        # the detector's input sizes shape no weight: Base-FOSS-zoo.yaml keeps steps 1-7's 480 + 800 px
        assert (m.FOSS.DET_INPUT_SIZE, m.FOSS.DET_INPUT_FIT_SMALL, list(m.FOSS.TEST_SIZES)) == (480, False, [800])
        m.FOSS.DET_INPUT_SIZE, m.FOSS.TEST_SIZES = shipped.FOSS.DET_INPUT_SIZE, shipped.FOSS.TEST_SIZES
        m.FOSS.DET_INPUT_FIT_SMALL = shipped.FOSS.DET_INPUT_FIT_SMALL
        m.AGE_HEAD.LAMBDA_TEACHER_AGE = shipped.AGE_HEAD.LAMBDA_TEACHER_AGE
        m.AGE_HEAD.TEACHER_AGE_GATE = shipped.AGE_HEAD.TEACHER_AGE_GATE
        m.AGE_HEAD.TEACHER_FLIP = shipped.AGE_HEAD.TEACHER_FLIP
        assert m == shipped, rel(path)


@pytest.mark.parametrize("path", ZOO_STEPS + ZOO_NEXT, ids=rel)
def test_zoo_step_writes_its_whole_schedule(path):
    """The schedule each step ran with is in its file, not on a command line."""
    solver = raw(path)["SOLVER"]
    assert {"BASE_LR", "WARMUP_ITERS", "MAX_ITER", "STEPS", "CHECKPOINT_PERIOD"} <= set(solver), rel(path)
    assert all(0 < s < solver["MAX_ITER"] for s in load(path).SOLVER.STEPS)
    assert raw(path)["OUTPUT_DIR"] == "./output/zoo/" + os.path.basename(path)[: -len(".yaml")]


@pytest.mark.parametrize("stage", ["detector", "age", "age-teacher-online"])
def test_cpu_route_trains_what_the_gpu_recipe_trains(stage):
    """next-*-cpu.yaml is the GPU recipe's stage with a CPU schedule: the model, the data and its
    augmentation the same; only the solver, the loader's workers and the decode cache may differ."""
    gpu = load(os.path.join(ROOT, "configs", "zoo", f"next-{stage}.yaml"))
    cpu = load(os.path.join(ROOT, "configs", "zoo", f"next-{stage}-cpu.yaml"))
    assert cpu.MODEL == gpu.MODEL
    assert cpu.DATASETS.TRAIN == gpu.DATASETS.TRAIN
    assert cpu.DATALOADER.DATASET_WEIGHTS == gpu.DATALOADER.DATASET_WEIGHTS
    assert cpu.INPUT.TILING == gpu.INPUT.TILING and cpu.INPUT.AUG == gpu.INPUT.AUG
    assert (cpu.SOLVER.IMS_PER_BATCH, cpu.DATALOADER.NUM_WORKERS) == (8, 1)
    assert cpu.SOLVER.CHECKPOINT_PERIOD <= 100  # a stop loses little


def test_warm_detector_config_is_next_detector_from_the_shipped_detector():
    """next-detector-warm.yaml differs from next-detector.yaml only by where it starts (the shipped
    model, whose detector it loads), the sides it draws and the canvas (step 8's last detector
    stage), and a warm start's learning rate and warm-up."""
    import torch

    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    scratch = load(os.path.join(ROOT, "configs", "zoo", "next-detector.yaml"))
    warm = load(os.path.join(ROOT, "configs", "zoo", "next-detector-warm.yaml"), "MODEL.DEVICE", "cpu")
    assert warm.MODEL.WEIGHTS == SHIPPED_WEIGHTS and scratch.MODEL.WEIGHTS == ""
    assert list(warm.MODEL.FOSS.DET_INPUT_SIZES_TRAIN) == [480, 576, 640, 800]
    assert (warm.SOLVER.BASE_LR, warm.SOLVER.WARMUP_ITERS) == (scratch.SOLVER.BASE_LR / 2, 30)
    m, t, s = warm.MODEL.clone(), warm.INPUT.TILING.clone(), warm.SOLVER.clone()
    for node in (m, t, s):
        node.defrost()
    m.WEIGHTS, m.DEVICE = "", scratch.MODEL.DEVICE
    m.FOSS.DET_INPUT_SIZES_TRAIN = scratch.MODEL.FOSS.DET_INPUT_SIZES_TRAIN
    t.CANVAS_SIZE = scratch.INPUT.TILING.CANVAS_SIZE
    s.BASE_LR, s.WARMUP_ITERS = scratch.SOLVER.BASE_LR, scratch.SOLVER.WARMUP_ITERS
    assert m == scratch.MODEL and t == scratch.INPUT.TILING and s == scratch.SOLVER
    assert warm.DATASETS == scratch.DATASETS and warm.DATALOADER == scratch.DATALOADER
    # the shipped model's detector is what it loads (its age network is left out of the stage)
    model = build_model(warm)
    DetectionCheckpointer(model).load(os.path.join(ROOT, warm.MODEL.WEIGHTS))
    shipped = torch.load(os.path.join(ROOT, SHIPPED_WEIGHTS), map_location="cpu", weights_only=False)["model"]
    state = model.state_dict()
    detector = [k for k in state if k.startswith(("backbone.", "proposal_generator."))]
    assert len(detector) > 100 and not any(k.startswith("age_head.") for k in state)
    assert all(torch.equal(state[k], shipped[k].to(state[k].dtype)) for k in detector)


def test_teacher_config_is_next_age_cpu_with_group_photos_added():
    """next-age-teacher-cpu.yaml differs from next-age-cpu.yaml only by the teacher-labelled group
    photos (registered from their COCO JSON, a quarter of the draws); the schedule is the same."""
    plain = load(os.path.join(ROOT, "configs", "zoo", "next-age-cpu.yaml"))
    teacher = load(os.path.join(ROOT, "configs", "zoo", "next-age-teacher-cpu.yaml"))
    assert teacher.MODEL == plain.MODEL and teacher.INPUT == plain.INPUT and teacher.SOLVER == plain.SOLVER
    assert teacher.DATASETS.TRAIN == plain.DATASETS.TRAIN + ("wider_face_train_teacher",)
    assert [tuple(e) for e in teacher.DATASETS.COCO] == [
        ("wider_face_train_teacher", "output/teacher/wider_face_train.json", "")
    ]
    w = teacher.DATALOADER.DATASET_WEIGHTS
    assert w[-1] == 0.25 and w[0] / w[1] == plain.DATALOADER.DATASET_WEIGHTS[0] / plain.DATALOADER.DATASET_WEIGHTS[1]


def test_online_teacher_config_is_next_age_cpu_with_group_photos_and_the_shipped_teacher():
    """next-age-teacher-online-cpu.yaml differs from next-age-cpu.yaml only by WIDER FACE train's
    group photos (a quarter of the draws) and the shipped model riding along as teacher."""
    plain = load(os.path.join(ROOT, "configs", "zoo", "next-age-cpu.yaml"))
    online = load(os.path.join(ROOT, "configs", "zoo", "next-age-teacher-online-cpu.yaml"))
    assert online.MODEL.FOSS.TEACHER_WEIGHTS == SHIPPED_WEIGHTS and os.path.isfile(os.path.join(ROOT, SHIPPED_WEIGHTS))
    assert online.MODEL.AGE_HEAD.LAMBDA_TEACHER_GEN == 1.0
    m = online.MODEL.clone()
    m.defrost()
    m.FOSS.TEACHER_WEIGHTS = plain.MODEL.FOSS.TEACHER_WEIGHTS
    assert m == plain.MODEL and online.INPUT == plain.INPUT and online.SOLVER == plain.SOLVER
    assert online.DATASETS.TRAIN == plain.DATASETS.TRAIN + ("wider_face_train",)
    w = online.DATALOADER.DATASET_WEIGHTS
    assert w[-1] == 0.25 and w[0] / w[1] == plain.DATALOADER.DATASET_WEIGHTS[0] / plain.DATALOADER.DATASET_WEIGHTS[1]


def test_branch_config_is_next_age_cpu_with_only_the_age_branch_trained():
    """next-age-branch-cpu.yaml differs from next-age-cpu.yaml only by the parts it keeps fixed
    (everything the gender answers depend on) and its longer schedule."""
    plain = load(os.path.join(ROOT, "configs", "zoo", "next-age-cpu.yaml"))
    branch = load(os.path.join(ROOT, "configs", "zoo", "next-age-branch-cpu.yaml"))
    assert list(branch.MODEL.AGE_HEAD.FROZEN_PARTS) == ["body", "feature_proj", "gender_branch"]
    m = branch.MODEL.clone()
    m.defrost()
    m.AGE_HEAD.FROZEN_PARTS = []
    assert m == plain.MODEL and branch.INPUT == plain.INPUT and branch.DATASETS == plain.DATASETS
    assert branch.DATALOADER == plain.DATALOADER and branch.SOLVER.BASE_LR == plain.SOLVER.BASE_LR


def test_gender_branch_config_is_the_age_branch_config_turned_around():
    """next-gender-branch-cpu.yaml keeps everything the ages depend on fixed and trains the gender
    branch; it differs from next-age-branch-cpu.yaml only there, by UTKFace alone (FG-NET has no
    gender) and by the JPEG and downscale looks; the schedule is the same."""
    age = load(os.path.join(ROOT, "configs", "zoo", "next-age-branch-cpu.yaml"))
    gender = load(os.path.join(ROOT, "configs", "zoo", "next-gender-branch-cpu.yaml"))
    assert list(gender.MODEL.AGE_HEAD.FROZEN_PARTS) == ["body", "feature_proj", "age_branch"]
    m = gender.MODEL.clone()
    m.defrost()
    m.AGE_HEAD.FROZEN_PARTS = age.MODEL.AGE_HEAD.FROZEN_PARTS
    assert m == age.MODEL and gender.SOLVER == age.SOLVER
    assert tuple(gender.DATASETS.TRAIN) == tuple(gender.INPUT.TILING.DATASETS) == ("utkface_train",)
    assert list(gender.DATALOADER.DATASET_WEIGHTS) == [1.0]
    wild = gender.INPUT.AUG.WILD
    assert (wild.JPEG_PROB, wild.DOWNSCALE_PROB, wild.GREY_PROB, wild.OCCLUDER_PROB, wild.GAMMA_PROB) == (
        0.3,
        0.3,
        0,
        0,
        0,
    )
    a, g = age.INPUT.clone(), gender.INPUT.clone()
    for c in (a, g):
        c.defrost()
        c.TILING.DATASETS, c.AUG.WILD = (), a.AUG.WILD
    assert a == g


@pytest.mark.parametrize(
    "key, good, bad, words",
    [
        ("INPUT.AUG.BLUR_PROB", "1.0", "1.5", "INPUT.AUG.BLUR_PROB is a probability: got 1.5"),
        ("INPUT.AUG.WILD.JPEG_PROB", "0.0", "-0.1", "INPUT.AUG.WILD.JPEG_PROB is a probability: got -0.1"),
        ("INPUT.AUG.CROP_FRACTION", "1.0", "0.0", "random crop keeps: got 0.0"),
        ("INPUT.AUG.COLOR_JITTER", "1.0", "1.5", "factors from 1 - it to 1 + it: got 1.5"),
        ("INPUT.AUG.ROTATION", "0.0", "-10.0", "the largest rotation in degrees, either way: got -10.0"),
        ("MODEL.AGE_HEAD.TH_IOU", "0.0", "1.0", "MODEL.AGE_HEAD.TH_IOU is an IoU under 1 (3.2: 0.3): got 1.0"),
        ("DATALOADER.AGE_BALANCE", "1.0", "1.5", "DATALOADER.AGE_BALANCE is an exponent from 0 (off) to 1"),
        ("INPUT.TILING.MAX_IMAGES", "1", "0", "INPUT.TILING.MAX_IMAGES is a number of images, at least 1"),
        ("INPUT.TILING.CANVAS_SIZE", "3", "-10", "INPUT.TILING.CANVAS_SIZE is a side in pixels: got -10"),
        ("INPUT.TILING.CANVAS_SIZE", "3", "2", "CANVAS_SIZE 2 leaves no pixel to a tile of INPUT.TILING.NUM_TILES"),
        ("INPUT.AUG.SCALE_RANGE", "[1.0,1.0]", "[1.25,0.75]", "[low, high], scale factors: got [1.25, 0.75]"),
        ("INPUT.AUG.SCALE_RANGE", "[]", "[1.0]", "[low, high], scale factors: got [1.0]"),
        ("SOLVER.AGE_HEAD_LR_FACTOR", "0.1", "0.0", "SOLVER.AGE_HEAD_LR_FACTOR is a learning-rate factor over 0"),
        ("MODEL.AGE_HEAD.AGE_STD_SCALE", "1.6", "0.0", "MODEL.AGE_HEAD.AGE_STD_SCALE is a factor over 0"),
        ("INPUT.AUG.ZOOM_OUT_RANGE", "[1.0,6.0]", "[0.5,0.8]", "shrink factors, 1 or more: got [0.5, 0.8]"),
        ("INPUT.AUG.WILD.DOWNSCALE_RANGE", "[2.0,2.0]", "[2.0]", "shrink factors, 1 or more: got [2.0]"),
        ("INPUT.AUG.WILD.GAMMA_RANGE", "[0.1,3.0]", "[-1.0,0.5]", "gammas over 0: got [-1.0, 0.5]"),
        ("INPUT.AUG.WILD.JPEG_QUALITY", "[1,100]", "[0,200]", "JPEG qualities, 1 to 100: got [0, 200]"),
        ("INPUT.AUG.WILD.OCCLUDER_SIZE", "[0.5,0.5]", "[0.5,1.0]", "under 1: got [0.5, 1.0]"),
        ("MODEL.AGE_HEAD.CROP_JITTER", "[2.0,0.5,0.5]", "[0.1,0.1]", "0 <= aspect < 1], got [0.1, 0.1]"),
        ("MODEL.AGE_HEAD.LAMBDA_CE", "0.0", "-1.0", "MODEL.AGE_HEAD.LAMBDA_CE is a loss weight, not negative"),
        ("MODEL.CENTERNET.LAMBDA_SIZE", "0.0", "-0.1", "MODEL.CENTERNET.LAMBDA_SIZE is a loss weight"),
        ("SOLVER.IMS_PER_BATCH", "1", "0", "SOLVER.IMS_PER_BATCH is a number of images a step, at least 1: got 0"),
        ("SOLVER.CHECKPOINT_PERIOD", "1", "0", "SOLVER.CHECKPOINT_PERIOD is a number of iterations"),
        ("DATALOADER.NUM_WORKERS", "0", "-1", "DATALOADER.NUM_WORKERS is a number of loader processes"),
    ],
)
def test_training_values_out_of_range_are_refused_by_name(key, good, bad, words):
    """A training value out of its range (a probability over 1, a range written high to low, a
    negative rotation or loss weight) trained on quietly, or failed in a loader worker or in
    detectron2 without the key's name (a checkpoint period of 0: a modulo by zero); the edges of
    each range are allowed."""
    assert get_foss_cfg(opts=[key, good])
    with pytest.raises(ValueError) as e:
        get_foss_cfg(opts=[key, bad])
    assert str(e.value).startswith(key) and words in str(e.value)
