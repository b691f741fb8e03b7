"""Train the default model on tiny Shakespeare for a fixed wall-clock budget; report the validation loss.

The split is the one char-rnn and nanoGPT report on: first 90% of the characters train, last 10%
validate. The budget counts the training loop (periodic validation and checkpoints included), not
the one-off setup or the final validation. Usage:

    python benchmarks/train_budget.py                  # 140 s, default model
    python benchmarks/train_budget.py --budget 600     # 10 minutes
    python benchmarks/train_budget.py -- --hidden-size 512   # anything after -- goes to rnnkit train
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, parse_with_train_args  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.cli import build_parser  # noqa: E402
from rnnkit.config import DataConfig, ModelConfig, TrainConfig, overrides_from_args  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=140.0, help="training seconds (default 140)")
    ap.add_argument("--json", metavar="FILE", help="also write the result as JSON to FILE")
    args = parse_with_train_args(ap)  # rnnkit train options after --
    extra = build_parser().parse_args(["train", *args.train_args])
    options = {}
    for cls in (ModelConfig, DataConfig, TrainConfig):
        options.update(overrides_from_args(extra, cls))
    options.setdefault("split", "0.9,0.1,0")
    options.setdefault("sample_every", 0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        run = rnnkit.train(out=Path(tmp) / "run", budget=args.budget, progress=False, **options)
        wall = time.time() - t0
        rows = [json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    cfg = run.model.config
    train_chars = run.step * options.get("batch_size", TrainConfig.batch_size) * options.get("seq_len", TrainConfig.seq_len)
    result = {
        "budget_s": args.budget, "steps": run.step, "val_loss": round(run.final_val_loss, 4),
        "best_val_loss": round(run.best_val_loss, 4),
        "train_chars_per_s": round(train_chars / steps[-1]["elapsed"]),
        "model": f"{cfg.cell} {cfg.num_layers}x{cfg.hidden_size}, embed {cfg.embed_size}",
        "options": {k: str(v) for k, v in options.items()}, "wall_s": round(wall, 1), "machine": describe(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
