"""Looking inside: activations, the cell search, gate saturation, n-grams, the report in a browser."""

import json
import os
import random
import re
from collections import Counter

import numpy as np
import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.data import Vocab
from rnnkit.inspect import Activations, activations, features, saturation, search
from rnnkit.inspect.browser import find_chromium, open_page
from rnnkit.inspect.cells import auc_columns, column_ranks, pearson_columns
from rnnkit.inspect.compare import compare, rnn_char_losses
from rnnkit.inspect.gates import summary
from rnnkit.inspect.ngram import NGramModel, loss_by_order
from rnnkit.inspect.report import render_report
from rnnkit.models import CharRNN

from conftest import run_cli


def test_per_step_activations_agree_with_the_fused_model(trained_run):
    model = trained_run.model
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 3
    acts = activations(model, text, chunk_len=37)  # chunks carry the state
    tokens = torch.tensor([model.vocab.encode(text).tolist()])
    with torch.no_grad():
        logits, state = model(tokens)
    probs = logits[0].softmax(-1)
    np.testing.assert_allclose(acts.top_probs[:, 0], probs.max(-1).values.numpy(), atol=1e-5)
    np.testing.assert_allclose(acts.loss[1:], rnn_char_losses(model, text)[1:], atol=1e-4)
    np.testing.assert_allclose(acts.h[-1][-1], state[0][-1, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(acts.c[0][-1], state[1][0, 0].numpy(), atol=1e-5)
    assert sorted(acts.gates) == ["candidate", "forget", "input", "output"]
    assert acts.h[0].shape == (len(text), 32) and np.isnan(acts.loss[0])
    head = acts.head(10)
    assert head.text == text[:10] and head.gates["forget"][1].shape == (10, 32)


def _bracket_counter():
    """A hand-built LSTM: cell 0 adds 1 at '(' and subtracts 1 at ')' (so c = bracket depth);
    unit 1's output is +tanh(1) after a vowel and -tanh(1) otherwise."""
    vocab = Vocab("char", list("()ab"))  # ids: ( ) a b
    cfg = ModelConfig(cell="lstm", num_layers=1, hidden_size=2, embed_size=4, vocab_size=4)
    model = CharRNN(cfg, vocab=vocab)
    big = 30.0
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.weight.copy_(torch.eye(4))
        w, b = model.rnn.weight_ih_l0, model.rnn.bias_ih_l0  # rows: i(0,1) f(2,3) g(4,5) o(6,7)
        b[[0, 1, 2, 6, 7]] = big  # unit 0: write, keep, expose; unit 1: write, expose
        b[3] = -big  # unit 1 forgets at once
        w[4, 0], w[4, 1] = big, -big  # unit 0's candidate: +1 at '(', -1 at ')'
        w[5, :] = -big
        w[5, 2] = big  # unit 1's candidate: +1 at 'a', else -1
    return model.eval()


def _balanced(n, seed=0):
    rng, depth, out = random.Random(seed), 0, []
    for _ in range(n):
        c = rng.choice("(()ab" if depth < 6 else ")ab")
        if c == ")" and depth == 0:
            c = "("
        depth += {"(": 1, ")": -1}.get(c, 0)
        out.append(c)
    return "".join(out)


def test_search_finds_a_planted_cell_with_a_perfect_score():
    model = _bracket_counter()
    acts = activations(model, _balanced(3000))
    results = search(acts, {"bracket_depth": features.bracket_depth, "is_vowel": features.is_vowel})
    depth = results["bracket_depth"][0]
    assert (depth.kind, depth.layer, depth.unit, depth.metric) == ("c", 0, 0, "pearson")
    assert depth.score > 0.999999
    vowel = results["is_vowel"][0]
    assert (vowel.kind, vowel.unit, vowel.metric) == ("h", 1, "auc") and vowel.score == 1.0


def test_pearson_and_auc_against_direct_formulas():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 3))
    f = A[:, 0] * 2 + rng.standard_normal(200)
    np.testing.assert_allclose(pearson_columns(A, f), [np.corrcoef(A[:, j], f)[0, 1] for j in range(3)])
    labels = A[:, 1] + rng.standard_normal(200) > 0
    pos, neg = A[labels], A[~labels]
    direct = [(pos[:, j][:, None] > neg[:, j][None]).mean() + 0.5 * (pos[:, j][:, None] == neg[:, j][None]).mean()
              for j in range(3)]
    np.testing.assert_allclose(auc_columns(column_ranks(A), labels), direct)
    ties = np.array([[1.0], [1.0], [2.0], [2.0]])
    assert auc_columns(column_ranks(ties), np.array([True, False, True, False]))[0] == 0.5


