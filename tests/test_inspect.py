"""Looking inside: activations, the cell search, gate saturation, n-grams, the report in a browser."""

import base64
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
from rnnkit.inspect.cells import FeatureSupport, auc_columns, column_ranks, feature_support, pearson_columns
from rnnkit.inspect.compare import compare, rnn_char_losses
from rnnkit.inspect.gates import summary
from rnnkit.inspect.ngram import NGramModel, loss_by_order
from rnnkit.inspect.report import DEFAULT_UNITS, render_report
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
    results = search(acts, {"bracket_depth": features.bracket_depth, "is_vowel": features.is_vowel}).scores
    depth = results["bracket_depth"][0]
    assert (depth.kind, depth.layer, depth.unit, depth.metric) == ("c", 0, 0, "pearson")
    assert depth.score > 0.999999
    vowel = results["is_vowel"][0]
    assert (vowel.kind, vowel.unit, vowel.metric) == ("h", 1, "auc") and vowel.score == 1.0


def _synthetic_acts(text, columns):
    """Activations over `text` whose h and c are the given (T,) columns, one unit each."""
    T = len(text)
    state = np.stack(columns, axis=1).astype(np.float32)  # (T, H)
    return Activations(chars=list(text), tokens=np.arange(T), h=[state], c=[state.copy()], gates={},
                       loss=np.full(T, np.nan), top_ids=np.zeros((T, 5), int), top_probs=np.zeros((T, 5)))


def test_a_feature_seen_only_while_the_state_warms_up_is_left_out(shakespeare_text):
    # Issue 16: `tail -c 20000 tinyshakespeare.txt` starts mid-line, " wind of the north,", the only
    # indented line; the state starts from zeros, so a unit's warm-up transient over those first
    # characters "tracks" indent_depth perfectly.
    text = shakespeare_text[-20000:]
    indent = features.indent_depth(text)
    assert text.startswith(" wind of the north,\n") and np.flatnonzero(indent).tolist() == list(range(20))
    rng = np.random.default_rng(0)
    warm_up = rng.normal(0, 0.1, len(text)) + 3 * np.exp(-np.arange(len(text)) / 8)  # decays over ~20 characters
    word = features.at_word_boundary(text) + rng.normal(0, 0.1, len(text))  # a genuine word-boundary unit
    acts = _synthetic_acts(text, [warm_up, word, rng.normal(0, 1, len(text))])
    everything = search(acts, features.BUILTIN, min_support=0, min_stretches=0).scores
    spurious = everything["indent_depth"][0]
    assert spurious.unit == 0 and f"{spurious.score:.3f}" == "1.000"  # the bug: a "perfect" cell
    found = search(acts, features.BUILTIN)
    assert "indent_depth" not in found.scores
    assert found.left_out == [FeatureSupport("indent_depth", 20, 1)]
    assert found.left_out_line() == ("left out (too little support): indent_depth (20 positions in 1 stretch); "
                                     "need >= 50 positions in >= 5 stretches")
    assert found.best()[0].feature == "at_word_boundary" and found.best()[0].unit == 1
    best = found.scores["at_word_boundary"][0]
    boundary = features.at_word_boundary(text)
    assert (best.support, best.stretches) == (boundary.sum(), np.sum(boundary[1:] & ~boundary[:-1]) + boundary[0])
    assert f"n={best.support:,} in {best.stretches:,} stretches" in best.describe()


def test_a_feature_with_enough_support_is_still_scored(shakespeare_text):
    # Every seventh line indented by four spaces: 400-odd stretches, the warm-up notwithstanding.
    lines = shakespeare_text[-20000:].split("\n")
    lines = [line.lstrip() for line in lines]
    indented = set(range(0, len(lines), 7))
    text = "\n".join("    " + line if i in indented else line for i, line in enumerate(lines))
    indent = features.indent_depth(text)
    rng = np.random.default_rng(1)
    warm_up = rng.normal(0, 0.1, len(text)) + 3 * np.exp(-np.arange(len(text)) / 8)
    acts = _synthetic_acts(text, [warm_up, indent / 4 + rng.normal(0, 0.1, len(text))])
    found = search(acts, {"indent_depth": features.indent_depth})
    assert found.left_out == []
    best = found.scores["indent_depth"][0]
    assert best.unit == 1 and best.score > 0.9
    # Positions: every indented line with its newline (the last line has none).
    expected = sum(len(lines[i]) + 5 for i in indented) - (len(lines) - 1 in indented)
    assert (best.support, best.stretches) == (expected, len(indented))


