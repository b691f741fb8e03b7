"""Gated recurrent unit.

Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine
Translation" (2014). Gate order and weight layout follow `torch.nn.GRU` ([reset; update; new]):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)          reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)          update gate: how much of the old state to keep
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))       new content
    h' = (1 - z) * n + z * h

Deliberate deviation from the paper, as in PyTorch and cuDNN: the reset gate multiplies
(W_hn h + b_hn) *after* the matrix product, not h before it. That lets one matrix product over h
serve all three gates; the paper's variant is not what the fused layer computes.
"""

from __future__ import annotations

import torch
from torch import nn

STATE = ("h",)
GATES = ("reset", "update", "new")
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # a layer's parameters, in the order `cell` takes them


def make_fused(input_size: int, config, bidirectional: bool = False) -> nn.GRU:
    return nn.GRU(input_size, config.hidden_size, config.num_layers, batch_first=True,
                  dropout=config.dropout if config.num_layers > 1 else 0.0, bidirectional=bidirectional)


def init_weights(fused: nn.GRU, config) -> None:
    """PyTorch's default uniform(-1/sqrt(H), 1/sqrt(H)) initialisation is kept as it is."""


def cell(x, state, w_ih, w_hh, b_ih, b_hh, nonlinearity=None):
    """One time step. x: (B, E); state: (h,) with h (B, H). Returns (new state, gate activations)."""
    (h,) = state
    xr, xz, xn = (x @ w_ih.T + b_ih).chunk(3, dim=1)  # each (B, H)
    hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    h = (1 - z) * n + z * h
    return (h,), {"reset": r, "update": z, "new": n}
