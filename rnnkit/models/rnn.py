"""Vanilla (Elman) recurrent cell.

Elman, "Finding Structure in Time", Cognitive Science 14 (1990); the cell of min-char-rnn and of the
"Unreasonable Effectiveness of RNNs" lecture:

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)        (relu instead of tanh as an option)

Weights use the layout of `torch.nn.RNN` (weight_ih_l{k}: (H, E), weight_hh_l{k}: (H, H)), so the
fused layer used for training and the readable `cell` below share one set of parameters.
"""

from __future__ import annotations

import torch
from torch import nn

STATE = ("h",)  # what the cell carries from step to step
GATES = ()  # no gates: the whole state is one squashed linear map
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # a layer's parameters, in the order `cell` takes them


def make_fused(input_size: int, config, bidirectional: bool = False) -> nn.RNN:
    return nn.RNN(input_size, config.hidden_size, config.num_layers, nonlinearity=config.nonlinearity,
                  batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0,
                  bidirectional=bidirectional)


def init_weights(fused: nn.RNN, config) -> None:
    """PyTorch's default uniform(-1/sqrt(H), 1/sqrt(H)) initialisation is kept as it is."""


def cell(x, state, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    """One time step. x: (B, E); state: (h,) with h (B, H). Returns (new state, gates={})."""
    (h,) = state
    pre = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, H)
    h = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
    return (h,), {}
