"""Word and bpe tokens for the language model: lossless on any Unicode text, stored as the run's
tokenizer.json, sampled, evaluated (per token and per character) and resumed like character runs."""

import json
import math
import time

import numpy as np
import pytest
import torch
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit.data.pieces import PieceVocab, byte_alphabet
from rnnkit.evaluate import evaluate_tokens
from rnnkit.sample import generate

from conftest import SMALL, run_cli

@pytest.fixture(scope="module")
def vocabs(shakespeare_text):
    train = shakespeare_text[:200_000]
    return {"bpe": PieceVocab.learn("bpe", train, 600), "word": PieceVocab.learn("word", train, 800)}


def test_the_byte_alphabet_is_the_tokenizers():
    assert set(byte_alphabet().values()) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    assert len(set(byte_alphabet().values())) == 256


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_any_unicode_text_round_trips(vocabs, text):
    for vocab in vocabs.values():
        ids = vocab.encode(text)
        assert vocab.decode(ids) == text
        step = vocab.decoder()  # streaming: one token at a time, characters split across tokens come whole
        assert "".join(step(i) for i in ids) == text
        assert int(ids.max(initial=0)) < len(vocab)


def test_tokens_are_pieces_of_text(vocabs):
    bpe, word = vocabs["bpe"], vocabs["word"]
    assert len(bpe) == 600 and len(word) <= 800
    text = "ROMEO: the king hath spoken"
    assert len(bpe.encode(text)) < len(text) / 1.5  # merges: fewer tokens than characters
    pieces = [word.symbol(i) for i in word.encode(text)]
    assert " king" in pieces and " the" in pieces  # whole words, each with the space before it
    rare = word.encode(" Xq7zw")  # an unseen word is spelled in its bytes
    assert all(i < 256 for i in rare[1:]) and word.decode(rare) == " Xq7zw"
    for vocab in vocabs.values():  # JSON round trip: the same ids
        again = PieceVocab.from_json(json.loads(json.dumps(vocab.to_json())))
        assert again == vocab and np.array_equal(again.encode(text), vocab.encode(text))


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory, small_corpus):
    out = tmp_path_factory.mktemp("tokens") / "bpe"
    return rnnkit.train(small_corpus, out=out, max_steps=40, tokens="bpe", bpe_vocab=320, progress=False,
                        log=lambda m: None, **SMALL)


def test_a_bpe_run_stores_its_tokenizer_and_samples(bpe_run):
    run_dir = bpe_run.dir
    config = json.loads((run_dir / "config.json").read_text())
    assert config["vocab"] == {"kind": "pieces", "scheme": "bpe", "size": 320, "file": "tokenizer.json"}
    assert json.loads((run_dir / "tokenizer.json").read_text())["model"]["type"] == "BPE"
    model = rnnkit.load(run_dir)
    assert len(model.vocab) == 320 and model.config.vocab_size == 320
    fast = generate(model, 3, length=60, seed=4, prime="ROMEO:")
    assert fast == generate(model, 3, length=60, seed=4, prime="ROMEO:", fast=False)
    assert all(t.startswith("ROMEO:") for t in fast)
    ids = [model.vocab.encode(t[len("ROMEO:"):]) for t in fast]
    assert all(len(i) >= 40 for i in ids)  # length counts tokens


def test_losses_convert_to_nats_per_character(bpe_run, small_corpus):
    model = rnnkit.load(bpe_run.dir)
    text = small_corpus.read_text()[-3000:]
    result = model.evaluate(text)
    tokens = model.vocab.encode(text)
    nats, count = evaluate_tokens(model, tokens)
    assert result["nats_per_token"] == pytest.approx(nats)
    covered = len(text) * count / len(tokens)  # the scored tokens' share of the characters
    assert result["nats"] == pytest.approx(nats * count / covered)
    assert result["bpc"] == pytest.approx(result["nats"] / math.log(2))
    assert result["nats"] < result["nats_per_token"]  # a token spells more than one character
    p = run_cli("eval", bpe_run.dir)
    assert p.returncode == 0 and "nats/char" in p.stdout and "nats/token" in p.stdout, p.stderr


