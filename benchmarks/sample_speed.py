"""Sampling throughput: characters per second of `rnnkit sample`'s generation loop (stepping,
filtering and drawing), fast NumPy stepper against the plain PyTorch model, batch 1 and batch 64.

Models are freshly initialised (speed does not depend on the weights), vocabulary 65 like tiny
Shakespeare, embedding 64. Each figure is the median of --repeats runs.

    python benchmarks/sample_speed.py [--repeats 5] [--json FILE]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from rnnkit.config import ModelConfig  # noqa: E402
from rnnkit.data import Vocab  # noqa: E402
from rnnkit.models import CharRNN  # noqa: E402
from rnnkit.sample import generate  # noqa: E402

VOCAB = Vocab("char", [chr(32 + i) for i in range(64)] + ["\n"])


def rate(model, streams, fast, length, repeats):
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        generate(model, streams, length=length, fast=fast, seed=r + 1)
        runs.append(streams * length / (time.perf_counter() - t0))
    return statistics.median(runs)


def speed_models():
    """(name, model, length) for each freshly initialised 2-layer model the sampling benchmarks time;
    `length` is a run's characters at the slow paths' pace (the larger models get fewer)."""
    for cell in ("lstm", "gru", "rnn"):
        for hidden in (128, 512):
            torch.manual_seed(0)
            model = CharRNN(ModelConfig(cell=cell, num_layers=2, hidden_size=hidden, embed_size=64,
                                        vocab_size=len(VOCAB)), vocab=VOCAB).eval()
            yield f"{cell} 2x{hidden}", model, 300 if hidden == 512 else 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    rows = []
    for name, model, short in speed_models():
        row = {"model": name,
               "plain_b1": rate(model, 1, False, short // 3, args.repeats),
               "fast_b1": rate(model, 1, True, short * 10, args.repeats),  # ~0.3 s a run
               "plain_b64": rate(model, 64, False, short // 3, args.repeats),
               "fast_b64": rate(model, 64, True, short, args.repeats)}
        row = {k: (round(v) if isinstance(v, float) else v) for k, v in row.items()}
        row["speedup_b1"] = round(row["fast_b1"] / row["plain_b1"], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"chars_per_second": rows, "machine": describe()}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
