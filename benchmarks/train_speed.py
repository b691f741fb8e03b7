"""Training throughput over the char-rnn / torch-rnn grid, rnnkit's loop against a bare PyTorch loop.

For every cell (rnn, lstm, gru) x layers (1-3) x hidden size (64, 128, 256, 512), batch 50 x
sequence 50 as in torch-rnn's benchmarks: milliseconds per iteration and characters per second of
`rnnkit.train` (read from its metrics.jsonl, so setup is excluded) and of a bare loop
(nn.Embedding + nn.LSTM/GRU/RNN + nn.Linear, Adam, clipping, truncated BPTT) on the same shapes, the
ratio between them, and for the larger models the fraction of this machine's measured float32
matrix-multiply peak that the training arithmetic reaches. Medians over --steps steps after warm-up.

    python benchmarks/train_speed.py [--steps 12] [--json FILE]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data import bundled_corpus  # noqa: E402

B, T, E, V = 50, 50, 64, 65
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def matmul_peak() -> float:
    """Measured float32 GFLOP/s of large square matrix products: the best of several sizes and runs,
    which is what this machine's BLAS actually reaches (the practical peak)."""
    best = 0.0
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        for _ in range(5 if n < 4096 else 3):
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def train_flops(cell: str, layers: int, H: int) -> float:
    """Multiply-adds of one training iteration x 2 x 3 (forward, and backward at twice the forward)."""
    g = GATES[cell]
    per_char = sum(g * H * ((E if k == 0 else H) + H) for k in range(layers)) + H * V
    return 2 * 3 * per_char * B * T


def bare_ms(cell: str, layers: int, H: int, steps: int) -> float:
    torch.manual_seed(0)
    rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](E, H, layers, batch_first=True)
    emb, head = nn.Embedding(V, E), nn.Linear(H, V)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    data = torch.randint(0, V, (B, (steps + 3) * T + 1))
    state, times = None, []
    for i in range(steps + 3):
        t = time.perf_counter()
        x, y = data[:, i * T:(i + 1) * T], data[:, i * T + 1:(i + 1) * T + 1]
        out, state = rnn(emb(x), state)
        loss = F.cross_entropy(head(out).reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[3:])


def rnnkit_ms(cell: str, layers: int, H: int, steps: int, text: Path, tmp: Path) -> float:
    out = tmp / f"{cell}{layers}x{H}"
    rnnkit.train(text, out=out, cell=cell, num_layers=layers, hidden_size=H, embed_size=E, batch_size=B, seq_len=T,
                 max_steps=steps + 3, eval_every=0, sample_every=0, sample_length=0, checkpoint_every=10_000,
                 split="0.98,0.01,0.01", precision="fp32",  # fp32 like the bare loop
                 progress=False, log=lambda m: None)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    times = [b["elapsed"] - a["elapsed"] for a, b in zip(rows, rows[1:]) if "loss" in a and "loss" in b]
    return 1000 * statistics.median(times[2:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    peak = matmul_peak()
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in ("rnn", "lstm", "gru"):
            for layers in (1, 2, 3):
                for H in (64, 128, 256, 512):
                    ours = rnnkit_ms(cell, layers, H, args.steps, bundled_corpus(), Path(tmp))
                    bare = bare_ms(cell, layers, H, args.steps)
                    row = {"model": f"{cell} {layers}x{H}", "rnnkit_ms": round(ours, 1), "bare_ms": round(bare, 1),
                           "ratio": round(ours / bare, 3), "rnnkit_chars_per_s": round(B * T / ours * 1000),
                           "peak_fraction": round(train_flops(cell, layers, H) / (ours / 1000) / 1e9 / peak, 3)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"matmul_peak_gflops": round(peak), "batch": B, "seq_len": T,
                                               "rows": rows, "machine": describe()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
