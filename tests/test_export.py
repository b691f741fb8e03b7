"""ONNX export: onnxruntime against PyTorch with carried state, the README's no-PyTorch sampling
example, and the `rnnkit export` command."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.config import ClassifierConfig, GeneratorConfig, ModelConfig
from rnnkit.data import Vocab
from rnnkit.export import export_onnx
from rnnkit.models import CharRNN
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.generator import CharGenerator

from conftest import run_cli

ort = pytest.importorskip("onnxruntime")
README = Path(__file__).resolve().parent.parent / "README.md"
VOCAB = Vocab("char", list("\n abcdefghijklmnopqrstuvwxyz.,:ROMEO"))


def _model(cell):
    torch.manual_seed(0)
    return CharRNN(ModelConfig(cell=cell, num_layers=2, hidden_size=24, embed_size=8, vocab_size=len(VOCAB)),
                   vocab=VOCAB).eval()


def _feed(names, state):
    return {n: s.numpy() for n, s in zip(names, state)}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_onnxruntime_agrees_with_pytorch_over_carried_state(tmp_path, cell):
    model = _model(cell)
    meta = export_onnx(model, tmp_path)
    step = ort.InferenceSession(str(tmp_path / "step.onnx"))
    sequence = ort.InferenceSession(str(tmp_path / "sequence.onnx"))
    names = meta["inputs"][1:]
    # Greedy, one token at a time for 300 steps: the same logits and the same text.
    token, state, feed = torch.tensor([[0]]), None, _feed(names, model.init_state(1, torch.device("cpu")))
    torch_text, onnx_text, onnx_token = [], [], 0
    worst = 0.0
    with torch.no_grad():
        for _ in range(300):
            logits, state = model(token, state)
            got, *new = step.run(None, {"tokens": np.array([[onnx_token]], dtype=np.int64), **feed})
            feed = dict(zip(names, new))
            worst = max(worst, float(np.abs(got - logits.numpy()).max()))
            token = logits[:, -1].argmax(-1, keepdim=True)
            onnx_token = int(got[0, -1].argmax())
            torch_text.append(int(token))
            onnx_text.append(onnx_token)
    assert worst < 1e-4 and torch_text == onnx_text
    # Chunks of 50 at batch 3 through the sequence graph, state carried, against one PyTorch call.
    tokens = torch.randint(0, len(VOCAB), (3, 300))
    with torch.no_grad():
        whole, _ = model(tokens)
    feed = _feed(names, model.init_state(3, torch.device("cpu")))
    chunks = []
    for t in range(0, 300, 50):
        got, *new = sequence.run(None, {"tokens": tokens[:, t:t + 50].numpy(), **feed})
        feed = dict(zip(names, new))
        chunks.append(got)
    assert np.abs(np.concatenate(chunks, axis=1) - whole.numpy()).max() < 1e-4


@pytest.mark.parametrize("extra", [dict(cell="gru", bidirectional=True, pooling="max", ngram_buckets=97, ngram_order=3),
                                   dict(cell="lstm", bidirectional=True, pooling="last", num_layers=2),
                                   dict(cell="rnn", pooling="attention"), dict(cell="none", pooling="mean"),
                                   dict(cell="gru", pooling="mean", num_features=64, frame_shape=[8, 8, 1])])
def test_a_classifier_exports_for_rows_of_equal_length(tmp_path, extra):
    """The unpacked graph against the packed PyTorch model, for every batch and length onnxruntime is given."""
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(hidden_size=12, embed_size=8, vocab_size=20, num_classes=3, **extra),
                               classes=["a", "b", "c"]).eval()
    meta = export_onnx(model, tmp_path)
    assert meta["classes"] == ["a", "b", "c"] and (tmp_path / "classifier.onnx").exists()
    session = ort.InferenceSession(str(tmp_path / "classifier.onnx"))
    for B, T in ((1, 1), (1, 9), (4, 6), (3, 17)):
        x = torch.rand(B, T, 8, 8, 1) if "frame_shape" in extra else torch.randint(0, 20, (B, T))
        with torch.no_grad():
            expected = model(x, torch.full((B,), T))[0].numpy()
        got = session.run(None, {meta["inputs"][0]: x.numpy()})[0]
        assert np.abs(got - expected).max() < 1e-5, (B, T)


@pytest.mark.parametrize("condition", ["both", "step", "none"])
def test_a_generator_exports_with_its_classes(tmp_path, condition):
    torch.manual_seed(0)
    model = CharGenerator(GeneratorConfig(cell="lstm", num_layers=2, hidden_size=16, embed_size=8,
                                          vocab_size=len(VOCAB), num_classes=3, condition=condition),
                          vocab=VOCAB, classes=["x", "y", "z"]).eval()
    with torch.no_grad():  # the learned start states are zeros until trained: make them matter
        if model.class_state is not None:
            model.class_state.weight.normal_()
    meta = export_onnx(model, tmp_path)
    conditional = condition != "none"
    assert meta["model"] == "generator" and meta["boundary"] == "\n" and (tmp_path / "start.onnx").exists() == conditional
    assert meta["classes"] == (["x", "y", "z"] if conditional else [])
    tokens, classes = torch.randint(0, len(VOCAB), (3, 40)), torch.tensor([2, 0, 1])
    with torch.no_grad():
        expected, _ = model(tokens, classes=classes if conditional else None)
    extra = {"classes": classes.numpy()} if conditional else {}
    if conditional:
        start = ort.InferenceSession(str(tmp_path / "start.onnx")).run(None, {"classes": classes.numpy()})
        feed = dict(zip(meta["state_inputs"], start))
    else:
        feed = _feed(meta["state_inputs"], model.init_state(3, torch.device("cpu")))
    step = ort.InferenceSession(str(tmp_path / "step.onnx"))
    got = []
    for t in range(40):  # one symbol at a time, the state carried
        logits, *new = step.run(None, {"tokens": tokens[:, t:t + 1].numpy(), **extra, **feed})
        feed = dict(zip(meta["state_inputs"], new))
        got.append(logits)
    assert np.abs(np.concatenate(got, axis=1) - expected.numpy()).max() < 1e-4


def test_the_readme_example_samples_without_pytorch(tmp_path, trained_run):
    p = run_cli("export", trained_run.dir, "--out", tmp_path / "runs" / "mine-onnx")
    assert p.returncode == 0 and "step.onnx" in p.stdout, p.stderr
    text = README.read_text("utf-8")
    code = re.search(r"<!-- onnx-example -->\n```python\n(.*?)```", text, re.S).group(1)
    blocker = 'import sys\nsys.modules["torch"] = None  # any import of PyTorch fails\n'
    p = subprocess.run([sys.executable, "-c", blocker + code], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith("ROMEO:") and len(p.stdout.rstrip("\n")) >= 150


def test_export_command_refuses_what_it_cannot_do(tmp_path, trained_run, words):
    out = tmp_path / "onnx"
    assert run_cli("export", trained_run.dir, "--out", out).returncode == 0
    before = (out / "step.onnx").read_bytes()
    p = run_cli("export", trained_run.dir, "--out", out)
    assert p.returncode == 1 and "pass --force" in p.stderr and (out / "step.onnx").read_bytes() == before
    assert run_cli("export", trained_run.dir, "--out", out, "--force").returncode == 0
    import rnnkit
    assert rnnkit.export(trained_run.dir, tmp_path / "api", force=True)["inputs"] == ["tokens", "h0", "c0"]
    # A trained classifier: its graph gives the probabilities rnnkit's predict gives, word by word.
    run = rnnkit.train(words, out=tmp_path / "cls", task="classify", max_steps=20, hidden_size=8, embed_size=4,
                       bidirectional=True, progress=False, log=lambda m: None)
    p = run_cli("export", run.dir, "--out", tmp_path / "cls-onnx")
    assert p.returncode == 0 and "classifier.onnx" in p.stdout, p.stderr
    model, session = rnnkit.load(run.dir), ort.InferenceSession(str(tmp_path / "cls-onnx" / "classifier.onnx"))
    for word in ("hello", "olleh", "a"):
        logits = session.run(None, {"tokens": model.vocab.encode(word).astype(np.int64)[None]})[0]
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert np.abs(probs - model.predict_proba([word]).numpy()).max() < 1e-5
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("abc", "hello", "world", "rnn", "kit") * 8))
    s2s = rnnkit.train(pairs, out=tmp_path / "s2s", task="seq2seq", max_steps=2, hidden_size=8, embed_size=4,
                       batch_size=4, sample_every=0, progress=False, log=lambda m: None)
    p = run_cli("export", s2s.dir, "--out", tmp_path / "s2s-onnx")
    assert p.returncode == 2 and "this run's Seq2Seq does not export yet" in p.stderr
