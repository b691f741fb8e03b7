import math

import pytest
import torch
import torch.nn.functional as F
import numpy as np

from rnnkit.errors import ConfigError, DataError
from rnnkit.config import SampleConfig
from rnnkit.sample import choose, filter_logits, sample_text


def test_seeded_sampling_is_reproducible(trained_run):
    m = trained_run.model
    a = m.sample(length=120, seed=42, temperature=0.9, top_k=10)
    b = m.sample(length=120, seed=42, temperature=0.9, top_k=10)
    c = m.sample(length=120, seed=43, temperature=0.9, top_k=10)
    assert a == b and a != c and len(a) == 120


def test_filters_keep_the_right_characters():
    logits = np.log(np.array([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    assert np.isfinite(filter_logits(logits, top_k=2)).sum() == 2
    nucleus = np.isfinite(filter_logits(logits, top_p=0.8))  # 0.5 + 0.2 < 0.8 <= 0.5 + 0.2 + 0.15
    assert nucleus.tolist() == [[True, True, True, False, False]]
    assert np.isfinite(filter_logits(logits, top_p=0.1)).sum() == 1  # the top character always stays
    cold = np.exp(filter_logits(logits, temperature=0.5))
    cold /= cold.sum()
    assert cold[0, 0] == pytest.approx(0.25 / (0.25 + 0.04 + 0.0225 + 0.01 + 0.0025))


def test_choose_draws_from_the_filtered_distribution():
    logits = np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    rng = np.random.default_rng(0)
    opts = SampleConfig()
    draws = np.stack([choose(logits, opts, rng) for _ in range(20_000)])  # (20000, 2)
    np.testing.assert_allclose(np.bincount(draws[:, 0], minlength=3) / 20_000, [0.5, 0.3, 0.2], atol=0.015)
    np.testing.assert_allclose(np.bincount(draws[:, 1], minlength=3) / 20_000, [0.1, 0.1, 0.8], atol=0.015)
    assert set(np.unique([choose(logits, SampleConfig(top_k=1), rng) for _ in range(50)])) <= {0, 2}


def test_carried_state_gives_the_same_choices_as_rereading_the_prefix(trained_run):
    """Greedy decoding with one step per character must match argmax over a full forward pass."""
    m = trained_run.model
    prime = "First Citizen:\n"
    text = m.sample(prime=prime, greedy=True, length=80)
    ids = torch.tensor([m.vocab.encode(text).tolist()])
    logits, _ = m(ids)
    predicted = logits[0, len(prime) - 1:-1].argmax(-1)
    assert m.vocab.decode(predicted) == text[len(prime):]


def _log_likelihood(model, prime, continuation):
    ids = torch.tensor([model.vocab.encode(prime + continuation).tolist()])
    logp = F.log_softmax(model(ids)[0][0], -1)
    return sum(float(logp.detach()[i - 1, ids[0, i]]) for i in range(len(prime), ids.shape[1]))


def test_beam_search_finds_likelier_text_than_greedy(trained_run):
    m = trained_run.model
    prime = "ROMEO:\n"
    greedy = m.sample(prime=prime, greedy=True, length=30)[len(prime):]
    assert m.sample(prime=prime, beam=1, length=30)[len(prime):] == greedy
    beam = m.sample(prime=prime, beam=8, length=30)[len(prime):]
    assert len(beam) == 30
    assert _log_likelihood(m, prime, beam) >= _log_likelihood(m, prime, greedy) - 1e-4


def test_stop_string_ends_the_sample(trained_run):
    m = trained_run.model
    out = m.sample(length=2000, seed=5, stop="\n")
    assert out.endswith("\n") and out.count("\n") == 1
    out = m.sample(length=2000, beam=3, stop="e", prime="Th")
    assert out.endswith("e") and out[2:].count("e") == 1


def test_streaming_callback_sees_the_whole_text(trained_run):
    pieces = []
    text = trained_run.model.sample(length=50, seed=3, prime="KING", on_text=pieces.append)
    assert "".join(pieces) == text and pieces[0] == "KING"


def test_prime_with_unknown_characters(trained_run):
    m = trained_run.model
    with pytest.raises(DataError, match="not in the vocabulary: '€'"):
        m.sample(prime="a € b", length=5)
    assert m.sample(prime="a € b", unknown="skip", length=5, seed=1).startswith("a  b")


@pytest.mark.parametrize("bad,match", [({"temperature": 0}, "--temperature must be > 0"),
                                       ({"top_p": 1.5}, r"--top-p must be in \(0, 1\]"),
                                       ({"top_k": -1}, "--top-k must be >= 0"),
                                       ({"colour": "red"}, "unknown SampleConfig option")])
def test_invalid_sampling_options(trained_run, bad, match):
    with pytest.raises(ConfigError, match=match):
        sample_text(trained_run.model, length=5, **bad)


def test_evaluate_text_reports_consistent_units(trained_run, shakespeare_text):
    r = trained_run.model.evaluate(shakespeare_text[50_000:55_000])
    assert r["bpc"] == pytest.approx(r["nats"] / math.log(2))
    assert r["perplexity"] == pytest.approx(math.exp(r["nats"]))
    assert 4000 < r["chars"] < 5000
