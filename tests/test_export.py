"""ONNX export: onnxruntime against PyTorch for every task's model (carried state, greedy decoding
driven by export.json alone), the README's no-PyTorch sampling example, and the `rnnkit export`
command."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.config import (CaptionConfig, ClassifierConfig, ForecasterConfig, GeneratorConfig, GlimpseConfig,
                           ModelConfig, Seq2SeqConfig, VQAConfig)
from rnnkit.data import Vocab
from rnnkit.data.pairs import pad_ids
from rnnkit.export import export_onnx
from rnnkit.models import CharRNN
from rnnkit.models.captioner import Captioner
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.forecaster import SeriesRNN
from rnnkit.models.generator import CharGenerator
from rnnkit.models.glimpse import GlimpseClassifier
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.vqa import VQAModel

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


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru", "minlstm"])
def test_onnxruntime_agrees_with_pytorch_over_carried_state(tmp_path, cell):
    model = _model(cell)
    meta = export_onnx(model, tmp_path)
    step = ort.InferenceSession(str(tmp_path / "step.onnx"))
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
    if cell in ("mingru", "minlstm"):  # their scan has no ONNX operator: step.onnx alone, and said so
        assert meta["files"][0] == "step.onnx" and not (tmp_path / "sequence.onnx").exists()
        assert "one token at a time" in meta["state"]
        return
    # Chunks of 50 at batch 3 through the sequence graph, state carried, against one PyTorch call.
    sequence = ort.InferenceSession(str(tmp_path / "sequence.onnx"))
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


def _onnx_greedy(d, meta, source: dict, steps: int):
    """Greedy decoding through encoder.onnx and decoder.onnx, driven by export.json alone: the ids of
    each row (without eos), and every step's input token, logits and attention."""
    encoder, decoder = (ort.InferenceSession(str(d / f"{n}.onnx")) for n in ("encoder", "decoder"))
    feed = dict(zip(meta["encoder"]["outputs"], encoder.run(None, source)))
    B = len(next(iter(source.values())))
    if "feed0" in meta["decoder"]["inputs"]:
        feed["feed0"] = np.zeros((B, meta["hidden_size"]), np.float32)
    fixed = {n: source[n] for n in ("lengths",) if n in meta["decoder"]["inputs"]}
    carried = {o: f"{o}0" for o in meta["decoder"]["outputs"] if o in ("h", "c", "feed")}  # h -> h0 ...
    token, done, rows = np.full(B, meta["specials"]["bos"]), np.zeros(B, bool), [[] for _ in range(B)]
    inputs, logits_, attention = [], [], []
    for _ in range(steps):
        inputs.append(token)
        out = dict(zip(meta["decoder"]["outputs"], decoder.run(None, {"token": token, **fixed, **{
            n: feed[n] for n in meta["decoder"]["inputs"] if n not in ("token", "lengths")}})))
        feed.update({carried[o]: out[o] for o in carried})
        logits = out["logits"].copy()
        logits_.append(out["logits"])
        attention.append(out["attention"])
        logits[:, meta["never_output"]] = -np.inf
        token = logits.argmax(-1)
        for b in range(B):
            if not done[b] and token[b] != meta["specials"]["eos"]:
                rows[b].append(int(token[b]))
        done |= token == meta["specials"]["eos"]
        if done.all():
            break
    return rows, np.stack(inputs, 1), np.stack(logits_, 1), np.stack(attention, 1)


@pytest.mark.parametrize("options", [dict(cell="lstm", bidirectional=True, attention="general"),
                                     dict(cell="gru", attention="additive", num_layers=1),
                                     dict(cell="rnn", attention="dot", input_feeding=False),
                                     dict(cell="lstm", attention="none")])
def test_seq2seq_exports_an_encoder_and_a_decoder_step(tmp_path, options):
    """onnxruntime's greedy decoding of sources of different lengths in one batch: the ids, logits and
    attention of PyTorch's, padding included (the encoder graph packs by the lengths)."""
    torch.manual_seed(0)
    c = Seq2SeqConfig(num_layers=options.pop("num_layers", 2), hidden_size=16, embed_size=8, source_vocab_size=20,
                      target_vocab_size=15, **options)
    model = Seq2Seq(c).eval()
    meta = export_onnx(model, tmp_path)
    assert meta["model"] == "seq2seq" and ("keys" in meta["encoder"]["outputs"]) == (c.attention != "none")
    src, lengths = pad_ids([list(np.random.default_rng(1).integers(4, 20, n)) for n in (7, 3, 1, 5)])
    rows, inputs, logits, attention = _onnx_greedy(tmp_path, meta, {"source": src.numpy(), "lengths": lengths.numpy()},
                                                   12)
    ids, _, expected_attention = model.greedy(src, lengths, max_length=12)
    assert rows == ids
    with torch.no_grad():  # the same steps under teacher forcing on onnxruntime's own inputs
        expected, _ = model(src, lengths, torch.from_numpy(inputs))
    assert np.abs(logits - expected.numpy()).max() < 1e-4
    assert np.abs(attention[:, :expected_attention.shape[1]] - expected_attention.numpy()).max() < 1e-5
    assert np.all(attention[2, :, 1:] == 0)  # the one-token source: padding gets exactly nothing


