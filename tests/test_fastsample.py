"""The fast stepper, on NumPy and on the compiled loop (rnnkit/_csample.c), against the model it was
built from and against each other."""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import fastsample
from rnnkit.config import ModelConfig, SampleConfig, build
from rnnkit.data import Vocab
from rnnkit.fastsample import BATCHED, FastStepper, from_bf16, pack, to_bf16
from rnnkit.models import CharRNN
from rnnkit.sample import choose, generate

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
@pytest.mark.parametrize("streams", [5, 12])  # 12: from BATCHED streams on, NumPy's products go through torch.mm
@pytest.mark.parametrize("loop", ["numpy", "compiled"])
def test_fast_stepper_gives_the_models_distributions(cell, layers, nonlinearity, streams, loop):
    model = _model(cell, layers, nonlinearity)
    fast = FastStepper(model, compiled_loop=loop == "compiled")
    assert fast.compiled == (loop == "compiled")
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


def test_the_compiled_loop_is_built():
    """The package builds rnnkit/_csample.c on install; where it did not, sampling would silently run on
    NumPy (correct, slower), so a machine with a compiler must have it. RNNKIT_SAMPLER=numpy turns it off."""
    assert fastsample.compiled() in ("avx512", "avx2", "baseline")


def test_the_fma_probe_counts_what_it_does():
    """benchmarks/machine.py's FMA peak: chains of multiply-adds at the copy's vector width (16 chains of
    16 lanes for AVX-512, 10 of 8 or 4 below), two flops each, and its time grows with the work."""
    import time
    lanes, chains = {"avx512": (16, 16), "avx2": (8, 10), "baseline": (4, 10)}[fastsample._csample.ISA]
    assert fastsample._csample.fma_flops(1000) == 2 * lanes * chains * 1000
    times = []
    for iters in (200_000, 2_000_000):
        t = time.perf_counter()
        fastsample._csample.fma_flops(iters)
        times.append(time.perf_counter() - t)
    assert times[1] > 3 * times[0]  # not folded away by the compiler


def test_the_environment_can_turn_the_compiled_loop_off(monkeypatch):
    monkeypatch.setenv("RNNKIT_SAMPLER", "numpy")
    assert fastsample.compiled() is None and not FastStepper(_model("gru", 1)).compiled


def test_packing_and_bf16_keep_every_weight():
    w = np.random.default_rng(0).normal(size=(13, 150)).astype(np.float32)
    packed = pack(w, 64)  # 3 tiles, the last with 22 real columns and 42 of zeros
    assert packed.shape == (3, 13, 64) and np.all(packed[2, :, 22:] == 0)
    assert np.array_equal(np.concatenate(list(packed), axis=1)[:, :150], w)
    back = from_bf16(to_bf16(w))
    assert np.all(np.abs(back - w) <= np.abs(w) * 2.0 ** -8)  # bf16 keeps 8 bits of mantissa, rounded
    assert to_bf16(np.array([1.0, -2.5], np.float32)).tolist() == [0x3F80, 0xC020]