def test_gate_saturation_on_known_values():
    forget = np.array([[0.95, 0.05, 0.5], [0.99, 0.01, 0.95], [0.97, 0.5, 0.05], [0.5, 0.02, 0.5]])  # (T=4, H=3)
    acts = Activations(chars=list("abcd"), tokens=np.arange(4), h=[np.zeros((4, 3))], c=[np.zeros((4, 3))],
                       gates={g: [forget] for g in ("input", "forget", "candidate", "output")})
    stats = {s.gate: s for s in saturation(acts, "lstm")}
    np.testing.assert_allclose(stats["forget"].right, [0.75, 0.0, 0.25])
    np.testing.assert_allclose(stats["forget"].left, [0.0, 0.75, 0.25])
    line = [x for x in summary(list(stats.values())) if "forget" in x][0]
    assert line.startswith("layer 1: 33% of forget-gate units are right-saturated more than half the time: these "
                           "remember; 33% are left-saturated")


def _brute_force_witten_bell(train, history, w, n, V):
    p = 1.0 / V
    for k in range(n):
        if k > len(history):
            break
        h = tuple(history[len(history) - k:])
        follow = Counter(train[i] for i in range(k, len(train)) if tuple(train[i - k:i]) == h)
        if follow:
            total, types = sum(follow.values()), len(follow)
            p = (follow[w] + types * p) / (total + types)
    return p


def test_ngram_probabilities_sum_to_one_and_match_brute_force():
    rng = np.random.default_rng(1)
    train, test, V, n = rng.integers(0, 4, 400), rng.integers(0, 5, 80), 5, 4
    model = NGramModel(train, n, V)
    probs = model.position_probs(test)[-1]
    expected = [_brute_force_witten_bell(list(train), list(test[:i]), test[i], n, V) for i in range(len(test))]
    np.testing.assert_allclose(probs, expected, rtol=1e-12)
    for history in (list(test[:12]), list(train[100:103]), [4, 4, 4], []):
        total = sum(model.position_probs(np.array(history + [w]))[-1][-1] for w in range(V))
        assert total == pytest.approx(1.0, abs=1e-12)
    losses = loss_by_order(train, test, n, V)
    assert losses[1] == pytest.approx(-np.mean(np.log(model.position_probs(test, 1)[0][1:])))


def test_ngram_orders_help_on_structured_text(shakespeare_text):
    vocab = Vocab("char", list(shakespeare_text))
    tokens = vocab.encode(shakespeare_text[:200_000])
    by_n = loss_by_order(tokens[:180_000], tokens[180_000:], 6, len(vocab))
    assert by_n[1] > by_n[2] > by_n[3] > by_n[4]
    assert by_n[4] < 2.2


def test_compare_breaks_the_loss_down(trained_run, shakespeare_text):
    result = compare(trained_run.model, shakespeare_text[:40_000], shakespeare_text[40_000:45_000], max_n=6)
    assert 1 <= result.n <= 6 and set(result.ngram_by_order) == set(range(1, 7))
    classes = {name: count for name, count, _, _ in result.by_class}
    assert classes["newline"] == shakespeare_text[40_001:45_000].count("\n")
    assert sum(classes.values()) == 4999 == sum(count for _, count, _, _ in result.by_position)
    weighted = sum(count * r for _, count, r, _ in result.by_class) / 4999
    assert weighted == pytest.approx(result.rnn_loss)
    assert "RNN - n-gram" in result.table()


def test_exports(tmp_path, trained_run):
    h5py = pytest.importorskip("h5py")
    text = "ROMEO:\nWhat light through yonder window breaks?\n"
    acts = activations(trained_run.model, text)
    acts.save_npz(tmp_path / "a.npz")
    data = np.load(tmp_path / "a.npz")
    assert data["h_l1"].shape == (len(text), 32) and data["gate_forget_l0"].shape == (len(text), 32)
    assert "".join(data["chars"]) == text
    out = acts.save_lstmvis(tmp_path / "vis", trained_run.model.vocab)
    with h5py.File(out / "states.h5") as f:
        assert f["states1"].shape == (len(text), 32) and f["output2"].shape == (len(text), 32)
    with h5py.File(out / "train.h5") as f:
        assert list(f["words"][:]) == trained_run.model.vocab.encode(text).tolist()
    lines = (out / "train.dict").read_text().splitlines()
    assert len(lines) == trained_run.model.config.vocab_size and "<newline> 0" in lines
    assert "states1" in (out / "lstm.yml").read_text()


# -- the report, in a real browser -------------------------------------------------------------------


