"""Text -> vocabulary -> token file, prepared once and memory-mapped.

`prepare` reads the input files in fixed-size chunks (memory stays bounded whatever the corpus size),
builds the vocabulary in a first pass and writes the token ids in a second, as a flat array of the
smallest unsigned type that fits (`tokens.bin`), next to `vocab.json` and `meta.json`. The result is
cached under a key made of the files' paths, sizes and modification times, so a second run on the
same unchanged text starts at once. Training memory-maps `tokens.bin`.

Line endings are normalised while reading, as Python's text mode does: CRLF and a lone CR become
LF, so a model trained on a Windows file and evaluated on the same text with Unix line endings sees
the same characters (`keep_crlf` in the data config, `--keep-crlf`, keeps them; byte-level
models always see the bytes as they are).

Splits are contiguous ranges in file order: the first `split[0]` of the tokens train, the next
`split[1]` validate, the rest test (char-rnn and nanoGPT report on first 90% / last 10%).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..config import DataConfig, build
from ..errors import DataError, RnnkitError
from ..io import atomic_write_bytes, atomic_write_json
from .pieces import SCHEMES, PieceVocab
from .vocab import Vocab, codepoints_of, describe_chars

FORMAT_VERSION = 1
CHUNK_BYTES = 1 << 22  # 4 MiB of input at a time
BUNDLED_NAME = "tinyshakespeare.txt"
CR, LF = 13, 10


def normalize_newlines(text: str) -> str:
    """CRLF and a lone CR -> LF, as Python's text mode reads files (its "universal newlines")."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def bundled_corpus() -> Path:
    """Path of the tiny Shakespeare text shipped inside the package."""
    return Path(str(resources.files("rnnkit.data").joinpath(BUNDLED_NAME)))


def default_cache_dir() -> Path:
    env = os.environ.get("RNNKIT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnnkit"


def resolve_sources(paths: list[str], glob: str) -> list[Path]:
    """Input paths (files or directories) -> the ordered list of files to read."""
    if not paths:
        return [bundled_corpus()]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.glob(glob) if f.is_file())
            if not found:
                raise DataError(f"directory {p} has no files matching {glob!r} (choose another with --glob)")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif p.exists():
            raise DataError(f"{p} is not a regular file or directory")
        else:
            raise DataError(f"no such file or directory: {p}")
    unique: dict[Path, Path] = {}
    for f in files:  # each file once, at its first mention, named as the user named it
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


@dataclass
class Corpus:
    """Prepared text: token ids (memory-mapped), the vocabulary, and the split boundaries."""

    tokens: np.ndarray  # (N,) unsigned ints, memory-mapped
    vocab: Vocab
    sources: list[str]
    bounds: tuple  # (train_end, val_end): train [0, a), val [a, b), test [b, N)
    directory: Path
    chars: tuple | None = None  # word and bpe tokens: the characters of each split (train, val, test)

    def split(self, name: str) -> np.ndarray:
        a, b = self.bounds
        ranges = {"train": (0, a), "val": (a, b), "test": (b, len(self.tokens))}
        if name not in ranges:
            raise DataError(f"unknown split {name!r}")
        lo, hi = ranges[name]
        return self.tokens[lo:hi]


def split_bounds(n: int, split: tuple) -> tuple:
    a = int(n * split[0])
    b = n if split[0] + split[1] >= 1 - 1e-9 else int(n * (split[0] + split[1]))
    return a, b


