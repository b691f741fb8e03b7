"""Automatic search for interpretable cells.

For every unit of every layer (h, the LSTM cell state c, optionally the gates) and every feature
of the text (rnnkit.inspect.features), score how well the unit's activation tracks the feature:
Pearson correlation for numeric features, ROC AUC for boolean ones. A unit that is low where the
feature holds is as interpretable as one that is high, so the score is |r| or max(AUC, 1 - AUC)
and the direction is kept separately. `search` ranks all units per feature.

A feature is only scored when the text gives it enough support: positions whose value differs from
the feature's most common value (MIN_SUPPORT), in enough separate stretches (MIN_STRETCHES). The
state starts from zeros, so nearly every unit has a warm-up transient over the first characters; a
feature that holds only there (one indented line at the top of an excerpt) is matched perfectly by
any such unit, and a score of 1.000 from one 20-character stretch says nothing. Stretches count
too because one long stretch is still one event (a stray '<' in code opens an "XML tag" that lasts
thousands of characters), which any slowly drifting unit separates. Such features are left out and
reported with their support instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import MIN_STRETCHES, MIN_SUPPORT
from ..errors import DataError
from .activations import Activations




@dataclass
class FeatureSupport:
    """How much of the text a feature has to be judged on."""

    feature: str
    positions: int  # applicable (non-NaN) positions whose value differs from the feature's most common value
    stretches: int  # maximal runs of consecutive such positions

    def describe(self) -> str:
        return f"n={self.positions:,} in {self.stretches:,} stretch{'' if self.stretches == 1 else 'es'}"


@dataclass
class CellScore:
    feature: str
    metric: str  # "pearson" or "auc"
    score: float  # |r| or max(AUC, 1 - AUC), in [0, 1]
    raw: float  # signed r, or the AUC as measured (< 0.5: the unit is low where the feature holds)
    layer: int  # 0-based
    kind: str  # "h", "c" or "gate:<name>"
    unit: int
    support: int = 0  # the feature's FeatureSupport.positions in the scored text
    stretches: int = 0  # ... and its FeatureSupport.stretches

    def describe(self) -> str:
        direction = ("+" if self.raw >= (0 if self.metric == "pearson" else 0.5) else "-")
        value = f"r = {self.raw:+.3f}" if self.metric == "pearson" else f"AUC = {self.raw:.3f}"
        support = FeatureSupport(self.feature, self.support, self.stretches).describe()
        return (f"{self.feature:<18} layer {self.layer + 1} {self.kind:<15} unit {self.unit:<4} "
                f"{value:<11} ({direction}, score {self.score:.3f})  {support}")


@dataclass
class CellSearch:
    """What `search` found: every scored feature's units, and the features it would not score."""

    scores: dict[str, list[CellScore]]  # feature -> every unit's score, best first
    left_out: list[FeatureSupport]  # features that vary, but with too little support to be scored
    min_support: int  # the thresholds they missed
    min_stretches: int

    def best(self) -> list[CellScore]:
        """Each scored feature's best unit, best first."""
        return sorted((s[0] for s in self.scores.values() if s), key=lambda s: -s.score)

    def left_out_line(self) -> str:
        """One line naming the left-out features, or "" when there are none."""
        if not self.left_out:
            return ""
        each = ", ".join(f"{f.feature} ({f.positions:,} position{'' if f.positions == 1 else 's'} in "
                         f"{f.stretches:,} stretch{'' if f.stretches == 1 else 'es'})" for f in self.left_out)
        return (f"left out (too little support): {each}; need >= {self.min_support:,} positions in "
                f">= {self.min_stretches:,} stretches")