def test_feature_support_counts_positions_and_stretches():
    # Most common value 0; a NaN (not applicable) ends a stretch.
    values = np.array([0, 0, 1, np.nan, 1, 0, 0, 0, 2, 2])
    assert feature_support("f", values) == FeatureSupport("f", 4, 3)
    assert feature_support("f", np.array([True, True, False, True])) == FeatureSupport("f", 1, 1)
    assert feature_support("f", np.full(5, np.nan)) == FeatureSupport("f", 0, 0)


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


def _page_data(page: str) -> dict:
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1))


def test_report_renders_in_headless_chromium(tmp_path, trained_run, shakespeare_text):
    _chromium_or_skip()
    model = trained_run.model
    text = " " + shakespeare_text[:1299]  # one indented line at the top: indent_depth is left out
    acts = activations(model, text)
    found = search(acts, features.BUILTIN)
    cells = found.best()
    # 8 of the 32 units of each quantity and layer, as the default 32 of 256 are for a full-size model.
    page = render_report(acts, model.vocab, "Test <report>", cells, "a small LSTM", found, units=8)
    assert "<script src" not in page and "http://" not in page and "https://" not in page  # self-contained
    data = _page_data(page)
    (tmp_path / "r.html").write_text(page, encoding="utf-8")
    dom, errors = open_page(tmp_path / "r.html", tmp_path / "r.png")
    assert errors == []
    assert 'data-status="ready"' in dom
    assert dom.count("<span data-t=") == len(text)
    assert len(re.findall(r'<span data-t="\d+" style="background: rgb', dom)) == len(text)  # every character coloured
    assert dom.count("<button") == len(cells) and "Test &lt;report&gt;" in dom
    assert f"n={cells[0].support:,} in {cells[0].stretches:,} stretches" in dom
    assert "left out (too little support): indent_depth (16 positions in 1 stretch)" in dom
    # The page opens on the best cell, and its selector offers only the units the page holds.
    best = f"{cells[0].kind}/{cells[0].layer}"
    assert f'data-view="{cells[0].kind}/{cells[0].layer + 1}/{cells[0].unit}"' in dom
    offered = re.findall(r'<option value="(\d+)">', re.search(r'<select id="unit">(.*?)</select>', dom, re.S).group(1))
    assert [int(u) for u in offered] == data["units"][best] and cells[0].unit in data["units"][best]
    assert 8 <= len(offered) < 32 and f"{len(offered)} of 32 cells in this page" in dom
    png = (tmp_path / "r.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # A link to a unit the page holds (not the best one): the hover tooltip shows that unit's value,
    # and the loss view, through the page's own event handlers.
    unit = next(u for u in data["units"]["c/1"] if (cells[0].kind, cells[0].layer, cells[0].unit) != ("c", 1, u))
    dom, errors = open_page(f"{tmp_path / 'r.html'}#cell=c/2/{unit}&view=loss&hover=100")
    assert errors == [] and 'data-status="ready"' in dom
    tip = re.search(r'<div id="tip"[^>]*>(.*?)</div>', dom, re.S).group(1)
    top = acts.top_ids[100]
    assert "next character guesses" in tip and tip.count("<tr>") == 5
    assert f"{100 * acts.top_probs[100][0]:.1f}%" in tip and f"{acts.loss[100]:.3f} nats" in tip
    assert len(top) == 5
    assert re.search(r'<select id="mode">.*?<option value="loss" selected', dom, re.S) or "loss: white 0" in dom
    shown = float(re.search(rf"c layer 2 cell {unit}: (-?[\d.]+)", tip).group(1))
    assert shown == pytest.approx(np.tanh(acts.c[1][100, unit]), abs=1 / 255 + 1e-3)  # one quantisation step
    # A link to a unit the page lacks says so and opens the best cell instead.
    missing = next(u for u in range(32) if u not in data["units"]["c/1"])
    dom, errors = open_page(f"{tmp_path / 'r.html'}#cell=c/2/{missing}")
    assert errors == [] and 'data-status="ready"' in dom
    assert f"cell c/2/{missing} is not in this page" in dom
    assert f'data-view="{cells[0].kind}/{cells[0].layer + 1}/{cells[0].unit}"' in dom


def test_report_holds_the_top_units_by_default(shakespeare_text):
    # Issue 16: every unit of h, c and the four gates made 2,000 characters of the default 2x256 LSTM
    # an 8.4 MB page.
    vocab = Vocab("char", list(shakespeare_text))
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell="lstm", num_layers=2, hidden_size=256, vocab_size=len(vocab)), vocab=vocab)
    acts = activations(model.eval(), shakespeare_text[:2000])
    found = search(acts, features.BUILTIN)
    cells = found.best()
    page = render_report(acts, vocab, "report", cells, "", found).encode("utf-8")
    everything = render_report(acts, vocab, "report", cells, "", found, units=0).encode("utf-8")
    assert len(page) < 2_000_000 and len(everything) > 4 * len(page)
    data, T = _page_data(page.decode("utf-8")), len(acts.tokens)
    assert data["H"] == 256 and set(data["units"]) == {f"{k}/{layer}" for k in acts.kinds() for layer in (0, 1)}
    for key, units in data["units"].items():
        kind, layer = key.split("/")
        listed = {c.unit for c in cells if (c.kind, c.layer) == (kind, int(layer))}
        assert units == sorted(set(units)) and listed <= set(units) and len(units) == max(DEFAULT_UNITS, len(listed))
        if kind in ("h", "c"):  # each feature's best unit here, not only the overall best, is in the page
            assert {next(s.unit for s in scores if (s.kind, s.layer) == (kind, int(layer)))
                    for scores in found.scores.values()} <= set(units)
        # The page's columns are those units, in that order, quantised over the shown range.
        q = np.frombuffer(base64.b64decode(data["acts"][key]), dtype=np.uint8).reshape(T, len(units))
        values = acts.values(kind, int(layer))[:, units]
        values = np.tanh(values) if kind == "c" else values
        lo, hi = data["ranges"][kind]
        assert np.abs(q - (values - lo) / (hi - lo) * 255).max() <= 0.5 + 1e-3


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
                "--npz", tmp_path / "a.npz", "--units", "5")
    assert p.returncode == 0, p.stderr
    for name in ("report.html", "report-cells.png", "report-heatmap.png", "report-gates.png", "a.npz"):
        assert (tmp_path / name).exists(), name
    units = _page_data((tmp_path / "report.html").read_text("utf-8"))["units"]
    assert len(units["gate:forget/0"]) == 5 and all(len(u) >= 5 for u in units.values())
    p = run_cli("inspect", trained_run.dir, "--text", text, "--out", tmp_path / "all.html", "--max-chars", "500",
                "--units", "all")
    assert p.returncode == 0, p.stderr
    assert all(u == list(range(32)) for u in _page_data((tmp_path / "all.html").read_text("utf-8"))["units"].values())


