"""One-to-many generation on the shared engine: the conditional generator's model, its loss, the
sampler paths (fast, plain, beam) with a class, training conditional and unconditional runs, exact
resume, evaluation and the commands."""

import json
import re

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.config import GeneratorConfig
from rnnkit.data.examples import pad
from rnnkit.data.vocab import Vocab
from rnnkit.errors import DataError, UsageError
from rnnkit.models.generator import BOUNDARY, CharGenerator, example_nats

from conftest import assert_resumes_exactly, run_cli

TINY = dict(task="generate", hidden_size=32, embed_size=16, batch_size=16, eval_every=50, sample_every=0,
            progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, words):
    """The same examples, the same split and budget: conditioned on the class, and not."""
    base = tmp_path_factory.mktemp("gen")
    return {c: rnnkit.train(words, out=base / c, condition=c, max_steps=600, **{**TINY, "hidden_size": 64, "batch_size": 32})
            for c in ("both", "none")}


def _model(condition="both", cell="lstm", seed=0):
    torch.manual_seed(seed)
    vocab = Vocab("char", list("abcdefgh") + [BOUNDARY])
    cfg = GeneratorConfig(cell=cell, num_layers=2, hidden_size=12, embed_size=6, vocab_size=len(vocab), num_classes=3,
                          condition=condition)
    model = CharGenerator(cfg, vocab=vocab, classes=["x", "y", "z"]).eval()
    if model.class_state is not None:  # trained models have non-zero class states; so should the tests
        torch.nn.init.normal_(model.class_state.weight, std=0.5)
    return model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_padding_never_changes_an_examples_loss(cell):
    model = _model(cell=cell)
    texts, classes = ["abc", "h", "gfedcba", ""], np.array([0, 2, 1, 1])
    seqs = model.encode(texts)
    alone = [model.nats([s], classes[i:i + 1])[0] for i, s in enumerate(seqs)]
    together = model.nats(seqs, classes)
    assert np.allclose(alone, together, atol=1e-5)
    # ... and equals the plain sum of -log p over each example, one step at a time with the state carried
    for i, s in enumerate(seqs):
        state, total = None, 0.0
        c = torch.tensor([classes[i]])
        for t in range(len(s) - 1):
            logits, state = model(torch.tensor([[int(s[t])]]), state, classes=c)
            total -= float(torch.log_softmax(logits[0, -1].detach(), -1)[int(s[t + 1])])
        assert total == pytest.approx(alone[i], abs=1e-4)


def test_the_class_reaches_the_model_both_ways():
    model = _model("both")
    tokens = torch.tensor([[8, 0, 1, 2]])  # boundary, a, b, c
    out = [model(tokens, classes=torch.tensor([c]))[0] for c in range(3)]
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    for condition in ("init", "step"):  # each way alone changes the output too
        m = _model(condition)
        assert not torch.allclose(m(tokens, classes=torch.tensor([0]))[0], m(tokens, classes=torch.tensor([1]))[0])
    none = _model("none")
    assert none.class_state is None and none.class_embed is None and not none.conditional
    with pytest.raises(ValueError, match="needs the classes"):
        model(tokens)
    # one class for a batch broadcasts like a class per row
    batch = tokens.repeat(3, 1)
    assert torch.allclose(model(batch, classes=torch.tensor([1]))[0], model(batch, classes=torch.tensor([1, 1, 1]))[0])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fast_and_plain_samplers_write_the_same_examples(cell):
    model = _model(cell=cell)
    for label in ("x", "z"):
        fast = model.samples(6, label=label, seed=5, length=30)
        plain = model.samples(6, label=label, seed=5, length=30, fast=False)
        assert fast == plain and all(BOUNDARY not in t for t in fast)
    assert model.samples(20, label="x", seed=5) != model.samples(20, label="y", seed=5)


def test_loss_function_masks_padding_and_counts_the_end():
    logits = torch.zeros(2, 4, 5)  # uniform over 5 symbols
    tokens, lengths = pad([np.array([4, 1, 2, 4]), np.array([4, 3, 4])])  # (2, 4)
    assert example_nats(logits[:, :3], tokens, lengths).tolist() == pytest.approx([3 * np.log(5), 2 * np.log(5)])


