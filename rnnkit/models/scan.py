"""The recurrence shared by minGRU and minLSTM (models/mingru.py, minlstm.py), and their layer stack.

Feng, Tung, Ahmed, Bengio, Hajimirsadeghi, "Were RNNs All We Needed?" (2024). Both cells are a linear
recurrence whose coefficients depend on the input alone, never on the previous state:

    h_t = a_t * h_{t-1} + b_t,        a_t in (0, 1), b_t > 0, both computed from x_t

so every a_t and b_t is known before the recurrence starts, and the recurrence itself is cheap and
elementwise. Two ways to run it over a sequence, which compute the same function (tests/test_scan.py):

- `log_scan`, the paper's parallel scan: with A_t = a_1 ... a_t,
      h_t = A_t h_0 + A_t * sum_{k <= t} b_k / A_k
  and in log space (Heinsen, "Efficient Parallelization of a Ubiquitous Sequential Computation",
  2023) the sum is a cumulative log-sum-exp, which neither underflows nor overflows:
      h_t = exp(log A_t) h_0 + exp(log A_t + logcumsumexp_k(log b_k - log A_k))
  Every time step at once: what a GPU wants (thousands of threads, T-fold parallelism).
- `recurrence`, the plain loop h = a h + b over T, one fused multiply-add over (B, H) a step, with
  its backward written out (the reverse recurrence dh_{t-1} = a_t dh_t, da_t = dh_t h_{t-1},
  db_t = dh_t), so autograd records one node per layer instead of a graph per step. On a CPU the
  B x H elements of one step already fill the cores, so parallelism over time buys nothing, while
  the log-space form costs a dozen transcendental passes: on 2 cores (32 x 32 x 256) the loop's
  forward and backward take 2.4 ms against the scan's 21 ms (benchmarks/train_speed.py measures both).

`MinStack` uses the scan on GPUs and the loop on CPUs (`mode`, "auto"; "log" or "loop" force one).

Deliberate deviations from the paper's log-space code:
- h_0 is added outside the logarithms (the first term above), so any state, zero or negative, is
  exact; the paper takes log h_0 and so needs h_0 > 0.
- Long sequences are scanned in chunks of SCAN_CHUNK steps with the state carried. log A_t falls
  by about 0.7 a step, so log b_k - log A_k grows with the length scanned and float32 loses digits:
  over 2,000 steps the states' relative error is about 2e-5 in 64-step chunks and 4e-4 in one scan
  (the loop's: 5e-7; tests/test_scan.py). Training chunks (--seq-len 32 or 64) are one scan.
- Both run in float32 even under bf16 autocast: bf16 would lose the state in a few steps.

The layer stack mirrors nn.GRU's interface (`out, h_n = stack(x, h_0)`, batch first, dropout
between layers, parameters named weight_ih_l{k} and bias_ih_l{k}), so CharRNN holds it where it holds
the fused PyTorch layers. There is no weight_hh: the recurrence has no matrix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SCAN_CHUNK = 64  # steps per log-space scan; longer inputs are scanned chunk by chunk, state carried


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive activation for the candidate state: x + 1/2 for x >= 0, sigmoid(x) below
    (continuous at 0, always > 0, so that log g exists). Written without a branch: sigmoid(min(x, 0))
    is 1/2 above 0, and relu(x) adds the rest."""
    return torch.sigmoid(torch.clamp(x, max=0)) + F.relu(x)


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log g(x) without forming g where it is tiny: -softplus(-x) below 0, log(x + 1/2) above, as
    -softplus(-min(x, 0)) + log1p(2 relu(x)) (the first term is -log 2 above 0)."""
    return -F.softplus(-torch.clamp(x, max=0)) + torch.log1p(2 * F.relu(x))


def log_scan(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """All h_t of h_t = a_t h_{t-1} + b_t at once. log_a, log_b (B, T, H); h0 (B, H) -> h (B, T, H)."""
    log_A = torch.cumsum(log_a, dim=1)  # (B, T, H): log of a_1 ... a_t
    carried = torch.exp(log_A) * h0[:, None]  # A_t h_0
    return carried + torch.exp(log_A + torch.logcumsumexp(log_b - log_A, dim=1))


class _Recurrence(torch.autograd.Function):
    """h_t = a_t h_{t-1} + b_t for t = 1..T, forward and backward each one pass over time."""

    @staticmethod
    def forward(ctx, a, b, h0):  # a, b (B, T, H); h0 (B, H)
        out = torch.empty_like(b)
        h = h0
        for t in range(a.shape[1]):
            h = torch.addcmul(b[:, t], a[:, t], h)
            out[:, t] = h
        ctx.save_for_backward(a, out, h0)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # grad (B, T, H): dL/dh_t from above
        a, out, h0 = ctx.saved_tensors
        db = torch.empty_like(grad)
        carry = torch.zeros_like(h0)  # a_{t+1} dh_{t+1}: what step t+1 hands back to h_t
        for t in reversed(range(a.shape[1])):
            carry = grad[:, t] + carry  # dh_t in full
            db[:, t] = carry
            carry = carry * a[:, t]
        previous = torch.cat([h0[:, None], out[:, :-1]], dim=1)  # h_{t-1} for every t
        return db * previous, db, carry  # da, db, dh0


def recurrence(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """All h_t of h_t = a_t h_{t-1} + b_t, step by step. a, b (B, T, H); h0 (B, H) -> h (B, T, H)."""
    return _Recurrence.apply(a, b, h0)


def scan(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """`log_scan` over chunks of SCAN_CHUNK steps, each starting from the state the last one ended in."""
    T = log_a.shape[1]
    if T <= SCAN_CHUNK:
        return log_scan(log_a, log_b, h0)
    outs = []
    for t in range(0, T, SCAN_CHUNK):
        out = log_scan(log_a[:, t:t + SCAN_CHUNK], log_b[:, t:t + SCAN_CHUNK], h0)
        outs.append(out)
        h0 = out[:, -1]
    return torch.cat(outs, dim=1)


class MinStack(nn.Module):
    """`num_layers` layers of one min family with nn.GRU's interface:
    x (B, T, E), h0 (L, B, H) -> out (B, T, H), h_n (L, B, H).

    Layer k's input projection is one matrix product over the whole sequence, (B*T, in) x (in, G*H),
    then the recurrence: the only sequential work left is elementwise. `mode`: "log" (the parallel
    log-space scan), "loop" (`recurrence`) or "auto" (the scan on GPUs, the loop elsewhere).
    """

    def __init__(self, family: str, coefficients, step_coefficients, gates: int, input_size: int,
                 hidden_size: int, num_layers: int, dropout: float = 0.0, mode: str = "auto"):
        """`coefficients(pre (..., G*H)) -> (log a, log b)` for the scan and
        `step_coefficients(pre (..., G*H)) -> (a, b)` for the loop define the family (G = `gates`)."""
        super().__init__()
        if mode not in ("auto", "log", "loop"):
            raise ValueError(f"mode must be auto, log or loop, got {mode!r}")
        self.mode = mode
        self.family, self.coefficients, self.step_coefficients = family, coefficients, step_coefficients
        self.input_size, self.hidden_size, self.num_layers, self.dropout = input_size, hidden_size, num_layers, dropout
        width = gates * hidden_size
        for k in range(num_layers):
            fan_in = input_size if k == 0 else hidden_size
            # nn.Linear's default initialisation, uniform(+-1/sqrt(fan_in)): these are input projections
            bound = 1 / math.sqrt(fan_in)
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(width, fan_in).uniform_(-bound, bound)))
            self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(width).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, B, self.hidden_size)
        finals = []
        for k in range(self.num_layers):
            pre = F.linear(x, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}"))  # (B, T, G*H)
            pre = pre.to(torch.promote_types(pre.dtype, torch.float32))  # bf16 under autocast: scan in fp32
            h = h0[k].to(pre.dtype)  # (B, H)
            if T == 1:  # one step (sampling): the recurrence itself, no logarithms
                a, b = self.step_coefficients(pre[:, 0])
                x = (a * h + b)[:, None]  # (B, 1, H)
            elif self.mode == "log" or (self.mode == "auto" and pre.device.type != "cpu"):
                x = scan(*self.coefficients(pre), h)  # (B, T, H)
            else:
                x = recurrence(*self.step_coefficients(pre), h)
            finals.append(x[:, -1])
            if k < self.num_layers - 1 and self.dropout:  # nn.GRU's inter-layer dropout
                x = F.dropout(x, self.dropout, self.training)
        return x, torch.stack(finals)  # (B, T, H), (L, B, H)

    def extra_repr(self) -> str:
        return (f"{self.family}, {self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, dropout={self.dropout}")
