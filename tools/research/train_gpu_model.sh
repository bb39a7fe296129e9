#!/usr/bin/env bash
# Trains the shipped architecture on one GPU in a fixed wall-clock budget, as the paper's two
# stages (4.2): $DET_CFG (detector alone), then $AGE_CFG (age network on the frozen detector).
# By default the next model's (issue 16): configs/zoo/next-detector.yaml on both WIDER FACE train
# sets, then configs/zoo/next-age.yaml starting from the new detector joined with $AGE_INIT's age
# network (default: the shipped model's; set empty for a new age network). The shipped model's
# own steps 1-2: DET_CFG=configs/zoo/step1-detector.yaml AGE_CFG=configs/zoo/step2-age.yaml AGE_INIT=""
# Each stage first runs CALIB_ITERS iterations to measure its seconds per iteration; MAX_ITER and
# the two lr steps (x0.1 at 80% and 93%) then fill its share of the budget, in place of the
# schedule written in the config. Both measurements come first, so a broken setup fails within a
# minute.
#
#   bash tools/research/train_gpu_model.sh DATASETS_ROOT OUTPUT_DIR [BUDGET_SECONDS [DETECTOR_SHARE]]
#
# Writes OUTPUT_DIR/{detector,age}/ (detectron2 runs), OUTPUT_DIR/plan.txt (iterations chosen and
# why, images/s of each stage), OUTPUT_DIR/detector.pth (fp16 detector), OUTPUT_DIR/model.pth
# (fp16, the whole model) and OUTPUT_DIR/eval/ (the model on $EVAL_SETS, the same call; default:
# fgnet_test, and wider_face_val where DATASETS_ROOT holds it).
# So that the GPU does not wait on the loader (docs/RESULTS.md section 6), both stages decode the
# training pictures once into memory, apply the colour jitter on the GPU, use all cores but one as
# loader workers and, where CUDA is there, mixed precision: $SPEED_OPTS (set it empty for the
# recipe as the shipped model ran it). $PYTHON picks the interpreter; extra detectron2 options for
# both stages go in $FOSS_OPTS.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: tools/research/train_gpu_model.sh DATASETS_ROOT OUTPUT_DIR [BUDGET_SECONDS [DETECTOR_SHARE]]}
RUNS=${2:?usage: tools/research/train_gpu_model.sh DATASETS_ROOT OUTPUT_DIR [BUDGET_SECONDS [DETECTOR_SHARE]]}
BUDGET=${3:-420}
SHARE=${4:-0.6}
CALIB_ITERS=${CALIB_ITERS:-60}
PY=${PYTHON:-python3}
WORKERS=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))
AMP=$("$PY" -c "import torch; print(torch.cuda.is_available())")
SPEED_OPTS=${SPEED_OPTS-INPUT.CACHE_DECODED True INPUT.AUG.COLOR_ON_DEVICE True DATALOADER.NUM_WORKERS $WORKERS SOLVER.AMP.ENABLED $AMP}
if [ -d "$DATA/widerface/WIDER_val" ]; then DEFAULT_EVAL="('wider_face_val','fgnet_test')"; else DEFAULT_EVAL="('fgnet_test',)"; fi
EVAL_SETS=${EVAL_SETS:-$DEFAULT_EVAL}  # what make_compact_data.py --with-eval carries; "()": none
if [ "$EVAL_SETS" = "()" ]; then EVAL_RESERVE=${EVAL_RESERVE:-0}; fi
EVAL_RESERVE=${EVAL_RESERVE:-90}  # seconds of the budget kept for the evaluation at the end
DET_CFG=${DET_CFG:-configs/zoo/next-detector.yaml}
AGE_CFG=${AGE_CFG:-configs/zoo/next-age.yaml}
AGE_INIT=${AGE_INIT-foss_d2/model_zoo/foss_default.pth}
for f in "$DET_CFG" "$AGE_CFG" ${AGE_INIT:+"$AGE_INIT"}; do  # before any GPU time is spent
    [ -f "$f" ] || { echo "train_gpu_model.sh: no such file: $f" >&2; exit 2; }
done
mkdir -p "$RUNS"
t_start=$(date +%s)

train() {  # train CONFIG OUTPUT_DIR WEIGHTS MAX_ITER STEPS
    "$PY" tools/train_net.py --config-file "$1" DATASETS.ROOT "$DATA" OUTPUT_DIR "$2" \
        ${3:+MODEL.WEIGHTS "$3"} SOLVER.MAX_ITER "$4" SOLVER.STEPS "$5" ${SPEED_OPTS} ${FOSS_OPTS:-}
}

