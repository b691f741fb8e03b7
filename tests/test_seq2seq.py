"""Sequence to sequence on the shared engine: pairs and their split, the encoder-decoder with every
attention, decoding (greedy, sampling, beam search), metrics, exact resume and the commands."""

import json
import random
import re

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.config import Seq2SeqConfig
from rnnkit.data.pairs import EOS, UNK as UNK_ID, SideVocab, detect_tokens, pad_ids, read_pairs, split_pairs
from rnnkit.errors import DataError, UsageError
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.tasks.seq2seq import sequence_metrics, strip_stress

from conftest import assert_resumes_exactly, run_cli

TINY = dict(task="seq2seq", hidden_size=64, embed_size=24, num_layers=1, batch_size=32, eval_every=100,
            sample_every=0, progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def reverse(tmp_path_factory):
    """Strings of a-h and their reversal, spelled as space-separated symbols: 1,500 pairs. (No letter
    twice in a row: counting a run of repeats is a different, slower lesson for attention.)"""
    rng = random.Random(0)
    words = set()
    while len(words) < 1500:
        w = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 7)))
        if all(a != b for a, b in zip(w, w[1:])):
            words.add(w)
    path = tmp_path_factory.mktemp("pairs") / "rev.tsv"
    path.write_text("".join(f"{w}\t{' '.join(w[::-1])}\n" for w in sorted(words)))
    return path


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory, reverse):
    return rnnkit.train(reverse, out=tmp_path_factory.mktemp("runs") / "rev", max_steps=500, bidirectional=True, **TINY)


def _model(attention="general", cell="lstm", bidirectional=True, input_feeding=True, seed=0):
    torch.manual_seed(seed)
    src, tgt = SideVocab("char", list("abcdef")), SideVocab("word", "A B C D E F".split())
    cfg = Seq2SeqConfig(cell=cell, num_layers=2, hidden_size=16, embed_size=8, bidirectional=bidirectional,
                        attention=attention, input_feeding=input_feeding, source_vocab_size=len(src),
                        target_vocab_size=len(tgt))
    return Seq2Seq(cfg, source_vocab=src, target_vocab=tgt).eval()


def test_pairs_are_read_split_by_source_and_named_when_bad(tmp_path):
    (tmp_path / "p.tsv").write_text("read\tR EH1 D\nread\tR IY1 D\nlead\tL IY1 D\n\nbook\tB UH1 K\n")
    pairs = read_pairs([str(tmp_path / "p.tsv")])
    assert len(pairs) == 4 and pairs.references()["read"] == ["R EH1 D", "R IY1 D"]
    for seed in range(10):  # both pronunciations of "read" always land on the same side
        parts = split_pairs(pairs, (0.34, 0.33, 0.33), seed)
        assert sum(len(p) for p in parts) == 4 and sum("read" in p.sources for p in parts) == 1
    for content, message in (("a b\n", "line 1: expected source<TAB>target, found no tab"),
                             ("a\tb\tc\n", "line 1: expected source<TAB>target, found 2 tabs"),
                             ("x\ty\n\tb\n", "line 2: the source is empty"), ("a\t \n", "line 1: the target is empty")):
        (tmp_path / "bad.tsv").write_text(content)
        with pytest.raises(DataError, match=message):
            read_pairs([str(tmp_path / "bad.tsv")])
    assert detect_tokens(["HH AH0 L OW1", "K AE1 T"]) == "word" and detect_tokens(["J'ai froid.", "Bonjour"]) == "char"
    v = SideVocab("word", ["B", "A"])
    assert v.tokens[:4] == ["<pad>", "<s>", "</s>", "<unk>"] and v.encode("A Z B").tolist() == [4, 3, 5]
    assert v.decode([4, 5, EOS, 4]) == "A B" and SideVocab.from_json(v.to_json()) == v


def test_bpe_sides_round_trip_every_text_and_load_without_pickle():
    texts = [f"{w} {v}: %s option" for w in ("open", "close", "read", "write") for v in ("file", "directory")] * 30
    v = SideVocab.from_texts("bpe", texts, bpe_vocab=300)
    assert v.tokens[:4] == ["<pad>", "<s>", "</s>", "<unk>"] and len(v) <= 300
    for text in ("open file: %s option", "unseen ñ 😀 text\t  spaces", "x"):  # byte-level: nothing unknown
        ids = v.encode(text)
        assert v.decode([*ids.tolist(), EOS, 5]) == text and v.unknown(text) == [] and UNK_ID not in ids
        assert len(v.split(text)) == len(ids)  # one shown piece per id
    # pieces of known characters spell the text (a piece holding part of a character's bytes shows as \ufffd)
    assert "".join(v.split("open file: %s")) == "open file: %s"
    assert len(v.encode("open file")) < len("open file")  # merges learned: fewer pieces than characters
    again = SideVocab.from_json(json.loads(json.dumps(v.to_json())))
    assert again == v and again.encode("read directory").tolist() == v.encode("read directory").tolist()
    with pytest.raises(DataError, match="the BPE tokenizer is corrupt"):
        SideVocab.from_json({"kind": "bpe", "tokenizer": {"model": "not one"}})
    with pytest.raises(DataError, match="--bpe-vocab must be at least 261"):
        SideVocab.from_texts("bpe", texts, bpe_vocab=100)


