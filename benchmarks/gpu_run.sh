#!/usr/bin/env bash
# One GPU lease's measurements, in the order that keeps the most if the lease runs short: the card,
# a 5-step smoke run of `rnnkit train --device cuda`, the 140 s quality pair (benchmarks/train_budget.py:
# a larger rnnkit model beside the hand-written 2x256 loop, both on the GPU), then the speed grid
# (benchmarks/gpu_grid.py) until TOTAL seconds have passed. Needs only the repository (no install:
# PYTHONPATH points at it). Usage, from the repository root:
#
#     benchmarks/gpu_run.sh OUTDIR [TOTAL_SECONDS]     # default 540
set -uo pipefail
out=${1:?usage: benchmarks/gpu_run.sh OUTDIR [TOTAL_SECONDS]}
total=${2:-540}
start=$(date +%s)
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 RNNKIT_CACHE="${RNNKIT_CACHE:-/tmp/rnnkit-cache}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv \
    | tee "$out/nvidia-smi.csv"
smoke=$(mktemp -d)
python3 -m rnnkit train --device cuda --max-steps 5 --out "$smoke/run" --no-progress --sample-length 20 2>&1 \
    | tee "$out/smoke.log"
python3 benchmarks/train_budget.py --device cuda --budget 140 --json "$out/budget.json" -- \
    --num-layers 3 --hidden-size 512 --dropout 0.5 --batch-size 128 --seq-len 128 --lr 3e-3 2>&1 | tee "$out/budget.log"
left=$(( total - ($(date +%s) - start) - 25 ))
python3 benchmarks/gpu_grid.py --deadline "$left" --json "$out/gpu_grid.json" 2>&1 | tee "$out/gpu_grid.log"
echo "gpu_run.sh: $(( $(date +%s) - start )) s"