def test_conditioning_beats_the_unconditional_model_and_writes_the_class(runs, words):
    cond, uncond = (rnnkit.evaluate(runs[c].dir, num_samples=100) for c in ("both", "none"))
    assert set(cond["per_class"]) == {"en", "rev"} and cond["examples"] == 200
    for c in ("en", "rev"):
        assert cond["per_class"][c]["nats"] < uncond["per_class"][c]["nats"]
    assert cond["nats"] < uncond["nats"]
    s = cond["samples"]
    assert set(s) == {"en", "rev"} and set(uncond["samples"]) == {"all"}
    for r in s.values():
        assert r["in_train"] + r["held_out"] + r["novel"] == pytest.approx(1) and len(r["texts"]) == 10
    # English words end in "s", "e", "d" far more often than they start with them; reversed ones the other way
    model = rnnkit.load(runs["both"].dir)
    en, rev = (model.samples(200, label=c, seed=1) for c in ("en", "rev"))
    ends = set("sed")
    assert np.mean([t[-1:] in ends for t in en]) > np.mean([t[-1:] in ends for t in rev])
    assert np.mean([t[:1] in ends for t in rev]) > np.mean([t[:1] in ends for t in en])


def test_a_generator_resumes_exactly(tmp_path, words):
    opts = dict(TINY, dropout=0.2, checkpoint_every=1000, lr_schedule="constant", eval_every=20)
    assert_resumes_exactly(tmp_path, words, opts, 120, 60)  # more than one epoch: 1,600 / 16 = 100


def test_unlabelled_lines_make_an_unconditional_generator(tmp_path, shakespeare_text):
    names = sorted(set(w.lower() for w in re.findall(r"[A-Za-z]{3,8}", shakespeare_text)))[:1500]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    run = rnnkit.train(tmp_path / "names.txt", out=tmp_path / "r", max_steps=60, **TINY)
    model = rnnkit.load(run.dir)
    assert model.classes == [] and not model.conditional and len(model.vocab) == len(set("".join(names))) + 1
    texts = rnnkit.samples(run.dir, num_samples=5, seed=2)
    assert len(texts) == 5 and all("\n" not in t for t in texts)
    assert rnnkit.samples(run.dir, num_samples=2, prime="ab", seed=2)[0].startswith("ab")
    result = rnnkit.evaluate(run.dir, num_samples=20)
    assert result["examples"] == 150 and "per_class" not in result and set(result["samples"]) == {"all"}
    with pytest.raises(UsageError, match="unconditional"):
        rnnkit.sample(run.dir, label="x")
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("abc\tx\n")
    with pytest.raises(DataError, match="some examples have labels and some"):
        rnnkit.train([tmp_path / "names.txt", mixed], out=tmp_path / "m", max_steps=1, **TINY)


def test_generator_commands(tmp_path, runs, words):
    run = runs["both"].dir
    p = run_cli("sample", run, "--class", "rev", "--num-samples", "5", "--seed", "3", "--temperature", "0.8")
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and len(lines) == 5 and all(lines), p.stderr
    assert lines == rnnkit.samples(run, label="rev", num_samples=5, seed=3, temperature=0.8)
    p = run_cli("sample", run, "--class", "en", "--beam", "4", "--prime", "th")
    assert p.returncode == 0 and p.stdout.startswith("th") and len(p.stdout.splitlines()) == 1
    p = run_cli("sample", run, "--class", "en", "--num-samples", "2", "--jsonl", "--top-k", "3", "--seed", "1")
    assert [json.loads(x)["class"] for x in p.stdout.splitlines()] == ["en", "en"]
    bad = run_cli("sample", run, "--class", "french")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "rnnkit sample: error: class 'french' is not one this generator was trained on: en, rev"]
    assert run_cli("sample", run).returncode == 2
    judge = rnnkit.train(words, out=tmp_path / "judge", max_steps=150, **{**TINY, "task": "classify"})
    p = run_cli("eval", run, "--samples", "50", "--judge", judge.dir)
    assert p.returncode == 0 and "nats/char" in p.stdout and "judged" in p.stdout, p.stderr
    result = json.loads(run_cli("eval", run, "--samples", "50", "--judge", judge.dir, "--json").stdout)
    assert set(result["judge"]) == {"en", "rev", "mean"} and result["judge"]["mean"] > 0.6
    p = run_cli("eval", runs["none"].dir, "--judge", judge.dir)
    assert p.returncode == 2 and "unconditional" in p.stderr
    p = run_cli("predict", run, "abc")
    assert p.returncode == 2 and "trained for the generate task; predict needs a classifier" in p.stderr
