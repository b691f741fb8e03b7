"""Long short-term memory cell.

Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 9 (1997), with the forget
gate of Gers, Schmidhuber & Cummins (2000). Gate order and weight layout follow `torch.nn.LSTM`
(rows of weight_ih_l{k} are [input; forget; candidate; output], each H tall), so the fused layer used
for training and the readable `cell` below share one set of parameters:

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate: how much new content to write
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate: how much of the old cell to keep
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         candidate content
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate: how much of the cell to expose
    c' = f * c + i * g
    h' = o * tanh(c')
"""

from __future__ import annotations

import torch
from torch import nn

STATE = ("h", "c")
GATES = ("input", "forget", "candidate", "output")
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # a layer's parameters, in the order `cell` takes them


def make_fused(input_size: int, config, bidirectional: bool = False) -> nn.LSTM:
    return nn.LSTM(input_size, config.hidden_size, config.num_layers, batch_first=True,
                   dropout=config.dropout if config.num_layers > 1 else 0.0, bidirectional=bidirectional)


@torch.no_grad()
def init_weights(fused: nn.LSTM, config) -> None:
    """Optionally start the forget gate open (`forget_bias`, classically 1.0): Jozefowicz et al. (2015)
    found it helps long-range memory. Off by default (None keeps PyTorch's uniform init): on tiny
    Shakespeare with a 140-second budget it trained measurably slower (benchmarks/README.md)."""
    if config.forget_bias is None:
        return
    H = config.hidden_size
    for k in range(config.num_layers):
        for suffix in ("", "_reverse") if fused.bidirectional else ("",):
            getattr(fused, f"bias_ih_l{k}{suffix}")[H:2 * H].fill_(config.forget_bias)
            getattr(fused, f"bias_hh_l{k}{suffix}")[H:2 * H].zero_()  # the two biases add up; keep the sum exact


def cell(x, state, w_ih, w_hh, b_ih, b_hh, nonlinearity=None):
    """One time step. x: (B, E); state: (h, c), each (B, H). Returns (new state, gate activations)."""
    h, c = state
    pre = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H)
    i, f, g, o = pre.chunk(4, dim=1)  # each (B, H)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return (h, c), {"input": i, "forget": f, "candidate": g, "output": o}
