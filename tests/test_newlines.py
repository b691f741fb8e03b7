"""Line endings: CRLF and lone CR become LF when text is read (as in Python's text mode), for training
and for everything that reads text for a run (eval, sample --prime, inspect, compare); `--keep-crlf`
and byte-level runs keep the bytes as they are, and the choice travels in the run's config."""

import json

import pytest

import rnnkit
from rnnkit.data.corpus import normalize_newlines
from rnnkit.inspect.activations import activations

from conftest import SMALL, run_cli

TINY = {**SMALL, "max_steps": 20, "eval_every": 0, "sample_length": 0}


@pytest.mark.parametrize("raw, lf", [
    ("a\r\nb", "a\nb"), ("a\rb", "a\nb"), ("a\r\r\nb", "a\n\nb"), ("\r\n\r", "\n\n"), ("a\n\rb", "a\n\nb"),
    ("no endings", "no endings"), ("a\u2028b\x85", "a\u2028b\x85"),  # only CR and CRLF, like Python
])
def test_normalize_newlines_matches_pythons_text_mode(tmp_path, raw, lf):
    path = tmp_path / "t.txt"
    path.write_bytes(raw.encode())
    with open(path, encoding="utf-8") as fh:  # universal newlines
        assert fh.read() == lf
    assert normalize_newlines(raw) == lf


@pytest.fixture(scope="module")
def texts(tmp_path_factory, shakespeare_text):
    d = tmp_path_factory.mktemp("endings")
    lf = shakespeare_text[:20_000]
    paths = {"lf": d / "lf.txt", "crlf": d / "crlf.txt", "cr": d / "cr.txt", "mixed": d / "mixed.txt"}
    paths["lf"].write_bytes(lf.encode())
    paths["crlf"].write_bytes(lf.replace("\n", "\r\n").encode())
    paths["cr"].write_bytes(lf.replace("\n", "\r").encode())
    lines = lf.split("\n")  # CRLF, LF and lone CR in turn (never a CR then an empty LF line: that is a CRLF)
    paths["mixed"].write_bytes("".join(line + ("\r\n", "\n", "\r")[i % 3] for i, line in enumerate(lines[:-1]))
                               .encode() + lines[-1].encode())
    return paths


@pytest.fixture(scope="module")
def crlf_run(tmp_path_factory, texts):
    return rnnkit.train(texts["crlf"], out=tmp_path_factory.mktemp("runs") / "crlf", progress=False,
                        log=lambda m: None, **TINY)


def test_crlf_training_text_evaluates_the_same_with_any_line_endings(crlf_run, texts):
    assert "\r" not in crlf_run.model.vocab.chars  # it learned LF, never "\r\n"
    config = json.loads((crlf_run.dir / "config.json").read_text())
    assert config["data"]["keep_crlf"] is False
    losses = {name: rnnkit.evaluate(crlf_run.dir, path)["nats"] for name, path in texts.items()}
    assert len(set(losses.values())) == 1, losses  # CRLF train / LF, CRLF, lone-CR and mixed eval
    text = texts["crlf"].read_bytes().decode()
    assert "\r\n" in text and crlf_run.model.evaluate(text)["nats"] == losses["lf"]


def test_lf_training_text_evaluates_crlf_text_the_same(trained_run, tmp_path, shakespeare_text):
    piece = shakespeare_text[60_000:64_000]
    lf, crlf = tmp_path / "lf.txt", tmp_path / "crlf.txt"
    lf.write_bytes(piece.encode())
    crlf.write_bytes(piece.replace("\n", "\r\n").encode())
    assert rnnkit.evaluate(trained_run.dir, crlf) == {**rnnkit.evaluate(trained_run.dir, lf), "split": str(crlf)}
    p = run_cli("eval", trained_run.dir, crlf)  # no "'\r' not in the vocabulary"
    assert p.returncode == 0 and "nats/char" in p.stdout, p.stderr


def test_prime_and_inspection_read_line_endings_like_training(crlf_run, tmp_path):
    model = rnnkit.load(crlf_run.dir)
    assert model.sample(prime="First\r\nCitizen:\r", length=0) == "First\nCitizen:\n"
    assert activations(model, "ab\r\ncd\re").chars == list("ab\ncd\ne")
    prime = tmp_path / "prime.txt"
    prime.write_bytes(b"First\r\nCitizen:")
    p = run_cli("sample", crlf_run.dir, "--prime-file", prime, "--length", "0")
    assert p.returncode == 0 and p.stdout == "First\nCitizen:\n", (p.stdout, p.stderr)


def test_keep_crlf_keeps_them_everywhere(tmp_path, texts):
    run = rnnkit.train(texts["crlf"], out=tmp_path / "keep", keep_crlf=True, progress=False, log=lambda m: None,
                       **TINY)
    assert "\r" in run.model.vocab.chars
    assert json.loads((run.dir / "config.json").read_text())["data"]["keep_crlf"] is True
    model = rnnkit.load(run.dir)
    assert model.keep_crlf and model.sample(prime="a\r\nb", length=0) == "a\r\nb"
    assert activations(model, "ab\r\nc").chars == list("ab\r\nc")
    crlf, lf = (rnnkit.evaluate(run.dir, texts[k]) for k in ("crlf", "lf"))
    crlf_text = texts["crlf"].read_bytes().decode()
    assert model.normalize_text(crlf_text) == crlf_text and crlf["chars"] > lf["chars"]  # the "\r"s are scored
    assert crlf["nats"] != lf["nats"]


def test_byte_level_runs_keep_the_bytes(tmp_path, texts):
    run = rnnkit.train(texts["crlf"], out=tmp_path / "bytes", byte_level=True, progress=False, log=lambda m: None,
                       **TINY)
    model = rnnkit.load(run.dir)
    assert model.sample(prime="a\r\nb", length=0) == "a\r\nb"


def test_runs_from_before_the_option_keep_their_line_endings(tmp_path, trained_run):
    """Old config.json files have no keep_crlf: those runs read text as it was, so they still do."""
    import shutil
    old = tmp_path / "old"
    shutil.copytree(trained_run.dir, old)
    config = json.loads((old / "config.json").read_text())
    del config["data"]["keep_crlf"]
    (old / "config.json").write_text(json.dumps(config))
    assert rnnkit.load(old).keep_crlf is True and rnnkit.load(trained_run.dir).keep_crlf is False


def test_the_token_cache_tells_the_two_readings_apart(texts):
    from rnnkit.data import prepare_text
    lf, kept = prepare_text(texts["crlf"]), prepare_text(texts["crlf"], keep_crlf=True)
    assert lf.directory != kept.directory and len(kept.tokens) - len(lf.tokens) == lf.vocab.decode(lf.tokens).count("\n")
