import subprocess
import sys

import detectron2


def test_detectron2_collect_env_runs():
    out = subprocess.run([sys.executable, "-m", "detectron2.utils.collect_env"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "detectron2" in out.stdout and "PyTorch" in out.stdout


def test_registries_hold_foss_modules():
    import foss_d2  # noqa: F401
    from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, PROPOSAL_GENERATOR_REGISTRY
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY

    assert META_ARCH_REGISTRY.get("FOSS").__name__ == "FOSS"
    assert BACKBONE_REGISTRY.get("build_dla_backbone") is not None
    assert PROPOSAL_GENERATOR_REGISTRY.get("CenterNet").__name__ == "CenterNet"
    assert ROI_HEADS_REGISTRY.get("TResNetAgeHead").__name__ == "TResNetAgeHead"
    assert detectron2.__version__.startswith("0.")


def test_paper_config_defaults():
    from detectron2.config import get_cfg

    from foss_d2 import add_foss_config

    cfg = get_cfg()
    add_foss_config(cfg)
    cfg.merge_from_file("configs/FOSS-DLA34-TResNetS.yaml")
    f, a = cfg.MODEL.FOSS, cfg.MODEL.AGE_HEAD
    assert (f.DET_INPUT_SIZE, f.K_TRAIN, f.K_TEST, f.SCORE_THRESH_TEST) == (480, 9, 20, 0.2)
    assert list(a.CROP_SIZE) == [160, 224] and list(a.CROP_MARGINS) == [0.2, 0.1, 0.1, 0.1]
    assert list(a.FEATURE_ROI_SIZE) == [10, 14] and a.WIDTH_REDUCTION == 48 and a.NUM_AGE_CLASSES == 101
    assert (a.TH_IOU, a.LAMBDA_MEAN, a.LAMBDA_VAR, a.LAMBDA_CE, a.LAMBDA_GEN, a.DROPOUT) == (0.3, 0.01, 0.0025, 0.05, 0.1, 0.2)
    assert (cfg.MODEL.CENTERNET.LAMBDA_SIZE, cfg.MODEL.CENTERNET.LAMBDA_OFF) == (0.1, 1.0)
    assert list(cfg.INPUT.TILING.NUM_TILES) == [1, 4, 9] and cfg.INPUT.TILING.MAX_IMAGES == 4


def test_ablation_configs_switch_one_thing_each():
    import glob

    from detectron2.config import get_cfg

    from foss_d2 import add_foss_config

    seen = {}
    for path in sorted(glob.glob("configs/ablations/*.yaml")):
        cfg = get_cfg()
        add_foss_config(cfg)
        cfg.merge_from_file(path)
        seen[path.split("/")[-1]] = (cfg.MODEL.AGE_HEAD.INTERMEDIATE_FEATURE, cfg.INPUT.TILING.ENABLED, cfg.MODEL.FOSS.FREEZE_DETECTOR)
    assert seen == {
        "Table1-baseline.yaml": (False, False, True),
        "Table1-intermediate.yaml": (True, False, True),
        "Table1-tiling.yaml": (True, True, True),
        "Table1-end2end.yaml": (True, True, False),
        "two-models.yaml": (False, True, True),
    }


def test_cpu_stage2_config_shares_the_shipped_architecture():
    """The stage-2 experiment starts from the shipped weights, so only training keys may differ."""
    from detectron2.config import get_cfg

    from foss_d2 import add_foss_config

    def load(path):
        cfg = get_cfg()
        add_foss_config(cfg)
        cfg.merge_from_file(path)
        return cfg

    zoo, s2 = load("foss_d2/model_zoo/FOSS-CPU-default.yaml"), load("configs/cpu/FOSS-CPU-stage2.yaml")
    assert (zoo.MODEL.FOSS.FREEZE_DETECTOR, s2.MODEL.FOSS.FREEZE_DETECTOR) == (False, True)
    m = s2.MODEL.clone()
    m.FOSS.FREEZE_DETECTOR = False
    assert m == zoo.MODEL
    assert list(zoo.DATASETS.TRAIN) == ["utkface_train", "wider_face_train"] and list(s2.DATASETS.TRAIN) == ["utkface_train"]
    assert (zoo.INPUT.TILING.MAX_IMAGES, s2.INPUT.TILING.MAX_IMAGES) == (4, 9)
    assert (zoo.SOLVER.BASE_LR, s2.SOLVER.BASE_LR) == (0.0002, 0.001) and zoo.OUTPUT_DIR != s2.OUTPUT_DIR
