#!/usr/bin/env bash
# The one command of a lent GPU window (docs/MODEL_ZOO.md, "On the next lent GPU"), run there from
# the checkout's root: unpacks what make_device_carry.py packed (detectron2 and the packages the
# machine lacks) and the training data (a folder, or a .tar.xz of one: what travels to the machine is
# 64 MiB at most, the checkout included), checks that FOSS-D2 imports, then trains and exports the
# next model with train_gpu_model.sh, and leaves in $OUT what the device tool brings back, whatever
# happened (at most 8 files of 16 MiB each): the model in parts of 15 MiB, the log, and the rest in
# results.tar.gz (plan.txt, each stage's metrics.json and training_curves.png, the figures).
#
#   bash tools/research/device_window.sh CARRY_DIR DATASETS_ROOT[.tar.xz] [BUDGET_SECONDS [DETECTOR_SHARE]]
#
# Back here: cat FILES_AT/model.pth.part-* > model.pth (detector.pth.part-* if the age stage did not
# finish), then evaluate it here. $EVAL_SETS (default "()": none) names datasets to evaluate on
# there too. $LIMIT (default BUDGET + 60) seconds stop the recipe if it overruns. $PYTHON picks the
# interpreter (python3), $SITE and $DATA_DIR where the carry and the data are unpacked, $RUNS the
# runs' folder (emptied first); train_gpu_model.sh's own variables (FOSS_OPTS, CALIB_ITERS, ...) pass
# through.
set -euo pipefail
cd "$(dirname "$0")/../.."
usage="usage: tools/research/device_window.sh CARRY_DIR DATASETS_ROOT[.tar.xz] [BUDGET_SECONDS [DETECTOR_SHARE]]"
CARRY=${1:?$usage}
DATA=${2:?$usage}
BUDGET=${3:-480}
SHARE=${4:-0.6}
OUT=${OUT:?device_window.sh: \$OUT, the folder the device tool brings back, is not set}
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/foss-site}
DATA_DIR=${DATA_DIR:-/tmp/foss-data}
RUNS=${RUNS:-output/gpu}
export EVAL_SETS=${EVAL_SETS:-"()"}
for f in "$CARRY/site.tar.gz" "$DATA"; do  # before any GPU time is spent
    [ -e "$f" ] || { echo "device_window.sh: no such file: $f" >&2; exit 2; }
done
# a warm machine keeps ignored folders between calls: an earlier try's model must not come back
rm -rf "$RUNS"
mkdir -p "$SITE" "$OUT" "$RUNS"
# Python's tarfile: the machine's notes list no xz program
"$PY" -m tarfile -e "$CARRY/site.tar.gz" "$SITE"
if [[ "$DATA" == *.tar.xz ]]; then  # made here by: tar -cJf DATA.tar.xz -C DATA .
    mkdir -p "$DATA_DIR"
    "$PY" -m tarfile -e "$DATA" "$DATA_DIR"
    DATA=$DATA_DIR
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$PY" -c "
import torch
import foss_d2.apps.train, foss_d2.apps.export, pycocotools.cocoeval
print('FOSS-D2 imports; torch', torch.__version__, 'CUDA', torch.cuda.is_available())
" 2>&1 | tee "$OUT/log.txt"

# stopped LIMIT seconds from now if it overruns (default: the budget and a minute), so that what it
# has is packed before the device tool's own limit
LIMIT=${LIMIT:-$((BUDGET + 60))}
status=0
PYTHON="$PY" timeout -k 20 "$LIMIT" bash tools/research/train_gpu_model.sh "$DATA" "$RUNS" "$BUDGET" "$SHARE" 2>&1 |
    tee -a "$OUT/log.txt" || status=$?

# what comes back, also after a failure: the small files in one archive, the model in parts
results=()
for f in plan.txt eval/eval_results.json {calib-detector,calib-age,detector,age}/{metrics.json,training_curves.png}; do
    [ -f "$RUNS/$f" ] && results+=("$f")
done
[ ${#results[@]} -gt 0 ] && tar -czf "$OUT/results.tar.gz" -C "$RUNS" "${results[@]}"
# the whole model, or after a stop in the age stage the new detector alone
for model in model.pth detector.pth; do
    if [ -f "$RUNS/$model" ]; then
        split -b 15M -d "$RUNS/$model" "$OUT/$model.part-"
        break
    fi
done
echo "device_window.sh: exit $status; in \$OUT: $(cd "$OUT" && ls | tr '\n' ' ')" | tee -a "$OUT/log.txt"
exit "$status"