def test_cells_command_shows_support_and_the_left_out_features(tmp_path, trained_run, shakespeare_text):
    # Issue 16's text: the last 20,000 characters, whose only indented line is the first ('Z' -> 'z':
    # the small test run's vocabulary lacks 'Z').
    text = tmp_path / "some.txt"
    text.write_text(shakespeare_text[-20000:].replace("Z", "z"), encoding="utf-8")
    p = run_cli("cells", trained_run.dir, "--text", text, "--top", "3", "--json", tmp_path / "c.json")
    assert p.returncode == 0, p.stderr
    table = p.stdout.split("\n\n")[0].splitlines()
    assert table[0].split()[-1] == "support" and not any(line.startswith("indent_depth") for line in table)
    assert table[-1] == ("left out (too little support): indent_depth (20 positions in 1 stretch); "
                         "need >= 50 positions in >= 5 stretches")
    boundary = [line for line in table if line.startswith("at_word_boundary")][0]
    support = features.at_word_boundary(shakespeare_text[-20000:])
    stretches = support[0] + np.sum(support[1:] & ~support[:-1])
    assert boundary.endswith(f"n={support.sum():,} in {stretches:,} stretches")
    cells = json.loads((tmp_path / "c.json").read_text())
    assert "indent_depth" not in cells and cells["at_word_boundary"][0]["support"] == support.sum()
    # The thresholds are the user's: lowered, the feature is scored (and shows how little it rests on).
    p = run_cli("cells", trained_run.dir, "--text", text, "--only", "indent_depth", "--min-support", "20",
                "--min-stretches", "1")
    assert p.returncode == 0 and p.stdout.splitlines()[1].endswith("n=20 in 1 stretch"), p.stdout + p.stderr
    p = run_cli("cells", trained_run.dir, "--text", text, "--only", "indent_depth")
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert "no feature has enough support" in p.stderr and "indent_depth (20 positions in 1 stretch)" in p.stderr


