"""LSTM in NumPy with backpropagation through time by hand.

Forward (gate order of torch.nn.LSTM: input, forget, candidate, output):
    [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
    c_t = f * c_{t-1} + i * g,      h_t = o * tanh(c_t)
Backward, t = T..1 (dh_next, dc_next flow in from step t+1):
    dh = dHs_t + dh_next
    do = dh * tanh(c_t)
    dc = dc_next + dh * o * (1 - tanh(c_t)^2)
    di = dc * g,   dg = dc * i,   df = dc * c_{t-1},   dc_next = dc * f
    dpre = [di * i(1-i), df * f(1-f), dg * (1-g^2), do * o(1-o)]
    dW_ih += dpre^T x_t,  dW_hh += dpre^T h_{t-1},  dx_t = dpre W_ih,  dh_next = dpre W_hh
"""

from __future__ import annotations

import numpy as np

from .common import ReferenceModel


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))  # overflow-free form of 1 / (1 + exp(-z))


class ReferenceLSTM(ReferenceModel):
    GATE_ROWS = 4
    STATE = ("h", "c")

    def __init__(self, *args, forget_bias: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if forget_bias is None:
            return
        H = self.hidden_size
        self.params["rnn.bias_ih_l0"][H:2 * H] = forget_bias  # as rnnkit.models.lstm.init_weights
        self.params["rnn.bias_hh_l0"][H:2 * H] = 0

    def recurrent_forward(self, X, state):
        w_ih, w_hh, b_ih, b_hh = self.rnn_weights()
        B, T, _ = X.shape
        H = self.hidden_size
        h, c = state
        h0, c0 = h, c
        Hs, Cs = np.empty((B, T, H)), np.empty((B, T, H))
        gates = np.empty((B, T, 4 * H))  # activated i, f, g, o
        for t in range(T):
            pre = X[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H)
            i, f, g, o = _sigmoid(pre[:, :H]), _sigmoid(pre[:, H:2 * H]), np.tanh(pre[:, 2 * H:3 * H]), \
                _sigmoid(pre[:, 3 * H:])
            c = f * c + i * g
            h = o * np.tanh(c)
            Hs[:, t], Cs[:, t] = h, c
            gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        return Hs, (h, c), (X, h0, c0, Hs, Cs, gates)

    def recurrent_backward(self, dHs, cache):
        X, h0, c0, Hs, Cs, gates = cache
        w_ih, w_hh, _, _ = self.rnn_weights()
        H = self.hidden_size
        dW_ih, dW_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(w_ih.shape[0])
        dX = np.empty_like(X)
        dh_next, dc_next = np.zeros_like(h0), np.zeros_like(c0)
        for t in reversed(range(X.shape[1])):
            i, f, g, o = (gates[:, t, k * H:(k + 1) * H] for k in range(4))
            c_prev = Cs[:, t - 1] if t > 0 else c0
            h_prev = Hs[:, t - 1] if t > 0 else h0
            tc = np.tanh(Cs[:, t])
            dh = dHs[:, t] + dh_next
            do = dh * tc
            dc = dc_next + dh * o * (1 - tc ** 2)
            di, dg, df = dc * g, dc * i, dc * c_prev
            dc_next = dc * f
            dpre = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
            dW_ih += dpre.T @ X[:, t]
            dW_hh += dpre.T @ h_prev
            db += dpre.sum(axis=0)
            dX[:, t] = dpre @ w_ih
            dh_next = dpre @ w_hh
        return dX, (dW_ih, dW_hh, db, db.copy())