def _chromium_or_skip():
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")


def test_report_renders_in_headless_chromium(tmp_path, trained_run, shakespeare_text):
    _chromium_or_skip()
    model = trained_run.model
    text = shakespeare_text[:1300]
    acts = activations(model, text)
    cells = [scores[0] for scores in search(acts, features.BUILTIN).values()]
    page = render_report(acts, model.vocab, "Test <report>", cells, "a small LSTM")
    assert "<script src" not in page and "http://" not in page and "https://" not in page  # self-contained
    (tmp_path / "r.html").write_text(page, encoding="utf-8")
    dom, errors = open_page(tmp_path / "r.html", tmp_path / "r.png")
    assert errors == []
    assert 'data-status="ready"' in dom
    assert dom.count("<span data-t=") == len(text)
    assert len(re.findall(r'<span data-t="\d+" style="background: rgb', dom)) == len(text)  # every character coloured
    assert dom.count("<button") == len(cells) and "Test &lt;report&gt;" in dom
    png = (tmp_path / "r.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # The hover tooltip and the loss view, through the page's own event handlers.
    dom, errors = open_page(f"{tmp_path / 'r.html'}#view=loss&hover=100")
    assert errors == [] and 'data-status="ready"' in dom
    tip = re.search(r'<div id="tip"[^>]*>(.*?)</div>', dom, re.S).group(1)
    top = acts.top_ids[100]
    assert "next character guesses" in tip and tip.count("<tr>") == 5
    assert f"{100 * acts.top_probs[100][0]:.1f}%" in tip and f"{acts.loss[100]:.3f} nats" in tip
    assert len(top) == 5
    assert re.search(r'<select id="mode">.*?<option value="loss" selected', dom, re.S) or "loss: white 0" in dom


def test_inspect_cells_gates_ngram_compare_commands(tmp_path, trained_run, small_corpus):
    text = tmp_path / "t.txt"
    text.write_text(small_corpus.read_text()[:3000])
    feats = tmp_path / "myfeatures.py"
    feats.write_text("def feature_capital(text):\n    return [c.isupper() for c in text]\n")
    p = run_cli("cells", trained_run.dir, "--text", text, "--features", feats, "--top", "3", "--json",
                tmp_path / "c.json", "--plot", tmp_path / "c.png")
    assert p.returncode == 0, p.stderr
    assert "capital" in p.stdout and "line_position" in p.stdout
    assert len(json.loads((tmp_path / "c.json").read_text())["capital"]) == 3
    p = run_cli("gates", trained_run.dir, "--text", text, "--out", tmp_path / "g.png")
    assert p.returncode == 0 and "forget-gate units" in p.stdout and (tmp_path / "g.png").exists()
    p = run_cli("ngram", small_corpus, "--test", text, "-n", "2..5", "--plot", tmp_path / "n.png")
    assert p.returncode == 0 and len(p.stdout.strip().splitlines()) == 5 and "<- best" in p.stdout
    p = run_cli("compare", trained_run.dir, "--train", small_corpus, "--test", text, "-n", "5")
    assert p.returncode == 0 and "newline" in p.stdout and "position in line" in p.stdout
    p = run_cli("inspect", trained_run.dir, "--text", text, "--out", tmp_path / "report.html", "--max-chars", "500",
                "--npz", tmp_path / "a.npz")
    assert p.returncode == 0, p.stderr
    for name in ("report.html", "report-cells.png", "report-heatmap.png", "report-gates.png", "a.npz"):
        assert (tmp_path / name).exists(), name


@pytest.mark.parametrize("args,needle", [
    (["gates", "RUN", "--text", "/no/such.txt"], "no such file"),
    (["cells", "RUN", "--text", "TEXT", "--only", "telepathy"], "unknown feature(s) telepathy"),
    (["cells", "RUN", "--text", "TEXT", "--kinds", "gate:bogus"], "unknown quantity gate:bogus"),
    (["cells", "RUN", "--text", "TEXT", "--features", "/no/such/features.py"], "cannot load features"),
    (["ngram", "TEXT", "--test", "TEXT", "-n", "5..2"], "-n must satisfy"),
    (["inspect", "RUN", "--text", "TEXT", "--out", "/no/such/dir/r.html"], "does not exist"),
])
def test_inspect_bad_input(tmp_path, trained_run, args, needle):
    text = tmp_path / "t.txt"
    text.write_text("First Citizen:\nSpeak, speak.\n")
    sub = {"RUN": str(trained_run.dir), "TEXT": str(text)}
    p = run_cli(*[sub.get(a, a) for a in args])
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and needle in p.stderr, p.stderr