@pytest.mark.parametrize("args,needle", [
    (["gates", "RUN", "--text", "/no/such.txt"], "no such file"),
    (["cells", "RUN", "--text", "TEXT", "--only", "telepathy"], "unknown feature(s) telepathy"),
    (["cells", "RUN", "--text", "TEXT", "--kinds", "gate:bogus"], "unknown quantity gate:bogus"),
    (["cells", "RUN", "--text", "TEXT", "--features", "/no/such/features.py"], "cannot load features"),
    (["ngram", "TEXT", "--test", "TEXT", "-n", "5..2"], "-n must satisfy"),
    (["inspect", "RUN", "--text", "TEXT", "--out", "/no/such/dir/r.html"], "does not exist"),
    (["inspect", "RUN", "--text", "TEXT", "--out", "r.html", "--units", "-3"], "--units must be a number >= 0"),
    (["inspect", "RUN", "--text", "TEXT", "--out", "r.html", "--units", "some"], "or 'all', got some"),
    (["inspect", "RUN", "--text", "TEXT", "--out", "r.html", "--min-stretches", "-1"], "--min-stretches must be >= 0"),
    (["cells", "RUN", "--text", "TEXT", "--min-support", "-5"], "--min-support must be >= 0, got -5"),
])
def test_inspect_bad_input(tmp_path, trained_run, args, needle):
    text = tmp_path / "t.txt"
    text.write_text("First Citizen:\nSpeak, speak.\n")
    sub = {"RUN": str(trained_run.dir), "TEXT": str(text)}
    p = run_cli(*[sub.get(a, a) for a in args])
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and needle in p.stderr, p.stderr


def test_unknown_characters_are_named_with_the_option_that_skips_them(tmp_path, trained_run, shakespeare_text):
    text = tmp_path / "modern.txt"
    text.write_text(shakespeare_text[:6000] + "\n¿Qué tal?\n", encoding="utf-8")
    run = trained_run.dir
    commands = {"cells": ["cells", run, "--text", text], "gates": ["gates", run, "--text", text],
                "compare": ["compare", run, "--train", text, "--test", text, "-n", "3"],
                "inspect": ["inspect", run, "--text", text, "--out", tmp_path / "report.html"]}
    p = run_cli(*commands["cells"])
    assert p.returncode == 1 and p.stderr.strip().endswith("(--unknown skip drops them)"), p.stderr
    for name, args in commands.items():
        p = run_cli(*args, "--unknown", "skip")
        assert p.returncode == 0, (name, p.stderr)
