"""minGRU and minLSTM in NumPy, step by step, with backpropagation through time by hand.

The sequential form of rnnkit.models.mingru / minlstm (no scan, no logarithms), which is what the
parallel scan must reproduce. g(v) = v + 1/2 for v >= 0, sigmoid(v) below; g'(v) = 1 or s(1 - s).

minGRU, pre = x_t W_ih^T + b_ih = [k_z, k_h]:
    z = sigmoid(k_z),  c = g(k_h),  h_t = (1 - z) h_{t-1} + z c
  backward: dh = dHs_t + dh_next
            dk_z = dh (c - h_{t-1}) z (1 - z),  dk_h = dh z g'(k_h),  dh_next = dh (1 - z)

minLSTM, pre = [k_f, k_i, k_h]:
    f = sigmoid(k_f),  i = sigmoid(k_i),  s = f + i,  f' = f / s,  i' = i / s,  c = g(k_h)
    h_t = f' h_{t-1} + i' c
  backward: df' = dh h_{t-1},  di' = dh c,  dh_next = dh f'
            df = (df' - di') i / s^2,  di = (di' - df') f / s^2        (the quotient rule)
            dk_f = df f (1 - f),  dk_i = di i (1 - i),  dk_h = dh i' g'(k_h)
Both: dW_ih += dpre^T x_t,  db_ih += sum_b dpre,  dx_t = dpre W_ih. No weight_hh: nothing reads h
through a matrix.
"""

from __future__ import annotations

import numpy as np

from .common import ReferenceModel
from .lstm import _sigmoid


def _g(v):
    return np.where(v >= 0, v + 0.5, _sigmoid(v))


def _dg(v):
    s = _sigmoid(v)
    return np.where(v >= 0, 1.0, s * (1 - s))


class _ReferenceMin(ReferenceModel):
    RNN_PARAMS = ("weight_ih", "bias_ih")

    def recurrent_forward(self, X, state):
        w_ih, b_ih = self.rnn_weights()
        B, T, _ = X.shape
        (h,) = state
        h0 = h
        pres = X @ w_ih.T + b_ih  # (B, T, G*H): every step's input projection at once
        Hs = np.empty((B, T, self.hidden_size))
        for t in range(T):
            a, b = self.coefficients(pres[:, t])
            h = a * h + b
            Hs[:, t] = h
        return Hs, (h,), (X, h0, Hs, pres)

    def recurrent_backward(self, dHs, cache):
        X, h0, Hs, pres = cache
        w_ih, _ = self.rnn_weights()
        dpres = np.empty_like(pres)
        dh_next = np.zeros_like(h0)
        for t in reversed(range(X.shape[1])):
            dh = dHs[:, t] + dh_next
            h_prev = Hs[:, t - 1] if t > 0 else h0
            dpres[:, t], dh_next = self.step_backward(pres[:, t], h_prev, dh)
        dW_ih = np.einsum("btg,bte->ge", dpres, X)
        return dpres @ w_ih, (dW_ih, dpres.sum(axis=(0, 1)))


class ReferenceMinGRU(_ReferenceMin):
    GATE_ROWS = 2

    def coefficients(self, pre):
        """pre (B, 2H) -> (a, b) of h_t = a h_{t-1} + b."""
        k_z, k_h = np.split(pre, 2, axis=1)
        z = _sigmoid(k_z)
        return 1 - z, z * _g(k_h)

    def step_backward(self, pre, h_prev, dh):
        """-> (dpre (B, 2H), dh_prev)."""
        k_z, k_h = np.split(pre, 2, axis=1)
        z, c = _sigmoid(k_z), _g(k_h)
        return np.concatenate([dh * (c - h_prev) * z * (1 - z), dh * z * _dg(k_h)], axis=1), dh * (1 - z)


class ReferenceMinLSTM(_ReferenceMin):
    GATE_ROWS = 3

    def coefficients(self, pre):
        k_f, k_i, k_h = np.split(pre, 3, axis=1)
        f, i = _sigmoid(k_f), _sigmoid(k_i)
        return f / (f + i), i / (f + i) * _g(k_h)

    def step_backward(self, pre, h_prev, dh):
        k_f, k_i, k_h = np.split(pre, 3, axis=1)
        f, i, c = _sigmoid(k_f), _sigmoid(k_i), _g(k_h)
        s = f + i
        dfn, din = dh * h_prev, dh * c  # through f' and i'
        df, di = (dfn - din) * i / s ** 2, (din - dfn) * f / s ** 2
        dpre = np.concatenate([df * f * (1 - f), di * i * (1 - i), dh * (i / s) * _dg(k_h)], axis=1)
        return dpre, dh * (f / s)
