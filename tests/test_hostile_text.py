"""Property-based tests of the data path (Hypothesis): any text either round-trips exactly through
encoding and decoding, or gets a clear one-line error; byte-level mode round-trips any bytes.

The file tests shrink the reading chunk to a few bytes, so chunk boundaries fall inside multi-byte
characters, CRLF pairs and combining sequences, as they do (rarely) with the real 4 MiB chunks.
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.data import Vocab, prepare_text
from rnnkit.data import corpus as corpus_mod
from rnnkit.errors import DataError

# The awkward cases by name, mixed into Hypothesis's own arbitrary Unicode.
AWKWARD = st.sampled_from([
    "\r\n", "\r", "\n", "\r\r\n", "\x00", "\x7f", "\ufeff", "\u2028", "\u0085",  # line endings, NUL, BOM
    "🎉", "👩‍👩‍👧", "\U0001f1eb\U0001f1f7", "\U0010ffff", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",  # astral plane, emoji sequences
    "e\u0301", "\u0301", "\u00f1", "n\u0303",  # combining marks, composed and decomposed
    "\u202e", "שָׁלוֹם", "مرحبا", "\u200f",  # right-to-left text and marks
    "\ud800", "\udfff", "\udbff\udc00",  # lone surrogates (not encodable as UTF-8)
])
TEXT = st.lists(st.one_of(st.text(), AWKWARD), max_size=20).map("".join)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=1000, **SETTINGS)
@given(TEXT)
def test_a_character_vocabulary_round_trips_any_string(text):
    vocab = Vocab("char", list(text) or ["x"])
    ids = vocab.encode(text)
    assert len(ids) == len(text)
    assert vocab.decode(ids) == text
    streamed = vocab.decoder()
    assert "".join(streamed(i) for i in ids) == text


def _prepare_bytes(data: bytes, chunk: int, byte_level: bool = False, keep_crlf: bool = False):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(corpus_mod, "CHUNK_BYTES", chunk)
        path = Path(tmp) / "input.txt"
        path.write_bytes(data)
        try:
            corpus = prepare_text(path, out=Path(tmp) / "prepared", byte_level=byte_level, keep_crlf=keep_crlf)
        except DataError as exc:
            return None, str(exc).replace(str(path), "FILE")
        return corpus.vocab, np.array(corpus.tokens)


def _check_file(data: bytes, chunk: int, keep_crlf: bool):
    vocab, result = _prepare_bytes(data, chunk, keep_crlf=keep_crlf)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        assert vocab is None and result == (f"FILE is not valid UTF-8 (first bad byte at offset {exc.start}); "
                                            "use --byte-level to model raw bytes"), result
        return
    if not text:
        assert vocab is None and result == "FILE is empty"
        return
    assert vocab is not None, result
    if not keep_crlf:  # by default CRLF and lone CR become LF, as Python's text mode reads them
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    assert len(result) == len(text) and vocab.decode(result) == text  # exactly: NUL, BOM and all


@settings(max_examples=400, **SETTINGS)
@given(TEXT, st.integers(1, 9), st.booleans())
def test_a_text_file_round_trips_or_gets_a_clear_error(text, chunk, keep_crlf):
    _check_file(text.encode("utf-8", errors="surrogatepass"), chunk, keep_crlf)  # lone surrogates: invalid


@settings(max_examples=400, **SETTINGS)
@given(st.binary(max_size=200), st.integers(1, 9), st.booleans())
def test_arbitrary_bytes_round_trip_or_get_a_clear_error(data, chunk, keep_crlf):
    _check_file(data, chunk, keep_crlf)


@settings(max_examples=300, **SETTINGS)
@given(st.binary(min_size=1, max_size=300), st.integers(1, 9))
def test_byte_level_round_trips_any_bytes(data, chunk):
    vocab, tokens = _prepare_bytes(data, chunk, byte_level=True)
    assert vocab is not None and tokens.dtype == np.uint8 and tokens.tobytes() == data


def test_a_100_mb_single_line(tmp_path):
    size = 100 * 1024 * 1024
    data = bytearray(b"a") * size
    boundary = corpus_mod.CHUNK_BYTES
    data[boundary - 1:boundary + 3] = "🎉".encode()  # a 4-byte character across the first chunk boundary
    data[-2:] = "é".encode()
    path = tmp_path / "line.txt"
    path.write_bytes(bytes(data))
    corpus = prepare_text(path, out=tmp_path / "prepared")
    assert len(corpus.tokens) == size - 3 - 1  # two multi-byte characters, no newline anywhere
    assert corpus.vocab.chars == ["a", "é", "🎉"]
    assert corpus.vocab.decode(corpus.tokens[boundary - 3:boundary + 1]) == "aa🎉a"
    assert corpus.vocab.decode(corpus.tokens[-2:]) == "aé"
