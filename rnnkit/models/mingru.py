"""minGRU: a GRU whose gates read only the input, trained with a parallel scan.

Feng et al., "Were RNNs All We Needed?" (2024), section 3.1. The GRU without its reset gate and with
its update gate and candidate computed from x_t alone (no W_h h terms):

    z = sigmoid(W_z x + b_z)                  update gate: how much of the new candidate to take
    h~ = g(W_h x + b_h)                       candidate, g(v) = v + 1/2 (v >= 0) or sigmoid(v): > 0
    h' = (1 - z) * h + z * h~

Since nothing on the right reads h except the last line, the whole sequence is one linear recurrence
h_t = a_t h_{t-1} + b_t with a = 1 - z, b = z * h~, computed by models/scan.py (a parallel scan on
GPUs, a loop on CPUs). Weights of layer k are weight_ih_l{k} (2H, in), rows [update; candidate], and
bias_ih_l{k} (2H,).

Deviation from the paper's code, which takes h~ unsquashed in sequential mode and g(h~) in log space:
g is used in both, so the step-by-step cell and the scan compute the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .scan import MinStack, g, log_g

STATE = ("h",)
GATES = ("update", "candidate")
WEIGHTS = ("weight_ih", "bias_ih")  # a layer's parameters, in the order `cell` takes them


def make_fused(input_size: int, config, bidirectional: bool = False) -> MinStack:
    return MinStack("mingru", coefficients, step_coefficients, len(GATES), input_size, config.hidden_size,
                    config.num_layers, dropout=config.dropout if config.num_layers > 1 else 0.0)


def init_weights(stack: MinStack, config) -> None:
    """The input projections keep nn.Linear's uniform initialisation (MinStack)."""


def coefficients(pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pre (..., 2H) -> (log a, log b), each (..., H), for the log-space scan."""
    k_z, k_h = pre.chunk(2, dim=-1)
    return -F.softplus(k_z), -F.softplus(-k_z) + log_g(k_h)  # log(1 - z), log z + log g(k_h)


def step_coefficients(pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pre (..., 2H) -> (a, b), each (..., H): for one step or the loop, no logarithms."""
    k_z, k_h = pre.chunk(2, dim=-1)
    return torch.sigmoid(-k_z), torch.sigmoid(k_z) * g(k_h)  # sigmoid(-k) = 1 - z, without 1 - z's cancellation


def cell(x, state, w_ih, b_ih, nonlinearity=None):
    """One time step, the readable reference. x: (B, E); state: (h,), h (B, H). Returns (new state, gates)."""
    (h,) = state
    k_z, k_h = (x @ w_ih.T + b_ih).chunk(2, dim=1)  # each (B, H)
    z, cand = torch.sigmoid(k_z), g(k_h)
    h = (1 - z) * h + z * cand
    return (h,), {"update": z, "candidate": cand}
