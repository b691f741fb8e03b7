"""The character-level language model: embedding -> recurrent layers -> linear head.

One model contract for every family (rnn, lstm, gru, mingru, minlstm):

    logits, state = model(tokens, state=None)

tokens (B, T) int64 -> logits (B, T, V) and the state after the last step. `state` is a tuple of
tensors, each (L, B, H): (h,) for rnn and gru, (h, c) for lstm; None means zeros. The caller owns
the state: pass it back in to continue the text (truncated BPTT, sampling), `detach_state` it
between training chunks, drop it to reset. Nothing is remembered inside the module.

Two implementations compute the same function with the same parameters:
- `forward` runs the fused `nn.RNN/LSTM/GRU`, or for mingru and minlstm the parallel scan of
  models/scan.py (fast; used to train and sample);
- `forward_steps` runs the family's readable per-step `cell` (models/rnn.py, lstm.py, gru.py, mingru.py,
  minlstm.py) and also returns every step's hidden state, LSTM cell state and gate activations, for
  inspection.
tests/test_models.py proves they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..data.corpus import normalize_newlines
from . import gru, lstm, mingru, minlstm, rnn

FAMILIES = {"rnn": rnn, "lstm": lstm, "gru": gru, "mingru": mingru, "minlstm": minlstm}

State = tuple  # tuple of (L, B, H) tensors


@dataclass
class StepTrace:
    """Per-step internals from `forward_steps`; every tensor is (B, T, H), one list entry per layer."""

    h: list = field(default_factory=list)  # hidden state (the layer's output)
    c: list = field(default_factory=list)  # LSTM cell state; empty for rnn and gru
    gates: dict = field(default_factory=dict)  # gate name -> per-layer activations; empty for rnn


class CharRNN(nn.Module):
    """Embedding (V -> E), `num_layers` recurrent layers (H units), linear head (H -> V).

    `vocab` (a `rnnkit.data.Vocab`, optional) travels with the model so that `sample` and `evaluate`
    can turn text into tokens and back, and `keep_crlf` says how its run read line endings
    (`normalize_text`); the network itself never reads either.
    """

    def __init__(self, config: ModelConfig, vocab=None, keep_crlf: bool = False):
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError("ModelConfig.vocab_size must be set (>= 1) to build a model")
        self.config = config
        self.vocab = vocab
        self.keep_crlf = keep_crlf
        self.family = FAMILIES[config.cell]
        self.embed = nn.Embedding(config.vocab_size, config.embed_size)
        self.rnn = self.family.make_fused(config.embed_size, config)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.family.init_weights(self.rnn, config)

    # -- state helpers ----------------------------------------------------------------------------

    def init_state(self, batch_size: int, device=None) -> State:
        """Zeros: a tuple of (L, B, H) tensors, one per entry of the family's STATE."""
        c = self.config
        w = self.head.weight
        return tuple(torch.zeros(c.num_layers, batch_size, c.hidden_size, dtype=w.dtype,
                                 device=device if device is not None else w.device)
                     for _ in self.family.STATE)

    @staticmethod
    def detach_state(state: State | None) -> State | None:
        """Cut the graph between truncated-BPTT chunks while keeping the values."""
        return None if state is None else tuple(s.detach() for s in state)

    # -- the fused path ---------------------------------------------------------------------------

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """tokens (B, T) -> logits (B, T, V), state (tuple of (L, B, H))."""
        B, T = tokens.shape
        if state is None:
            state = self.init_state(B, tokens.device)
        x = self.embed(tokens)  # (B, T, E)
        # nn.LSTM takes (h, c); nn.RNN and nn.GRU take h alone.
        out, new = self.rnn(x, state if len(state) == 2 else state[0])  # out (B, T, H)
        new = tuple(new) if isinstance(new, tuple) else (new,)
        return self.head(self.drop(out)), new  # (B, T, V)

    # -- the readable per-step path ---------------------------------------------------------------

    def layer_weights(self, k: int) -> tuple:
        """Layer k's parameters as stored by the fused module, in the order the family's `cell` takes
        them: (w_ih, w_hh, b_ih, b_hh), or (w_ih, b_ih) for mingru and minlstm."""
        return tuple(getattr(self.rnn, f"{name}_l{k}") for name in self.family.WEIGHTS)

    def forward_steps(self, tokens: torch.Tensor, state: State | None = None):
        """Same function as `forward`, one cell step at a time, recording internals.

        Returns (logits (B, T, V), state, StepTrace).
        """
        c = self.config
        B, T = tokens.shape
        if state is None:
            state = self.init_state(B, tokens.device)
        trace = StepTrace(gates={g: [] for g in self.family.GATES})
        layer_in = self.embed(tokens)  # (B, T, E)
        final = []
        for k in range(c.num_layers):
            weights = self.layer_weights(k)
            s = tuple(part[k] for part in state)  # each (B, H)
            steps = []  # (state, gates) per time step
            for t in range(T):
                s, gates = self.family.cell(layer_in[:, t], s, *weights, nonlinearity=c.nonlinearity)
                steps.append((s, gates))
            final.append(s)
            trace.h.append(torch.stack([st[0] for st, _ in steps], dim=1))  # (B, T, H)
            if len(s) == 2:
                trace.c.append(torch.stack([st[1] for st, _ in steps], dim=1))
            for g in self.family.GATES:
                trace.gates[g].append(torch.stack([gt[g] for _, gt in steps], dim=1))
            layer_in = trace.h[-1]
            if k < c.num_layers - 1:  # the fused module's inter-layer dropout
                layer_in = F.dropout(layer_in, c.dropout, self.training)
        new_state = tuple(torch.stack([s[i] for s in final]) for i in range(len(self.family.STATE)))  # (L, B, H)
        return self.head(self.drop(layer_in)), new_state, trace

    # -- conveniences for people holding a loaded model -------------------------------------------

    def normalize_text(self, text: str) -> str:
        """`text` as this model's run read its training text: CRLF and lone CR made LF, unless the run
        kept them (`--keep-crlf`) or models raw bytes. Evaluation, primes and inspection go through this."""
        if self.keep_crlf or (self.vocab is not None and self.vocab.kind == "byte"):
            return text
        return normalize_newlines(text)

    def sample(self, **options) -> str:
        """One sample, a string (prime included); the options are `rnnkit sample`'s (length,
        temperature, top_k, prime, ...)."""
        from ..sample import sample_text
        return sample_text(self, **options)

    def samples(self, num_samples: int, **options) -> list[str]:
        """`num_samples` independent samples, generated together as a batch; always a list."""
        from ..sample import generate
        return generate(self, num_samples, **options)

    def evaluate(self, text: str, unknown: str = "error") -> dict:
        """Loss on `text`: {'nats', 'bpc', 'perplexity', 'chars'} (nats and bits per character)."""
        from ..evaluate import evaluate_text
        return evaluate_text(self, text, unknown=unknown)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def grow_vocabulary(weights: dict, old_vocab, new_vocab) -> dict:
    """A CharRNN state dict for `old_vocab` -> one for `new_vocab`, a superset (fine-tuning on text with
    characters the base model never saw: `rnnkit train --init-from RUN --extend-vocab`).

    Vocabularies are sorted, so the old characters' ids move; each keeps its own embedding row and
    output row. A new character's embedding is the mean of the old ones (the model reads it as "some
    character" rather than as noise), and its output row has zero weights and the lowest old bias, so
    every old character's logit is exactly what it was: on text of old characters the model computes
    the same states and the same logits as before, until training moves them.
    """
    new_id = {c: i for i, c in enumerate(new_vocab.chars)}
    old_ids = [new_id[c] for c in old_vocab.chars]  # (V_old,) the row of each old character in the new vocabulary
    grown = dict(weights)
    embed, w, b = weights["embed.weight"], weights["head.weight"], weights["head.bias"]  # (V, E), (V, H), (V,)
    V = len(new_vocab)
    grown["embed.weight"] = embed.mean(dim=0, keepdim=True).repeat(V, 1)
    grown["head.weight"] = torch.zeros(V, w.shape[1], dtype=w.dtype)
    grown["head.bias"] = torch.full((V,), float(b.min()), dtype=b.dtype)
    for name, old in (("embed.weight", embed), ("head.weight", w), ("head.bias", b)):
        grown[name][old_ids] = old
    return grown