@pytest.mark.parametrize("cell,nonlinearity", [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")])
@pytest.mark.parametrize("hidden,vocab", [(48, 14), (70, 300)])  # tiles with padding, logits past a tile
def test_the_compiled_step_matches_numpy(cell, nonlinearity, hidden, vocab):
    torch.manual_seed(1)
    model = CharRNN(ModelConfig(cell=cell, num_layers=2, hidden_size=hidden, embed_size=12, vocab_size=vocab,
                                nonlinearity=nonlinearity)).eval()
    numpy_, compiled = FastStepper(model, compiled_loop=False), FastStepper(model)
    for streams in (1, 3, 9):  # one stream; fewer than a group of four; two groups and one more
        a, b = numpy_.zero_state(streams), compiled.zero_state(streams)
        rng = np.random.default_rng(streams)
        for _ in range(80):
            tokens = rng.integers(0, vocab, streams)
            la, a = numpy_.step(tokens, a)
            lb, b = compiled.step(tokens, b)
            assert np.abs(la - lb).max() < 1e-5
        for k in range(2):  # the state too, so that either path can continue the other's streams
            assert np.abs(a.h[k] - b.h[k]).max() < 1e-5 and np.abs(a.out[k] - b.out[k]).max() < 1e-5


@pytest.mark.parametrize("options", [{}, {"greedy": True}, {"temperature": 0.6}, {"top_k": 4},
                                     {"top_p": 0.8}, {"temperature": 1.3, "top_k": 9, "top_p": 0.95}])
def test_the_compiled_loop_chooses_as_choose(options):
    """run() against the Python loop: choose() on the NumPy stepper's logits, the same uniforms."""
    model = _model("lstm", 2)
    opts = build(SampleConfig, options)
    numpy_, compiled = FastStepper(model, compiled_loop=False), FastStepper(model)
    streams = 5
    uniforms = np.random.default_rng(7).random((300, streams))
    a, b = numpy_.zero_state(streams), compiled.zero_state(streams)
    last = np.random.default_rng(8).normal(size=(streams, len(VOCAB))).astype(np.float32)
    expected, la = [], last.copy()
    for t in range(300):
        tokens = choose(la, opts, u=uniforms[t])
        expected.append(tokens)
        la, a = numpy_.step(tokens, a)
    lb = last.copy()
    first = compiled.run(b, lb, uniforms[:120], opts)  # in two calls: the second starts from the first's end
    second = compiled.run(b, lb, uniforms[120:], opts)
    assert np.array_equal(np.concatenate([first, second]), np.array(expected))
    assert np.array_equal(lb, b.above[-1])  # the logits after the last step, left for a next call


def test_the_compiled_loop_ends_with_every_stream():
    model = _model("gru", 1)
    stepper = FastStepper(model)
    opts = build(SampleConfig, {"greedy": True})
    state = stepper.zero_state(2)
    last = np.zeros((2, len(VOCAB)), np.float32)
    last[0, 3] = last[1, 5] = 1.0  # the first choices: 3 and 5
    tokens = stepper.run(state, last.copy(), np.zeros((50, 2)), opts, end=3)
    assert tokens[0].tolist() == [3, 5] and len(tokens) <= 50
    assert len(tokens) == 50 or 3 in tokens[:, 1]  # it ends early only once both streams chose 3
    one = stepper.run(stepper.zero_state(1), last[:1].copy(), np.zeros((50, 1)), opts, end=3)
    assert one.tolist() == [[3]]  # the only stream chose the end: nothing more runs


@pytest.mark.parametrize("precision,tolerance", [("bf16", 0.01), ("int8", 0.02)])
def test_reduced_weights_keep_the_distributions(trained_run, precision, tolerance):
    """A bf16 or int8 copy of a trained model's weights, stepped on the same characters: every
    next-character probability within the tolerance the README and --sample-weights state."""
    model = rnnkit.load(trained_run.dir)
    full, reduced = FastStepper(model), FastStepper(model, precision=precision)
    assert reduced.w_run[0].dtype == {"bf16": np.uint16, "int8": np.int8}[precision]
    text = model.vocab.encode("ROMEO:\nWhat light through yonder window breaks? It is the east.\n" * 4)
    a, b = full.zero_state(1), reduced.zero_state(1)
    worst = 0.0
    for token in text:
        la, a = full.step([token], a)
        lb, b = reduced.step([token], b)
        pa, pb = (np.exp(x - x.max()) / np.exp(x - x.max()).sum() for x in (la.astype(np.float64), lb.astype(np.float64)))
        worst = max(worst, float(np.abs(pa - pb).max()))
    assert 0 < worst < tolerance
    texts = generate(model, 2, length=100, seed=3, sample_weights=precision)
    assert len(texts) == 2 and all(len(t) == 100 for t in texts)


def test_int8_weights_are_each_columns_scale_times_whole_numbers():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((9, 70)).astype(np.float32) * rng.uniform(0.01, 3, 70).astype(np.float32)
    w[:-1, 5] = 0  # a column of zeros
    w[-1] *= 50  # large biases stay exact: they are kept apart
    q, aux = fastsample.to_int8(w)
    assert q.dtype == np.int8 and q.shape == (8, 70) and np.abs(q).max() == 127
    assert (np.abs(q * aux[0] - w[:-1]) <= aux[0] / 2 * (1 + 1e-6)).all()
    assert (aux[1] == w[-1]).all() and (q[:, 5] == 0).all()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("streams", [1, 3, 9])
def test_the_int8_loop_computes_with_the_dequantized_weights(cell, streams):
    """The compiled int8 product equals NumPy's with the weights the int8 copy stands for (q x scale,
    biases exact): the only difference from fp32 is the rounding to whole numbers."""
    model = _model(cell, 2, hidden=70)  # 70: tiles with padding
    quantized = FastStepper(model, precision="int8")
    reference = FastStepper(model, compiled_loop=False)
    for w in reference.w_next:  # in place: the torch views of the batched path share these arrays
        q, aux = fastsample.to_int8(w)
        w[:-1] = q * aux[0]
    tokens = np.random.default_rng(1).integers(0, len(VOCAB), (40, streams))
    a, b = quantized.zero_state(streams), reference.zero_state(streams)
    for t in range(40):
        la, a = quantized.step(tokens[t], a)
        lb, b = reference.step(tokens[t], b)
        np.testing.assert_allclose(la, lb, atol=2e-5, err_msg=str(t))


def test_the_compiled_path_writes_the_numpy_paths_text(monkeypatch, trained_run):
    """The same text for a seed. (Both paths round differently, so a choice could differ where a uniform
    falls within rounding of a boundary of the distribution; on a trained model that is rarer than one
    character in millions. The saturated test models above amplify rounding instead: their texts part
    after some hundreds of characters on some instruction sets.)"""
    model = rnnkit.load(trained_run.dir)
    cases = [dict(n=1, prime="ROMEO:"), dict(n=4, top_k=5, temperature=0.8), dict(n=3, stop="."),
             dict(n=2, top_p=0.7)]
    compiled = [generate(model, length=700, seed=9, **c) for c in cases]  # 700: chunks of 256 and a partial one
    monkeypatch.setenv("RNNKIT_SAMPLER", "numpy")
    assert compiled == [generate(model, length=700, seed=9, **c) for c in cases]


@pytest.mark.parametrize("streams", [1, 6])
def test_threads_share_a_product_without_changing_it(streams):
    """Each column is summed by one thread in the same order, so two threads give the very numbers one does."""
    model = _model("lstm", 2, hidden=150)  # 3 x 150 + 14 columns: tiles split unevenly
    one, two = FastStepper(model, threads=1), FastStepper(model, threads=2)
    a, b = one.zero_state(streams), two.zero_state(streams)
    rng = np.random.default_rng(0)
    for _ in range(40):
        tokens = rng.integers(0, len(VOCAB), streams)
        la, a = one.step(tokens, a)
        lb, b = two.step(tokens, b)
        assert np.array_equal(la, lb)
    opts = build(SampleConfig, {"temperature": 0.9})
    u = rng.random((200, streams))
    assert np.array_equal(one.run(a, la.copy(), u, opts), two.run(b, lb.copy(), u, opts))


def test_a_forked_child_samples_with_threads():
    """The worker threads do not survive fork(); a child (a multiprocessing worker) must start its own
    rather than wait for them. (The child runs only the compiled loop: PyTorch's own OpenMP threads
    hang in a child forked after they ran, whatever rnnkit does.)"""
    import os
    import signal
    import time
    model = _model("gru", 1, hidden=150)
    stepper = FastStepper(model, threads=2)
    opts = build(SampleConfig, {})
    u = np.random.default_rng(0).random((300, 1))
    stepper.run(stepper.zero_state(1), np.zeros((1, len(VOCAB)), np.float32), u[:50], opts)  # workers exist now
    expected = stepper.run(stepper.zero_state(1), np.zeros((1, len(VOCAB)), np.float32), u, opts)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: sample, send the tokens, leave without running the parent's cleanup
        try:
            signal.alarm(30)
            got = stepper.run(stepper.zero_state(1), np.zeros((1, len(VOCAB)), np.float32), u, opts)
            os.write(write, got.astype(np.int64).tobytes())
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.05)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    assert np.array_equal(np.frombuffer(data, dtype=np.int64).reshape(-1, 1), expected)


def test_two_threads_only_where_the_weights_outgrow_a_cache():
    import os
    small = FastStepper(_model("lstm", 2))
    big = FastStepper(CharRNN(ModelConfig(cell="lstm", num_layers=2, hidden_size=512, embed_size=8,
                                          vocab_size=len(VOCAB))))
    assert small.threads_for(1) == 1 and big.threads_for(1) == min(2, os.cpu_count())
    assert FastStepper(_model("lstm", 2), threads=2).threads_for(1) == 2  # as asked
