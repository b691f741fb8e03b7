"""Vocabularies: Unicode code points (sorted, stable) or the 256 byte values.

A vocabulary maps symbols to token ids 0..V-1 and back. Character vocabularies are the sorted code
points seen in the training text, so the same text always gives the same ids. Byte vocabularies are
fixed (id = byte value) and accept any file, UTF-8 or not. Both are saved as JSON.
"""

from __future__ import annotations

import codecs

import numpy as np

from ..errors import DataError


class Vocab:
    """Symbol <-> id mapping. `kind` is "char" (code points) or "byte" (0..255)."""

    def __init__(self, kind: str, chars: list[str] | None = None):
        if kind not in ("char", "byte"):
            raise DataError(f"unknown vocabulary kind {kind!r}")
        self.kind = kind
        if kind == "byte":
            self.chars = None
            self.codepoints = np.arange(256, dtype=np.uint32)
        else:
            chars = sorted(set(chars or []))
            if not chars or any(len(c) != 1 for c in chars):
                raise DataError("a character vocabulary needs at least one single-character symbol")
            self.chars = chars
            self.codepoints = np.array([ord(c) for c in chars], dtype=np.uint32)
        self._index = None if kind == "byte" else {c: i for i, c in enumerate(self.chars)}
        self._bmp_table = None  # built on first use by encode_codepoints

    @classmethod
    def from_codepoints(cls, codepoints) -> "Vocab":
        return cls("char", [chr(int(c)) for c in codepoints])

    @classmethod
    def bytes(cls) -> "Vocab":
        return cls("byte")

    def __len__(self) -> int:
        return len(self.codepoints)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.kind == other.kind and self.chars == other.chars

    @property
    def dtype(self):
        """The smallest unsigned integer type that holds every id."""
        n = len(self)
        return np.uint8 if n <= 1 << 8 else np.uint16 if n <= 1 << 16 else np.uint32

    # -- encoding ---------------------------------------------------------------------------------

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of `text` that this vocabulary cannot encode (always none for bytes)."""
        if self.kind == "byte":
            return []
        return sorted(set(text) - set(self._index))

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Text -> ids (1-D array of `self.dtype`). `unknown`: "error" or "skip" unseen characters."""
        if self.kind == "byte":
            return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()
        missing = self.unknown_chars(text)
        if missing:
            if unknown != "skip":
                raise DataError(f"{len(missing)} character(s) not in the vocabulary: {describe_chars(missing)} "
                                "(--unknown skip drops them)")
            text = self.known_only(text)
        return self.encode_codepoints(codepoints_of(text))

    def known_only(self, text: str) -> str:
        """`text` without the characters this vocabulary lacks (`--unknown skip`)."""
        drop = set(self.unknown_chars(text))
        return "".join(c for c in text if c not in drop) if drop else text

    def encode_codepoints(self, cps: np.ndarray) -> np.ndarray:
        """Code points (all known to be in the vocabulary) -> ids, vectorised: a 65,536-entry table
        for the Basic Multilingual Plane, a binary search for the rare characters beyond it."""
        if self._bmp_table is None:
            self._bmp_table = np.zeros(1 << 16, dtype=self.dtype)
            bmp = self.codepoints < (1 << 16)
            self._bmp_table[self.codepoints[bmp]] = np.flatnonzero(bmp).astype(self.dtype)
        if cps.dtype == np.uint8 or len(cps) == 0 or cps.max() < (1 << 16):
            return self._bmp_table[cps]
        out = self._bmp_table[np.minimum(cps, (1 << 16) - 1)]
        astral = cps >= (1 << 16)
        out[astral] = np.searchsorted(self.codepoints, cps[astral]).astype(self.dtype)
        return out

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if self.kind == "byte":
            return ids.astype(np.uint8).tobytes().decode("utf-8", errors="replace")
        return "".join(self.chars[i] for i in ids)

    def decoder(self):
        """A streaming decoder: feed ids one at a time, get the text they complete (maybe "")."""
        if self.kind == "byte":
            inc = codecs.getincrementaldecoder("utf-8")(errors="replace")
            return lambda i: inc.decode(bytes([int(i)]))
        return lambda i: self.chars[int(i)]

    # -- JSON -------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {"kind": "byte"} if self.kind == "byte" else {"kind": "char", "chars": self.chars}

    @classmethod
    def from_json(cls, obj):  # -> Vocab, WordVocab or PieceVocab
        if isinstance(obj, dict) and obj.get("kind") == "word":
            return WordVocab.from_json(obj)
        if isinstance(obj, dict) and obj.get("kind") == "pieces":  # bpe (or word) pieces with their tokenizer
            from .pieces import PieceVocab
            return PieceVocab.from_json(obj)
        if not isinstance(obj, dict) or obj.get("kind") not in ("char", "byte"):
            raise DataError("vocabulary JSON must have kind 'char', 'byte' or 'word'")
        if obj["kind"] == "byte":
            return cls.bytes()
        chars = obj.get("chars")
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise DataError("character vocabulary JSON must list its characters")
        vocab = cls("char", chars)
        if vocab.chars != chars:
            raise DataError("character vocabulary JSON must list distinct characters in code-point order")
        return vocab


