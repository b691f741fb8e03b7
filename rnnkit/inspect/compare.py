"""An RNN against the best n-gram model on the same test text, character by character.

The paper's error analysis (Karpathy, Johnson & Fei-Fei 2015, section 4.4): overall loss for each,
then where the RNN wins or loses, broken down by the class of the character being predicted and by
its position in the line (characters after the last newline). Both models are scored on the same
positions: every test character but the first, which neither can predict from context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..plotting import pyplot, save_png
from .ngram import NGramModel, joint_vocab, loss_by_order

CLASSES = ("letter", "space", "newline", "digit", "punctuation", "other")
POSITION_BUCKETS = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 7), (8, 15), (16, 31), (32, 63), (64, None))


def char_class(c: str) -> str:
    if c == "\n":
        return "newline"
    if c in " \t":
        return "space"
    if c.isalpha():
        return "letter"
    if c.isdigit():
        return "digit"
    if c.isprintable():
        return "punctuation"
    return "other"


@torch.no_grad()
def rnn_char_losses(model, text: str, chunk_len: int = 1024) -> np.ndarray:
    """Loss (nats) of every character given all before it, one stream with the state carried; (T,),
    position 0 NaN."""
    tokens = torch.from_numpy(model.vocab.encode(text).astype(np.int64))[None]  # (1, T)
    model.eval()
    device = next(model.parameters()).device
    out, state = [np.array([np.nan])], None
    for t0 in range(0, tokens.shape[1] - 1, chunk_len):
        x = tokens[:, t0:t0 + chunk_len]
        y = tokens[:, t0 + 1:t0 + 1 + chunk_len]
        logits, state = model(x[:, :y.shape[1]].to(device), state)
        out.append(F.cross_entropy(logits[0].float(), y[0].to(device), reduction="none").cpu().numpy())
    return np.concatenate(out)


@dataclass
class Comparison:
    n: int  # the n-gram order compared (the best on the test text)
    ngram_by_order: dict  # n -> test loss
    rnn_loss: float
    ngram_loss: float
    by_class: list  # (class, count, rnn loss, n-gram loss)
    by_position: list  # (bucket label, count, rnn loss, n-gram loss)

    def table(self) -> str:
        lines = [f"RNN       {self.rnn_loss:.4f} nats/char",
                 f"{self.n}-gram    {self.ngram_loss:.4f} nats/char (the best of n = 1..{max(self.ngram_by_order)})",
                 "", f"{'next character':<16}{'count':>9}{'RNN':>9}{'n-gram':>9}{'RNN - n-gram':>14}"]
        lines += [f"{name:<16}{count:>9,}{r:>9.3f}{g:>9.3f}{r - g:>+14.3f}" for name, count, r, g in self.by_class]
        lines += ["", f"{'position in line':<16}{'count':>9}{'RNN':>9}{'n-gram':>9}{'RNN - n-gram':>14}"]
        lines += [f"{name:<16}{count:>9,}{r:>9.3f}{g:>9.3f}{r - g:>+14.3f}" for name, count, r, g in self.by_position]
        return "\n".join(lines)

    def plot(self, path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=110)
        for ax, rows, title in ((axes[0], self.by_class, "by class of the next character"),
                                (axes[1], self.by_position, "by position in the line")):
            x = np.arange(len(rows))
            ax.bar(x - 0.2, [r[2] for r in rows], 0.4, label="RNN")
            ax.bar(x + 0.2, [r[3] for r in rows], 0.4, label=f"{self.n}-gram")
            ax.set_xticks(x, [r[0] for r in rows], rotation=30, fontsize=8)
            ax.set(title=title, ylabel="loss (nats / character)")
            ax.legend(fontsize=8)
        fig.tight_layout()
        save_png(fig, path)


def compare(model, train_text: str, test_text: str, max_n: int = 20, unknown: str = "error") -> Comparison:
    """Fit n-grams of order 1..max_n on `train_text`, pick the best on `test_text`, and line it up
    against `model` (a CharRNN with its vocabulary) position by position. `unknown`: test characters
    the RNN's vocabulary lacks are an "error", or "skip" drops them from the test text (for both)."""
    # Both models see the text with the line endings the RNN's run trained on.
    train_text, test_text = model.normalize_text(train_text), model.normalize_text(test_text)
    if unknown == "skip":
        test_text = model.vocab.known_only(test_text)
    vocab = joint_vocab(train_text, test_text)
    train_tokens, test_tokens = vocab.encode(train_text), vocab.encode(test_text)
    by_order = loss_by_order(train_tokens, test_tokens, max_n, len(vocab))
    n = min(by_order, key=by_order.get)
    ngram = NGramModel(train_tokens, n, len(vocab)).losses(test_tokens)[1:]
    rnn = rnn_char_losses(model, test_text)[1:]  # test characters unknown to the RNN are an error
    targets = test_text[1:]
    classes = np.array([char_class(c) for c in targets])
    position = np.empty(len(targets), dtype=np.int64)  # index of the target within its line
    pos = 0
    for i, c in enumerate(test_text):
        if i:
            position[i - 1] = pos
        pos = 0 if c == "\n" else pos + 1
    by_class = [(name, int(m.sum()), float(rnn[m].mean()), float(ngram[m].mean()))
                for name in CLASSES if (m := classes == name).any()]
    by_position = []
    for lo, hi in POSITION_BUCKETS:
        m = (position >= lo) & (position <= (hi if hi is not None else position.max()))
        if m.any():
            label = f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"
            by_position.append((label, int(m.sum()), float(rnn[m].mean()), float(ngram[m].mean())))
    return Comparison(n, by_order, float(rnn.mean()), float(ngram.mean()), by_class, by_position)
