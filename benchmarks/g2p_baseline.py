"""A letter-context baseline for grapheme to phoneme, without neural networks (NETtalk's framing,
with a back-off n-gram table in place of its network): align each training word's letters to its
phonemes, then predict each letter's phonemes from the letters around it.

1. Alignment (hard EM, as in many-to-many aligners): every letter emits 0, 1 or 2 phonemes, in order,
   so that the word's phonemes are used up. Start from letter-phoneme co-occurrence, then repeat: the
   best alignment of every pair under p(chunk | letter) (dynamic programming), and p re-estimated from
   those alignments. Pairs that no such alignment explains (a letter saying more than two phonemes:
   "w" as D AH B AH L Y UW) are left out of the table.
2. Prediction: for each letter, the most frequent chunk seen for the widest window of letters around it
   that occurred in training (3 letters either side first, backing off to the letter alone).

Used by g2p.py as the non-neural row of its table; trained and scored on the 39-phoneme set
(stress removed), since it has no way to learn stress placement across the word.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from functools import lru_cache

WINDOWS = [(3, 3), (2, 3), (3, 2), (2, 2), (1, 2), (2, 1), (1, 1), (0, 1), (1, 0), (0, 0)]
MAX_CHUNK = 2
SMOOTH, SUPPORT = 0.01, 2000  # add-SMOOTH counts over about SUPPORT possible chunks per letter


def _chunk_logp(counts: dict, totals: Counter, letter: str, chunk: tuple) -> float:
    return math.log((counts[letter].get(chunk, 0) + SMOOTH) / (totals[letter] + SMOOTH * SUPPORT))


def align(word: str, phones: list[str], score) -> list[tuple] | None:
    """The highest-scoring split of `phones` into len(word) chunks of 0..MAX_CHUNK phonemes, one per
    letter (score(letter, chunk) -> log-probability), or None if there is none."""
    n, m = len(word), len(phones)
    best = [[-math.inf] * (m + 1) for _ in range(n + 1)]
    back = [[0] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    for i in range(1, n + 1):
        letter = word[i - 1]
        for j in range(0, m + 1):
            for k in range(0, min(MAX_CHUNK, j) + 1):
                prev = best[i - 1][j - k]
                if prev == -math.inf:
                    continue
                s = prev + score(letter, tuple(phones[j - k:j]))
                if s > best[i][j]:
                    best[i][j], back[i][j] = s, k
    if best[n][m] == -math.inf:
        return None
    chunks, j = [], m
    for i in range(n, 0, -1):
        k = back[i][j]
        chunks.append(tuple(phones[j - k:j]))
        j -= k
    return chunks[::-1]


def train_aligner(pairs: list[tuple[str, list[str]]], iterations: int = 3) -> list[list[tuple] | None]:
    """Hard EM over p(chunk | letter); returns each pair's alignment (None where there is none)."""
    co = defaultdict(Counter)  # letter -> phoneme co-occurrence within a word, to start
    for word, phones in pairs:
        for letter in set(word):
            co[letter].update(set(phones))
    totals = Counter({letter: sum(c.values()) for letter, c in co.items()})

    def first(letter, chunk):  # one phoneme per letter preferred, each by co-occurrence
        if not chunk:
            return math.log(0.1)
        return sum(math.log((co[letter].get(p, 0) + 1) / (totals[letter] + 1)) for p in chunk) + (len(chunk) - 1) * math.log(0.1)

    score = lru_cache(maxsize=None)(first)  # the dynamic programme asks for the same few (letter, chunk) pairs
    for _ in range(iterations):
        alignments = [align(w, p, score) for w, p in pairs]
        counts = defaultdict(Counter)
        for (word, _), chunks in zip(pairs, alignments):
            if chunks is not None:
                for letter, chunk in zip(word, chunks):
                    counts[letter][chunk] += 1
        totals = Counter({letter: sum(c.values()) for letter, c in counts.items()})
        score = lru_cache(maxsize=None)(lambda letter, chunk, counts=counts, totals=totals:
                                        _chunk_logp(counts, totals, letter, chunk))
    return alignments


def _key(padded: str, i: int, left: int, right: int) -> str:
    return f"{left}{right}{padded[i - left:i + right + 1]}"


class LetterContextG2P:
    def __init__(self, windows=WINDOWS):
        self.windows, self.table = windows, {}

    def fit(self, pairs: list[tuple[str, list[str]]], iterations: int = 3) -> "LetterContextG2P":
        counts = defaultdict(Counter)
        self.aligned = 0
        for (word, _), chunks in zip(pairs, train_aligner(pairs, iterations)):
            if chunks is None:
                continue
            self.aligned += 1
            padded = "^" * 3 + word + "$" * 3
            for i, chunk in enumerate(chunks):
                for left, right in self.windows:
                    counts[_key(padded, i + 3, left, right)][chunk] += 1
        self.table = {key: c.most_common(1)[0][0] for key, c in counts.items()}
        return self

    def predict(self, word: str) -> list[str]:
        padded, out = "^" * 3 + word + "$" * 3, []
        for i in range(3, 3 + len(word)):
            for left, right in self.windows:
                chunk = self.table.get(_key(padded, i, left, right))
                if chunk is not None:
                    out.extend(chunk)
                    break
        return out
