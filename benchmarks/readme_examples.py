"""How long the README's bigger training examples take on this machine, before a user starts one.

Times a few dozen optimizer steps of each example's model with rnnkit's defaults otherwise (batch 32 x
64 characters, `--precision auto`), on the Python standard library's top-level modules (the code
corpus of `inspect_models.sh`), and turns the measured characters per second into the time for the
example's whole run. The default 2x256 LSTM is timed the same way in the same run, as the baseline
the other figures compare against. Timing starts after warm-up steps and excludes setup.

    python benchmarks/readme_examples.py [--steps 30] [--json FILE]
"""

import argparse
import json
import statistics
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

import rnnkit  # noqa: E402

# (name, model options, the example's stop condition in epochs)
EXAMPLES = [
    ("default LSTM 2x256 (baseline)", {}, None),
    ("README: GRU 3x512, --max-epochs 20", {"cell": "gru", "num_layers": 3, "hidden_size": 512}, 20),
]
WARMUP = 5


def time_model(corpus: list[Path], options: dict, steps: int, tmp: Path) -> float:
    """Median seconds per optimizer step after warm-up, from the run's own metrics."""
    run = rnnkit.train([str(p) for p in corpus], out=tmp / "run", max_steps=WARMUP + steps, eval_every=0,
                       sample_every=0, sample_length=0, checkpoint_every=10_000, progress=False,
                       log=lambda m: None, force=True, **options)
    rows = [json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()]
    t = [r["elapsed"] for r in rows if "loss" in r]
    return statistics.median(b - a for a, b in zip(t[WARMUP:], t[WARMUP + 1:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per model (default 30)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = ap.parse_args()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    corpus = sorted(stdlib.glob("*.py"))
    train_chars = 0.9 * sum(len(p.read_text(encoding="utf-8", errors="replace")) for p in corpus)
    chars_per_step = rnnkit.TrainConfig.batch_size * rnnkit.TrainConfig.seq_len
    print(describe())
    print(f"corpus: {len(corpus)} top-level modules of {stdlib}, {train_chars / 1e6:.1f}M training characters")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options, epochs in EXAMPLES:
            per_step = time_model(corpus, options, args.steps, Path(tmp))
            speed = chars_per_step / per_step
            row = {"example": name, "ms_per_step": round(per_step * 1000, 1), "chars_per_s": round(speed),
                   "epoch_minutes": round(train_chars / speed / 60, 1)}
            if epochs:
                row["run_hours"] = round(epochs * train_chars / speed / 3600, 1)
            results.append(row)
            print(json.dumps(row))
    base = results[0]["chars_per_s"]
    for row in results[1:]:
        print(f"{row['example']}: {base / row['chars_per_s']:.1f}x slower than the default model")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": describe(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
