"""Train the default model on tiny Shakespeare for a fixed wall-clock budget; report the validation loss.

The split is the one char-rnn and nanoGPT report on: first 90% of the characters train, last 10%
validate. The budget counts the training loop (periodic validation and checkpoints included), not
the one-off setup or the final validation.

Beside rnnkit, in the same run, on the same characters and split and for the same budget, it trains
the baseline a user would write by hand in forty lines of PyTorch (`baseline` below): embedding 64,
a 2 x 256 `nn.LSTM`, a linear head, AdamW at 3e-3 decaying along a cosine to 10% over the budget,
gradient norms clipped at 5, batch 32 x 64 with the state carried across chunks, fp32; validated on
the whole last 10% as one stream with the state carried. Usage:

    python benchmarks/train_budget.py                  # 140 s, default model
    python benchmarks/train_budget.py --budget 600     # 10 minutes
    python benchmarks/train_budget.py -- --hidden-size 512   # anything after -- goes to rnnkit train
    python benchmarks/train_budget.py --no-baseline    # rnnkit alone
    python benchmarks/train_budget.py --corpus stdlib  # another corpus (both sides): see --help
    python benchmarks/train_budget.py --repeats 2      # each side twice, alternating: medians
    python benchmarks/train_budget.py --device cuda    # both sides on the GPU (rnnkit: --device cuda)
"""

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, parse_with_train_args  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.cli import build_parser  # noqa: E402
from rnnkit.config import DataConfig, ModelConfig, TrainConfig, overrides_from_args  # noqa: E402
from rnnkit.data import bundled_corpus  # noqa: E402
from rnnkit.data.corpus import normalize_newlines  # noqa: E402

STDLIB_CHARS = 1_115_394  # the stdlib corpus is cut to tiny Shakespeare's length


def stdlib_corpus(out: Path) -> Path:
    """A code corpus the size of tiny Shakespeare from this Python's standard library: its top-level
    modules in name order, concatenated (the same text on every machine with the same Python)."""
    import sysconfig
    parts, total = [], 0
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = normalize_newlines(f.read_text(encoding="utf-8", errors="replace"))
        parts.append(text)
        total += len(text)
        if total >= STDLIB_CHARS:
            break
    out.write_text("".join(parts)[:STDLIB_CHARS], encoding="utf-8")
    return out


