#!/usr/bin/env bash
# The next model's two stages (the GPU recipe's, tools/research/train_gpu_model.sh) on CPU, between GPU
# windows (issue 16, item 2): configs/zoo/next-detector-cpu.yaml trains the detector on from
# $DET_INIT (default: the shipped model), then configs/zoo/next-age-cpu.yaml trains $AGE_INIT's age
# network (default: the shipped model's) joined to the new detector, detector frozen. Every stage
# checkpoints and runs with --resume, so the same command after a stop continues where it stopped and
# the CPU time of several sittings adds up; a stage whose model_final.pth exists is not run again.
#
#   bash tools/research/train_cpu_route.sh DETECTOR_DATA_ROOT AGE_DATA_ROOT [OUTPUT_DIR]
#
# DETECTOR_DATA_ROOT: a compact copy with both WIDER FACE train sets (make_compact_data.py --wider-more,
# docs/MODEL_ZOO.md); AGE_DATA_ROOT: UTKFace and FG-NET (../shared/data). Writes OUTPUT_DIR (default
# output/cpu-route)/{detector,age}/ (detectron2 runs), age-start.pth (the join) and model.pth (fp16, the
# whole model). $PYTHON picks the interpreter; extra detectron2 options for both stages go in $FOSS_OPTS;
# $DET_CFG / $AGE_CFG replace a stage's config (e.g. AGE_CFG=configs/zoo/next-age-teacher-online-cpu.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
USAGE="usage: tools/research/train_cpu_route.sh DETECTOR_DATA_ROOT AGE_DATA_ROOT [OUTPUT_DIR]"
DET_DATA=${1:?$USAGE}
AGE_DATA=${2:?$USAGE}
RUNS=${3:-output/cpu-route}
PY=${PYTHON:-python3}
DET_CFG=${DET_CFG:-configs/zoo/next-detector-cpu.yaml}
AGE_CFG=${AGE_CFG:-configs/zoo/next-age-cpu.yaml}
DET_INIT=${DET_INIT:-foss_d2/model_zoo/foss_default.pth}
AGE_INIT=${AGE_INIT:-foss_d2/model_zoo/foss_default.pth}
for f in "$DET_CFG" "$AGE_CFG" "$DET_INIT" "$AGE_INIT"; do
    [ -f "$f" ] || { echo "train_cpu_route.sh: no such file: $f" >&2; exit 2; }
done
for d in "$DET_DATA" "$AGE_DATA"; do
    [ -d "$d" ] || { echo "train_cpu_route.sh: no such data folder: $d" >&2; exit 2; }
done
mkdir -p "$RUNS"
stage() {  # stage CONFIG DATA OUTPUT_DIR WEIGHTS
    if [ -f "$3/model_final.pth" ]; then
        echo "== $3: finished before, not run again"
        return
    fi
    echo "== $3 ($1; --resume: continues from its last checkpoint if it has one)"
    "$PY" tools/train_net.py --resume --config-file "$1" DATASETS.ROOT "$2" OUTPUT_DIR "$3" \
        MODEL.WEIGHTS "$4" ${FOSS_OPTS:-}
}
stage "$DET_CFG" "$DET_DATA" "$RUNS/detector" "$DET_INIT"
if [ ! -f "$RUNS/age-start.pth" ] || [ "$RUNS/detector/model_final.pth" -nt "$RUNS/age-start.pth" ]; then
    if [ -d "$RUNS/age" ]; then
        # an age stage on the detector before: its checkpoints hold that detector, which --resume (or
        # "finished before") would carry into model.pth; kept aside, and the stage starts again
        old="$RUNS/age.before-$(date +%Y%m%d-%H%M%S)"
        mv "$RUNS/age" "$old"
        echo "== the detector is newer than the age stage's start: $RUNS/age moved to $old, the stage starts again"
    fi
    "$PY" tools/export_model.py "$RUNS/detector/model_final.pth" "$RUNS/age-start.pth" --age-head-from "$AGE_INIT"
fi
stage "$AGE_CFG" "$AGE_DATA" "$RUNS/age" "$RUNS/age-start.pth"
"$PY" tools/export_model.py "$RUNS/age/model_final.pth" "$RUNS/model.pth"
echo "== done: $RUNS/model.pth"
