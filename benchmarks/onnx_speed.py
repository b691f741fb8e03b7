"""Sampling speed of an exported model under onnxruntime, beside rnnkit's own samplers, in one run.

For freshly initialised 2-layer models (LSTM, GRU, RNN; 128 and 512 units; 65 symbols) at one
stream: characters per second of
- onnxruntime: `step.onnx` from `rnnkit export`, driven from Python as the README's example does
  (one session call per character, temperature sampling with NumPy), on the CPU provider;
- rnnkit fast: `rnnkit sample`'s fast NumPy stepper (rnnkit.fastsample);
- PyTorch: stepping the model itself one character at a time (the fast sampler's baseline).
Median of --repeats runs each. Needs onnx and onnxruntime (pip install -e ".[export]").

    python benchmarks/onnx_speed.py [--repeats 5] [--json FILE]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402
from sample_speed import rate, speed_models  # noqa: E402

from rnnkit.export import export_onnx  # noqa: E402


def onnx_rate(directory: Path, meta: dict, length: int, repeats: int) -> float:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same threads as the PyTorch paths
    step = ort.InferenceSession(str(directory / "step.onnx"), options, providers=["CPUExecutionProvider"])
    names = meta["inputs"][1:]
    runs = []
    for r in range(repeats):
        rng = np.random.default_rng(r + 1)
        state = {n: np.zeros((meta["num_layers"], 1, meta["hidden_size"]), np.float32) for n in names}
        token = np.zeros((1, 1), dtype=np.int64)
        t0 = time.perf_counter()
        for _ in range(length):
            logits, *new = step.run(None, {"tokens": token, **state})
            state = dict(zip(names, new))
            z = logits[0, -1]
            p = np.exp(z - z.max())
            token[0, 0] = rng.choice(len(p), p=p / p.sum())
        runs.append(length / (time.perf_counter() - t0))
    return statistics.median(runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="runs per measurement; the median is kept (default 5)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args()
    print(describe(), flush=True)
    rows = []
    for name, model, short in speed_models():
        with tempfile.TemporaryDirectory() as tmp:
            meta = export_onnx(model, tmp)
            row = {"model": name, "onnxruntime_b1": onnx_rate(Path(tmp), meta, short * 3, args.repeats),
                   "rnnkit_fast_b1": rate(model, 1, True, short * 10, args.repeats),
                   "pytorch_steps_b1": rate(model, 1, False, short // 3, args.repeats)}
        row = {k: (round(v) if isinstance(v, float) else v) for k, v in row.items()}
        row["fast_over_onnxruntime"] = round(row["rnnkit_fast_b1"] / row["onnxruntime_b1"], 2)
        rows.append(row)
        print(row, flush=True)
    emit({"chars_per_second": rows, "onnxruntime": __import__("onnxruntime").__version__, "machine": describe()},
         args.json)


if __name__ == "__main__":
    main()
