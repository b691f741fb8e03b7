#!/bin/bash
# The 140-second lever runs behind the lever table of benchmarks/README.md: one train_budget.py run
# each (about 2.5 minutes), every setting spelled out, so that a later change of the defaults does not
# change what a line means. Results go to benchmarks/results/levers/NAME.json.
#
#     bash benchmarks/levers.sh            # all of them (about 50 minutes)
#     bash benchmarks/levers.sh seq32      # the runs whose name contains "seq32"
set -e
cd "$(dirname "$0")/.."
FP32="--precision fp32"
B="--lr 0.005 --min-lr 0.02"  # the learning rate and floor adopted as defaults
runs=(
  "old-default+bf16|--lr 0.003 --min-lr 0.1 --eval-every 200 --precision bf16"
  "lr5-minlr02-a|$B --eval-every 200 $FP32"
  "lr5-minlr02-b|$B --eval-every 200 $FP32"
  "lr7-minlr02|--lr 0.007 --min-lr 0.02 --eval-every 200 $FP32"
  "lr5-minlr0|--lr 0.005 --min-lr 0 --eval-every 200 $FP32"
  "lr5-minlr02-clip1|$B --grad-clip 1 --eval-every 200 $FP32"
  "lr5-minlr02-gru|$B --cell gru --eval-every 200 $FP32"
  "lr5-minlr02-seq32-a|$B --seq-len 32 --eval-every 200 $FP32"
  "lr5-minlr02-seq32-b|$B --seq-len 32 --eval-every 200 $FP32"
  "lr5-minlr02-seq16|$B --seq-len 16 --eval-every 200 $FP32"
  "lr5-minlr02-gru-seq32|$B --cell gru --seq-len 32 --eval-every 200 $FP32"
  "lr5-minlr02-gru-seq32-eval500|$B --cell gru --seq-len 32 --eval-every 500 $FP32"
  "lr5-minlr02-seq32-eval1000|$B --seq-len 32 --eval-every 1000 $FP32"
  "lr6-minlr02-seq32-eval1000|--lr 0.006 --min-lr 0.02 --seq-len 32 --eval-every 1000 $FP32"
  "lr5-minlr02-seq32-eval1000-h320|$B --seq-len 32 --hidden-size 320 --eval-every 1000 $FP32"
  "lr5-minlr02-seq32-eval1000-beta2-099|$B --seq-len 32 --eval-every 1000 --beta2 0.99 $FP32"
  "lr5-minlr02-bf16|$B --eval-every 200 --precision bf16"
  "lr5-minlr02-bf16-eval1000|$B --eval-every 1000 --precision bf16"
  "lr5-minlr02-bf16-seq32-eval1000-a|$B --seq-len 32 --eval-every 1000 --precision bf16"
  "lr5-minlr02-bf16-seq32-eval1000-b|$B --seq-len 32 --eval-every 1000 --precision bf16"
)
mkdir -p benchmarks/results/levers
for entry in "${runs[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  [[ -z "$1" || "$name" == *"$1"* ]] || continue
  echo "== $name: $args"
  # shellcheck disable=SC2086
  python benchmarks/train_budget.py --json "benchmarks/results/levers/$name.json" -- $args
done
