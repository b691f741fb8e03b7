"""Character n-gram language models with interpolated Witten-Bell smoothing, for baselines.

    P_0(w)      = 1 / V                                             (uniform over the alphabet)
    P_k(w | h)  = (c(h, w) + N1+(h .) * P_{k-1}(w | h')) / (c(h) + N1+(h .))    if c(h) > 0
                = P_{k-1}(w | h')                                               otherwise

where h is the k previous characters, h' drops the oldest of them, c counts occurrences in the
training text and N1+(h .) is the number of distinct characters seen after h (Witten & Bell 1991;
Chen & Goodman 1998, section 2.5). Each P_k sums to 1 over the alphabet.

Counting is vectorised: the k-character context before every position is a 64-bit polynomial hash
(updated from order k-1 to k in one array operation), and np.unique turns the hashes into sorted
count tables that test positions look up with np.searchsorted. Orders up to 20 fit a few MB of
text in seconds. A hash collision (probability about 1e-8 per pair of distinct contexts at these
sizes) would merge two contexts' counts; it cannot make the probabilities stop summing to 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (the golden-ratio constant)
_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


@dataclass
class _Order:
    contexts: np.ndarray  # sorted unique context hashes (uint64)
    context_count: np.ndarray  # c(h)
    followers: np.ndarray  # N1+(h .)
    joints: np.ndarray  # sorted unique (context, next char) hashes
    joint_count: np.ndarray  # c(h, w)


def _context_hashes(tokens: np.ndarray, max_order: int):
    """Yield (k, H) for k = 0 .. max_order-1: H[i] hashes tokens[i-k : i] (valid for i >= k)."""
    x = tokens.astype(np.uint64) + np.uint64(1)  # +1 so that token 0 still changes the hash
    H = np.zeros(len(tokens), dtype=np.uint64)
    yield 0, H
    with np.errstate(over="ignore"):
        for k in range(1, max_order):
            H = H.copy()
            H[k:] = H[k:] * _BASE + x[:-k]  # extend every context by the character k steps back
            yield k, H


def _joint(H: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (H ^ _MIX) * _BASE + tokens.astype(np.uint64)


class NGramModel:
    """Interpolated Witten-Bell character n-gram model of order `n` (contexts of n - 1 characters)."""

    def __init__(self, train_tokens: np.ndarray, n: int, vocab_size: int):
        if n < 1:
            raise DataError(f"n-gram order must be >= 1, got {n}")
        if len(train_tokens) < 2:
            raise DataError("the n-gram training text needs at least 2 characters")
        self.n, self.V = n, vocab_size
        self.orders: list[_Order] = []
        tokens = np.asarray(train_tokens)
        for k, H in _context_hashes(tokens, n):
            h, w = H[k:], tokens[k:]
            contexts, context_count = np.unique(h, return_counts=True)
            joints, first, joint_count = np.unique(_joint(h, w), return_index=True, return_counts=True)
            # N1+(h .): how many distinct joints share each context (contexts are sorted like `contexts`).
            _, followers = np.unique(h[first], return_counts=True)
            # Counts fit in 32 bits for any text under 4 G characters; halves the tables' count columns.
            self.orders.append(_Order(contexts, context_count.astype(np.uint32), followers.astype(np.uint32),
                                      joints, joint_count.astype(np.uint32)))

    def position_probs(self, tokens: np.ndarray, n: int | None = None) -> list[np.ndarray]:
        """P_k(tokens[i] | the k characters before i, within `tokens`) for k = 0 .. n-1, each (T,).

        Position i uses at most i characters of context (the start of the text has less)."""
        n = self.n if n is None else n
        tokens = np.asarray(tokens)
        p = np.full(len(tokens), 1.0 / self.V)
        out = []
        for k, H in _context_hashes(tokens, n):
            table = self.orders[k]
            p = p.copy()
            valid = np.arange(len(tokens)) >= k
            ci = np.searchsorted(table.contexts, H)
            ci_clip = np.minimum(ci, len(table.contexts) - 1)
            seen = valid & (table.contexts[ci_clip] == H)
            J = _joint(H, tokens)
            ji = np.minimum(np.searchsorted(table.joints, J), len(table.joints) - 1)
            cw = np.where(seen & (table.joints[ji] == J), table.joint_count[ji], 0).astype(np.float64)
            c = table.context_count[ci_clip].astype(np.float64)
            t = table.followers[ci_clip].astype(np.float64)
            p = np.where(seen, (cw + t * p) / np.where(seen, c + t, 1), p)
            out.append(p)
        return out

    def losses(self, tokens: np.ndarray) -> np.ndarray:
        """Per-position loss in nats of the full-order model, (T,)."""
        return -np.log(self.position_probs(tokens)[-1])


def loss_by_order(train_tokens: np.ndarray, test_tokens: np.ndarray, max_n: int, vocab_size: int) -> dict[int, float]:
    """Mean test loss (nats per character) for every order n = 1 .. max_n, from one fitted model.

    Position 0 of the test text (no context for any model) is left out, as in the RNN comparison."""
    model = NGramModel(train_tokens, max_n, vocab_size)
    probs = model.position_probs(test_tokens)
    return {k + 1: float(-np.log(p[1:]).mean()) for k, p in enumerate(probs)}


def joint_vocab(*texts: str):
    """A character vocabulary covering every text (an n-gram model must give unseen test characters
    a probability, so its alphabet includes the test text's characters)."""
    from ..data.vocab import Vocab
    return Vocab("char", sorted(set().union(*map(set, texts))))
