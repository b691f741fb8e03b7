import numpy as np
import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.models import CharRNN
from rnnkit.reference import NumpyCharRNN, ReferenceLSTM, ReferenceMinGRU, ReferenceMinLSTM, ReferenceRNN

V, H, E = 7, 6, 5


def _make(kind, nonlinearity="tanh"):
    if kind == "lstm":
        return ReferenceLSTM(V, H, E, seed=1, forget_bias=1.0)
    if kind in ("mingru", "minlstm"):
        ref = (ReferenceMinGRU if kind == "mingru" else ReferenceMinLSTM)(V, H, E, seed=1)
        ref.params["rnn.bias_ih_l0"] += np.linspace(-2, 2, ref.params["rnn.bias_ih_l0"].size)  # both sides of g's knee
        return ref
    return ReferenceRNN(V, H, E, seed=1, nonlinearity=nonlinearity)


def _data(seed=0, B=3, T=8):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def _state(model, B=3):
    rng = np.random.default_rng(5)
    return tuple(rng.standard_normal((B, H)) * 0.5 for _ in model.STATE)


@pytest.mark.parametrize("kind,nonlinearity", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("mingru", "tanh"),
                                              ("minlstm", "tanh")])
def test_gradients_match_numerical_gradients(kind, nonlinearity):
    model = _make(kind, nonlinearity)
    x, y = _data()
    state = _state(model)
    _, grads, _ = model.loss_and_grads(x, y, state)
    eps = 1e-5
    for name, p in model.params.items():
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            plus = model.loss(x, y, state)
            p[idx] = old - eps
            minus = model.loss(x, y, state)
            p[idx] = old
            numeric[idx] = (plus - minus) / (2 * eps)
        rel = np.linalg.norm(grads[name] - numeric) / max(np.linalg.norm(grads[name]) + np.linalg.norm(numeric), 1e-12)
        assert rel < 1e-6, (name, rel)


@pytest.mark.parametrize("kind,nonlinearity", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("mingru", "tanh"),
                                              ("minlstm", "tanh")])
def test_numpy_matches_pytorch_autograd_on_the_same_weights(kind, nonlinearity):
    ref = _make(kind, nonlinearity)
    x, y = _data(seed=3)
    state = _state(ref)
    loss, grads, final = ref.loss_and_grads(x, y, state)
    cfg = ModelConfig(cell=kind, nonlinearity=nonlinearity, num_layers=1, hidden_size=H, embed_size=E, vocab_size=V)
    model = CharRNN(cfg).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ref.params.items()})
    t_state = tuple(torch.from_numpy(s)[None] for s in state)  # (1, B, H)
    logits, t_final = model(torch.from_numpy(x), t_state)
    t_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    t_loss.backward()
    assert abs(t_loss.item() - loss) < 1e-12
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    for a, b in zip(final, t_final):
        np.testing.assert_allclose(a, b[0].detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "minlstm"])
def test_numpy_backend_module_trains_like_the_torch_model(cell):
    """The autograd bridge hands NumPy's gradients to the optimizer: same steps as CharRNN in float64."""
    cfg = ModelConfig(cell=cell, num_layers=1, hidden_size=H, embed_size=E, vocab_size=V)
    ref = NumpyCharRNN(cfg, seed=2)
    twin = CharRNN(cfg).double()
    twin.load_state_dict(ref.state_dict())
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (ref, twin)]
    states = [None, None]
    for step in range(5):
        x, y = (torch.from_numpy(a) for a in _data(seed=step))
        for i, m in enumerate((ref, twin)):
            logits, st = m(x, states[i])
            states[i] = tuple(s.detach() for s in st)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            opts[i].zero_grad()
            loss.backward()
            opts[i].step()
    for (name, a), b in zip(ref.named_parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=name)
