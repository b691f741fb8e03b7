"""Source -> target pairs for sequence-to-sequence tasks: reading, splitting, vocabularies, batches.

The file is the PyTorch translation tutorial's format: one pair per line, source TAB target
(`hello<TAB>HH AH0 L OW1`, `I am cold.<TAB>J'ai froid.`). Each side is read as characters or as
whitespace-separated tokens (words, phonemes), chosen per side. A source may appear on several lines
with different targets (a word with two pronunciations): the split keeps all its lines on the same
side (train, validation or test), so no test source was seen in training, and evaluation counts a
prediction right if it matches any of them.

Each side has its own vocabulary with the four symbols an encoder-decoder needs: padding (0), the
start of a target (1), its end (2) and the unknown token (3), which stands for any token the training
pairs lacked. A side read as `bpe` has a byte-level BPE tokenizer learned from its training texts
(rnnkit.data.bpe) instead of a token list: subword pieces, and no unknown tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import bpe
from .corpus import normalize_newlines, read_text
from .examples import BucketedBatches

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
KINDS = ("char", "word", "bpe")


@dataclass
class Pairs:
    sources: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, idx) -> "Pairs":
        return Pairs([self.sources[i] for i in idx], [self.targets[i] for i in idx])

    def references(self) -> dict[str, list[str]]:
        """Every target of each source, in order of appearance."""
        refs: dict[str, list[str]] = {}
        for s, t in zip(self.sources, self.targets):
            refs.setdefault(s, []).append(t)
        return refs


def read_pairs(paths: list[str]) -> Pairs:
    """The pairs of every file, in order; one-line errors naming the file and line at fault."""
    if not paths:
        raise DataError("seq2seq needs a TSV file of source<TAB>target pairs")
    sources, targets = [], []
    for p in map(Path, paths):
        if not p.is_file():
            raise DataError(f"no such file: {p}")
        for n, line in enumerate(normalize_newlines(read_text(p)).split("\n"), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(f"{p}, line {n}: expected source<TAB>target, found "
                                f"{'no tab' if len(parts) == 1 else f'{len(parts) - 1} tabs'}")
            source, target = parts[0].strip(), parts[1].strip()
            if not source or not target:
                raise DataError(f"{p}, line {n}: the {'source' if not source else 'target'} is empty")
            sources.append(source)
            targets.append(target)
    if not sources:
        raise DataError(f"no pairs in {', '.join(map(str, paths))}")
    return Pairs(sources, targets)


def split_pairs(pairs: Pairs, split: tuple, seed: int) -> tuple[Pairs, Pairs, Pairs]:
    """A seeded random (train, validation, test) split of the distinct sources by the fractions in
    `split`; every line of a source goes where the source goes."""
    distinct = list(dict.fromkeys(pairs.sources))
    order = np.random.default_rng(seed).permutation(len(distinct))
    a = int(round(len(order) * split[0]))
    b = a + int(round(len(order) * split[1]))
    part = np.empty(len(distinct), dtype=np.int64)
    part[order[:a]], part[order[a:b]], part[order[b:]] = 0, 1, 2
    where = {s: part[i] for i, s in enumerate(distinct)}
    side = np.array([where[s] for s in pairs.sources])
    return tuple(pairs.subset(np.flatnonzero(side == k)) for k in range(3))


def detect_tokens(texts: list[str]) -> str:
    """"word" if the texts look like sequences of symbols (phonemes, tags): spaces between short tokens
    from a small set; else "char"."""
    tokens = [t for text in texts for t in text.split()]
    spaced = sum(" " in text for text in texts) >= 0.5 * len(texts)
    distinct = set(tokens)
    return "word" if spaced and len(distinct) <= 500 and max(map(len, distinct)) <= 6 else "char"


class SideVocab:
    """One side's tokens <-> ids: the four specials, then the sorted tokens of the training side (char,
    word), or the ids of a byte-level BPE tokenizer whose first four are the specials (bpe)."""

    def __init__(self, kind: str, tokens: list[str], tokenizer=None):
        if kind not in KINDS:
            raise DataError(f"unknown token kind {kind!r}")
        self.kind, self.tokenizer = kind, tokenizer
        if kind == "bpe":
            self.tokens = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
        else:
            self.tokens = list(SPECIALS) + sorted(set(tokens) - set(SPECIALS))
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_texts(cls, kind: str, texts: list[str], bpe_vocab: int = 1000) -> "SideVocab":
        if kind == "bpe":
            return cls(kind, [], bpe.train(texts, bpe_vocab, SPECIALS))
        return cls(kind, [t for text in texts for t in cls.split_as(kind, text)])

    @staticmethod
    def split_as(kind: str, text: str) -> list[str]:
        return list(text) if kind == "char" else text.split()

    def split(self, text: str) -> list[str]:
        """The tokens of `text` as text (for bpe, each piece decoded from its bytes), one per id."""
        if self.kind == "bpe":
            return [self.tokenizer.decoder.decode([t]) for t in self.tokenizer.encode(text).tokens]
        return self.split_as(self.kind, text)

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens) if self.kind == "word" else "".join(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, SideVocab) and (self.kind, self.tokens) == (other.kind, other.tokens) and \
            (self.kind != "bpe" or self.tokenizer.to_str() == other.tokenizer.to_str())

    def unknown(self, text: str) -> list[str]:
        if self.kind == "bpe":
            return []  # byte-level: every character has its bytes
        return sorted({t for t in self.split(text) if t not in self._index})

    def encode(self, text: str) -> np.ndarray:
        """Ids of `text`'s tokens; tokens the vocabulary lacks become UNK."""
        if self.kind == "bpe":
            return np.array(self.tokenizer.encode(text).ids, dtype=np.int64)
        return np.array([self._index.get(t, UNK) for t in self.split(text)], dtype=np.int64)

    def decode(self, ids) -> str:
        """Text of ids up to the first EOS, specials left out."""
        out = []
        for i in np.asarray(ids, dtype=np.int64).ravel().tolist():
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(i)
        if self.kind == "bpe":
            return self.tokenizer.decode(out)
        return self.join([self.tokens[i] for i in out])

    def to_json(self) -> dict:
        if self.kind == "bpe":
            return {"kind": "bpe", "tokenizer": bpe.to_json(self.tokenizer)}
        return {"kind": self.kind, "tokens": self.tokens[len(SPECIALS):]}

    @classmethod
    def from_json(cls, obj) -> "SideVocab":
        if isinstance(obj, dict) and obj.get("kind") == "bpe" and isinstance(obj.get("tokenizer"), dict):
            return cls("bpe", [], bpe.from_json(obj["tokenizer"], SPECIALS))
        if not isinstance(obj, dict) or obj.get("kind") not in ("char", "word") or not isinstance(obj.get("tokens"), list):
            raise DataError("a seq2seq vocabulary JSON needs kind 'char' or 'word' and its tokens, or kind 'bpe' "
                            "and its tokenizer")
        vocab = cls(obj["kind"], obj["tokens"])
        if vocab.tokens[len(SPECIALS):] != obj["tokens"]:
            raise DataError("a seq2seq vocabulary JSON must list distinct tokens in sorted order")
        return vocab


