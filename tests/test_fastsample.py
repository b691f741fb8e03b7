"""The fast NumPy stepper against the model it was built from."""

import numpy as np
import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.data import Vocab
from rnnkit.fastsample import BATCHED, FastStepper
from rnnkit.models import CharRNN
from rnnkit.sample import generate

VOCAB = Vocab("char", list("abcdefghij \n.,"))


def _model(cell, layers, nonlinearity="tanh", hidden=48):
    torch.manual_seed(3)
    cfg = ModelConfig(cell=cell, num_layers=layers, hidden_size=hidden, embed_size=12, vocab_size=len(VOCAB),
                      nonlinearity=nonlinearity, forget_bias=1.0 if cell == "lstm" else None)
    model = CharRNN(cfg, vocab=VOCAB).eval()
    with torch.no_grad():  # larger weights than the default init, so that gates saturate and differ
        for p in model.rnn.parameters():
            p.mul_(1 if nonlinearity == "relu" else 3)  # (unbounded relu units would blow up instead)
    return model


@pytest.mark.parametrize("cell,layers,nonlinearity", [("lstm", 1, "tanh"), ("lstm", 3, "tanh"), ("gru", 1, "tanh"),
                                                      ("gru", 2, "tanh"), ("rnn", 2, "tanh"), ("rnn", 2, "relu")])
@pytest.mark.parametrize("streams", [5, 12])  # 12: from BATCHED streams on, the products go through torch.mm
def test_fast_stepper_gives_the_models_distributions(cell, layers, nonlinearity, streams):
    model = _model(cell, layers, nonlinearity)
    fast = FastStepper(model)
    tokens = torch.randint(0, len(VOCAB), (streams, 60))  # several streams at once
    with torch.no_grad():
        logits, _ = model(tokens)
        ref = torch.softmax(logits, -1).numpy()
    state = fast.zero_state(streams)
    assert state.batched == (streams >= BATCHED)
    for t in range(tokens.shape[1]):
        out, state = fast.step(tokens[:, t].numpy(), state)
        probs = np.exp(out - out.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        assert np.abs(probs - ref[:, t]).max() < 1e-5, t


def test_fast_stepper_continues_from_a_model_state():
    model = _model("lstm", 2)
    tokens = torch.randint(0, len(VOCAB), (2, 30))
    with torch.no_grad():
        whole, _ = model(tokens)
        _, state = model(tokens[:, :20])
    fast = FastStepper(model)
    st = fast.from_torch_state(state)
    for t in range(20, 30):
        out, st = fast.step(tokens[:, t].numpy(), st)
        np.testing.assert_allclose(out, whole[:, t].numpy(), atol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_same_seed_same_text_on_both_paths(cell):
    model = _model(cell, 2)
    for opts in ({"temperature": 1.0}, {"temperature": 0.7, "top_k": 5}, {"top_p": 0.9}, {"greedy": True}):
        fast = generate(model, 3, length=200, fast=True, seed=11, prime="abc", **opts)
        plain = generate(model, 3, length=200, fast=False, seed=11, prime="abc", **opts)
        assert fast == plain, opts
        assert all(t.startswith("abc") and len(t) == 203 for t in fast)
    batch = generate(model, 4, length=100, seed=5)
    assert len(set(batch)) == 4  # independent streams
    assert batch == generate(model, 4, length=100, seed=5)


def test_stop_strings_end_each_stream_separately():
    model = _model("lstm", 1)
    texts = generate(model, 6, length=400, seed=2, stop=".")
    for t in texts:
        assert t.count(".") <= 1 and (t.endswith(".") or len(t) == 400)
