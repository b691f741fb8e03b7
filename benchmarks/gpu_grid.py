"""Training speed on a GPU: rnnkit's loop beside a bare cuDNN loop, three precisions, cuDNN against
per-step cells, over the char-rnn / torch-rnn grid.

For every cell (rnn, lstm, gru) x layers (1-3) x hidden size (128, 256, 512, 1024), at batch 50 x
sequence 50 (torch-rnn's benchmark shape) and at a larger batch (default 256 x 100), milliseconds per
training iteration of:

- `bare`: the loop a user writes by hand: nn.Embedding(65, 64) + nn.LSTM/GRU/RNN (cuDNN) + nn.Linear,
  AdamW, gradient clipping at 5, the state carried across chunks; in fp32, under bf16 autocast, and
  under fp16 autocast with a GradScaler;
- `rnnkit`: `rnnkit.train`'s own loop on the same shapes (its metrics.jsonl times, so setup is left
  out), `--precision fp32` and `bf16`;
- `cells` (batch 50 x 50 only): the same bare loop through nn.LSTMCell/GRUCell/RNNCell called once per
  character and layer, fp32: what a per-step implementation costs against cuDNN's fused kernels.

Each figure is the median of --steps iterations after 3 of warm-up, the device synchronised around
each (rnnkit's: their mean, from the times its metrics.jsonl records). The ceilings are measured in
the same run: dense fp32, TF32 and bf16 matrix products of 8192 squares and a device-to-device copy.
`tflops` is the training arithmetic (multiply-adds x 2 x 3, the backward pass at twice the forward)
per second. PyTorch's defaults are kept: cuDNN may use TF32 for
fp32 recurrences (torch.backends.cudnn.allow_tf32, recorded), plain matmuls do not.

    python benchmarks/gpu_grid.py [--steps 10] [--deadline 300] [--json FILE]
    python benchmarks/gpu_grid.py --device cpu --sizes 32 --layers 1 --large 8x8 --steps 2   # a dry run
    python benchmarks/gpu_grid.py --table benchmarks/results/gpu-grid-h200.json   # the README's table, figures

Rows are printed as they are measured; --deadline (seconds) stops starting new rows, so a lease of
fixed length always ends with its rows written (--json is rewritten after every row).
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
from train_speed import E, V, train_flops  # noqa: E402  (the same embedding, vocabulary and arithmetic count)

import rnnkit  # noqa: E402
from rnnkit.data import bundled_corpus  # noqa: E402

FUSED = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def sync_time(fn) -> float:
    """Seconds of fn(), the GPU (if any) synchronised before and after."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def ceilings(device) -> dict:
    """Measured TFLOP/s of 8192^3 matrix products (fp32, TF32, bf16) and device copy GB/s (read + write)."""
    out, n = {}, 8192 if device.type == "cuda" else 512
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        times = [sync_time(lambda: a @ b) for _ in range(10)]
        out[f"{name}_matmul_tflops"] = round(2 * n ** 3 / statistics.median(times) / 1e12, 1)
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(1 << 28 if device.type == "cuda" else 1 << 22, device=device)  # 1 GiB on a GPU
    y = torch.empty_like(x)
    y.copy_(x)
    times = [sync_time(lambda: y.copy_(x)) for _ in range(10)]
    out["copy_gb_s"] = round(2 * x.numel() * 4 / statistics.median(times) / 1e9)
    return out


class Stepped(nn.Module):
    """The bare model with per-step cells: one cell call per character and layer."""

    def __init__(self, cell: str, layers: int, H: int):
        super().__init__()
        self.kind = cell
        self.cells = nn.ModuleList(CELLS[cell](E if k == 0 else H, H) for k in range(layers))

    def forward(self, x, state):
        B, T, _ = x.shape
        if state is None:
            zeros = lambda: [x.new_zeros(B, c.hidden_size) for c in self.cells]  # noqa: E731
            state = (zeros(), zeros()) if self.kind == "lstm" else (zeros(),)
        h = list(state[0])
        c = list(state[1]) if self.kind == "lstm" else None
        outs = []
        for t in range(T):
            inp = x[:, t]
            for k, cell in enumerate(self.cells):
                if c is not None:
                    h[k], c[k] = cell(inp, (h[k], c[k]))
                else:
                    h[k] = cell(inp, h[k])
                inp = h[k]
            outs.append(inp)
        new = (h, c) if c is not None else (h,)
        return torch.stack(outs, 1), tuple([s.detach() for s in part] for part in new)


