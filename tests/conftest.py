"""Shared fixtures: an isolated token cache, small corpora, a CLI runner and one small trained run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rnnkit
from rnnkit.data import bundled_corpus

SMALL = dict(hidden_size=32, embed_size=16, num_layers=2, batch_size=8, seq_len=16, sample_every=0)


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
    """Run `python -m rnnkit ARGS` in a real subprocess; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "rnnkit", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