def prepare(config: DataConfig, vocab: Vocab | None = None, out_dir: str | Path | None = None,
            extend: bool = False) -> Corpus:
    """Encode the config's text (or reuse the cached encoding) and memory-map it.

    With `vocab` given (fine-tuning), the text must fit that vocabulary, or with `extend` the
    characters it lacks are added (the result's vocabulary is then a superset of `vocab`); otherwise
    the vocabulary is built from the text (every character it contains, in code-point order).
    """
    files = resolve_sources(config.paths, config.glob)
    stats = [f.stat() for f in files]
    key_src = {
        "format": FORMAT_VERSION,
        "byte_level": config.byte_level,
        # word and bpe tokens are learned on the training split: its size and the tokenizer's are in the key
        **({"tokens": config.tokens, "split": list(config.split),
            "size": config.bpe_vocab if config.tokens == "bpe" else config.word_vocab}
           if config.tokens in SCHEMES else {}),
        "newlines": "keep" if config.keep_crlf or config.byte_level else "lf",
        "vocab": vocab.to_json() if vocab is not None else None,
        "extend": extend and vocab is not None,
        "files": [[str(f.resolve()), s.st_size, s.st_mtime_ns] for f, s in zip(files, stats)],
    }
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:20]
    directory = Path(out_dir) if out_dir is not None else default_cache_dir() / key
    cached = _read_cached(directory, key)
    # Not there, incomplete, stale or damaged: (re)build it.
    if cached is not None:
        meta, vocab = cached
    elif config.tokens in SCHEMES:
        if vocab is not None and extend:
            raise DataError(f"--extend-vocab adds characters; a run of --tokens {config.tokens} has no characters "
                            "to add (every text already has an encoding)")
        meta, vocab = _encode_pieces(files, config, vocab, directory, key)
    else:
        meta, vocab = _encode(files, config.byte_level, config.keep_crlf, vocab, extend, directory, key)
    n = meta["num_tokens"]
    tokens = np.memmap(directory / "tokens.bin", dtype=vocab.dtype, mode="r", shape=(n,))
    if isinstance(vocab, PieceVocab):
        return Corpus(tokens, vocab, [str(f) for f in files], tuple(meta["bounds"]), directory, tuple(meta["chars"]))
    return Corpus(tokens, vocab, [str(f) for f in files], split_bounds(n, config.split), directory)


def prepare_for_run(config: DataConfig, vocab: Vocab) -> Corpus | None:
    """A run's training text encoded with the run's own vocabulary (to resume it, or to evaluate on its
    test split), or None if the text no longer fits that vocabulary. The text's own vocabulary is the
    usual case; a fine-tuned run's vocabulary came from its base run and may hold more characters."""
    if isinstance(vocab, PieceVocab):  # the run's own tokenizer, not one learned again
        corpus = prepare(config, vocab=vocab)
        return corpus if corpus.vocab == vocab else None
    corpus = prepare(config)
    if corpus.vocab == vocab:
        return corpus
    if vocab.kind == corpus.vocab.kind == "char" and set(corpus.vocab.chars) <= set(vocab.chars):
        return prepare(config, vocab=vocab)
    return None


def prepare_text(data=None, out: str | Path | None = None, **options) -> Corpus:
    """`rnnkit prepare`: encode `data` (a path or list of paths; None: the bundled corpus) with the
    DataConfig options (glob, byte_level, split), into `out` or the cache."""
    paths = [] if data is None else [str(data)] if isinstance(data, (str, Path)) else [str(p) for p in data]
    return prepare(build(DataConfig, {**options, "paths": paths}), out_dir=out)


def read_text(path: str | Path, max_chars: int = 0) -> str:
    """A UTF-8 text file (its first `max_chars` characters if > 0), with one-line errors. Line endings
    are left as they are: the model that reads the text normalises them the way its run did
    (`CharRNN.normalize_text`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        text = path.read_bytes().decode("utf-8")  # as it is: no newline translation
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 (first bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    text = text[:max_chars] if max_chars else text
    if not text:
        raise DataError(f"{path} is empty")
    return text


def _read_cached(directory: Path, key: str) -> tuple[dict, Vocab] | None:
    """A complete cache entry for `key` (meta.json, vocab.json, tokens.bin of the right size), or None.
    The files are parsed as JSON and raw integers only, so a planted file can at worst be rebuilt."""
    try:
        meta = json.loads((directory / "meta.json").read_bytes())
        raw = json.loads((directory / "vocab.json").read_bytes())
        vocab = PieceVocab.from_json(raw) if raw.get("kind") == "pieces" else Vocab.from_json(raw)
        size = (directory / "tokens.bin").stat().st_size
        ok = (isinstance(meta, dict) and meta.get("key") == key and meta.get("vocab_size") == len(vocab)
              and meta.get("itemsize") == np.dtype(vocab.dtype).itemsize
              and isinstance(meta.get("num_tokens"), int) and size == meta["num_tokens"] * meta["itemsize"]
              and (not isinstance(vocab, PieceVocab) or _piece_meta_ok(meta)))
    except (OSError, ValueError, RnnkitError):
        return None
    return (meta, vocab) if ok else None


def _piece_meta_ok(meta: dict) -> bool:
    """A word or bpe entry's split bounds and character counts: ints, in order, within the tokens."""
    bounds, chars = meta.get("bounds"), meta.get("chars")
    return (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(x, int) for x in bounds)
            and 0 <= bounds[0] <= bounds[1] <= meta["num_tokens"] and isinstance(chars, list) and len(chars) == 3
            and all(isinstance(x, int) and x >= 0 for x in chars))


