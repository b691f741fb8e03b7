"""minGRU and minLSTM (rnnkit.models.scan, mingru, minlstm): the parallel log-space scan, the loop with its
hand-written backward and the readable per-step cell compute one function; the families train, save,
sample and serve like the others. (The NumPy reference's gradients: tests/test_reference.py.)"""

import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.config import ConfigError, GeneratorConfig, ModelConfig, Seq2SeqConfig
from rnnkit.data import Vocab
from rnnkit.fastsample import FastStepper
from rnnkit.models import CharRNN, mingru, minlstm, scan
from rnnkit.sample import generate

from conftest import SMALL

MIN_CELLS = ["mingru", "minlstm"]
VOCAB = Vocab("char", list("abcdefghij \n.,"))


def _model(cell, layers=2, hidden=24, dtype=torch.float64, scale=3.0):
    torch.manual_seed(7)
    cfg = ModelConfig(cell=cell, num_layers=layers, hidden_size=hidden, embed_size=10, vocab_size=len(VOCAB))
    model = CharRNN(cfg, vocab=VOCAB).to(dtype)
    with torch.no_grad():  # larger weights: gates near 0 and 1, candidates on both sides of g's knee
        for p in model.rnn.parameters():
            p.mul_(scale)
    return model


def _coefficients(cell, B=3, T=50, H=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    family = {"mingru": mingru, "minlstm": minlstm}[cell]
    pre = torch.randn(B, T, len(family.GATES) * H, generator=gen, dtype=torch.float64) * 4
    return family, pre


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_log_space_coefficients_are_the_logs_of_the_step_coefficients(cell):
    family, pre = _coefficients(cell)
    log_a, log_b = family.coefficients(pre)
    a, b = family.step_coefficients(pre)
    torch.testing.assert_close(log_a.exp(), a, rtol=1e-12, atol=0)
    torch.testing.assert_close(log_b.exp(), b, rtol=1e-12, atol=0)
    assert (a > 0).all() and (a < 1).all() and (b > 0).all()


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_scan_and_loop_equal_the_plain_recurrence(cell):
    family, pre = _coefficients(cell)
    a, b = family.step_coefficients(pre)
    h0 = torch.randn(3, 8, dtype=torch.float64)  # negative entries too: the scan keeps h0 outside its logs
    h, expected = h0, []
    for t in range(pre.shape[1]):
        h = a[:, t] * h + b[:, t]
        expected.append(h)
    expected = torch.stack(expected, dim=1)
    torch.testing.assert_close(scan.log_scan(*family.coefficients(pre), h0), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(scan.recurrence(a, b, h0), expected, rtol=1e-13, atol=1e-13)  # (addcmul: one rounding)


def test_the_loops_backward_is_autograds():
    _, pre = _coefficients("mingru", T=12)
    a, b = torch.rand_like(pre[..., :8]), torch.randn_like(pre[..., :8])
    h0 = torch.randn(3, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(scan.recurrence, (a.requires_grad_(), b.requires_grad_(), h0.requires_grad_()))


def test_long_inputs_are_scanned_in_chunks_in_float32(monkeypatch):
    """Over 2,000 steps in float32 the chunked scan's states stay within 1e-4 (relative) of the loop in
    float64; one unchunked scan of the same length drifts further, which is why it is chunked."""
    family, pre = _coefficients("minlstm", B=2, T=2000, H=16, seed=1)
    h0 = torch.zeros(2, 16, dtype=torch.float64)
    exact = scan.recurrence(*family.step_coefficients(pre), h0)
    error = lambda h: float(((h.double() - exact).abs() / exact.abs().clamp_min(1e-3)).max())
    chunked = error(scan.scan(*family.coefficients(pre.float()), h0.float()))
    assert chunked < 1e-4
    assert error(scan.recurrence(*family.step_coefficients(pre.float()), h0.float())) < 1e-6  # the loop
    monkeypatch.setattr(scan, "SCAN_CHUNK", 10_000)
    assert error(scan.scan(*family.coefficients(pre.float()), h0.float())) > 3 * chunked


@pytest.mark.parametrize("cell", MIN_CELLS)
@pytest.mark.parametrize("mode", ["log", "loop"])
def test_both_modes_give_the_cells_logits_and_gradients(cell, mode):
    model = _model(cell, layers=3)
    model.rnn.mode = mode
    tokens, targets = torch.randint(0, len(VOCAB), (3, 30)), torch.randint(0, len(VOCAB), (3, 30))
    state = (torch.randn(3, 3, 24, dtype=torch.float64),)
    grads, outs = [], []
    for fn in (model.forward, lambda t, s: model.forward_steps(t, s)[:2]):
        model.zero_grad()
        logits, new = fn(tokens, state)
        torch.nn.functional.cross_entropy(logits.reshape(-1, len(VOCAB)), targets.reshape(-1)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        outs.append((logits.detach(), new[0].detach()))
    for x, y in zip(*outs):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-11)
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-10)


def test_auto_mode_loops_on_the_cpu(monkeypatch):
    model = _model("mingru")
    calls = []
    monkeypatch.setattr(scan, "recurrence", lambda *a: calls.append("loop") or scan._Recurrence.apply(*a))
    model(torch.randint(0, len(VOCAB), (2, 9)))
    assert calls == ["loop", "loop"]
    with pytest.raises(ValueError, match="mode"):
        scan.MinStack("mingru", None, None, 2, 4, 4, 1, mode="fast")


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_bf16_autocast_keeps_the_recurrence_in_float32(cell):
    model = _model(cell, dtype=torch.float32, scale=1.0)
    tokens = torch.randint(0, len(VOCAB), (2, 40))
    exact, _ = model(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, state = model(tokens)
    assert state[0].dtype == torch.float32
    assert (mixed.float() - exact).abs().max() < 0.1  # bf16 products, float32 state: no drift over 40 steps


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_the_fast_stepper_steps_the_min_cells(cell):
    model = _model(cell, layers=2, dtype=torch.float32).eval()
    fast = FastStepper(model)
    assert not fast.compiled  # the compiled loop knows rnn, lstm and gru; these step on NumPy
    tokens = torch.randint(0, len(VOCAB), (12, 40))  # 12 streams: the batched (torch.mm) products too
    with torch.no_grad():
        _, state = model(tokens[:, :20])
        whole, _ = model(tokens)
    st = fast.from_torch_state(state)
    for t in range(20, 40):
        out, st = fast.step(tokens[:, t].numpy(), st)
        np.testing.assert_allclose(out, whole[:, t].numpy(), atol=2e-5)
    with pytest.raises(ValueError, match="compiled"):
        FastStepper(model, precision="bf16")


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_same_seed_same_text_on_both_paths(cell):
    model = _model(cell, dtype=torch.float32).eval()
    for opts in ({"temperature": 0.8, "top_k": 5}, {"greedy": True}):
        fast = generate(model, 3, length=150, fast=True, seed=4, prime="abc", **opts)
        assert fast == generate(model, 3, length=150, fast=False, seed=4, prime="abc", **opts), opts
    # bf16 sampling weights belong to the compiled loop: these models keep their float32 NumPy path
    assert generate(model, 2, length=50, seed=4, sample_weights="bf16") == generate(model, 2, length=50, seed=4)


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_train_save_load_sample(tmp_path, small_corpus, cell):
    run = rnnkit.train(small_corpus, out=tmp_path / cell, cell=cell, max_steps=60, eval_every=30, progress=False,
                       log=lambda m: None, **SMALL)
    assert run.final_val_loss < math.log(run.model.config.vocab_size) - 0.7  # well below uniform (4.1 nats)
    loaded = rnnkit.load(run.dir, checkpoint="last")
    assert loaded.config.cell == cell and isinstance(loaded.rnn, scan.MinStack)
    tokens = torch.randint(0, loaded.config.vocab_size, (2, 25))
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens)[0], run.model.eval()(tokens)[0])
    text = rnnkit.sample(run.dir, length=80, seed=1)
    assert len(text) == 80 and text == rnnkit.sample(run.dir, length=80, seed=1)


def test_other_tasks_refuse_the_min_cells():
    ModelConfig(cell="mingru")  # the language model takes them
    for cls in (GeneratorConfig, Seq2SeqConfig):
        with pytest.raises(ConfigError, match="--cell minlstm is for language models"):
            cls(cell="minlstm")