calibrate() {  # calibrate CONFIG OUTPUT_DIR WEIGHTS -> "seconds_per_iteration overhead_seconds images_per_second"
    local t0 t1
    # detectron2 appends to log.txt: an earlier run's speed is not this one's (train_net.py already
    # moves an earlier run's metrics.json aside)
    rm -f "$2/log.txt"
    t0=$(date +%s.%N)
    train "$1" "$2" "$3" "$CALIB_ITERS" "()" >&2 || return 1
    t1=$(date +%s.%N)
    "$PY" - "$2/metrics.json" "$t0" "$t1" "$CALIB_ITERS" "$2/config.yaml" "$2/log.txt" <<'PY'
import json, os, re, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
times = [r["time"] for r in rows if "time" in r]
if not times:
    sys.exit(f"no iteration times in {sys.argv[1]}")
s_it = times[-1]  # detectron2 logs the median over its last 20 iterations
# the mean over the run, where detectron2's log has it: with input sides drawn per step
# (DET_INPUT_SIZES_TRAIN) an iteration's cost varies, and the median of a few falls short of it
log = open(sys.argv[6]).read() if os.path.isfile(sys.argv[6]) else ""
overall = re.findall(r"Overall training speed: (\d+) iterations in \S+ \(([\d.]+) s / it\)", log)
if overall and int(overall[-1][0]) >= 10:
    s_it = float(overall[-1][1])
wall = float(sys.argv[3]) - float(sys.argv[2])
batch = re.search(r"^  IMS_PER_BATCH: (\d+)$", open(sys.argv[5]).read(), re.M)  # the run's own config dump
ips = int(batch.group(1)) / s_it if batch else float("nan")
print(f"{s_it:.4f} {max(0.0, wall - int(sys.argv[4]) * s_it):.1f} {ips:.1f}")
PY
}

plan() {  # plan SECONDS S_PER_IT OVERHEAD -> "MAX_ITER (STEP1, STEP2)"
    "$PY" -c "
import sys
secs, s_it, over = map(float, sys.argv[1:])
n = max(10, int((secs - over) / s_it))
print(n, f'({int(n * 0.8)}, {int(n * 0.93)})')" "$1" "$2" "$3"
}

echo "== calibration: $CALIB_ITERS iterations of each stage"
det_cal=$(calibrate "$DET_CFG" "$RUNS/calib-detector" "")
age_cal=$(calibrate "$AGE_CFG" "$RUNS/calib-age" "$RUNS/calib-detector/model_final.pth")
read -r det_s det_over det_ips <<< "$det_cal"
read -r age_s age_over age_ips <<< "$age_cal"
echo "calibration: detector ${det_ips} images/s, age network ${age_ips} images/s (speed options: ${SPEED_OPTS:-none})" | tee "$RUNS/plan.txt"
left=$(( BUDGET - ($(date +%s) - t_start) ))
det_secs=$("$PY" -c "print(int($left * $SHARE))")
det_plan=$(plan "$det_secs" "$det_s" "$det_over")
read -r det_iters det_steps <<< "$det_plan"
{
    echo "budget ${BUDGET}s, ${left}s left after calibration; detector share $SHARE"
    echo "detector: ${det_s} s/it, ${det_over}s start-up -> MAX_ITER $det_iters, STEPS $det_steps"
} | tee -a "$RUNS/plan.txt"

echo "== detector ($det_iters iterations)"
train "$DET_CFG" "$RUNS/detector" "" "$det_iters" "$det_steps"
"$PY" tools/export_model.py "$RUNS/detector/model_final.pth" "$RUNS/detector.pth" --detector-only
age_start="$RUNS/detector.pth"
if [ -n "$AGE_INIT" ]; then  # the new detector with $AGE_INIT's age network, as step 5 started
    age_start="$RUNS/age-start.pth"
    "$PY" tools/export_model.py "$RUNS/detector/model_final.pth" "$age_start" --age-head-from "$AGE_INIT"
fi

left=$(( BUDGET - ($(date +%s) - t_start) ))
age_plan=$(plan "$((left - 10 - EVAL_RESERVE))" "$age_s" "$age_over")
read -r age_iters age_steps <<< "$age_plan"
echo "age: ${age_s} s/it, ${age_over}s start-up, ${left}s left -> MAX_ITER $age_iters, STEPS $age_steps" | tee -a "$RUNS/plan.txt"
echo "== age network ($age_iters iterations, frozen detector)"
train "$AGE_CFG" "$RUNS/age" "$age_start" "$age_iters" "$age_steps"
"$PY" tools/export_model.py "$RUNS/age/model_final.pth" "$RUNS/model.pth"
if [ "$EVAL_SETS" = "()" ]; then
    echo "== done in $(( $(date +%s) - t_start ))s: $RUNS/model.pth (EVAL_SETS: none evaluated)"
    exit 0
fi
echo "== trained in $(( $(date +%s) - t_start ))s: $RUNS/model.pth; evaluating on $EVAL_SETS"
"$PY" tools/train_net.py --eval-only DATASETS.ROOT "$DATA" MODEL.WEIGHTS "$RUNS/model.pth" \
    DATASETS.TEST "$EVAL_SETS" OUTPUT_DIR "$RUNS/eval"
echo "== done in $(( $(date +%s) - t_start ))s: $RUNS/model.pth, figures in $RUNS/eval/eval_results.json"