def _read_chunks(path: Path):
    """Yield (offset, bytes) over a file in CHUNK_BYTES pieces."""
    try:
        with open(path, "rb") as fh:
            offset = 0
            while chunk := fh.read(CHUNK_BYTES):
                yield offset, chunk
                offset += len(chunk)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _codepoint_chunks(path: Path, keep_crlf: bool = True):
    """Yield the code points of a UTF-8 file chunk by chunk, with CRLF and lone CR made LF unless
    `keep_crlf`. The file is decoded first, so a bad byte is reported at its offset in the file."""
    chunks = _decoded_chunks(path)
    return chunks if keep_crlf else _lf_chunks(chunks)


def _lf_chunks(chunks):
    """Code-point arrays with CRLF and lone CR turned into LF, also across chunk boundaries: a CR
    that ends a chunk is held back until the next chunk shows whether an LF follows it."""
    held_cr = False
    for cps in chunks:
        if not len(cps):
            continue
        if held_cr and cps[0] != LF:  # it was a lone CR (an LF right after it stands for the pair)
            yield np.array([LF], dtype=cps.dtype)
        held_cr = bool(cps[-1] == CR)
        cps = cps[:-1] if held_cr else cps
        cr = cps == CR
        if not cr.any():  # most chunks: nothing to do, no copy
            yield cps
            continue
        pair = cr.copy()
        pair[:-1] &= cps[1:] == LF  # a CR with an LF right after it is dropped; the LF stays
        pair[-1] = False
        out = cps[~pair]  # a copy (boolean indexing), safe to modify
        out[out == CR] = LF  # the CRs left are lone ones
        yield out
    if held_cr:
        yield np.array([LF], dtype=np.uint8)


def _decoded_chunks(path: Path):
    """Yield the code points of a UTF-8 file chunk by chunk. A chunk of pure ASCII (most text, all
    of most code) needs no decoding: its bytes are its code points, as uint8."""
    dec = codecs.getincrementaldecoder("utf-8")(errors="strict")
    fed = 0  # bytes given to the decoder so far
    try:
        for _, chunk in _read_chunks(path):
            if not dec.getstate()[0] and chunk.isascii():
                fed += len(chunk)
                yield np.frombuffer(chunk, dtype=np.uint8)
                continue
            start = fed - len(dec.getstate()[0])  # the decoder sees its pending bytes, then the chunk
            fed += len(chunk)
            yield codepoints_of(dec.decode(chunk))
        start = fed - len(dec.getstate()[0])
        yield codepoints_of(dec.decode(b"", final=True))  # an incomplete character at the very end
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 (first bad byte at offset {start + exc.start}); "
                        "use --byte-level to model raw bytes") from None


