#!/usr/bin/env bash
# Train the two reference models of the "looking inside" section and run every inspection command
# on held-out text. Writes everything under benchmarks/results/inspect/ (about 12 minutes on 2 cores).
#
#   bash benchmarks/inspect_models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/inspect
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
mkdir -p "$out"
stdlib=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])")

# 1. Python code: the top-level modules of the standard library (4.7 MB), 8 minutes.
# The training settings are spelled out: they are the defaults these results were measured with.
OLD_DEFAULTS="--lr 0.003 --min-lr 0.1 --eval-every 200 --precision fp32"
rnnkit train "$stdlib" --glob '*.py' --out "$runs/code" --budget 8m --no-progress --sample-length 0 $OLD_DEFAULTS
# Held-out code: two modules from packages the model never saw.
cat "$stdlib/email/message.py" "$stdlib/json/decoder.py" > "$runs/code_test.py"
rnnkit cells "$runs/code" --text "$runs/code_test.py" --top 3 --json "$out/code-cells.json" \
    --plot "$out/code-cells.png" | tee "$out/code-cells.txt"
rnnkit gates "$runs/code" --text "$runs/code_test.py" --out "$out/code-gates.png" | tee "$out/code-gates.txt"
rnnkit inspect "$runs/code" --text "$runs/code_test.py" --out "$out/code-report.html" --max-chars 3000
# Screenshot the report showing the best bracket-depth cell (the README's picture).
cell=$(python3 -c "import json,sys; c = json.load(open(sys.argv[1]))['bracket_depth'][0]; \
print(f\"{c['kind']}/{c['layer'] + 1}/{c['unit']}\")" "$out/code-cells.json")
python3 -m rnnkit.inspect.browser "$out/code-report.html#cell=$cell" "$out/code-report.png"

# 2. Tiny Shakespeare (bundled), the default model, 140 seconds; test text = its last 5%.
rnnkit train --out "$runs/shakespeare" --budget 140s --no-progress --sample-length 0 $OLD_DEFAULTS
python3 - "$runs" <<'PY'
import sys
from rnnkit.data import bundled_corpus
text = bundled_corpus().read_text("utf-8")
n = len(text)
open(f"{sys.argv[1]}/shakespeare_train.txt", "w").write(text[:int(n * 0.9)])
open(f"{sys.argv[1]}/shakespeare_test.txt", "w").write(text[int(n * 0.95):])
PY
rnnkit cells "$runs/shakespeare" --text "$runs/shakespeare_test.txt" --top 3 --json "$out/shakespeare-cells.json" \
    | tee "$out/shakespeare-cells.txt"
rnnkit gates "$runs/shakespeare" --text "$runs/shakespeare_test.txt" --out "$out/shakespeare-gates.png" \
    | tee "$out/shakespeare-gates.txt"
rnnkit ngram "$runs/shakespeare_train.txt" --test "$runs/shakespeare_test.txt" -n 1..20 \
    --plot "$out/shakespeare-ngram.png" | tee "$out/shakespeare-ngram.txt"
rnnkit compare "$runs/shakespeare" --train "$runs/shakespeare_train.txt" --test "$runs/shakespeare_test.txt" \
    --plot "$out/shakespeare-compare.png" | tee "$out/shakespeare-compare.txt"
rnnkit inspect "$runs/shakespeare" --text "$runs/shakespeare_test.txt" --out "$out/shakespeare-report.html"
