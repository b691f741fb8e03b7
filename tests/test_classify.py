"""Many-to-one classification on the shared engine: data formats, the packed classifier, training,
exact resume, evaluation metrics and the commands."""

import json
import random
import re

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.config import ClassifierConfig
from rnnkit.data.examples import ExampleBatches, read_examples
from rnnkit.errors import ConfigError, DataError, UsageError
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.classifier import classification_metrics as metrics
from rnnkit.models.classifier import ngram_ids

from conftest import assert_resumes_exactly, run_cli

TINY = dict(task="classify", hidden_size=32, embed_size=16, batch_size=16, eval_every=20, sample_every=0,
            progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, words):
    return rnnkit.train(words, out=tmp_path_factory.mktemp("runs") / "cls", max_steps=150, **TINY)


def test_every_input_format_reads_the_same_examples(tmp_path):
    pairs = [("Dubois", "French"), ("Müller", "German"), ("Rossi", "Italian"), ("Martin, Jr.", "French")]
    (tmp_path / "a.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{c}\n" for t, c in pairs))
    (tmp_path / "a.csv").write_text("".join(f'"{t}",{c}\n' for t, c in pairs))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t, "label": c}) + "\n" for t, c in pairs))
    folder = tmp_path / "names"
    folder.mkdir()
    for c in ("French", "German", "Italian"):  # the PyTorch tutorial's layout
        (folder / f"{c}.txt").write_text("\r\n".join(t for t, k in pairs if k == c) + "\r\n")
    expected = sorted(pairs)
    for path in ("a.tsv", "a.csv", "a.jsonl", "names"):
        ex = read_examples([str(tmp_path / path)])
        assert sorted(zip(ex.texts, ex.labels)) == expected, path


@pytest.mark.parametrize("content, message", [
    ("only text\n", "row 1: expected 2 columns (text, label), found 1"),
    ("a\tx\n\tx\n", "row 2: the text is empty"),
    ("a\t\n", "row 1: the label is empty"),
])
def test_bad_rows_are_named(tmp_path, content, message):
    (tmp_path / "bad.tsv").write_text(content)
    with pytest.raises(DataError, match=re.escape(message)):
        read_examples([str(tmp_path / "bad.tsv")])


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("cell, bidirectional, extra", [("lstm", True, {}), ("gru", False, {}), ("rnn", True, {}),
                                                       ("gru", True, dict(ngram_buckets=97, input_dropout=0.5))])
def test_padding_never_changes_a_classification(pooling, cell, bidirectional, extra):
    torch.manual_seed(0)
    cfg = ClassifierConfig(cell=cell, num_layers=2, hidden_size=12, embed_size=8, vocab_size=20, num_classes=3,
                           bidirectional=bidirectional, pooling=pooling, **extra)
    model = SequenceClassifier(cfg).eval()
    seqs = [torch.randint(0, 20, (n,)) for n in (3, 9, 1, 6)]
    alone = torch.cat([model(s[None])[0] for s in seqs])  # (4, C), each sequence on its own
    padded = torch.zeros(4, 9, dtype=torch.int64)
    for i, s in enumerate(seqs):
        padded[i, :len(s)] = s
        padded[i, len(s):] = 7  # garbage in the padding must not matter
    batched, _ = model(padded, torch.tensor([len(s) for s in seqs]))
    assert torch.allclose(alone, batched, atol=1e-6)


@pytest.mark.parametrize("vocab_size", [5, 300_000])  # a word vocabulary must not overflow the codes
def test_ngram_ids_name_each_ngram_once(vocab_size):
    """The hashed ids against the n-grams spelled out: equal n-grams (with the start marked) get equal
    rows wherever they stand, and with a table much larger than the n-grams distinct ones rarely meet."""
    rng = np.random.default_rng(0)
    order, buckets = 4, 1_000_003
    tokens = torch.from_numpy(rng.integers(0, 5, (40, 12)) + vocab_size - 5)
    ids = ngram_ids(tokens, vocab_size, order, buckets)  # (B, T, order - 1)
    assert ids.shape == (40, 12, order - 1) and int(ids.min()) >= 0 and int(ids.max()) < buckets
    row_of = {}
    for b in range(40):
        seq = ["^"] * (order - 1) + tokens[b].tolist()
        for t in range(12):
            for k, n in enumerate(range(2, order + 1)):
                gram = tuple(seq[order - 1 + t - n + 1:order + t])
                row_of.setdefault(gram, set()).add(int(ids[b, t, k]))
    assert all(len(rows) == 1 for rows in row_of.values())  # the same n-gram, the same row
    distinct = {next(iter(rows)) for rows in row_of.values()}
    assert len(distinct) >= 0.99 * len(row_of)  # few collisions