def test_a_bpe_model_learns_to_copy_words(tmp_path):
    rng = random.Random(1)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    lines = {" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(3000)}
    (tmp_path / "copy.tsv").write_text("".join(f"{s}\t{s.upper()}\n" for s in sorted(lines)))
    run = rnnkit.train(tmp_path / "copy.tsv", out=tmp_path / "run", max_steps=300, source_tokens="bpe",
                       target_tokens="bpe", bpe_vocab=300, **{**TINY, "batch_size": 64})
    saved = json.loads((run.dir / "config.json").read_text())
    assert saved["target_vocab"]["kind"] == "bpe" and saved["data"]["bpe_vocab"] == 300
    result = rnnkit.evaluate(run.dir)
    assert result["exact_match"] > 0.9, result["examples"]
    assert rnnkit.load(run.dir).translate("gamma beta")[0][0][0] == "GAMMA BETA"


@pytest.mark.parametrize("attention", ["none", "additive", "dot", "general"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_batch_of_many_equals_each_alone_and_attention_ignores_padding(attention, cell):
    model = _model(attention, cell)
    sources = [model.source_vocab.encode(s) for s in ("abc", "f", "fedcbaab", "ddd")]
    targets = [model.target_vocab.encode(t) for t in ("A B", "C", "F E D", "B B B B")]
    src, lengths = pad_ids(sources)
    tgt, _ = pad_ids(targets, bos=True, eos=True)
    logits, att = model(src, lengths, tgt[:, :-1])
    for i in range(4):
        s1, l1 = pad_ids([sources[i]])
        t1, _ = pad_ids([targets[i]], bos=True, eos=True)
        alone, att1 = model(s1, l1, t1[:, :-1])
        T, S = t1.shape[1] - 1, len(sources[i])
        assert torch.allclose(alone[0], logits[i, :T], atol=1e-5)
        assert torch.allclose(att1[0], att[i, :T, :S], atol=1e-6)
    if attention == "none":
        assert float(att.abs().sum()) == 0
    else:
        assert torch.allclose(att.sum(-1), torch.ones(att.shape[:2]), atol=1e-5)  # weights sum to 1 ...
        assert float(att[1, :, 1:].detach().abs().sum()) == 0  # ... and padding gets none: "f" is one token long


@pytest.mark.parametrize("attention", ["none", "additive", "dot", "general"])
def test_teacher_forcing_in_one_call_equals_stepping(attention):
    """Without input feeding the decoder runs over the whole target at once: the same logits and
    attention as stepping it one token at a time (the obvious loop, written out here)."""
    model = _model(attention, "lstm", input_feeding=False)
    src, lengths = pad_ids([model.source_vocab.encode(s) for s in ("abc", "f", "fedcbaab")])
    tgt, _ = pad_ids([model.target_vocab.encode(t) for t in ("A B", "C", "F E D B")], bos=True, eos=True)
    logits, att = model(src, lengths, tgt[:, :-1])
    memory, mask, state, keys = model.encode(src, lengths)
    feed = model.initial_feed(3, memory)
    for t in range(tgt.shape[1] - 1):
        step_logits, state, feed, alpha = model.step(tgt[:, t], state, feed, memory, mask, keys)
        assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
        assert torch.allclose(alpha, att[:, t], atol=1e-6)


@pytest.mark.parametrize("attention", ["none", "general", "additive"])
def test_beam_of_one_is_greedy_and_beams_are_batched(attention):
    model = _model(attention, bidirectional=False, input_feeding=attention != "additive")
    texts = ["abc", "fedcba", "a", "bbbbbb", "cafe"]
    src, lengths = pad_ids([model.source_vocab.encode(t) for t in texts])
    greedy, _, _ = model.greedy(src, lengths, max_length=12)
    beam = model.beam_search(src, lengths, beam=1, max_length=12)
    assert [b[0][0] for b in beam] == greedy
    wide = model.beam_search(src, lengths, beam=4, nbest=3, max_length=12)
    for i, t in enumerate(texts):  # batch of many == each alone
        s1, l1 = pad_ids([model.source_vocab.encode(t)])
        alone = model.beam_search(s1, l1, beam=4, nbest=3, max_length=12)[0]
        assert [ids for ids, _ in alone] == [ids for ids, _ in wide[i]]
        assert np.allclose([s for _, s in alone], [s for _, s in wide[i]], atol=1e-4)
        scores = [s for _, s in wide[i]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 3
    # the best beam scores at least as well as greedy under the same length normalisation
    lp = lambda n: ((5.0 + n) / 6.0) ** 0.6  # noqa: E731
    _, greedy_logp, _ = model.greedy(src, lengths, max_length=12)
    for b, g_ids, g in zip(wide, greedy, greedy_logp):
        if len(g_ids) < 12:
            assert b[0][1] >= g / lp(len(g_ids) + 1) - 1e-4


def test_a_tiny_model_learns_to_reverse(reverse_run):
    result = rnnkit.evaluate(reverse_run.dir)
    # 150 test pairs: 0 to 2 wrong, depending on the seed and on the CPU's arithmetic (thread count, vector width).
    assert result["exact_match"] >= 0.98 and result["token_error_rate"] < 0.01 and result["bleu"] > 98, result
    assert rnnkit.evaluate(reverse_run.dir, beam=4)["exact_match"] >= 0.98
    model = rnnkit.load(reverse_run.dir)
    assert model.translate("hgfab") == [[("b a f g h", pytest.approx(0, abs=0.1))]]
    out = model.translate(["abc", "dceh"], beam=3, nbest=2)
    assert [o[0][0] for o in out] == ["c b a", "h e c d"] and all(len(o) == 2 for o in out)


def test_metrics_by_hand():
    m = sequence_metrics(["A B C", "A X", ""], [["A B C"], ["A B", "A X Y"], ["Q"]], "word")
    # exact: 1 of 3; edits: 0 + min(1 sub of 2, 1 del of 3) -> 1 of 3 (closest: 1/3 < 1/2) + 1 of 1
    assert m["exact_match"] == pytest.approx(1 / 3) and m["token_error_rate"] == pytest.approx(2 / 7)
    assert strip_stress("HH AH0 L OW1 R") == "HH AH L OW R"


def test_training_options_change_training(tmp_path, reverse):
    smooth = rnnkit.train(reverse, out=tmp_path / "a", max_steps=5, label_smoothing=0.1, sampling_ratio=0.5,
                          attention="additive", bidirectional=True, **TINY)
    cfg = json.loads((smooth.dir / "config.json").read_text())["model"]
    assert cfg["label_smoothing"] == 0.1 and cfg["attention"] == "additive" and cfg["bidirectional"]
    tied = rnnkit.train(reverse, out=tmp_path / "t", max_steps=2, tie_embeddings=True,
                        **{**TINY, "embed_size": 64})
    model = rnnkit.load(tied.dir)
    assert model.out.weight.data_ptr() == model.tgt_embed.weight.data_ptr()


def test_a_seq2seq_run_resumes_exactly(tmp_path, reverse):
    opts = dict(TINY, dropout=0.2, checkpoint_every=1000, lr_schedule="constant", eval_every=20,
                sampling_ratio=0.3)
    assert_resumes_exactly(tmp_path, reverse, opts, 60, 40)  # more than one epoch


def test_two_processes_equal_one_process_on_the_combined_batch(tmp_path, reverse):
    """torchrun: each process's loss is its summed token loss over the mean token count of the
    processes, so the averaged gradients are those of one process holding both halves of the batch
    (the halves hold different numbers of target tokens)."""
    from test_distributed import _weights, torchrun
    opts = ["--task", "seq2seq", "--hidden-size", "16", "--embed-size", "8", "--num-layers", "1", "--max-steps", "6",
            "--no-progress", "--eval-every", "0", "--lr-schedule", "constant", "--threads", "1", "--precision", "fp32",
            "--bidirectional"]
    one = run_cli("train", reverse, "--out", tmp_path / "one", "--batch-size", "8", *opts)
    assert one.returncode == 0, one.stderr
    two = torchrun("train", reverse, "--out", tmp_path / "two", "--batch-size", "4", *opts)
    assert two.returncode == 0 and "2 processes" in two.stderr, two.stderr[-3000:]
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    # 1e-5: the all-reduce sums in another order (1.3e-6 apart after 6 Adam steps on an AVX2-only EPYC);
    # a wrong weighting of the processes' losses changes the gradients by a large fraction, far above it
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_translate_command(tmp_path, reverse_run):
    run = reverse_run.dir
    p = run_cli("translate", run, "abcd", "--beam", "3", "--nbest", "2", "--attention", tmp_path / "map.png")
    fields = p.stdout.strip().split("\t")
    assert p.returncode == 0 and fields[:2] == ["abcd", "d c b a"] and len(fields) == 5, p.stderr
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "map.html").read_text()
    assert page.count("<tr>") == 1 + 5 and "http" not in page  # a header row and one per output token (with </s>)
    (tmp_path / "in.txt").write_text("abc\n\nhbg\n")
    p = run_cli("translate", run, "--input", tmp_path / "in.txt", "--output", tmp_path / "out.tsv")
    assert p.returncode == 0 and (tmp_path / "out.tsv").read_text().splitlines()[1].startswith("hbg\tg b h")
    p = run_cli("eval", run, "--beam", "2")
    match = re.search(r"^test \(beam 2\): exact match (\S+) ", p.stdout, re.M)
    assert p.returncode == 0 and match and float(match[1]) >= 0.98, p.stdout + p.stderr
    bad = run_cli("translate", run, "xyz")
    assert bad.returncode == 1 and "3 source token(s) never seen in training: 'x', 'y', 'z'" in bad.stderr
    assert run_cli("translate", run, "xyz", "--unknown", "skip").returncode == 0
    lm = rnnkit.train(tmp_path / "in.txt", out=tmp_path / "lm", max_steps=1, task="lm", batch_size=1, seq_len=2,
                      hidden_size=8, embed_size=4, num_layers=1, progress=False, log=lambda m: None, sample_every=0)
    p = run_cli("translate", lm.dir, "abc")
    assert p.returncode == 2 and "trained for the lm task; translate needs a seq2seq run" in p.stderr
    with pytest.raises(UsageError, match="--beam is for seq2seq and caption runs"):
        rnnkit.evaluate(lm.dir, beam=3)


def test_inspect_draws_attention_for_each_line(tmp_path, reverse_run):
    from test_inspect import _chromium_or_skip
    from rnnkit.inspect.attention import reading_stats
    from rnnkit.inspect.browser import open_page
    assert reading_stats(np.eye(3)) == {"sharpness": 1.0, "monotone": 1.0}
    assert reading_stats(np.eye(3)[::-1]) == {"sharpness": 1.0, "monotone": 0.0}
    (tmp_path / "src.tsv").write_text("abcd\td c b a\nhgf\tf g g\n\nbad\n")
    p = run_cli("inspect", reverse_run.dir, "--text", tmp_path / "src.tsv", "--out", tmp_path / "att.html")
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "abcd\td c b a", p.stderr
    page = (tmp_path / "att.html").read_text()
    assert page.count("<table>") == 3 and page.count("matches the reference") == 1 and "differs from" in page
    assert (tmp_path / "att-attention.png").read_bytes()[:4] == b"\x89PNG" and "http" not in page
    p = run_cli("inspect", reverse_run.dir, "--text", tmp_path / "src.tsv", "--out", tmp_path / "beam.html",
                "--beam", "3")
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "abcd\td c b a", p.stderr
    _chromium_or_skip()
    dom, errors = open_page(tmp_path / "att.html")
    assert not errors and dom.count("<table>") == 3 and "monotone" in dom
    model = rnnkit.load(reverse_run.dir)
    _, _, weights = model.attention_map("abcdefgh", "h g f e d c b a")
    assert np.allclose(weights.sum(-1), 1, atol=1e-5) and weights.shape == (9, 8)


def test_the_letter_context_g2p_baseline_aligns_and_generalises():
    """benchmarks/g2p_baseline.py: letters align to 0, 1 or 2 phonemes by EM, and unseen words are
    read letter by letter from their context ("x" says K S, a final "e" is silent, "c" before "i" is S)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from g2p_baseline import LetterContextG2P, align

    sound = {"a": ["AE"], "b": ["B"], "d": ["D"], "x": ["K", "S"], "i": ["IH"], "t": ["T"], "o": ["AA"]}

    def say(word):
        out = []
        for i, ch in enumerate(word):
            if ch == "e" and i == len(word) - 1:
                continue
            out += ["S"] if ch == "c" and word[i + 1:i + 2] == "i" else ["K"] if ch == "c" else sound.get(ch, ["EH"])
        return out

    rng = random.Random(0)
    words = {"".join(rng.choice("abcdexiot") for _ in range(rng.randint(3, 7))) for _ in range(3000)}
    train = sorted(words)[:2500]
    model = LetterContextG2P().fit([(w, say(w)) for w in train])
    assert model.aligned == len(train)
    assert align("box", ["B", "AA", "K", "S"], 
                 lambda letter, chunk: -abs(len(chunk) - (2 if letter == "x" else 1))) == [("B",), ("AA",), ("K", "S")]
    assert align("www", ["D"] * 7, lambda letter, chunk: 0.0) is None  # more than two phonemes a letter
    unseen = sorted(words)[2500:]
    correct = sum(model.predict(w) == say(w) for w in unseen)
    assert correct / len(unseen) > 0.95
