"""Training throughput of rnnkit's encoder-decoder against the PyTorch tutorial's way of training one,
on the same pairs, with models of the same size, in the same run.

The tutorial ("NLP from scratch: translation with a sequence to sequence network and attention", in
its original form) trains one pair at a time: a GRU encoder, a GRU decoder with additive attention
stepping one token at a time with teacher forcing, a backward pass and an optimizer step per pair.
The same loop is written here (`TutorialSeq2Seq`, 1 layer of H units, embedding E, AdamW), and run for
`--seconds`; then `rnnkit train --task seq2seq` with the same cell, sizes and attention, batches of
128, for the same time, three ways: with input feeding (the decoder stepped a token at a time) in
fp32; without it (the decoder in one fused call) in fp32; and without it at `--precision auto` (bf16
on CPUs with native bf16, the default). Each reports target tokens (the end symbol included) per
second of training.
Data: the pairs file of g2p_data.py (grapheme to phoneme).

    python benchmarks/seq2seq_speed.py runs/cmudict.tsv [--seconds 60] [--json FILE]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.config import PairsConfig  # noqa: E402
from rnnkit.data.pairs import BOS, EOS, SideVocab  # noqa: E402
from rnnkit.tasks.seq2seq import splits  # noqa: E402

H, E = 256, 64


class TutorialSeq2Seq(nn.Module):
    """One pair at a time, as the tutorial: encoder GRU over the source, decoder GRU with additive
    attention over the encoder outputs, one step per target token."""

    def __init__(self, source_size: int, target_size: int):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(source_size, E), nn.Embedding(target_size, E)
        self.encoder, self.decoder = nn.GRU(E, H, batch_first=True), nn.GRU(E + H, H, batch_first=True)
        self.w_h, self.w_m, self.v = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, 1)
        self.out = nn.Linear(H, target_size)

    def loss(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        memory, h = self.encoder(self.src_embed(source)[None])  # (1, S, H), (1, 1, H)
        y, total = torch.tensor([BOS]), 0.0
        for t in range(len(target)):
            scores = self.v(torch.tanh(self.w_h(h[-1])[:, None] + self.w_m(memory))).squeeze(-1)  # (1, S)
            context = torch.bmm(scores.softmax(-1)[:, None], memory)[:, 0]  # (1, H)
            out, h = self.decoder(torch.cat([self.tgt_embed(y), context], -1)[:, None], h)
            total = total + F.cross_entropy(self.out(out[:, 0]), target[t:t + 1])
            y = target[t:t + 1]  # teacher forcing
        return total / len(target)


def tutorial_tokens_per_second(pairs, source_vocab, target_vocab, seconds: float) -> tuple[float, int]:
    torch.manual_seed(0)
    model = TutorialSeq2Seq(len(source_vocab), len(target_vocab))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens, n, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s, t = pairs.sources[n % len(pairs)], pairs.targets[n % len(pairs)]
        src = torch.from_numpy(source_vocab.encode(s))
        tgt = torch.from_numpy(np.concatenate([target_vocab.encode(t), [EOS]]))
        loss = model.loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens += len(tgt)
        n += 1
    return tokens / (time.perf_counter() - t0), n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the TSV from g2p_data.py")
    ap.add_argument("--seconds", type=float, default=60.0, help="training seconds of each (default 60)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args()
    print(describe(), flush=True)
    train, _, _ = splits(PairsConfig(paths=[str(args.data)]))
    source_vocab, target_vocab = SideVocab.from_texts("char", train.sources), SideVocab.from_texts("word", train.targets)
    tutorial, pairs_done = tutorial_tokens_per_second(train, source_vocab, target_vocab, args.seconds)
    mean_tokens = float(np.mean([len(t.split()) + 1 for t in train.targets]))
    report = {"machine": describe(), "seconds": args.seconds, "hidden_size": H, "embed_size": E,
              "tutorial": {"tokens_per_s": round(tutorial, 1), "pairs": pairs_done}}
    # rnnkit three ways: the decoder stepped token by token (input feeding makes each step need the
    # last), in one fused call (no input feeding) in fp32, and the same with --precision auto (bf16
    # autocast on a CPU that multiplies bf16 natively, fp32 elsewhere).
    for name, feeding, precision in (("rnnkit_stepped_fp32", True, "fp32"), ("rnnkit_one_call_fp32", False, "fp32"),
                                     ("rnnkit", False, "auto")):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run = rnnkit.train(args.data, out=Path(tmp) / "run", task="seq2seq", cell="gru", num_layers=1,
                               hidden_size=H, embed_size=E, attention="additive", input_feeding=feeding,
                               precision=precision, batch_size=128, budget=args.seconds, eval_every=0,
                               sample_every=0, checkpoint_every=100000, progress=False)
            wall = time.perf_counter() - t0
        tps = run.step * 128 * mean_tokens / args.seconds  # training time only (the budget), not the setup
        report[name] = {"tokens_per_s": round(tps, 1), "steps": run.step, "batch_size": 128,
                        "input_feeding": feeding, "precision": precision,
                        "wall_s_with_setup_and_final_validation": round(wall, 1),
                        "speedup_over_tutorial": round(tps / tutorial, 1)}
    report["speedup"] = report["rnnkit"]["speedup_over_tutorial"]
    emit(report, args.json)


if __name__ == "__main__":
    main()
