"""A fast stateful stepper for sampling: one character costs a few small NumPy matrix products.

Stepping `nn.LSTM` one character at a time on a CPU spends most of its time outside the arithmetic
(dispatch, weight repacking by oneDNN on every call). Generation needs only
`logits, state = step(token, state)`, so `FastStepper` pre-arranges the weights once:

- layer 0's input projection is a table: embedding @ W_ih^T + b for every symbol, so reading a
  character is a row lookup instead of a matrix product;
- deeper layers of the RNN and LSTM take [h_below, h] against one stacked, pre-transposed matrix;
- the LSTM's sigmoid gates are computed as 0.5 * tanh(x / 2) + 0.5 with the 1/2 folded into the
  weights, so all four gates need a single tanh over 4H values.

It computes the same function as `CharRNN.forward` (tests/test_fastsample.py: distributions agree to
1e-5) for batches of N independent streams. The plain model path stays available for checking.
"""

from __future__ import annotations

import numpy as np
import torch


class FastStepper:
    """`logits, state = stepper.step(tokens, state)` with tokens (N,) ints; state is a list with one
    tuple per layer of (N, H) float32 arrays ((h,) or (h, c)); logits (N, V) float32."""

    def __init__(self, model):
        cfg = model.config
        self.cell, self.L, self.H = cfg.cell, cfg.num_layers, cfg.hidden_size
        self.relu = cfg.cell == "rnn" and cfg.nonlinearity == "relu"
        sd = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
        H = self.H
        # LSTM: halve the pre-activations of the sigmoid gates (i, f, o) so one tanh serves all four.
        scale = np.ones(4 * H, dtype=np.float32)
        if self.cell == "lstm":
            scale[:2 * H] = 0.5
            scale[3 * H:] = 0.5
        self.layers = []
        for k in range(self.L):
            w_ih, w_hh = sd[f"rnn.weight_ih_l{k}"], sd[f"rnn.weight_hh_l{k}"]
            b_ih, b_hh = sd[f"rnn.bias_ih_l{k}"], sd[f"rnn.bias_hh_l{k}"]
            if self.cell == "gru":
                # The reset gate multiplies (W_hn h + b_hn), so the h-side product stays separate.
                x_side, h_side = (w_ih.T.copy(), b_ih), (w_hh.T.copy(), b_hh)
            else:
                s = scale[:w_ih.shape[0]]
                x_side, h_side = (w_ih.T * s, (b_ih + b_hh) * s), (w_hh.T * s, np.zeros_like(b_hh))
            if k == 0:
                table = sd["embed.weight"] @ x_side[0] + x_side[1]  # (V, G*H): layer 0's input, precomputed
                self.layers.append({"table": np.ascontiguousarray(table, dtype=np.float32),
                                    "w_h": np.ascontiguousarray(h_side[0]), "b_h": h_side[1]})
            elif self.cell == "gru":
                self.layers.append({"w_x": np.ascontiguousarray(x_side[0]), "b_x": x_side[1],
                                    "w_h": np.ascontiguousarray(h_side[0]), "b_h": h_side[1]})
            else:  # [h_below, h] @ [[W_ih^T], [W_hh^T]]: one product for both inputs
                self.layers.append({"w_xh": np.ascontiguousarray(np.vstack([x_side[0], h_side[0]])),
                                    "b_x": x_side[1]})
        self.w_out = np.ascontiguousarray(sd["head.weight"].T)  # (H, V)
        self.b_out = sd["head.bias"]

    def zero_state(self, n: int) -> list:
        parts = 2 if self.cell == "lstm" else 1
        return [tuple(np.zeros((n, self.H), dtype=np.float32) for _ in range(parts)) for _ in range(self.L)]

    @staticmethod
    def from_torch_state(state) -> list:
        """A CharRNN state (tuple of (L, N, H) tensors) -> this stepper's per-layer arrays."""
        arrays = [s.detach().to("cpu", torch.float32).numpy() for s in state]
        return [tuple(np.ascontiguousarray(a[k]) for a in arrays) for k in range(arrays[0].shape[0])]

    def step(self, tokens: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        H = self.H
        new_state = []
        below = None
        for k, layer in enumerate(self.layers):
            h = state[k][0]
            if self.cell == "gru":
                x = layer["table"][tokens] if k == 0 else below @ layer["w_x"] + layer["b_x"]  # (N, 3H)
                hh = h @ layer["w_h"] + layer["b_h"]
                r = 0.5 * np.tanh(0.5 * (x[:, :H] + hh[:, :H])) + 0.5
                z = 0.5 * np.tanh(0.5 * (x[:, H:2 * H] + hh[:, H:2 * H])) + 0.5
                n = np.tanh(x[:, 2 * H:] + r * hh[:, 2 * H:])
                h = n + z * (h - n)  # (1 - z) * n + z * h
                new_state.append((h,))
            else:
                if k == 0:
                    pre = layer["table"][tokens] + h @ layer["w_h"]  # (N, G*H)
                else:
                    pre = np.concatenate([below, h], axis=1) @ layer["w_xh"] + layer["b_x"]
                if self.cell == "lstm":
                    t = np.tanh(pre)  # i, f, o arrive halved: sigmoid(x) = 0.5 * tanh(x / 2) + 0.5
                    i, f, g, o = t[:, :H], t[:, H:2 * H], t[:, 2 * H:3 * H], t[:, 3 * H:]
                    c = 0.5 * ((f + 1) * state[k][1] + (i + 1) * g)
                    h = 0.5 * (o + 1) * np.tanh(c)
                    new_state.append((h, c))
                else:
                    h = np.maximum(pre, 0) if self.relu else np.tanh(pre)
                    new_state.append((h,))
            below = h
        return below @ self.w_out + self.b_out, new_state