def test_every_level_splits_the_same_characters(tmp_path, small_corpus):
    """Train, validation and test are the same characters at every token level, so their losses compare."""
    from rnnkit.config import DataConfig, build
    from rnnkit.data.corpus import prepare
    char = prepare(build(DataConfig, {"paths": [str(small_corpus)]}))
    for tokens in ("word", "bpe"):
        corpus = prepare(build(DataConfig, {"paths": [str(small_corpus)], "tokens": tokens, "bpe_vocab": 300,
                                            "word_vocab": 300}))
        for i, name in enumerate(("train", "val", "test")):
            assert corpus.vocab.decode(corpus.split(name)) == char.vocab.decode(char.split(name))
            assert corpus.chars[i] == len(char.split(name))


def test_a_word_run_resumes_exactly(tmp_path, small_corpus):
    from conftest import assert_resumes_exactly
    opts = dict(SMALL, tokens="word", word_vocab=300, lr_schedule="constant", eval_every=6, checkpoint_every=1000,
                progress=False, log=lambda m: None)
    assert_resumes_exactly(tmp_path, small_corpus, opts, steps=12, stop=6)  # the same rate in both


def test_a_damaged_tokenizer_is_reported(tmp_path, bpe_run):
    import shutil
    for name, damage in (("missing", None), ("garbage", b"{not a tokenizer"), ("small", None)):
        run = tmp_path / name
        shutil.copytree(bpe_run.dir, run)
        if name == "missing":
            (run / "tokenizer.json").unlink()
        elif name == "garbage":
            (run / "tokenizer.json").write_bytes(damage)
        else:  # another tokenizer, of another size
            (run / "tokenizer.json").write_text(PieceVocab.learn("bpe", "abc abd " * 50, 270).tokenizer_json())
        p = run_cli("sample", run, "--length", "5")
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert "tokenizer.json" in p.stderr and "Traceback" not in p.stderr


def test_inspection_reads_tokens(bpe_run, small_corpus, tmp_path):
    """A token is a step: the report holds each token's text, the cell search reads the features at
    each token's last character, and the character n-gram comparison refuses."""
    from rnnkit.inspect.activations import activations
    from rnnkit.inspect.cells import search
    model = rnnkit.load(bpe_run.dir)
    text = small_corpus.read_text()[:3000]
    acts = activations(model, text)
    assert acts.text == text and len(acts.tokens) < len(text) / 1.3
    ends = acts.ends()
    assert ends[-1] == len(text) - 1 and all(text[e] == c[-1] for e, c in zip(ends, acts.chars) if c)
    found = search(acts, {"newline": lambda t: np.array([ch == "\n" for ch in t])}, min_support=0, min_stretches=0)
    assert found.scores["newline"]  # scored, one value per token
    p = run_cli("inspect", bpe_run.dir, "--text", small_corpus, "--out", tmp_path / "r.html", "--max-chars", "400")
    assert p.returncode == 0, p.stderr
    assert "tokens of" in (tmp_path / "r.html").read_text()
    p = run_cli("compare", bpe_run.dir, "--train", small_corpus, "--test", small_corpus)
    assert p.returncode == 2
    assert p.stderr.strip().endswith("models bpe tokens; compare reads character and byte models")



@pytest.mark.parametrize("tokens", ["byte", "bpe"])
def test_classifiers_read_bytes_and_bpe_pieces(tmp_path, words, tokens):
    run = rnnkit.train(words, task="classify", out=tmp_path / tokens, max_steps=30, tokens=tokens, bpe_vocab=300,
                       progress=False, log=lambda m: None, **{k: v for k, v in SMALL.items() if k != "seq_len"})
    model = rnnkit.load(run.dir)  # the vocabulary comes back from config.json
    assert model.vocab.kind == tokens and len(model.vocab) == (256 if tokens == "byte" else 300)
    probs = model.predict_proba(["hello", "olleh", "日本語"])  # any text has an encoding
    assert probs.shape == (3, 2) and torch.allclose(probs.sum(-1), torch.ones(3))
    assert rnnkit.evaluate(run.dir)["accuracy"] >= 0


