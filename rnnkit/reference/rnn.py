"""Vanilla RNN in NumPy with backpropagation through time by hand (min-char-rnn, batched).

Forward, per step t:   a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh,   h_t = tanh(a_t)
Backward, t = T..1:    dh_t = dHs_t + dh_next                 (from the head and from step t+1)
                       da_t = dh_t * (1 - h_t^2)              (tanh'; relu' is [a_t > 0])
                       dW_ih += da_t^T x_t,  dW_hh += da_t^T h_{t-1},  db_ih = db_hh += sum_b da_t
                       dx_t = da_t W_ih,     dh_next = da_t W_hh
"""

from __future__ import annotations

import numpy as np

from .common import ReferenceModel


class ReferenceRNN(ReferenceModel):
    GATE_ROWS = 1
    STATE = ("h",)

    def __init__(self, *args, nonlinearity: str = "tanh", **kwargs):
        super().__init__(*args, **kwargs)
        self.nonlinearity = nonlinearity

    def recurrent_forward(self, X, state):
        w_ih, w_hh, b_ih, b_hh = self.rnn_weights()
        B, T, _ = X.shape
        (h,) = state
        h0 = h
        Hs, As = np.empty((B, T, self.hidden_size)), np.empty((B, T, self.hidden_size))
        for t in range(T):
            a = X[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, H)
            h = np.tanh(a) if self.nonlinearity == "tanh" else np.maximum(a, 0)
            Hs[:, t], As[:, t] = h, a
        return Hs, (h,), (X, h0, Hs, As)

    def recurrent_backward(self, dHs, cache):
        X, h0, Hs, As = cache
        w_ih, w_hh, _, _ = self.rnn_weights()
        dW_ih, dW_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(w_ih.shape[0])
        dX = np.empty_like(X)
        dh_next = np.zeros_like(h0)
        for t in reversed(range(X.shape[1])):
            dh = dHs[:, t] + dh_next
            h_prev = Hs[:, t - 1] if t > 0 else h0
            da = dh * (1 - Hs[:, t] ** 2) if self.nonlinearity == "tanh" else dh * (As[:, t] > 0)
            dW_ih += da.T @ X[:, t]
            dW_hh += da.T @ h_prev
            db += da.sum(axis=0)
            dX[:, t] = da @ w_ih
            dh_next = da @ w_hh
        return dX, (dW_ih, dW_hh, db, db.copy())  # b_ih and b_hh enter identically