class HandLSTM(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, 64)
        self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
        self.head = nn.Linear(256, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


def baseline(text: str, budget: float, seed: int = 0, device: str = "cpu") -> dict:
    """The hand-written loop: train for `budget` seconds on the first 90% of `text`, then the
    validation loss (nats/char) over the last 10%, one stream, the state carried."""
    torch.manual_seed(seed)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long, device=device)
    cut = int(len(ids) * 0.9)
    train, val = ids[:cut], ids[cut:]
    B, T = 32, 64
    per = (len(train) - 1) // B
    streams = train[:B * per + 1]
    inputs, targets = streams[:-1].view(B, per), streams[1:].view(B, per)
    model = HandLSTM(len(chars)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    state, pos, steps, t0 = None, 0, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < budget:
        for g in opt.param_groups:  # cosine from 3e-3 down to 10% of it at the end of the budget
            g["lr"] = 3e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        if pos + T > per:  # an epoch: back to the start of every stream, with a fresh state
            pos, state = 0, None
        x, y = inputs[:, pos:pos + T], targets[:, pos:pos + T]
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        pos, steps = pos + T, steps + 1
    if device == "cuda":
        torch.cuda.synchronize()  # the steps still queued on the GPU count
    train_s = time.perf_counter() - t0
    model.eval()
    total, state = 0.0, None
    with torch.no_grad():
        for i in range(0, len(val) - 1, 4096):
            x, y = val[i:i + 4096][None], val[i + 1:i + 4097][None]
            x = x[:, :y.shape[1]]
            logits, state = model(x, state)
            total += float(nn.functional.cross_entropy(logits[0], y[0], reduction="sum"))
    return {"val_loss": round(total / (len(val) - 1), 4), "steps": steps,
            "train_chars_per_s": round(steps * B * T / train_s), "model": "lstm 2x256, embed 64 (nn.LSTM)"}


def rnnkit_run(corpus: Path | None, budget: float, options: dict, out: Path) -> dict:
    """rnnkit.train for `budget` seconds with `options` (None: the bundled corpus); its result."""
    t0 = time.time()
    run = rnnkit.train(str(corpus) if corpus else None, out=out, budget=budget, progress=False, **options)
    wall = time.time() - t0
    steps = [r for r in (json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    cfg = run.model.config
    chars = run.step * options.get("batch_size", TrainConfig.batch_size) * options.get("seq_len", TrainConfig.seq_len)
    return {"steps": run.step, "val_loss": round(run.final_val_loss, 4), "best_val_loss": round(run.best_val_loss, 4),
            "train_chars_per_s": round(chars / steps[-1]["elapsed"]), "wall_s": round(wall, 1),
            "model": f"{cfg.cell} {cfg.num_layers}x{cfg.hidden_size}, embed {cfg.embed_size}"}


def summary(runs: list[dict]) -> dict:
    """One run as it is; several: the median loss and speed, every run listed."""
    if len(runs) == 1:
        return runs[0]
    middle = lambda key: statistics.median(r[key] for r in runs)
    return {**runs[0], "val_loss": round(middle("val_loss"), 4), "steps": round(middle("steps")),
            "train_chars_per_s": round(middle("train_chars_per_s")), "runs": runs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=140.0, help="training seconds (default 140)")
    ap.add_argument("--json", metavar="FILE", help="also write the result as JSON to FILE")
    ap.add_argument("--no-baseline", action="store_true", help="skip the hand-written PyTorch loop")
    ap.add_argument("--corpus", metavar="FILE", help="train both on FILE (last 10%% validates) instead of the "
                    "bundled tiny Shakespeare; 'stdlib' builds a code corpus of the same length from this "
                    "Python's standard library (its top-level modules in name order)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both sides train: cpu "
                    "(default) or cuda; rnnkit gets --device DEVICE unless a --device follows --")
    ap.add_argument("--repeats", type=int, default=1, help="train each side this many times, alternating which "
                    "goes first (the machine's speed drifts), and report medians (default 1)")
    args = parse_with_train_args(ap)  # rnnkit train options after --
    extra = build_parser().parse_args(["train", *args.train_args])
    options = {}
    for cls in (ModelConfig, DataConfig, TrainConfig):
        options.update(overrides_from_args(extra, cls))
    options.setdefault("split", "0.9,0.1,0")
    options.setdefault("device", args.device)
    options.setdefault("sample_every", 0)
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = None
        if args.corpus:
            corpus = stdlib_corpus(Path(tmp) / "stdlib.txt") if args.corpus == "stdlib" else Path(args.corpus)
        text = normalize_newlines((corpus or bundled_corpus()).read_text(encoding="utf-8"))  # as rnnkit reads it
        for i in range(args.repeats):
            sides = [lambda: ours.append(rnnkit_run(corpus, args.budget, options, Path(tmp) / f"run{i}"))]
            if not args.no_baseline:
                sides.append(lambda: theirs.append(baseline(text, args.budget, device=args.device)))
            for side in (sides if i % 2 == 0 else sides[::-1]):
                side()
    result = {"budget_s": args.budget, **summary(ours), "options": {k: str(v) for k, v in options.items()},
              "corpus": args.corpus or "tiny shakespeare (bundled)", "machine": describe()}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
    if theirs:
        result["baseline"] = summary(theirs)
        result["ahead_of_baseline"] = round(result["baseline"]["val_loss"] - result["val_loss"], 4)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