@pytest.mark.parametrize("tokens", ["byte", "bpe"])
def test_generators_write_bytes_and_bpe_pieces(tmp_path, words, tokens):
    run = rnnkit.train(words, task="generate", out=tmp_path / tokens, max_steps=40, tokens=tokens, bpe_vocab=300,
                       progress=False, log=lambda m: None, **{k: v for k, v in SMALL.items() if k != "seq_len"})
    model = rnnkit.load(run.dir)
    assert model.vocab.kind == tokens and len(model.vocab) == (256 if tokens == "byte" else 300)
    # Each example is the boundary, its own pieces and the boundary: no piece spans an end.
    boundary = model.vocab.encode("\n").tolist()
    ids = model.encode(["hello"])[0].tolist()
    assert len(boundary) == 1 and ids[0] == ids[-1] == boundary[0] and model.vocab.decode(ids[1:-1]) == "hello"
    texts = model.samples(16, label="en", seed=3, length=40, prime="th")
    assert all(t.startswith("th") and "\n" not in t for t in texts)
    assert texts == model.samples(16, label="en", seed=3, length=40, prime="th", fast=False)  # fast == plain path
    from rnnkit.serve import score_text
    from rnnkit.streams import Sampler
    sampler = Sampler(model)  # the server's batched sampler writes the same words
    try:
        stream = sampler.submit(n=4, length=40, label="rev", seed=5)
        while not stream.finished:
            time.sleep(0.002)
        served = [""] * 4
        for j, piece in stream.take():
            served[j] += piece
        assert served == model.samples(4, label="rev", seed=5, length=40)
    finally:
        sampler.close()
    scored = score_text(model, "olleh", label="rev")
    assert "".join(t["text"] for t in scored["per_token"]) == "olleh\n"
    result = rnnkit.evaluate(run.dir)  # per character (each end counted as one) and per token
    assert result["tokens"] < result["chars"] if tokens == "bpe" else result["tokens"] >= result["chars"]
    assert result["nats"] * result["chars"] == pytest.approx(result["nats_per_token"] * result["tokens"])
    p = run_cli("eval", run.dir, "--samples", "5")
    assert p.returncode == 0 and "nats/token over" in p.stdout, p.stderr


def test_shared_flags_are_checked_against_the_task(tmp_path, words):
    p = run_cli("train", words, "--task", "generate", "--tokens", "word", "--out", tmp_path / "c")
    assert p.returncode == 1
    assert p.stderr == "rnnkit train: error: a generator writes characters, bytes or BPE pieces (--tokens char, " \
                       "byte or bpe); --tokens word reads unseen words as one unknown token, which it could not " \
                       "write\n"
    p = run_cli("train", "--tokens", "bpe", "--byte-level", "--out", tmp_path / "b")
    assert p.returncode == 1 and "does not combine with --tokens bpe" in p.stderr


def test_the_server_sampler_and_export_read_tokens(bpe_run, tmp_path):
    from rnnkit.streams import Sampler
    model = rnnkit.load(bpe_run.dir)
    sampler = Sampler(model)
    try:
        stream = sampler.submit(n=2, length=30, seed=6, prime="KING")
        while not stream.finished:
            time.sleep(0.002)
        texts = ["", ""]
        for j, piece in stream.take():
            texts[j] += piece
        assert texts == generate(model, 2, length=30, seed=6, prime="KING")
    finally:
        sampler.close()
    from rnnkit.serve import score_text
    scored = score_text(model, "To be, or not")
    assert scored["unit"] == "token" and "".join(t["text"] for t in scored["per_token"]) == "To be, or not"
    assert scored["nats_per_char"] == pytest.approx(scored["nats"] * scored["count"] / 13)
    rnnkit.export(bpe_run.dir, tmp_path / "onnx")
    assert PieceVocab.from_tokenizer_json("bpe", (tmp_path / "onnx" / "tokenizer.json").read_text()) == model.vocab
