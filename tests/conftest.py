"""Shared fixtures: an isolated token cache, small corpora, a CLI runner and one small trained run."""

import json
import os
import random
import re
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # one of several test processes sharing the cores: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

import _forked_cli
import rnnkit
from rnnkit import checkpoint as ckpt
from rnnkit.data import bundled_corpus

SMALL = dict(hidden_size=32, embed_size=16, num_layers=2, batch_size=8, seq_len=16, sample_every=0)


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml): a worker per core, at most 4 (each imports torch, and the longest test
    files set the pace beyond that)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Every test encodes into a private cache, never the user's ~/.cache/rnnkit."""
    cache = tmp_path_factory.mktemp("rnnkit-cache")
    old = os.environ.get("RNNKIT_CACHE")
    os.environ["RNNKIT_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("RNNKIT_CACHE", None)
    else:
        os.environ["RNNKIT_CACHE"] = old


@pytest.fixture(scope="session")
def shakespeare_text() -> str:
    return bundled_corpus().read_text("utf-8")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, shakespeare_text) -> Path:
    """The first 60,000 characters of tiny Shakespeare, as a file."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(shakespeare_text[:60_000], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, small_corpus):
    """A small LSTM trained for 150 steps: enough to beat uniform, quick to make."""
    out = tmp_path_factory.mktemp("runs") / "lstm"
    return rnnkit.train(small_corpus, out=out, max_steps=150, eval_every=50, progress=False, log=lambda m: None,
                        **SMALL)


def run_cli(*args, cwd=None, timeout=300):
    """Run `python -m rnnkit ARGS` as its own process (forked from a server that has imported torch once:
    see _forked_cli.py); returns the CompletedProcess, with text stdout and stderr."""
    return _forked_cli.run([str(a) for a in args], {**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=cwd, timeout=timeout)


def start_cli(*args, cwd=None):
    """Start `python -m rnnkit ARGS` as its own process without waiting: a Popen-like object (pid, poll,
    send_signal, wait, communicate) whose stdout and stderr are text."""
    return _forked_cli.start([str(a) for a in args], {**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=cwd)


@pytest.fixture(scope="session")
def words(tmp_path_factory, shakespeare_text):
    """English words against the same kind of words written backwards: a TSV of 2 x 1,000 labelled
    examples (with a text,label header), for classifiers and generators."""
    found = sorted(set(w.lower() for w in re.findall(r"[A-Za-z]{4,}", shakespeare_text)))
    random.Random(0).shuffle(found)
    rows = [f"{w}\ten" for w in found[:1000]] + [f"{w[::-1]}\trev" for w in found[1000:2000]]
    random.Random(1).shuffle(rows)
    path = tmp_path_factory.mktemp("words") / "words.tsv"
    path.write_text("text\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def assert_resumes_exactly(tmp_path, data, options: dict, steps: int, stop: int, losses: bool = True) -> None:
    """Training `steps` steps in one go and stopping at `stop` then resuming to `steps` give the same
    losses (when `losses`: every row of metrics.jsonl) and bit-identical weights and optimizer state."""
    rnnkit.train(data, out=tmp_path / "a", max_steps=steps, **options)
    rnnkit.train(data, out=tmp_path / "b", max_steps=stop, **options)
    rnnkit.train(resume=tmp_path / "b", max_steps=steps, progress=False, log=lambda m: None)
    if losses:
        rows = [[json.loads(x).get("loss") for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
                for r in "ab"]
        assert rows[0] == rows[1]
    wa, _ = ckpt.load_tensors(tmp_path / "a" / ckpt.TRAINER)
    wb, _ = ckpt.load_tensors(tmp_path / "b" / ckpt.TRAINER)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
