"""Run a NumPy reference model inside the PyTorch training loop (`rnnkit train --backend numpy`).

`NumpyCharRNN` is an nn.Module with CharRNN's parameter names and forward contract whose forward
and backward passes are the hand-written NumPy ones: a `torch.autograd.Function` hands the
parameters to NumPy and the NumPy gradients back to autograd. So the same loop, optimiser,
clipping, checkpoints and sampler serve both backends, and the saved weights load into CharRNN.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from .lstm import ReferenceLSTM
from .minrnn import ReferenceMinGRU, ReferenceMinLSTM
from .rnn import ReferenceRNN


def build_reference(config: ModelConfig, seed: int = 0):
    """A NumPy reference model for `config` (1 layer, rnn, lstm, mingru or minlstm, no dropout)."""
    if config.cell == "gru" or config.num_layers != 1 or config.dropout:
        raise ConfigError("--backend numpy supports --cell rnn, lstm, mingru or minlstm with --num-layers 1 "
                          "and no --dropout")
    args = (config.vocab_size, config.hidden_size, config.embed_size)
    if config.cell == "rnn":
        return ReferenceRNN(*args, seed=seed, nonlinearity=config.nonlinearity)
    if config.cell == "lstm":
        return ReferenceLSTM(*args, seed=seed, forget_bias=config.forget_bias)
    return {"mingru": ReferenceMinGRU, "minlstm": ReferenceMinLSTM}[config.cell](*args, seed=seed)


class _NumpyForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ref, tokens, state, *params):
        ref.params = {n: p.detach().cpu().numpy() for n, p in zip(ref.names(), params)}  # views, no copies
        np_state = tuple(s[0].detach().cpu().numpy().astype(np.float64) for s in state)  # (B, H) each
        logits, new_state, cache = ref.forward(tokens.cpu().numpy(), np_state)
        ctx.ref, ctx.cache = ref, cache
        out_state = tuple(torch.from_numpy(s[None].copy()) for s in new_state)  # (1, B, H)
        ctx.mark_non_differentiable(*out_state)
        return (torch.from_numpy(logits),) + out_state

    @staticmethod
    def backward(ctx, dlogits, *unused_state_grads):
        grads = ctx.ref.backward(dlogits.detach().cpu().numpy(), ctx.cache)
        return (None, None, None) + tuple(torch.from_numpy(grads[n]) for n in ctx.ref.names())


class _Holder(nn.Module):
    """A bare container so parameter names come out as 'embed.weight', 'rnn.weight_ih_l0', ..."""


class NumpyCharRNN(nn.Module):
    """CharRNN's contract (`logits, state = model(tokens, state)`) computed by the NumPy reference."""

    def __init__(self, config: ModelConfig, seed: int = 0, vocab=None):
        super().__init__()
        self.config = config
        self.vocab = vocab
        self.ref = build_reference(config, seed)
        self.embed, self.rnn, self.head = _Holder(), _Holder(), _Holder()
        for name in self.ref.names():
            owner, attr = name.split(".")
            getattr(self, owner).register_parameter(attr, nn.Parameter(torch.from_numpy(self.ref.params[name])))

    def init_state(self, batch_size: int, device=None) -> tuple:
        return tuple(torch.zeros(1, batch_size, self.config.hidden_size, dtype=torch.float64)
                     for _ in self.ref.STATE)

    @staticmethod
    def detach_state(state):
        return None if state is None else tuple(s.detach() for s in state)

    def forward(self, tokens: torch.Tensor, state=None):
        if state is None:
            state = self.init_state(tokens.shape[0])
        params = [self.get_parameter(n) for n in self.ref.names()]
        logits, *new_state = _NumpyForward.apply(self.ref, tokens, tuple(state), *params)
        return logits, tuple(new_state)