class WordVocab:
    """Whitespace-separated tokens (words, phonemes) <-> ids 0..V-1. Id 0 is UNKNOWN, which stands for
    every token the training text lacked (or had fewer than `min_count` times): a word vocabulary is
    never closed, so unknown words are read as this token instead of being an error. The others are
    sorted, so the same text always gives the same ids. Saved as JSON like a character vocabulary."""

    kind = "word"
    UNKNOWN = "<unk>"

    def __init__(self, tokens: list[str]):
        tokens = sorted(set(tokens) - {self.UNKNOWN})
        if any(not t or any(c.isspace() for c in t) for t in tokens):
            raise DataError("a word vocabulary's tokens must be non-empty and hold no whitespace")
        self.tokens = [self.UNKNOWN] + tokens
        self.chars = None  # not a character vocabulary
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_texts(cls, texts, min_count: int = 1) -> "WordVocab":
        """The tokens of `texts` seen at least `min_count` times."""
        from collections import Counter
        counts = Counter(t for text in texts for t in text.split())
        return cls([t for t, n in counts.items() if n >= min_count])

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, WordVocab) and self.tokens == other.tokens

    @property
    def dtype(self):
        return np.uint16 if len(self) <= 1 << 16 else np.uint32

    def unknown_chars(self, text: str) -> list[str]:
        """The tokens of `text` this vocabulary lacks (read as UNKNOWN)."""
        return sorted({t for t in text.split() if t not in self._index})

    def encode(self, text: str, unknown: str = "unk") -> np.ndarray:
        """Text -> ids of its whitespace-separated tokens; `unknown`: "error" names the tokens the
        vocabulary lacks, anything else ("unk", "skip") reads them as UNKNOWN (id 0)."""
        if unknown == "error":
            missing = self.unknown_chars(text)
            if missing:
                raise DataError(f"{len(missing)} token(s) not in the vocabulary: "
                                f"{', '.join(map(repr, missing[:20]))}")
        return np.array([self._index.get(t, 0) for t in text.split()], dtype=self.dtype)

    def decode(self, ids) -> str:
        return " ".join(self.tokens[int(i)] for i in np.asarray(ids, dtype=np.int64).ravel())

    def to_json(self) -> dict:
        return {"kind": "word", "tokens": self.tokens[1:]}

    @classmethod
    def from_json(cls, obj) -> "WordVocab":
        tokens = obj.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError("word vocabulary JSON must list its tokens")
        vocab = cls(tokens)
        if vocab.tokens[1:] != tokens:
            raise DataError("word vocabulary JSON must list distinct tokens in sorted order")
        return vocab


def codepoints_of(text: str) -> np.ndarray:
    """Text -> its Unicode code points as uint32 (one per character, no surrogate pairs)."""
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def describe_chars(chars, limit: int = 20) -> str:
    """A readable list of characters, escaping invisible ones: 'a', '\\n', U+00A0 ..."""
    shown = []
    for c in list(chars)[:limit]:
        shown.append(repr(c) if c.isprintable() and not c.isspace() or c == " " else f"{c!r} (U+{ord(c):04X})")
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(shown) + more
