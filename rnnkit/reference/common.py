"""Pieces shared by the NumPy reference models: parameters, embedding, output head, softmax loss.

The reference models compute exactly what `rnnkit.models.CharRNN` computes for one layer without
dropout (embedding -> recurrent layer -> linear head), under the same parameter names, in float64,
with every gradient written out by hand. `ReferenceModel.loss_and_grads` is min-char-rnn's
`lossFun`, batched and checked (tests/test_reference.py) against numerical gradients and autograd.
"""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy (nats) over all B*T positions and its gradient w.r.t. the logits.

    logits (B, T, V), targets (B, T) -> loss, dlogits (B, T, V).
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)  # for numerical stability
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    B, T = targets.shape
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (B, T)
    loss = -picked.mean()
    dlogits = np.exp(logp)  # softmax
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], -1) - 1, -1)
    return float(loss), dlogits / (B * T)


class ReferenceModel:
    """Embedding -> one recurrent layer (subclass) -> linear head, with hand-written backprop.

    Parameters live in `self.params` under CharRNN's state_dict names, so weights move between the
    two with no renaming. Subclasses set GATE_ROWS (how many H-tall blocks the input matrix has),
    RNN_PARAMS (the recurrent layer's parameters, in the order `recurrent_backward` returns their
    gradients) and implement `recurrent_forward` / `recurrent_backward`.
    """

    GATE_ROWS = 1
    STATE = ("h",)
    RNN_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def __init__(self, vocab_size: int, hidden_size: int, embed_size: int, seed: int = 0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        V, H, E, G = vocab_size, hidden_size, embed_size, self.GATE_ROWS
        k = 1 / np.sqrt(H)  # PyTorch's initialisation ranges, so both start alike
        u = lambda *shape, scale=k: rng.uniform(-scale, scale, size=shape).astype(dtype)
        shapes = {"weight_ih": (G * H, E), "weight_hh": (G * H, H), "bias_ih": (G * H,), "bias_hh": (G * H,)}
        self.params = {"embed.weight": rng.standard_normal((V, E)).astype(dtype)}
        self.params.update({f"rnn.{n}_l0": u(*shapes[n]) for n in self.RNN_PARAMS})
        self.params.update({"head.weight": u(V, H), "head.bias": u(V)})
        self.hidden_size = H

    @classmethod
    def names(cls) -> tuple:
        """The parameters' CharRNN state_dict names."""
        return ("embed.weight", *(f"rnn.{n}_l0" for n in cls.RNN_PARAMS), "head.weight", "head.bias")

    def init_state(self, batch_size: int) -> tuple:
        dtype = self.params["head.weight"].dtype
        return tuple(np.zeros((batch_size, self.hidden_size), dtype=dtype) for _ in self.STATE)

    def rnn_weights(self) -> tuple:
        """The recurrent layer's parameters, in RNN_PARAMS order."""
        return tuple(self.params[f"rnn.{n}_l0"] for n in self.RNN_PARAMS)

    def forward(self, tokens: np.ndarray, state: tuple | None = None):
        """tokens (B, T) -> logits (B, T, V), final state (tuple of (B, H)), cache for `backward`."""
        B, T = tokens.shape
        state = self.init_state(B) if state is None else state
        X = self.params["embed.weight"][tokens]  # (B, T, E)
        Hs, new_state, rcache = self.recurrent_forward(X, state)  # Hs (B, T, H)
        logits = Hs @ self.params["head.weight"].T + self.params["head.bias"]  # (B, T, V)
        return logits, new_state, (tokens, Hs, rcache)

    def backward(self, dlogits: np.ndarray, cache) -> dict:
        """Gradients of the loss w.r.t. every parameter, given dloss/dlogits (B, T, V).

        The incoming state is treated as a constant (truncated BPTT detaches it).
        """
        tokens, Hs, rcache = cache
        grads = {"head.weight": np.einsum("btv,bth->vh", dlogits, Hs),
                 "head.bias": dlogits.sum(axis=(0, 1))}
        dHs = dlogits @ self.params["head.weight"]  # (B, T, H)
        dX, rgrads = self.recurrent_backward(dHs, rcache)  # dX (B, T, E)
        grads.update(zip((f"rnn.{n}_l0" for n in self.RNN_PARAMS), rgrads))
        dE = np.zeros_like(self.params["embed.weight"])
        np.add.at(dE, tokens, dX)  # rows of repeated characters accumulate
        grads["embed.weight"] = dE
        return grads

    def loss_and_grads(self, tokens: np.ndarray, targets: np.ndarray, state: tuple | None = None):
        """min-char-rnn's lossFun: mean cross-entropy, gradients for every parameter, final state."""
        logits, new_state, cache = self.forward(tokens, state)
        loss, dlogits = softmax_cross_entropy(logits, targets)
        return loss, self.backward(dlogits, cache), new_state

    def loss(self, tokens: np.ndarray, targets: np.ndarray, state: tuple | None = None) -> float:
        return softmax_cross_entropy(self.forward(tokens, state)[0], targets)[0]

    # Subclass contract -------------------------------------------------------------------------

    def recurrent_forward(self, X, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def recurrent_backward(self, dHs, cache):  # pragma: no cover - abstract
        raise NotImplementedError
