import os
import subprocess
import sys

import detectron2

INSTALL_SH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "install.sh")


def test_detectron2_collect_env_runs():
    out = subprocess.run(
        [sys.executable, "-m", "detectron2.utils.collect_env"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "detectron2" in out.stdout and "PyTorch" in out.stdout


def test_registries_hold_foss_modules():
    import foss_d2  # noqa: F401
    from foss_d2.proposal_generator import FACE_DETECTOR_REGISTRY
    from foss_d2.roi_heads import AGE_HEAD_REGISTRY

    from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

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


def _run_install(tmp_path, python_script: str, **env):
    """install.sh against a stand-in virtualenv whose bin/python is ``python_script`` (a shell
    script): the checks that run before anything is downloaded."""
    import stat

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text("#!/bin/sh\n" + python_script)
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    full = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    full.update(FOSS_VENV=str(venv), **env)
    return subprocess.run(["bash", INSTALL_SH], capture_output=True, text=True, timeout=60, env=full, cwd=tmp_path)


def test_install_refuses_an_unsupported_python_before_downloading(tmp_path):
    """Python 3.13 (Debian 13, Fedora 41) cannot build Pillow 9, which detectron2 0.6 needs: the
    script said so only after 4 GB of torch, as 'could not install build tools'. It now names the
    version and the way out before step 1; 3.10 passes only for the runtime alone (onnxruntime 1.30,
    in the development install, needs 3.11)."""
    out = _run_install(tmp_path, 'if [ "$1" = "-c" ]; then echo 3.13; exit 0; fi\nexit 1\n')
    assert out.returncode == 1
    assert "INSTALL FAILED: Python 3.13 in" in out.stderr and "PYTHON=python3.11" in out.stderr
    assert "==> PyTorch" not in out.stdout
    out = _run_install(tmp_path / "b", 'if [ "$1" = "-c" ]; then echo 3.10; exit 0; fi\nexit 1\n')
    assert out.returncode == 1 and "FOSS_SKIP_DEV=1" in out.stderr


def test_install_says_a_virtualenv_without_pip_must_be_made_again(tmp_path):
    """A python3 without python3-venv leaves a virtualenv with bin/python and no pip; a rerun took it
    and failed with 'pip could not install torch'. It now says what the virtualenv lacks."""
    out = _run_install(tmp_path, 'if [ "$1" = "-c" ]; then echo 3.11; exit 0; fi\nexit 1\n')
    assert out.returncode == 1
    assert "has no pip" in out.stderr and "python3-venv" in out.stderr
    assert "==> PyTorch" not in out.stdout


def test_install_names_an_active_virtualenv_that_is_gone(tmp_path):
    env = dict(os.environ, VIRTUAL_ENV=str(tmp_path / "deleted"))
    out = subprocess.run(["bash", INSTALL_SH], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1 and "has no bin/python: run 'deactivate'" in out.stderr
