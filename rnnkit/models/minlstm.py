"""minLSTM: an LSTM whose gates read only the input, trained with a parallel scan.

Feng et al., "Were RNNs All We Needed?" (2024), section 3.2. The LSTM without its output gate and
cell/hidden split, gates from x_t alone, and the forget and input gates normalised to sum to one (so
the state's scale does not grow with time):

    f = sigmoid(W_f x + b_f),  i = sigmoid(W_i x + b_i)
    f' = f / (f + i),          i' = i / (f + i)
    h~ = g(W_h x + b_h)                       candidate, g(v) = v + 1/2 (v >= 0) or sigmoid(v): > 0
    h' = f' * h + i' * h~

A linear recurrence h_t = a_t h_{t-1} + b_t with a = f', b = i' h~, computed by models/scan.py (a
parallel scan on GPUs, a loop on CPUs). In log space, with d = softplus(-k_f) - softplus(-k_i) =
log(i / f): log f' = -softplus(d), log i' = -softplus(-d). Weights of layer k are weight_ih_l{k} (3H, in),
rows [forget; input; candidate], and bias_ih_l{k} (3H,). The state is h alone (no c).

Deviation from the paper's code, as in mingru.py: g is applied to the candidate in sequential mode
too, so the cell and the scan compute the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .scan import MinStack, g, log_g

STATE = ("h",)
GATES = ("forget", "input", "candidate")  # forget and input as normalised (f', i'), what the state mixes by
WEIGHTS = ("weight_ih", "bias_ih")  # a layer's parameters, in the order `cell` takes them


def make_fused(input_size: int, config, bidirectional: bool = False) -> MinStack:
    return MinStack("minlstm", coefficients, step_coefficients, len(GATES), input_size, config.hidden_size,
                    config.num_layers, dropout=config.dropout if config.num_layers > 1 else 0.0)


def init_weights(stack: MinStack, config) -> None:
    """The input projections keep nn.Linear's uniform initialisation (MinStack)."""


def coefficients(pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pre (..., 3H) -> (log a, log b), each (..., H), for the log-space scan."""
    k_f, k_i, k_h = pre.chunk(3, dim=-1)
    d = F.softplus(-k_f) - F.softplus(-k_i)  # log(i / f)
    return -F.softplus(d), -F.softplus(-d) + log_g(k_h)  # log f', log i' + log g(k_h)


def _normalised(k_f, k_i):
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    return f / (f + i), i / (f + i)


def step_coefficients(pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pre (..., 3H) -> (a, b), each (..., H): for one step or the loop, no logarithms."""
    k_f, k_i, k_h = pre.chunk(3, dim=-1)
    f, i = _normalised(k_f, k_i)
    return f, i * g(k_h)


def cell(x, state, w_ih, b_ih, nonlinearity=None):
    """One time step, the readable reference. x: (B, E); state: (h,), h (B, H). Returns (new state, gates)."""
    (h,) = state
    k_f, k_i, k_h = (x @ w_ih.T + b_ih).chunk(3, dim=1)  # each (B, H)
    f, i = _normalised(k_f, k_i)
    cand = g(k_h)
    h = f * h + i * cand
    return (h,), {"forget": f, "input": i, "candidate": cand}