def test_a_captioner_exports_its_image_encoder(tmp_path):
    torch.manual_seed(0)
    model = Captioner(CaptionConfig(cell="gru", hidden_size=16, embed_size=8, image_shape=[16, 16, 3],
                                    target_vocab_size=15, input_feeding=True)).eval()
    meta = export_onnx(model, tmp_path)
    assert meta["model"] == "captioner" and meta["encoder"]["inputs"] == ["images"]
    images = torch.rand(3, 16, 16, 3)
    rows, _, _, attention = _onnx_greedy(tmp_path, meta, {"images": images.numpy()}, 10)
    ids, _, expected_attention = model.greedy(images, torch.ones(3, dtype=torch.int64), max_length=10)
    assert rows == ids and attention.shape[2] == 4  # the 2 x 2 grid
    assert np.abs(attention[:, :expected_attention.shape[1]] - expected_attention.numpy()).max() < 1e-5


def test_a_forecaster_exports_with_its_normalisation(tmp_path):
    torch.manual_seed(0)
    model = SeriesRNN(ForecasterConfig(cell="lstm", num_layers=2, hidden_size=16, embed_size=8, num_features=2)).eval()
    model.mean, model.std, model.columns = np.array([10.0, -1.0]), np.array([2.0, 0.5]), ["a", "b"]
    meta = export_onnx(model, tmp_path)
    assert meta["model"] == "forecaster" and meta["inputs"] == ["values", "h0", "c0"] and meta["columns"] == ["a", "b"]
    history = np.random.default_rng(0).normal(size=(30, 2)) * [2.0, 0.5] + [10.0, -1.0]
    sequence, step = (ort.InferenceSession(str(tmp_path / f"{n}.onnx")) for n in ("sequence", "step"))
    mean, std = np.array(meta["mean"]), np.array(meta["std"])
    state = {n: np.zeros((2, 1, 16), np.float32) for n in meta["state_inputs"]}
    pred, *new = sequence.run(None, {"values": ((history - mean) / std).astype(np.float32)[None], **state})
    ahead = [pred[:, -1:]]
    for _ in range(4):  # the forecast fed back, one step at a time
        nxt, *new = step.run(None, {"values": ahead[-1], **dict(zip(meta["state_inputs"], new))})
        ahead.append(nxt)
    got = np.concatenate(ahead, axis=1)[0] * std + mean
    assert np.abs(got - model.forecast(history, steps=5)).max() < 1e-4


@pytest.mark.parametrize("options", [dict(attention="additive", inputs="both"), dict(inputs="question", cell="gru"),
                                     dict(inputs="image")])
def test_a_question_answerer_exports_as_one_graph(tmp_path, options):
    torch.manual_seed(0)
    model = VQAModel(VQAConfig(hidden_size=16, embed_size=8, vocab_size=20, num_answers=5, image_shape=[16, 16, 3],
                               **options), answers=list("abcde")).eval()
    meta = export_onnx(model, tmp_path)
    assert meta["answers"] == list("abcde")
    tokens, lengths = pad_ids([[5, 6, 7, 8], [9], [10, 11]])
    images = torch.rand(3, 16, 16, 3)
    feeds = {"images": images.numpy(), "tokens": tokens.numpy(), "lengths": lengths.numpy()}
    got = ort.InferenceSession(str(tmp_path / "vqa.onnx")).run(None, {n: feeds[n] for n in meta["inputs"]})[0]
    with torch.no_grad():
        expected = model(images, tokens, lengths)
    assert np.abs(got - expected.numpy()).max() < 1e-5


@pytest.mark.parametrize("options", [dict(location_policy="grid"), dict(location_policy="gaussian", cell="gru"),
                                     dict(network="cnn")])
def test_a_glimpse_model_exports_its_deterministic_path(tmp_path, options):
    torch.manual_seed(0)
    model = GlimpseClassifier(GlimpseConfig(hidden_size=16, num_classes=3, image_shape=[24, 24, 1], glimpses=4,
                                            **options), classes=list("abc")).eval()
    meta = export_onnx(model, tmp_path)
    images = torch.rand(5, 24, 24, 1)
    got = ort.InferenceSession(str(tmp_path / "glimpse.onnx")).run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = model(images)
    assert np.abs(got[0] - expected.logits.numpy()).max() < 1e-5
    if meta["network"] == "ram":
        assert meta["outputs"] == ["logits", "locations"] and np.abs(got[1] - expected.locations.numpy()).max() < 1e-5


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
    assert p.returncode == 0 and "encoder.onnx (inputs source, lengths;" in p.stdout, p.stderr
    # Its graphs, driven by export.json and the vocabularies written beside them, translate as rnnkit does.
    import json
    from rnnkit.data.pairs import SideVocab
    d = tmp_path / "s2s-onnx"
    meta = json.loads((d / "export.json").read_text())
    source_vocab, target_vocab = (SideVocab.from_json(json.loads((d / f"{n}_vocab.json").read_text()))
                                  for n in ("source", "target"))
    words_ = ["hello", "rnn", "kit"]
    src, lengths = pad_ids([source_vocab.encode(w) for w in words_])
    rows, *_ = _onnx_greedy(d, meta, {"source": src.numpy(), "lengths": lengths.numpy()}, 20)
    expected = [hyps[0][0] for hyps in rnnkit.load(s2s.dir).translate(words_, max_length=20)]
    assert [target_vocab.decode(r) for r in rows] == expected
