"""Forecasting yearly sunspots: rnnkit's recurrent forecaster against persistence, the training mean
and a linear autoregressive model, on the same test span, in the same run.

Trains `rnnkit train FILE.csv --task series` (first 70% of the years train, the next 10% validate,
the last 20% test: the span `series_baseline.py` tests on) for a wall-clock budget, with --seeds
different seeds, and scores each one and several steps ahead (--horizons); then runs
`series_baseline.py` at the same horizons on the same file. Make the data with `series_data.py`.

    python benchmarks/series_rnn.py runs/sunspots.csv [--budget 60] [--seeds 3] [--json FILE] [-- rnnkit train options]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402

import rnnkit  # noqa: E402

# A small model for 216 training years; any of these can be overridden after --.
DEFAULTS = dict(cell="lstm", num_layers=2, hidden_size=64, embed_size=16, dropout=0.1, batch_size=16, seq_len=40,
                eval_every=100, checkpoint_every=5000)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path, help="the series (series_data.py writes one)")
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds per seed (default 60)")
    ap.add_argument("--seeds", type=int, default=3, help="independent runs, reported with their median (default 3)")
    ap.add_argument("--horizons", default="1,5", help="steps ahead to score, comma-separated (default 1,5)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parse_with_train_args(ap)  # rnnkit train options after --
    horizons = [int(h) for h in args.horizons.split(",")]
    options = train_options("series", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            run = rnnkit.train(args.csv, out=Path(tmp) / f"run{seed}", task="series", budget=args.budget, seed=seed,
                               progress=False, **options)
            scored = {h: rnnkit.evaluate(run.dir, horizon=h) for h in horizons}
            runs.append({"seed": seed, "steps": run.step, **{f"h{h}": {"mse": round(r["mse"], 2), "mae": round(r["mae"], 3)}
                                                              for h, r in scored.items()}})
            print(json.dumps(runs[-1]), flush=True)
        baselines = {}
        for h in horizons:
            out = Path(tmp) / f"baseline{h}.json"
            subprocess.run([sys.executable, str(Path(__file__).with_name("series_baseline.py")), str(args.csv),
                            "--horizon", str(h), "--json", str(out)], check=True, stdout=subprocess.DEVNULL)
            baselines[f"h{h}"] = json.loads(out.read_text())["test"]
    report = {"rnnkit": {"options": {k: str(v) for k, v in options.items()}, "budget_s": args.budget, "runs": runs,
                         **{f"h{h}_median": {m: statistics.median(r[f"h{h}"][m] for r in runs) for m in ("mse", "mae")}
                            for h in horizons}},
              "baselines": baselines, "machine": describe()}
    emit(report, args.json)


if __name__ == "__main__":
    main()