def test_bidirectional_packed_equals_unpacked_on_equal_lengths():
    torch.manual_seed(1)
    cfg = ClassifierConfig(cell="lstm", num_layers=2, hidden_size=10, embed_size=6, vocab_size=15, num_classes=4,
                           bidirectional=True, pooling="last")
    model = SequenceClassifier(cfg).eval()
    tokens = torch.randint(0, 15, (5, 7))
    packed, state = model(tokens, torch.full((5,), 7))
    out, (h, c) = model.rnn(model.embed(tokens))  # the fused layer, no packing: (B, T, 2H)
    H = cfg.hidden_size
    last = torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=-1)  # forward after the end, backward after the start
    assert torch.allclose(packed, model.head(last), atol=1e-6) and torch.allclose(state[0], h, atol=1e-6)


def test_batches_are_bucketed_shuffled_and_the_same_for_an_epoch_after_a_resume():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 9, size=n) for n in rng.integers(1, 40, size=500)]
    labels = rng.integers(0, 3, size=500)
    a, b = ExampleBatches(seqs, labels, 10, seed=3), ExampleBatches(seqs, labels, 10, seed=3)
    assert len(a) == 50
    for i in (0, 17, 49):
        assert all(torch.equal(x, y) for x, y in zip(a.get(i, epoch=2), b.get(i, epoch=2)))
    first = [a.get(i, epoch=0)[2].tolist() for i in range(50)]
    assert first != [a.get(i, epoch=1)[2].tolist() for i in range(50)]  # another order next epoch
    spans = [int(a.get(i)[1].max() - a.get(i)[1].min()) for i in range(50)]
    assert np.median(spans) <= 3  # similar lengths together: little padding
    halves = [ExampleBatches(seqs, labels, 5, seed=3, rank=r, world=2).get(4, epoch=1) for r in (0, 1)]
    assert sorted(halves[0][2].tolist() + halves[1][2].tolist()) == sorted(a.get(4, epoch=1)[2].tolist())