def pad_ids(seqs: list[np.ndarray], bos: bool = False, eos: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Id sequences -> (ids (B, T) padded with PAD, lengths (B,)), optionally framed by BOS / EOS."""
    framed = [np.concatenate([[BOS]] * bos + [s] + [[EOS]] * eos).astype(np.int64) for s in seqs]
    lengths = np.array([max(len(s), 1) for s in framed])
    out = np.full((len(framed), lengths.max()), PAD, dtype=np.int64)
    for i, s in enumerate(framed):
        out[i, :len(s)] = s
    return torch.from_numpy(out), torch.from_numpy(lengths)


class PairBatches(BucketedBatches):
    """Batches of B pairs bucketed by source length (rnnkit.data.examples.BucketedBatches);
    `get(i, epoch)` is (source (B, S), source lengths (B,), target (B, T) framed by BOS and EOS,
    target lengths (B,))."""

    what = "pairs"

    def __init__(self, sources: list[np.ndarray], targets: list[np.ndarray], batch_size: int, seed: int,
                 rank: int = 0, world: int = 1):
        super().__init__([len(s) for s in sources], batch_size, seed, rank, world)
        self.sources, self.targets = sources, targets

    def get(self, i: int, epoch: int = 0):
        idx = self.indices(i, epoch)
        src, src_len = pad_ids([self.sources[j] for j in idx])
        tgt, tgt_len = pad_ids([self.targets[j] for j in idx], bos=True, eos=True)
        return src, src_len, tgt, tgt_len
