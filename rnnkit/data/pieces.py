"""Word and subword tokens for the language model (`--tokens word`, `--tokens bpe`).

Both are byte-level, so every text has an encoding and none of it is unknown:

- **bpe**: a byte-level BPE tokenizer (Hugging Face `tokenizers`, the GPT-2 scheme) learned on the
  training split, of `--bpe-vocab` tokens (the 256 bytes included);
- **word**: the `--word-vocab` most frequent words of the training split (with the space before
  them, as GPT-2's pre-tokenizer cuts text: " the", " King", ",", "\n"), and the 256 bytes for
  everything else, so a rare word is spelled out byte by byte.

A token stands for a byte string (`pieces[id]`); text is the UTF-8 decoding of their concatenation,
so decoding streams (an incremental UTF-8 decoder over the pieces) and a character split across
tokens comes out whole. Losses per token convert to nats per character by dividing the total by the
characters the tokens spell, which puts runs at every level on one scale.

Stored as JSON (the tokenizer's own JSON for bpe, the word list for word), never pickled.
"""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter

import numpy as np

from ..errors import DataError
from .bpe import _library, train as train_bpe

SCHEMES = ("word", "bpe")
# GPT-2's pre-tokenizer with Python's Unicode \w for letters and digits: a word with its leading
# space, a run of punctuation with its leading space, or whitespace (the last space before a word goes
# with the word).
_PRETOKEN = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[^\W_]+| ?[^\s\w]+|_+|\s+(?!\S)|\s+")


def byte_alphabet() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters, which byte-level BPE token
    strings are written in (Hugging Face's ByteLevel uses the same)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = dict(zip(keep, keep)), 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {b: chr(c) for b, c in chars.items()}


class PieceVocab:
    """Token ids <-> byte pieces, for `--tokens word` and `--tokens bpe` (kind "word" or "bpe")."""

    chars = None  # not a character vocabulary: see `pieces`

    def __init__(self, kind: str, words: list[str] | None = None, tokenizer_json: str | None = None):
        if kind not in SCHEMES:
            raise DataError(f"unknown token scheme {kind!r}")
        self.kind = kind
        if kind == "bpe":
            try:
                self.tokenizer = _library().Tokenizer.from_str(tokenizer_json)
            except Exception as exc:  # the library's own parse errors, of several types
                raise DataError(f"not a valid tokenizer: {str(exc).splitlines()[0][:200]}") from None
            self._json = tokenizer_json
            inverse = {c: b for b, c in byte_alphabet().items()}
            vocab = self.tokenizer.get_vocab()
            if sorted(vocab.values()) != list(range(len(vocab))):
                raise DataError("not a valid tokenizer: its ids are not 0..V-1")
            self.pieces = [b""] * len(vocab)
            try:
                for token, i in vocab.items():
                    self.pieces[i] = bytes(inverse[c] for c in token)
            except KeyError:
                raise DataError("not a byte-level tokenizer: a token has a character outside the byte alphabet") \
                    from None
        else:
            words = list(words or [])
            if len(set(words)) != len(words) or any(not isinstance(w, str) or not w for w in words):
                raise DataError("a word vocabulary lists distinct, non-empty words")
            self.words = words
            self.pieces = [bytes([b]) for b in range(256)] + [w.encode("utf-8") for w in words]
            self._word_ids = {w: 256 + i for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.pieces)

    def __eq__(self, other) -> bool:
        return isinstance(other, PieceVocab) and self.to_json() == other.to_json()

    @property
    def dtype(self):
        return np.uint16 if len(self) <= 1 << 16 else np.uint32

    # -- learning ---------------------------------------------------------------------------------

    @classmethod
    def learn(cls, kind: str, text: str, size: int) -> "PieceVocab":
        """A vocabulary of at most `size` tokens (the 256 bytes included) learned from `text`."""
        if size < 257:
            flag = "--bpe-vocab" if kind == "bpe" else "--word-vocab"
            raise DataError(f"{flag} must be at least 257 (the 256 bytes and one more token), got {size}")
        if kind == "word":
            counts = Counter(_PRETOKEN.findall(text))
            # the most frequent pieces of more than one byte, seen at least twice; ties in text order
            words = [w for w, n in counts.most_common() if n >= 2 and len(w.encode("utf-8")) > 1][:size - 256]
            return cls("word", words=words)
        # the encoder-decoder's BPE, here without its four special tokens
        return cls("bpe", tokenizer_json=train_bpe(_lines(text), size, specials=()).to_str())

    # -- encoding ---------------------------------------------------------------------------------

    def unknown_chars(self, text: str) -> list[str]:
        return []  # byte-level: every character has an encoding

    def known_only(self, text: str) -> str:
        return text

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Text -> token ids (never unknown: what no token covers is spelled in bytes)."""
        if self.kind == "bpe":
            return np.array(self.tokenizer.encode(text).ids, dtype=self.dtype)
        ids = []
        get = self._word_ids.get
        for piece in _PRETOKEN.findall(text):
            i = get(piece)
            if i is not None:
                ids.append(i)
            else:
                ids.extend(piece.encode("utf-8"))
        return np.array(ids, dtype=self.dtype)

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).ravel().tolist()
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")

    def decoder(self):
        """A streaming decoder: feed ids one at a time, get the text they complete (maybe "")."""
        inc = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda i: inc.decode(self.pieces[int(i)])

    def symbol(self, i: int) -> str:
        """A readable name of token i (its text; bytes that are not text as <0x..>)."""
        try:
            return self.pieces[i].decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"<0x{b:02x}>" for b in self.pieces[i])

    # -- JSON -------------------------------------------------------------------------------------

    def tokenizer_json(self) -> str:
        """What a run directory's tokenizer.json holds: the bpe tokenizer's JSON, or the word list."""
        if self.kind == "bpe":
            return self._json
        return json.dumps({"rnnkit_words": 1, "words": self.words}, ensure_ascii=False)

    @classmethod
    def from_tokenizer_json(cls, kind: str, text: str) -> "PieceVocab":
        if kind == "bpe":
            return cls("bpe", tokenizer_json=text)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("words"), list):
            raise DataError("not a word vocabulary (no list of words)")
        return cls("word", words=obj["words"])

    def to_json(self) -> dict:
        return {"kind": "pieces", "scheme": self.kind, "size": len(self), "tokenizer": self.tokenizer_json()}

    @classmethod
    def from_json(cls, obj: dict) -> "PieceVocab":
        if obj.get("scheme") not in SCHEMES or not isinstance(obj.get("tokenizer"), str):
            raise DataError("a token vocabulary's JSON names its scheme (word or bpe) and holds its tokenizer")
        vocab = cls.from_tokenizer_json(obj["scheme"], obj["tokenizer"])
        if obj.get("size", len(vocab)) != len(vocab):
            raise DataError(f"the tokenizer has {len(vocab)} tokens, not the {obj['size']} its run was trained with")
        return vocab


def _lines(text: str, size: int = 1 << 16):
    """`text` in pieces of about `size` characters, cut after a newline (the trainer's input)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end
