import json

import numpy as np
import pytest

from rnnkit.config import DataConfig
from rnnkit.data import StreamBatches, Vocab, eval_chunks, prepare
from rnnkit.data import corpus as corpus_mod
from rnnkit.errors import DataError


def test_char_vocab_is_sorted_stable_and_round_trips():
    text = "hello, wörld 🎉\nZ"
    v1, v2 = Vocab("char", list(text)), Vocab("char", list(reversed(text)))
    assert v1.chars == v2.chars == sorted(set(text))
    ids = v1.encode(text)
    assert ids.dtype == np.uint8
    assert v1.decode(ids) == text
    assert Vocab.from_json(json.loads(json.dumps(v1.to_json()))) == v1


def test_vocab_dtype_is_the_smallest_that_fits():
    assert Vocab("char", [chr(i) for i in range(256)]).dtype == np.uint8
    assert Vocab("char", [chr(i) for i in range(257)]).dtype == np.uint16
    assert Vocab("char", [chr(i) for i in range(70_000)]).dtype == np.uint32


def test_unknown_characters_are_named_or_skipped():
    v = Vocab("char", list("abc"))
    with pytest.raises(DataError, match="'z'"):
        v.encode("abz")
    assert v.decode(v.encode("abzc", unknown="skip")) == "abc"


def test_byte_vocab_round_trips_any_bytes():
    v = Vocab.bytes()
    assert len(v) == 256
    dec = v.decoder()
    data = "naïve ☃".encode()
    assert "".join(dec(b) for b in data) == "naïve ☃"


def _prep(paths, **kw):
    return prepare(DataConfig(paths=[str(p) for p in paths], **kw))


def test_prepare_encodes_splits_and_reuses_the_cache(tmp_path):
    f = tmp_path / "a.txt"
    text = "".join(chr(97 + i % 26) for i in range(1000)) + "é\n"
    f.write_text(text, encoding="utf-8")
    c = _prep([f])
    assert c.vocab.decode(np.asarray(c.tokens)) == text
    assert c.tokens.dtype == np.uint8 and isinstance(c.tokens, np.memmap)
    a, b = c.bounds
    assert (a, b) == (int(len(text) * 0.9), int(len(text) * 0.95))
    assert len(c.split("train")) + len(c.split("val")) + len(c.split("test")) == len(text)
    mtime = (c.directory / "tokens.bin").stat().st_mtime_ns
    again = _prep([f])
    assert again.directory == c.directory and (c.directory / "tokens.bin").stat().st_mtime_ns == mtime
    f.write_text(text + "more", encoding="utf-8")  # changed source -> new encoding
    changed = _prep([f])
    assert changed.directory != c.directory and len(changed.tokens) == len(text) + 4


def test_chunked_reading_splits_multibyte_characters_correctly(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "CHUNK_BYTES", 7)  # chunk boundaries fall inside characters
    text = "ab€cd😀é\n" * 50
    f = tmp_path / "u.txt"
    f.write_text(text, encoding="utf-8")
    c = _prep([f])
    assert c.vocab.decode(np.asarray(c.tokens)) == text


def test_directory_with_glob_and_multiple_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.py").write_text("print(2)\n")
    (tmp_path / "sub" / "a.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("ignored\n")
    c = _prep([tmp_path], glob="**/*.py")
    assert c.vocab.decode(np.asarray(c.tokens)) == "print(2)\nx = 1\n"
    with pytest.raises(DataError, match="no files matching"):
        _prep([tmp_path], glob="*.rs")


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        _prep([tmp_path / "missing.txt"])
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="is empty"):
        _prep([tmp_path / "empty.txt"])
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(DataError, match=r"not valid UTF-8 \(first bad byte at offset 3\).*--byte-level"):
        _prep([tmp_path / "latin1.txt"])
    c = _prep([tmp_path / "latin1.txt"], byte_level=True)
    assert bytes(np.asarray(c.tokens)) == "caf\xe9 au lait".encode("latin-1")


def test_fine_tuning_vocabulary_names_missing_characters(tmp_path):
    f = tmp_path / "new.txt"
    f.write_text("abcxyz")
    with pytest.raises(DataError, match="outside the model's vocabulary: 'x', 'y', 'z'"):
        prepare(DataConfig(paths=[str(f)]), vocab=Vocab("char", list("abc")))


def test_streams_continue_from_chunk_to_chunk():
    tokens = np.arange(1000, dtype=np.uint16)
    b = StreamBatches(tokens, batch_size=4, seq_len=10)
    assert b.stream_len == 249 and len(b) == 24
    for i in range(len(b) - 1):
        x0, y0 = b.get(i)
        x1, _ = b.get(i + 1)
        assert x0.shape == (4, 10)
        assert (y0[:, :-1] == x0[:, 1:]).all()  # targets are the next characters
        assert (x1[:, 0] == x0[:, -1] + 1).all()  # row b of chunk i+1 continues row b of chunk i
    assert (b.get(0)[0][:, 0].numpy() == np.arange(4) * 249).all()


def test_too_short_corpus_says_how_long_it_must_be():
    with pytest.raises(DataError, match=r"has 100 characters but one batch of 8 streams x 16 steps needs at least 129"):
        StreamBatches(np.zeros(100, np.uint8), 8, 16)


def test_eval_chunks_cover_the_text():
    tokens = np.arange(1001)
    ys = [y for _, y in eval_chunks(tokens, batch_size=4, seq_len=64)]
    covered = np.sort(np.concatenate([y.numpy().ravel() for y in ys]))
    assert (covered == np.arange(1, 1001)).all()
    short = list(eval_chunks(np.arange(5), 32, 256))
    assert sum(y.numel() for _, y in short) == 4


def test_ascii_fast_path_and_decoded_chunks_mix_correctly(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "CHUNK_BYTES", 8)  # some chunks pure ASCII, some not, some split a character
    text = ("plain ascii text " * 3 + "naïve café €5 😀\n") * 20
    f = tmp_path / "mixed.txt"
    f.write_text(text, encoding="utf-8")
    c = _prep([f])
    assert c.vocab.decode(np.asarray(c.tokens)) == text
    assert c.vocab.chars == sorted(set(text))


def test_dense_table_encoding_matches_binary_search():
    rng = np.random.default_rng(0)
    cps = np.concatenate([rng.integers(32, 127, 500), rng.integers(0x4E00, 0x4E80, 300), [0x1F600, 0x1F601, 0x10FFFF],
                          [ord(c) for c in "hello"]])
    v = Vocab.from_codepoints(np.unique(cps))
    sample = rng.permutation(cps).astype(np.uint32)
    assert (v.encode_codepoints(sample) == np.searchsorted(v.codepoints, sample)).all()
    ascii_bytes = np.frombuffer(b"hello", dtype=np.uint8)
    assert v.decode(v.encode_codepoints(ascii_bytes)) == "hello"  # uint8 bytes index the table directly
