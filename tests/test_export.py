"""ONNX export: onnxruntime against PyTorch with carried state, the README's no-PyTorch sampling
example, and the `rnnkit export` command."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.data import Vocab
from rnnkit.export import export_onnx
from rnnkit.models import CharRNN

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
    run = rnnkit.train(words, out=tmp_path / "cls", task="classify", max_steps=2, hidden_size=8, embed_size=4,
                       progress=False, log=lambda m: None)
    p = run_cli("export", run.dir, "--out", tmp_path / "cls-onnx")
    assert p.returncode == 2 and "ONNX export covers character language models" in p.stderr