def _encode(files: list[Path], byte_level: bool, keep_crlf: bool, vocab: Vocab | None, extend: bool,
            directory: Path, key: str) -> tuple[dict, Vocab]:
    directory.mkdir(parents=True, exist_ok=True)
    if byte_level:
        vocab = Vocab.bytes()
        total = sum(f.stat().st_size for f in files)
    else:
        # Pass 1: the set of code points (for the vocabulary) and the token count.
        seen_bmp = np.zeros(1 << 16, dtype=bool)
        seen_astral: set[int] = set()
        total = 0
        for f in files:
            for cps in _codepoint_chunks(f, keep_crlf):
                total += len(cps)
                if cps.dtype == np.uint8:  # ASCII: counting 128 values is cheaper than indexing
                    seen_bmp[:256] |= np.bincount(cps, minlength=256) > 0
                    continue
                seen_bmp[cps[cps < (1 << 16)]] = True
                seen_astral.update(np.unique(cps[cps >= (1 << 16)]).tolist())
        cps_seen = np.concatenate([np.flatnonzero(seen_bmp), np.array(sorted(seen_astral), dtype=np.int64)])
        if vocab is None:
            if total == 0:
                raise DataError(_empty_message(files))
            vocab = Vocab.from_codepoints(cps_seen)
        elif vocab.kind == "char":
            missing = sorted(set(cps_seen.tolist()) - set(vocab.codepoints.tolist()))
            if missing and extend:
                vocab = Vocab.from_codepoints(sorted(set(vocab.codepoints.tolist()) | set(missing)))
            elif missing:
                raise DataError(f"the text has {len(missing)} character(s) outside the model's vocabulary: "
                                f"{describe_chars([chr(c) for c in missing])}; --extend-vocab adds them")
    if total == 0:
        raise DataError(_empty_message(files))
    # Pass 2: write the ids.
    def write(out):
        for f in files:
            if vocab.kind == "byte":
                for _, chunk in _read_chunks(f):
                    out.write(chunk)
            else:
                for cps in _codepoint_chunks(f, keep_crlf):
                    out.write(vocab.encode_codepoints(cps).tobytes())
    return _commit(directory, write, vocab, {"key": key, "num_tokens": int(total)}, files), vocab


def _commit(directory: Path, write, vocab, meta: dict, files: list[Path]) -> dict:
    """Write a cache entry: tokens.bin by `write(file)` (under a temporary name, so a half-written file
    is never used), vocab.json, then meta.json, which marks the entry complete. Returns the meta."""
    tmp = directory / f"tokens.bin.tmp-{os.getpid()}"
    with open(tmp, "wb") as out:
        write(out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, directory / "tokens.bin")
    atomic_write_bytes(directory / "vocab.json", json.dumps(vocab.to_json(), ensure_ascii=False).encode("utf-8"))
    meta = {**meta, "itemsize": np.dtype(vocab.dtype).itemsize, "vocab_size": len(vocab),
            "sources": [str(f.resolve()) for f in files]}
    atomic_write_json(directory / "meta.json", meta)  # written last
    return meta


def _encode_pieces(files: list[Path], config: DataConfig, vocab: PieceVocab | None, directory: Path,
                   key: str) -> tuple[dict, PieceVocab]:
    """Word or bpe tokens: the text is read whole (so this path holds it in memory, unlike characters
    and bytes), split by characters into train, validation and test, the tokenizer learned on the
    training part (or `vocab`, a run's own, reused) and each part encoded on its own. So the splits are
    the same characters at every token level, and runs at different levels compare on the same text."""
    parts = []
    for f in files:
        cps = np.concatenate([c.astype(np.uint32) for c in _codepoint_chunks(f, config.keep_crlf)] or
                             [np.zeros(0, np.uint32)])
        parts.append(cps.astype("<u4").tobytes().decode("utf-32-le"))
    text = "".join(parts)
    if not text:
        raise DataError(_empty_message(files))
    a, b = split_bounds(len(text), config.split)
    pieces = (text[:a], text[a:b], text[b:])
    if vocab is None:
        size = config.bpe_vocab if config.tokens == "bpe" else config.word_vocab
        vocab = PieceVocab.learn(config.tokens, pieces[0], size)
    ids = [vocab.encode(p) for p in pieces]
    directory.mkdir(parents=True, exist_ok=True)
    tokens = np.concatenate(ids).astype(vocab.dtype)
    meta = {"key": key, "num_tokens": int(len(tokens)), "bounds": [len(ids[0]), len(ids[0]) + len(ids[1])],
            "chars": [len(p) for p in pieces]}
    return _commit(directory, lambda out: out.write(tokens.tobytes()), vocab, meta, files), vocab


def _empty_message(files: list[Path]) -> str:
    if len(files) == 1:
        return f"{files[0]} is empty"
    return f"the input text is empty ({len(files)} files, all empty)"