def feature_support(name: str, values: np.ndarray) -> FeatureSupport:
    """Support of a feature's values (T,), NaN where it does not apply.

    Counted against the most common value, so a yes/no feature's support is its rarer answer and a
    number's is every position off its usual level (an indent depth is 0 on most lines of prose).
    """
    values = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(values)
    if not keep.any():
        return FeatureSupport(name, 0, 0)
    levels, counts = np.unique(values[keep], return_counts=True)
    away = keep & (values != levels[np.argmax(counts)])  # (T,); a NaN gap ends a stretch
    starts = int(away[0]) + int(np.count_nonzero(away[1:] & ~away[:-1]))
    return FeatureSupport(name, int(away.sum()), starts)


def pearson_columns(A: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Correlation of each column of A (T, H) with f (T,); 0 for constant columns."""
    A = A.astype(np.float64)
    f = f.astype(np.float64)
    Az = A - A.mean(axis=0)
    fz = f - f.mean()
    denom = np.sqrt((Az ** 2).sum(axis=0) * (fz ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Az * fz[:, None]).sum(axis=0) / denom
    return np.nan_to_num(r)


def column_ranks(A: np.ndarray) -> np.ndarray:
    """Average ranks of each column of A (T, H); computed once, reused for every boolean feature."""
    return np.stack([_average_ranks(A[:, j]) for j in range(A.shape[1])], axis=1)


def auc_columns(ranks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each column (given its `column_ranks`) as a score for boolean `labels` (T,).

    AUC = P(activation at a positive > activation at a negative) + P(tie) / 2, from the rank sum of
    the positives (Mann-Whitney U).
    """
    labels = labels.astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return np.full(ranks.shape[1], 0.5)
    return (ranks[labels].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def search(acts: Activations, features: dict, kinds: list[str] | None = None, min_support: int = MIN_SUPPORT,
           min_stretches: int = MIN_STRETCHES) -> CellSearch:
    """Score every unit against every feature with enough support (see the module docstring)."""
    if min_support < 0 or min_stretches < 0:
        raise DataError(f"the minimum support must be >= 0, got {min_support} positions in {min_stretches} stretches")
    kinds = kinds or [k for k in acts.kinds() if not k.startswith("gate:")]
    T, text = len(acts.tokens), acts.text
    results, ranks, left_out = {}, {}, []
    for name, fn in features.items():
        values = np.asarray(fn(text))
        if values.shape != (len(text),):
            raise DataError(f"feature {name!r} returned shape {values.shape}, expected ({len(text)},): one value per "
                            "character")
        if len(text) != T:  # word or bpe tokens: each step's value is the feature at its last character
            values = values[acts.ends()]
        support = feature_support(name, values)
        if support.positions == 0:
            continue  # the feature never changes in this text: nothing to track
        if support.positions < min_support or support.stretches < min_stretches:
            left_out.append(support)
            continue
        keep = ~np.isnan(values.astype(np.float64))  # NaN: the feature does not apply here
        values = values[keep]
        is_bool = values.dtype == bool or set(np.unique(values).tolist()) <= {0, 1}
        scores = []
        for kind in kinds:
            for layer in range(len(acts.h)):
                A = acts.values(kind, layer)[keep]
                if is_bool:
                    key = (kind, layer, keep.tobytes() if not keep.all() else b"")
                    if key not in ranks:
                        ranks[key] = column_ranks(A)
                    raw = auc_columns(ranks[key], values.astype(bool))
                    score = np.maximum(raw, 1 - raw)
                else:
                    raw = pearson_columns(A, values.astype(np.float64))
                    score = np.abs(raw)
                scores += [CellScore(name, "auc" if is_bool else "pearson", float(score[j]), float(raw[j]), layer,
                                     kind, j, support.positions, support.stretches) for j in range(A.shape[1])]
        results[name] = sorted(scores, key=lambda s: -s.score)
    return CellSearch(results, left_out, min_support, min_stretches)


def best_table(found: CellSearch) -> str:
    """One line per scored feature (its best unit, best features first), then the left-out ones."""
    header = f"{'feature':<18} {'best unit':<33} {'measure':<11} {'(sign, score)':<17} support"
    lines = [header] + [s.describe() for s in found.best()]
    return "\n".join(lines + ([found.left_out_line()] if found.left_out else []))
