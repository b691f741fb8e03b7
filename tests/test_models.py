import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.models import CharRNN

CASES = [("rnn", "tanh", 1), ("rnn", "relu", 2), ("lstm", "tanh", 1), ("lstm", "tanh", 3), ("gru", "tanh", 1),
         ("gru", "tanh", 2), ("mingru", "tanh", 2), ("minlstm", "tanh", 3)]
CELLS = ["rnn", "lstm", "gru", "mingru", "minlstm"]


def _model(cell, nonlinearity="tanh", layers=2, dropout=0.0):
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, nonlinearity=nonlinearity, num_layers=layers, hidden_size=24, embed_size=10,
                      vocab_size=13, dropout=dropout)
    return CharRNN(cfg)


@pytest.mark.parametrize("cell,nonlinearity,layers", CASES)
def test_fused_and_per_step_cells_agree(cell, nonlinearity, layers):
    model = _model(cell, nonlinearity, layers, dropout=0.3).eval()  # eval: dropout off in both paths
    tokens = torch.randint(0, 13, (3, 17))
    state = tuple(torch.randn_like(s) * 0.5 for s in model.init_state(3))
    logits, new = model(tokens, state)
    logits2, new2, trace = model.forward_steps(tokens, state)
    torch.testing.assert_close(logits2, logits, atol=1e-5, rtol=1e-5)
    for a, b in zip(new, new2):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    # The trace is the per-step version of the state: its last step is the final state.
    assert len(trace.h) == layers and trace.h[0].shape == (3, 17, 24)
    torch.testing.assert_close(trace.h[-1][:, -1], new[0][-1], atol=1e-5, rtol=1e-5)
    assert sorted(trace.gates) == sorted(model.family.GATES)
    if cell == "lstm":
        assert len(trace.c) == layers
        torch.testing.assert_close(trace.c[0][:, -1], new[1][0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_fused_and_per_step_gradients_agree(cell):
    model = _model(cell)
    tokens, targets = torch.randint(0, 13, (2, 9)), torch.randint(0, 13, (2, 9))
    grads = []
    for fn in (model.forward, lambda t: model.forward_steps(t)[:2]):
        model.zero_grad()
        logits, _ = fn(tokens)
        torch.nn.functional.cross_entropy(logits.reshape(-1, 13), targets.reshape(-1)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
def test_whole_sequence_equals_chunks_with_carried_state(cell):
    model = _model(cell, layers=2).eval()
    tokens = torch.randint(0, 13, (4, 40))
    whole, whole_state = model(tokens)
    parts, state = [], None
    for chunk in tokens.split(7, dim=1):
        logits, state = model(chunk, state)
        parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, atol=1e-5, rtol=1e-5)
    for a, b in zip(state, whole_state):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_state_is_explicit_and_zero_by_default():
    model = _model("lstm").eval()
    tokens = torch.randint(0, 13, (2, 5))
    a, _ = model(tokens)
    b, _ = model(tokens, model.init_state(2))
    c, _ = model(tokens)  # nothing was remembered between calls
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    _, state = model(tokens)
    assert len(state) == 2 and state[0].shape == (2, 2, 24)
    assert all(not s.requires_grad for s in CharRNN.detach_state(state))


def test_lstm_forget_gate_bias_initialisation():
    cfg = ModelConfig(cell="lstm", num_layers=2, hidden_size=8, embed_size=4, vocab_size=5, forget_bias=2.5)
    model = CharRNN(cfg)
    for k in range(2):
        b = getattr(model.rnn, f"bias_ih_l{k}") + getattr(model.rnn, f"bias_hh_l{k}")
        assert torch.all(b[8:16] == 2.5)


def test_unknown_cell_is_rejected():
    from rnnkit.errors import ConfigError
    with pytest.raises(ConfigError, match="--cell must be one of rnn, lstm, gru"):
        ModelConfig(cell="transformer")
