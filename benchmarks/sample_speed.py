"""Sampling throughput: characters per second of `rnnkit sample`'s generation loop (stepping,
filtering and drawing) on the compiled loop (rnnkit/_csample.c), on the NumPy stepper it replaced,
and stepping the PyTorch model (embedding, `nn.LSTM`/`nn.GRU`/`nn.RNN`, linear head, one call a
character: the baseline), at 1, 8 and 64 streams, in one run.

Beside the speeds it prints what the compiled loop achieves at one stream (GFLOP/s of its products
and GB/s of weights read) and the machine's measured matrix-vector rates in the same run: NumPy's
BLAS on one and on all threads, for a matrix that fits the core's L2 cache and one that does not, and
the float32 FMA peak (benchmarks/machine.fma_peak). The compiled loop runs with fp32, bf16 and int8
copies of the weights (`--sample-weights`).

Models are freshly initialised (speed does not depend on the weights), 2 layers, vocabulary 65 like
tiny Shakespeare, embedding 64. Each figure is the median of --repeats runs.

    python benchmarks/sample_speed.py [--repeats 5] [--json FILE]
    RNNKIT_SAMPLER=avx2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/sample_speed.py   # an AVX2-only CPU's code
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, fma_peak  # noqa: E402

from rnnkit import fastsample  # noqa: E402
from rnnkit.config import ModelConfig  # noqa: E402
from rnnkit.data import Vocab  # noqa: E402
from rnnkit.models import CharRNN  # noqa: E402
from rnnkit.sample import generate  # noqa: E402

VOCAB = Vocab("char", [chr(32 + i) for i in range(64)] + ["\n"])


def rate(model, streams, fast, length, repeats, **options):
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        generate(model, streams, length=length, fast=fast, seed=r + 1, **options)
        runs.append(streams * length / (time.perf_counter() - t0))
    return statistics.median(runs)


def numpy_rate(model, streams, length, repeats):
    """The NumPy stepper (the compiled loop switched off for these runs)."""
    old = os.environ.get("RNNKIT_SAMPLER")
    os.environ["RNNKIT_SAMPLER"] = "numpy"
    try:
        return rate(model, streams, True, length, repeats)
    finally:
        if old is None:
            del os.environ["RNNKIT_SAMPLER"]
        else:
            os.environ["RNNKIT_SAMPLER"] = old


def speed_models():
    """(name, model, length) for each freshly initialised 2-layer model the sampling benchmarks time;
    `length` is a run's characters at the slow paths' pace (the larger models get fewer)."""
    for cell in ("lstm", "gru", "rnn"):
        for hidden in (128, 512):
            torch.manual_seed(0)
            model = CharRNN(ModelConfig(cell=cell, num_layers=2, hidden_size=hidden, embed_size=64,
                                        vocab_size=len(VOCAB)), vocab=VOCAB).eval()
            yield f"{cell} 2x{hidden}", model, 300 if hidden == 512 else 1000


def step_work(model) -> tuple[float, int]:
    """(floating-point operations, weights read) of one step of one stream on the compiled loop: a
    multiply and an add for every weight of its products (the table lookup aside)."""
    weights = sum(w.size for w in fastsample.FastStepper(model, compiled_loop=False).w_next)
    return 2.0 * weights, weights


def matvec_peak(repeats: int) -> dict:
    """GFLOP/s and GB/s of x @ W (fp32) through NumPy's BLAS: W of 1 MB (in L2) and of 64 MB (not in
    any cache), on one thread and on all of them; the best of `repeats` batches of calls."""
    out = {}
    for name, (K, M) in {"in_cache": (256, 1024), "from_memory": (4096, 4096)}.items():
        w = np.random.default_rng(0).random((K, M), dtype=np.float32)
        x = np.random.default_rng(1).random((1, K), dtype=np.float32)
        calls = max(3, int(2e8 // w.nbytes))
        for threads in (1, os.cpu_count() or 1):
            with threadpool_limits(threads):
                best = float("inf")
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    for _ in range(calls):
                        x @ w
                    best = min(best, (time.perf_counter() - t0) / calls)
            out[f"{name}_{threads}_threads"] = {"MB": round(w.nbytes / 1e6, 1), "GFLOP/s": round(2 * K * M / best / 1e9, 1),
                                                "GB/s": round(w.nbytes / best / 1e9, 1)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    isa = fastsample.compiled()
    print(f"machine: {describe()}; compiled sampler: {isa or 'not built'}", flush=True)
    peak = matvec_peak(args.repeats)
    print("matrix-vector through NumPy's BLAS:", json.dumps(peak), flush=True)
    fma = fma_peak()
    print("float32 FMA peak (registers only):", json.dumps(fma), flush=True)
    rows = []
    for name, model, short in speed_models():
        flops, weights = step_work(model)
        long = short * 20
        row = {"model": name,
               "pytorch_b1": rate(model, 1, False, short // 3, args.repeats),
               "numpy_b1": numpy_rate(model, 1, short * 5, args.repeats)}
        if isa:
            row["compiled_b1"] = rate(model, 1, True, long, args.repeats)
            row["compiled_bf16_b1"] = rate(model, 1, True, long, args.repeats, sample_weights="bf16")
            row["compiled_int8_b1"] = rate(model, 1, True, long, args.repeats, sample_weights="int8")
            row["compiled_b8"] = rate(model, 8, True, long // 4, args.repeats)
        row["pytorch_b64"] = rate(model, 64, False, short // 3, args.repeats)
        row["numpy_b64"] = numpy_rate(model, 64, short, args.repeats)
        if isa:
            row["compiled_b64"] = rate(model, 64, True, short * 2, args.repeats)
            for key, size in (("compiled_b1", 4), ("compiled_bf16_b1", 2), ("compiled_int8_b1", 1)):
                row[f"{key}_GFLOP/s"] = round(row[key] * flops / 1e9, 1)
                row[f"{key}_GB/s"] = round(row[key] * weights * size / 1e9, 1)
        row["step_MFLOP"] = round(flops / 1e6, 3)
        row["weights_MB_fp32"] = round(weights * 4 / 1e6, 2)
        row = {k: (round(v) if k.endswith(("_b1", "_b8", "_b64")) else v) for k, v in row.items()}
        best = max(row.get("compiled_b1", 0), row.get("compiled_bf16_b1", 0), row.get("compiled_int8_b1", 0),
                   row["numpy_b1"])
        row["speedup_b1"] = round(best / row["pytorch_b1"], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"chars_per_second": rows, "matvec_peak": peak, "fma_peak": fma, "compiled": isa,
              "env": {k: os.environ[k] for k in ("RNNKIT_SAMPLER", "ATEN_CPU_CAPABILITY") if k in os.environ},
              "machine": describe()}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
