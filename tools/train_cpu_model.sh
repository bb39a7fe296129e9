#!/usr/bin/env bash
# Trains the CPU-only model that FOSS-D2 shipped before its GPU-trained default (docs/MODEL_ZOO.md,
# "foss_cpu_default.pth"), on 2 CPU cores, in the stages it was made in (about 3.7 hours in all):
#   1. FOSS-CPU-default           end-to-end from scratch: detector + age network     (~88 min)
#   2. FOSS-CPU-stage2            detector frozen, age network alone, mostly tiles    (~83 min)
#   3. FOSS-CPU-stage2-mixed-scale  the same, half the canvases one face              (~15 min)
#   4. FOSS-CPU-detector-rescale  detector alone (from stage 1), faces of every scale (~22 min)
#   5. FOSS-CPU-age-refit         stage 3's age network on stage 4's frozen detector  (~16 min)
# then exports stage 5 as fp16 weights. A stage whose model_final.pth exists is not run again, and
# an interrupted stage resumes from its last checkpoint. Stage 1's config holds its final tiling;
# the shipped run used 1 or 4 tiles on a 400 px canvas for its first 500 iterations.
#
#   bash tools/train_cpu_model.sh ../shared/data [output/cpu_model.pth]
# Stages write under $FOSS_OUTPUT (default: output); $PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: tools/train_cpu_model.sh DATASETS_ROOT [OUTPUT_WEIGHTS]}
RUNS=${FOSS_OUTPUT:-output}
OUT_WEIGHTS=${2:-$RUNS/cpu_model.pth}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python

stage() {  # stage NAME CONFIG WEIGHTS
    local out="$RUNS/$1"
    if [ -f "$out/model_final.pth" ]; then
        echo "== $1: done before ($out/model_final.pth)"
        return
    fi
    echo "== $1"
    local resume=()
    [ -f "$out/last_checkpoint" ] && resume=(--resume)
    "$PY" tools/train_net.py --config-file "$2" "${resume[@]}" DATASETS.ROOT "$DATA" \
        ${3:+MODEL.WEIGHTS "$3"} OUTPUT_DIR "$out"
}

export_once() {  # export_once CHECKPOINT OUTPUT [export_model.py options]: fp16 weights, as shipped
    [ -f "$2" ] || "$PY" tools/export_model.py "$@"
}

stage FOSS-CPU-default foss_d2/model_zoo/FOSS-CPU-default.yaml ""
# the later stages started from the exported (fp16) stage-1 weights, as shipped before them
export_once "$RUNS/FOSS-CPU-default/model_final.pth" "$RUNS/stage1.pth"
stage FOSS-CPU-stage2 configs/cpu/FOSS-CPU-stage2.yaml "$RUNS/stage1.pth"
stage FOSS-CPU-stage2-mixed-scale configs/cpu/FOSS-CPU-stage2-mixed-scale.yaml "$RUNS/FOSS-CPU-stage2/model_final.pth"
stage FOSS-CPU-detector-rescale configs/cpu/FOSS-CPU-detector-rescale.yaml "$RUNS/stage1.pth"
export_once "$RUNS/FOSS-CPU-detector-rescale/model_final.pth" "$RUNS/joined_rescale.pth" \
    --age-head-from "$RUNS/FOSS-CPU-stage2-mixed-scale/model_final.pth"
stage FOSS-CPU-age-refit configs/cpu/FOSS-CPU-age-refit.yaml "$RUNS/joined_rescale.pth"
"$PY" tools/export_model.py "$RUNS/FOSS-CPU-age-refit/model_final.pth" "$OUT_WEIGHTS"
