import subprocess
import sys

import detectron2


def test_detectron2_collect_env_runs():
    out = subprocess.run(
        [sys.executable, "-m", "detectron2.utils.collect_env"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "detectron2" in out.stdout and "PyTorch" in out.stdout


def test_registries_hold_foss_modules():
    from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

    import foss_d2  # noqa: F401
    from foss_d2.proposal_generator import FACE_DETECTOR_REGISTRY
    from foss_d2.roi_heads import AGE_HEAD_REGISTRY

    assert META_ARCH_REGISTRY.get("FOSS").__name__ == "FOSS"
    assert BACKBONE_REGISTRY.get("build_dla_backbone").__name__ == "build_dla_backbone"
    assert FACE_DETECTOR_REGISTRY.get("CenterNet").__name__ == "CenterNet"
    assert AGE_HEAD_REGISTRY.get("TResNetAgeHead").__name__ == "TResNetAgeHead"
    assert detectron2.__version__.startswith("0.")


def test_import_is_quiet():
    """A user's every command imports foss_d2: fvcore's torch.jit.script call (a FutureWarning under
    PyTorch >= 2.10) must not greet them, and nothing else may either."""
    out = subprocess.run(
        [sys.executable, "-c", "import foss_d2, foss_d2.apps.demo"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
