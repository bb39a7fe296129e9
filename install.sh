#!/usr/bin/env bash
# One-command install of FOSS-D2 and everything it needs, on a fresh machine.
#
#   bash install.sh            # creates ./.venv (or uses the active virtualenv) and installs into it
#
# Why this script exists: detectron2 publishes no wheel on PyPI. The only PyPI copy of its sources,
# the sdist `pb1-detectron2==0.6`, lacks the C++ sources of `detectron2._C`, so `pip install` fails.
# FOSS-D2 needs none of those kernels (it uses box ops only; ROIAlign/NMS come from torchvision), so we
# build detectron2 with a minimal `_C` module. See docs/INSTALL.md for every fix and the reason for it.
#
# Idempotent: each step is skipped when what it provides already works. A detectron2 that is already
# importable with a working `_C` (e.g. an official build) is left alone.
# Environment: FOSS_VENV (default .venv beside this script), PYTHON (default python3; used only to
# create the virtualenv), FOSS_SKIP_DEV=1 (the runtime alone: no test, lint or onnxruntime
# dependencies), MAX_JOBS (detectron2's build, default 2). Needs Linux, Python 3.11 or 3.12, a C++
# compiler and the Python headers (python3-dev), and python3-venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
D2_SDIST="pb1-detectron2==0.6"
D2_SHA256="5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nINSTALL FAILED: %s\n' "$*" >&2; exit 1; }

# an explicit FOSS_VENV wins over an active virtualenv (say, the peer's .venv-peer, whose Pillow
# detectron2's pin would downgrade)
if [ -n "${VIRTUAL_ENV:-}" ] && [ -z "${FOSS_VENV:-}" ]; then
  venv="$VIRTUAL_ENV"
  [ -x "$venv/bin/python" ] || fail "the active virtualenv $venv has no bin/python: run 'deactivate' (or make it again) and rerun"
  step "Using the active virtualenv $venv"
  redo="make that virtualenv again with a supported python"
else
  venv="${FOSS_VENV:-$here/.venv}"
  if [ ! -x "$venv/bin/python" ]; then
    step "Creating virtualenv $venv"
    "${PYTHON:-python3}" -m venv "$venv" || fail "could not create a virtualenv with ${PYTHON:-python3} (is python3-venv installed?)"
  fi
  venv="$(cd "$venv" && pwd)"  # a relative FOSS_VENV, made absolute: the detectron2 build runs elsewhere
  redo="delete $venv, then rerun with PYTHON set to a supported python (e.g. PYTHON=python3.11)"
fi
py="$venv/bin/python"
pip() { "$py" -m pip "$@"; }

# Checked before the 4 GB of step 1: torch 2.14 needs Python >= 3.10, onnxruntime 1.30 (the dev
# install's ONNX backend) >= 3.11, and Pillow 9 (detectron2 0.6 needs < 10) has wheels up to 3.11
# and does not build on 3.13.
pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || pyver="unknown"
case "$pyver" in
  3.11) ;;
  3.12) echo "Python 3.12: Pillow 9 has no wheel for it and is compiled (needs a C compiler and the libjpeg and zlib headers)" ;;
  3.10)
    [ "${FOSS_SKIP_DEV:-0}" = 1 ] \
      || fail "Python 3.10 in $venv: the development install's onnxruntime needs 3.11 or newer; $redo, or set FOSS_SKIP_DEV=1 for the runtime alone" ;;
  *) fail "Python $pyver in $venv: FOSS-D2 installs on Python 3.11 or 3.12 (3.10 with FOSS_SKIP_DEV=1); $redo" ;;
esac
pip --version >/dev/null 2>&1 \
  || fail "$venv has no pip (made by a python without python3-venv?): install python3-venv, delete $venv and rerun"

step "PyTorch"
if "$py" -c "import torch, torchvision" 2>/dev/null; then
  echo "torch $("$py" -c 'import torch; print(torch.__version__)') already installed: kept"
else
  pip install $TORCH_SPEC || fail "pip could not install $TORCH_SPEC"
fi

step "Build tools and runtime pins"
# Pillow<10: detectron2 0.6 uses Image.LINEAR (removed in Pillow 10) at import of detectron2.data.
# setuptools<81: detectron2.model_zoo imports pkg_resources (gone in setuptools 81).
pip install "Pillow>=9,<10" "setuptools<81" wheel ninja || fail "could not install build tools"

d2_ok() {
  "$py" - <<'PY' 2>/dev/null
import detectron2, detectron2._C  # noqa: F401
from detectron2.layers import ROIAlign, batched_nms  # noqa: F401
import detectron2.data, detectron2.engine  # noqa: F401
PY
}

step "detectron2"
if d2_ok; then
  echo "detectron2 $("$py" -c 'import detectron2; print(detectron2.__version__)') already works: kept"
else
  work="$(mktemp -d)" || fail "could not make a temporary folder (is TMPDIR writable?)"
  trap 'rm -rf "$work"' EXIT
  pip download --no-deps --no-binary :all: --no-build-isolation "$D2_SDIST" -d "$work" \
    || fail "could not download $D2_SDIST from PyPI"
  tarball="$(ls "$work"/pb1-detectron2-*.tar.gz)" || fail "pip download left no $D2_SDIST sdist in $work"
  echo "$D2_SHA256  $tarball" | sha256sum -c - || fail "checksum mismatch for $tarball"
  tar -xzf "$tarball" -C "$work" || fail "could not unpack $tarball (is $work full?)"
  src="$(ls -d "$work"/pb1-detectron2-*/)" || fail "$tarball holds no pb1-detectron2 folder"
  # The sdist ships detectron2/layers/csrc/ without its sources. A module with only the introspection
  # functions lets the build succeed and `python -m detectron2.utils.collect_env` work; nothing in
  # FOSS-D2 calls the missing kernels (deformable/rotated ops).
  mkdir -p "$src/detectron2/layers/csrc" && cp "$here/detectron2_stub/vision.cpp" "$src/detectron2/layers/csrc/vision.cpp" \
    || fail "could not add detectron2_stub/vision.cpp to the sources (is this a whole FOSS-D2 checkout?)"
  (cd "$src" && MAX_JOBS="${MAX_JOBS:-2}" "$py" -m pip install --no-build-isolation . ) \
    || fail "building or installing detectron2 from $D2_SDIST failed: see pip's output above (a compiler error needs a C++ compiler and python3-dev; a download error, the network)"
  d2_ok || fail "detectron2 installed but does not import; run: $py -c 'import detectron2.data'"
fi

step "FOSS-D2 (editable)"
# [video]: face tracking in videos (norfair-enough, pure Python, small); [onnx]: the onnxruntime
# backend (its tests run in CI, so the development install has it)
extras=".[dev,video,onnx]"; [ "${FOSS_SKIP_DEV:-0}" = 1 ] && extras=".[video]"
pip install --no-build-isolation -e "$extras" || fail "pip install -e $extras failed"
"$py" -c "import foss_d2" || fail "foss_d2 does not import"

step "Done in $venv. Activate with: source $(printf '%q' "$venv/bin/activate")"
