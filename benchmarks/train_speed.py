"""Training throughput over the char-rnn / torch-rnn grid, rnnkit's loop against a bare PyTorch loop.

For every cell (rnn, lstm, gru, mingru, minlstm) x layers (1-3) x hidden size (64, 128, 256, 512),
batch 50 x sequence 50 as in torch-rnn's benchmarks: milliseconds per iteration and characters per
second of `rnnkit.train` (read from its metrics.jsonl, so setup is excluded) and of a bare loop
(nn.Embedding + nn.LSTM/GRU/RNN + nn.Linear, Adam, clipping, truncated BPTT) on the same shapes, the
ratio between them. mingru and minlstm have no PyTorch layer to compare with: their row's bare loop is
the same rnnkit model trained through the parallel log-space scan instead of the CPU's default loop.

Two limits, both measured in the same run: the hardware's float32 multiply-add peak (`fma_peak`:
register-only FMAs at the widest vector width, on every core at once), which nothing can beat, and
what torch.matmul's BLAS reaches on large square products. `fma_fraction` is the training arithmetic
(multiply-adds x 2 x 3 for forward and backward) per second over the first: the honest efficiency.
Medians over --steps steps after warm-up.

    python benchmarks/train_speed.py [--steps 12] [--cells lstm,gru] [--sizes 256,512] [--json FILE]
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
from machine import describe, fma_peak  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data import bundled_corpus  # noqa: E402

B, T, E, V = 50, 50, 64, 65
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "mingru": 2, "minlstm": 3}
SCAN = ("mingru", "minlstm")  # gates from the input alone: no recurrent matrix


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


def train_flops(cell: str, layers: int, H: int, batch: int = B, seq: int = T) -> float:
    """Multiply-adds of one training iteration x 2 x 3 (forward, and backward at twice the forward)."""
    g, rec = GATES[cell], 0 if cell in SCAN else H
    per_char = sum(g * H * ((E if k == 0 else H) + rec) for k in range(layers)) + H * V
    return 2 * 3 * per_char * batch * seq


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


def scan_ms(cell: str, layers: int, H: int, steps: int) -> float:
    """A mingru/minlstm model's bare loop (as `bare_ms`) through the parallel log-space scan."""
    from rnnkit.config import ModelConfig
    from rnnkit.models import CharRNN
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell=cell, num_layers=layers, hidden_size=H, embed_size=E, vocab_size=V))
    model.rnn.mode = "log"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = torch.randint(0, V, (B, (steps + 3) * T + 1))
    state, times = None, []
    for i in range(steps + 3):
        t = time.perf_counter()
        x, y = data[:, i * T:(i + 1) * T], data[:, i * T + 1:(i + 1) * T + 1]
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = model.detach_state(state)
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
    ap.add_argument("--steps", type=int, default=12, help="timed steps per model (default 12)")
    ap.add_argument("--cells", default=",".join(GATES), help="comma-separated cells (default: all five)")
    ap.add_argument("--layers", default="1,2,3", help="comma-separated layer counts (default 1,2,3)")
    ap.add_argument("--sizes", default="64,128,256,512", help="comma-separated hidden sizes (default 64,128,256,512)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    args = ap.parse_args()
    fma = fma_peak(torch.get_num_threads())
    peak = matmul_peak()
    print(f"float32 FMA peak: {fma}; torch.matmul peak: {peak:.0f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells.split(","):
            for layers in map(int, args.layers.split(",")):
                for H in map(int, args.sizes.split(",")):
                    ours = rnnkit_ms(cell, layers, H, args.steps, bundled_corpus(), Path(tmp))
                    bare = (scan_ms if cell in SCAN else bare_ms)(cell, layers, H, args.steps)
                    gflops = train_flops(cell, layers, H) / (ours / 1000) / 1e9
                    row = {"model": f"{cell} {layers}x{H}", "rnnkit_ms": round(ours, 1), "bare_ms": round(bare, 1),
                           "bare": "log-space scan" if cell in SCAN else "nn." + cell.upper(),
                           "ratio": round(ours / bare, 3), "rnnkit_chars_per_s": round(B * T / ours * 1000),
                           "gflops": round(gflops, 1), "matmul_fraction": round(gflops / peak, 3),
                           "fma_fraction": round(gflops / fma["all_cores_gflops"], 3) if fma else None}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"fma_peak": fma, "matmul_peak_gflops": round(peak), "batch": B,
                                               "seq_len": T, "rows": rows, "machine": describe()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