def test_the_classifier_learns_and_reports_its_metrics(classifier_run, words):
    rows = [json.loads(x) for x in (classifier_run.dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert sum(losses[-10:]) / 10 < losses[0] - 0.1
    result = rnnkit.evaluate(classifier_run.dir)
    assert result["split"] == "test" and result["examples"] == 200 and result["accuracy"] > 0.7
    assert sum(map(sum, result["confusion"])) == 200 and set(result["per_class"]) == {"en", "rev"}
    model = rnnkit.load(classifier_run.dir)
    assert isinstance(model, SequenceClassifier) and model.classes == ["en", "rev"]
    top = model.predict(["sdrawkcab", "backwards"], top_k=2)
    assert [[c for c, _ in t] for t in top] in ([["rev", "en"], ["en", "rev"]], [["rev", "en"], ["rev", "en"]],
                                                [["en", "rev"], ["en", "rev"]])
    assert all(abs(sum(p for _, p in t) - 1) < 1e-5 for t in top)
    config = json.loads((classifier_run.dir / "config.json").read_text())
    assert config["task"] == "classify" and config["classes"] == ["en", "rev"]
    rows = [line.split("\t") for line in words.read_text().splitlines()[1:301]]
    direct = model.evaluate([t for t, _ in rows], [c for _, c in rows])  # the loaded model scores itself
    some = words.with_name("some.tsv")
    some.write_text("\n".join("\t".join(r) for r in rows))
    via_run = rnnkit.evaluate(classifier_run.dir, some)
    assert direct["examples"] == 300 and direct["accuracy"] == via_run["accuracy"] and direct["loss"] == via_run["loss"]


def test_metrics_against_a_hand_count():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]])
    labels = np.array([0, 1, 1, 2, 2])  # predicted 0, 1, 0, 2, 1: three right
    m = metrics(probs, labels, ["a", "b", "c"], bins=10)
    assert m["accuracy"] == pytest.approx(0.6) and m["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    # precision a 1/2, b 1/2, c 1; recall a 1, b 1/2, c 1/2 -> F1 2/3, 1/2, 2/3
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    # confidence bins: 0.9 (right), 0.7 (right), 0.6 and 0.6 (both wrong), 0.8 (right)
    assert m["ece"] == pytest.approx((0.1 + 0.3 + 2 * 0.6 + 0.2) / 5)


def test_a_classifier_resumes_exactly(tmp_path, words):
    opts = dict(TINY, dropout=0.2, checkpoint_every=1000, lr_schedule="constant")  # the same rate in both
    assert_resumes_exactly(tmp_path, words, opts, 80, 40)  # more than one epoch: 1,600 / 16 = 100


def test_validation_and_test_files_and_class_weights(tmp_path, words):
    lines = words.read_text().splitlines()[1:]
    (tmp_path / "train.tsv").write_text("\n".join(lines[:1200]))
    (tmp_path / "val.tsv").write_text("\n".join(lines[1200:1400]))
    (tmp_path / "test.tsv").write_text("\n".join(lines[1400:]))
    run = rnnkit.train(tmp_path / "train.tsv", out=tmp_path / "r", val=str(tmp_path / "val.tsv"),
                       test=str(tmp_path / "test.tsv"), class_weights=True, max_steps=5, **TINY)
    assert rnnkit.evaluate(run.dir)["examples"] == 600


def test_bad_classification_input(tmp_path, words, classifier_run):
    one = tmp_path / "one.tsv"
    one.write_text("abc\tx\nabd\tx\n")
    with pytest.raises(DataError, match="at least 2 classes"):
        rnnkit.train(one, out=tmp_path / "r", **TINY)
    with pytest.raises(ConfigError, match="--bidirectional does not apply to the lm task"):
        rnnkit.train(words, out=tmp_path / "r", task="lm", bidirectional=True, max_steps=1)
    with pytest.raises(UsageError, match="holds pairs of texts: give --task classify .*, --task generate .* or "
                                         "--task seq2seq"):
        rnnkit.train(words, out=tmp_path / "r", max_steps=1)
    lines = tmp_path / "lines.txt"
    lines.write_text("abc\nabd\n")
    with pytest.raises(DataError, match="classification needs labelled examples"):
        rnnkit.train(lines, out=tmp_path / "r", **TINY)
    with pytest.raises(ConfigError, match="was trained for the classify task; --task lm does not match it"):
        rnnkit.train(resume=classifier_run.dir, task="lm")
    with pytest.raises(ConfigError, match="--init-from fine-tunes language models"):
        rnnkit.train(words, out=tmp_path / "r", init_from=classifier_run.dir, max_steps=1)
    with pytest.raises(ConfigError, match="--backend numpy is the language model's reference"):
        rnnkit.train(words, out=tmp_path / "r", backend="numpy", **TINY)
    with pytest.raises(ConfigError, match="sample needs a language model"):
        rnnkit.sample(classifier_run.dir)
    other = tmp_path / "other.tsv"
    other.write_text("abc\tnew\n")
    with pytest.raises(DataError, match="label\\(s\\) 'new' not among the classes"):
        rnnkit.evaluate(classifier_run.dir, other)
    assert not (tmp_path / "r").exists()


def test_classifier_commands(tmp_path, classifier_run, words):
    p = run_cli("eval", classifier_run.dir, "--confusion", tmp_path / "confusion.png")
    assert p.returncode == 0 and "accuracy" in p.stdout and "macro-F1" in p.stdout, p.stderr
    assert "confusion matrix" in p.stdout and (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    p = run_cli("predict", classifier_run.dir, "sdrawkcab", "--top-k", "2")
    text, c1, p1, c2, p2 = p.stdout.strip().split("\t")
    assert p.returncode == 0 and text == "sdrawkcab" and {c1, c2} == {"en", "rev"} and float(p1) >= float(p2)
    (tmp_path / "in.txt").write_text("hello\nolleh\n\nworld\n")
    p = run_cli("predict", classifier_run.dir, "--input", tmp_path / "in.txt", "--output", tmp_path / "out.tsv")
    rows = (tmp_path / "out.tsv").read_text().splitlines()
    assert p.returncode == 0 and [r.split("\t")[0] for r in rows] == ["hello", "olleh", "world"]
    lm = run_cli("predict", classifier_run.dir.parent, "x")
    assert lm.returncode == 1 and "not an rnnkit run directory" in lm.stderr


def _vector_task(path, n=600, seed=0):
    """Sequences of 2-value vectors, 4 to 12 steps long: class "up" if the first value trends upward."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 13, size=n)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(0, 0.3, size=(n, 12, 2)).astype(np.float32)
    x[:, :, 0] += np.where(y[:, None] == 1, 1, -1) * np.linspace(-1, 1, 12)[None]
    np.savez(path, x=x, y=np.array(["down", "up"])[y], lengths=lengths)
    return path


def test_sequences_of_vectors_are_classified(tmp_path):
    data = _vector_task(tmp_path / "v.npz")
    run = rnnkit.train(data, out=tmp_path / "r", max_steps=120, **{**TINY, "bidirectional": True})
    result = rnnkit.evaluate(run.dir)
    assert result["accuracy"] > 0.8 and result["examples"] == 60
    model = rnnkit.load(run.dir)
    assert model.config.num_features == 2 and model.vocab is None
    rising = np.stack([np.linspace(-1, 1, 8), np.zeros(8)], axis=1)
    assert model.predict([rising])[0][0][0] == "up"
    # Padding never changes a sequence of vectors' class either.
    seqs = [np.random.default_rng(k).normal(size=(n, 2)).astype(np.float32) for k, n in enumerate((3, 11, 6))]
    alone = torch.cat([model.predict_proba([s]) for s in seqs])
    assert torch.allclose(alone, model.predict_proba(seqs), atol=1e-6)
    p = run_cli("predict", run.dir, "text")
    assert p.returncode == 1 and "sequences of vectors" in p.stderr


def test_bad_vector_files(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 3)), y=np.zeros(4))
    np.savez(tmp_path / "b.npz", x=np.zeros((4, 3, 2)))
    x = np.zeros((4, 3, 2))
    x[2, 1, 0] = np.nan
    np.savez(tmp_path / "c.npz", x=x, y=np.zeros(4))
    for name, message in (("a", "x must be \\(N, T, F\\)"), ("b", "lacks 'y'"), ("c", "NaN or infinite values \\(example 2\\)")):
        with pytest.raises(DataError, match=message):
            read_examples([str(tmp_path / f"{name}.npz")])
    for rows, message in ((["a,x,1,2", "a,x,3"], "row 3: 3 fields, but the header has 4"),
                          (["a,x,1,two"], "row 2: 'two' in column 'v2' is not a number"),
                          (["a,x,1,2", "b,y,1,2", "a,x,1,2"], "row 4: example 'a' continues after other examples"),
                          (["a,x,1,2", "a,y,1,2"], "row 3: example 'a' changes its label"),
                          (["a,x,1,nan"], "row 2: NaN or infinite value")):
        (tmp_path / "v.csv").write_text("id,label,v1,v2\n" + "\n".join(rows) + "\n")
        with pytest.raises(DataError, match=message):
            read_examples([str(tmp_path / "v.csv")])


def test_vectors_as_csv_rows_read_like_npz(tmp_path):
    with np.load(_vector_task(tmp_path / "v.npz", n=40)) as f:
        x, y, lengths = f["x"], f["y"], f["lengths"]
    lines = ["id,label,a,b"] + [f"ex{i},{y[i]},{float(x[i, t, 0])!r},{float(x[i, t, 1])!r}"
                                for i in range(40) for t in range(lengths[i])]
    (tmp_path / "v.csv").write_text("\n".join(lines) + "\n")
    a, b = read_examples([str(tmp_path / "v.npz")]), read_examples([str(tmp_path / "v.csv")])
    assert a.labels == b.labels and all(np.array_equal(p, q) for p, q in zip(a.texts, b.texts))
    from rnnkit.tasks import infer
    assert infer([str(tmp_path / "v.csv")], {}) == "classify"


def test_prediction_as_it_reads(tmp_path, classifier_run):
    model = rnnkit.load(classifier_run.dir)
    from rnnkit.inspect.reading import prefix_probs
    probs = prefix_probs(model, "sdrawkcab")
    assert probs.shape == (9, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    for t in (0, 4, 8):  # column t is exactly predict() on the first t + 1 characters
        expected = dict(model.predict("sdrawkcab"[:t + 1], top_k=2)[0])
        assert probs[t, model.classes.index("rev")] == pytest.approx(expected["rev"], abs=1e-5)
    (tmp_path / "in.txt").write_text("sdrawkcab\n\nhello <there>\n")
    p = run_cli("inspect", classifier_run.dir, "--text", tmp_path / "in.txt", "--out", tmp_path / "read.html")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].split("\t")[:2] == ["sdrawkcab", model.predict("sdrawkcab")[0][0][0]]
    assert (tmp_path / "read-reading.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "read.html").read_text()
    assert "hellothere &rarr;" in page and "http" not in page  # characters the model lacks are not read
    from test_inspect import _chromium_or_skip
    from rnnkit.inspect.browser import open_page
    _chromium_or_skip()
    dom, errors = open_page(tmp_path / "read.html", tmp_path / "shot.png")
    assert not errors and dom.count("<section>") == 2 and "predicted" in dom
    assert (tmp_path / "shot.png").stat().st_size > 5000
    for command in ("cells", "gates"):
        p = run_cli(command, classifier_run.dir, "--text", tmp_path / "in.txt")
        assert p.returncode == 2 and "was trained for the classify task" in p.stderr, p.stderr


def test_word_tokens(tmp_path):
    rng = random.Random(0)
    filler = "the a movie plot actor was is very quite and but with film story".split()
    cue = {"pos": "good great fine lovely".split(), "neg": "bad awful poor dull".split()}
    rows = []
    for i in range(1200):
        label = ("pos", "neg")[i % 2]
        words = rng.sample(filler, 5) + [rng.choice(cue[label])]
        rng.shuffle(words)
        rows.append(" ".join(words) + "\t" + label)
    (tmp_path / "s.tsv").write_text("\n".join(rows) + "\n")
    run = rnnkit.train(tmp_path / "s.tsv", out=tmp_path / "r", tokens="word", max_steps=150, **TINY)
    model = rnnkit.load(run.dir)
    assert model.vocab.kind == "word" and model.vocab.tokens[0] == "<unk>" and len(model.vocab) == 1 + 14 + 8
    assert rnnkit.evaluate(run.dir)["accuracy"] > 0.95
    # a word never seen is read as the unknown-word token, not an error and not dropped
    assert model.vocab.encode("zebra movie").tolist() == [0, model.vocab.tokens.index("movie")]
    assert model.predict(["a zebra was lovely"])[0][0][0] == "pos"
    (tmp_path / "in.txt").write_text("the movie was awful\n")
    p = run_cli("inspect", run.dir, "--text", tmp_path / "in.txt", "--out", tmp_path / "w.html")
    assert p.returncode == 0 and p.stdout.startswith("the movie was awful\tneg"), p.stderr
    assert "<th>awful</th>" in (tmp_path / "w.html").read_text()
    with pytest.raises(ConfigError, match="--tokens word reads unseen words as one unknown token"):
        rnnkit.train(tmp_path / "s.tsv", out=tmp_path / "g", tokens="word", **{**TINY, "task": "generate"})