def bare_ms(cell: str, layers: int, H: int, B: int, T: int, steps: int, device, precision="fp32",
            stepped=False) -> float:
    torch.manual_seed(0)
    rnn = (Stepped(cell, layers, H) if stepped else FUSED[cell](E, H, layers, batch_first=True)).to(device)
    emb, head = nn.Embedding(V, E).to(device), nn.Linear(H, V).to(device)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    data = torch.randint(0, V, (B, (steps + 3) * T + 1), device=device)
    state, times = None, []

    def step(i):
        nonlocal state
        x, y = data[:, i * T:(i + 1) * T], data[:, i * T + 1:(i + 1) * T + 1]
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out, state = rnn(emb(x), state)
            loss = F.cross_entropy(head(out).reshape(-1, V).float(), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(params, 5.0)
        scaler.step(opt)
        scaler.update()
        if not stepped:
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    for i in range(steps + 3):
        times.append(sync_time(lambda: step(i)))
    return 1000 * statistics.median(times[3:])


def rnnkit_ms(cell: str, layers: int, H: int, B: int, T: int, steps: int, device, precision: str,
              tmp: Path) -> float:
    out = tmp / f"{cell}{layers}x{H}-{B}x{T}-{precision}"
    rnnkit.train(bundled_corpus(), out=out, cell=cell, num_layers=layers, hidden_size=H, embed_size=E, batch_size=B,
                 seq_len=T, max_steps=steps + 3, eval_every=0, sample_every=0, sample_length=0,
                 checkpoint_every=10_000, split="0.98,0.01,0.01", precision=precision, device=device.type,
                 progress=False, log=lambda m: None)
    elapsed = [r["elapsed"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    # The mean over the iterations after the 3 of warm-up: metrics.jsonl keeps milliseconds, too coarse for
    # a median of single iterations of a millisecond or two.
    return 1000 * (elapsed[-1] - elapsed[2]) / (len(elapsed) - 3)


def table(path: Path) -> str:
    """The README's table from a saved --json file: a row per model, both shapes side by side."""
    saved = json.loads(path.read_text())
    by = {(r["model"], r["batch"]): r for r in saved["rows"]}
    small, large = sorted({b for _, b in by})
    head = ("| model | 50x50 bare fp32 | rnnkit fp32 | rnnkit bf16 | per-step cells | large bare fp32 | bare bf16 | "
            "rnnkit fp32 | rnnkit bf16 | rnnkit TFLOP/s |")
    lines = [head.replace("large", f"{large}x{next(r['seq'] for r in saved['rows'] if r['batch'] == large)}"),
             "|" + " --- |" * head.count(" |")]
    fmt = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
    for model in dict.fromkeys(m for m, _ in by):
        a, b = by.get((model, small), {}), by.get((model, large), {})
        tf = max((b.get(k) or 0 for k in ("rnnkit_fp32_tflops", "rnnkit_bf16_tflops")), default=0)
        lines.append(f"| {model} | " + " | ".join(fmt(x.get(k)) for x, k in (
            (a, "bare_fp32_ms"), (a, "rnnkit_fp32_ms"), (a, "rnnkit_bf16_ms"), (a, "cells_fp32_ms"),
            (b, "bare_fp32_ms"), (b, "bare_bf16_ms"), (b, "rnnkit_fp32_ms"), (b, "rnnkit_bf16_ms"))) + f" | {tf:g} |")
    return "\n".join(lines)


def summary(path: Path) -> str:
    """The figures the README draws from a saved --json file, per shape: ratios as median (min-max)."""
    rows, out = json.loads(path.read_text())["rows"], []

    def spread(values):
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    for B in sorted({r["batch"] for r in rows}):
        at = [r for r in rows if r["batch"] == B and r.get("rnnkit_fp32_ms") and r.get("rnnkit_bf16_ms")]
        bf16 = [r["rnnkit_bf16_ms"] / r["rnnkit_fp32_ms"] for r in at]
        best = max(at, key=lambda r: r.get("rnnkit_fp32_tflops") or 0)
        out += [f"batch {B} x {at[0]['seq']}, {len(at)} models:",
                f"  bare fp32 ms: {min(r['bare_fp32_ms'] for r in at):g}-{max(r['bare_fp32_ms'] for r in at):g}",
                "  rnnkit / bare, fp32: " + spread([r["rnnkit_fp32_ms"] / r["bare_fp32_ms"] for r in at]),
                "  bare bf16 / bare fp32: " + spread([r["bare_bf16_ms"] / r["bare_fp32_ms"] for r in at]),
                f"  rnnkit bf16 more than 5% faster than fp32: {sum(x < 0.95 for x in bf16)}, "
                f"more than 5% slower: {sum(x > 1.05 for x in bf16)}",
                f"  most rnnkit fp32 TFLOP/s: {best['rnnkit_fp32_tflops']} ({best['model']})"]
        cells = [r["cells_fp32_ms"] / r["bare_fp32_ms"] for r in at if r.get("cells_fp32_ms")]
        if cells:
            out.append("  per-step cells / bare fp32: " + spread(cells))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="timed iterations per figure (default 10)")
    ap.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated cells (default rnn,lstm,gru)")
    ap.add_argument("--layers", default="1,2,3", help="comma-separated layer counts (default 1,2,3)")
    ap.add_argument("--sizes", default="128,256,512,1024", help="comma-separated hidden sizes")
    ap.add_argument("--large", default="256x100", help="the larger batch x sequence shape (default 256x100)")
    ap.add_argument("--deadline", type=float, default=0, help="seconds after which no new row starts (0: none)")
    ap.add_argument("--json", metavar="FILE", help="also write the ceilings and rows as JSON to FILE")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cuda (default); cpu only to try the script out, with small --sizes")
    ap.add_argument("--table", metavar="FILE", help="print the markdown table of a saved --json FILE and the "
                    "figures the README draws from it, and exit")
    args = ap.parse_args()
    if args.table:
        print(table(Path(args.table)) + "\n\n" + summary(Path(args.table)))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_grid.py: error: PyTorch sees no CUDA GPU (--device cpu tries the script out on the CPU)")
    t0, device = time.time(), torch.device(args.device)
    card = {"name": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if args.device == "cuda" else None,
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "host": describe()}
    limits = ceilings(device)
    print(json.dumps({"card": card, "ceilings": limits}), flush=True)
    LB, LT = map(int, args.large.split("x"))
    rows = []

    def write():
        if args.json:
            Path(args.json).write_text(json.dumps({"card": card, "ceilings": limits, "rows": rows}, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        for B, T in ((50, 50), (LB, LT)):
            for cell in args.cells.split(","):
                for layers in map(int, args.layers.split(",")):
                    for H in map(int, args.sizes.split(",")):
                        if args.deadline and time.time() - t0 > args.deadline:
                            print(f"deadline reached: {len(rows)} rows", flush=True)
                            write()
                            return
                        row = {"model": f"{cell} {layers}x{H}", "batch": B, "seq": T}
                        for key, fn in (
                                ("bare_fp32_ms", lambda: bare_ms(cell, layers, H, B, T, args.steps, device)),
                                ("bare_bf16_ms", lambda: bare_ms(cell, layers, H, B, T, args.steps, device, "bf16")),
                                ("bare_fp16_ms", lambda: bare_ms(cell, layers, H, B, T, args.steps, device, "fp16")),
                                ("rnnkit_fp32_ms", lambda: rnnkit_ms(cell, layers, H, B, T, args.steps, device,
                                                                     "fp32", Path(tmp))),
                                ("rnnkit_bf16_ms", lambda: rnnkit_ms(cell, layers, H, B, T, args.steps, device,
                                                                     "bf16", Path(tmp))),
                                ("cells_fp32_ms", (lambda: bare_ms(cell, layers, H, B, T, args.steps, device,
                                                                   stepped=True)) if B == 50 else None)):
                            if fn is None:
                                continue
                            try:
                                row[key] = round(fn(), 2)
                            except Exception as e:  # one failing figure must not cost the lease's table
                                row[key] = None
                                row.setdefault("errors", []).append(f"{key}: {type(e).__name__}: {e}"[:300])
                        flops = train_flops(cell, layers, H, B, T)
                        for p in ("fp32", "bf16"):
                            if row.get(f"rnnkit_{p}_ms"):
                                row[f"rnnkit_{p}_tflops"] = round(flops / row[f"rnnkit_{p}_ms"] * 1000 / 1e12, 2)
                        if row.get("rnnkit_bf16_ms") and row.get("bare_bf16_ms"):
                            row["ratio_bf16"] = round(row["rnnkit_bf16_ms"] / row["bare_bf16_ms"], 2)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                        write()
    print(f"done: {len(rows)} rows in {time.time() - t0:.0f} s", flush=True)
    write()


if __name__ == "__main__":
    main()
