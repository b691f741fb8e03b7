"""Automatic search for interpretable cells.

For every unit of every layer (h, the LSTM cell state c, optionally the gates) and every feature
of the text (rnnkit.inspect.features), score how well the unit's activation tracks the feature:
Pearson correlation for numeric features, ROC AUC for boolean ones. A unit that is low where the
feature holds is as interpretable as one that is high, so the score is |r| or max(AUC, 1 - AUC)
and the direction is kept separately. `search` ranks all units per feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .activations import Activations


@dataclass
class CellScore:
    feature: str
    metric: str  # "pearson" or "auc"
    score: float  # |r| or max(AUC, 1 - AUC), in [0, 1]
    raw: float  # signed r, or the AUC as measured (< 0.5: the unit is low where the feature holds)
    layer: int  # 0-based
    kind: str  # "h", "c" or "gate:<name>"
    unit: int

    def describe(self) -> str:
        direction = ("+" if self.raw >= (0 if self.metric == "pearson" else 0.5) else "-")
        value = f"r = {self.raw:+.3f}" if self.metric == "pearson" else f"AUC = {self.raw:.3f}"
        return (f"{self.feature:<18} layer {self.layer + 1} {self.kind:<15} unit {self.unit:<4} "
                f"{value} ({direction}, score {self.score:.3f})")


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


def search(acts: Activations, features: dict, kinds: list[str] | None = None) -> dict[str, list[CellScore]]:
    """Score every unit against every feature; returns feature -> scores sorted best first."""
    kinds = kinds or [k for k in acts.kinds() if not k.startswith("gate:")]
    T = len(acts.tokens)
    results, ranks = {}, {}
    for name, fn in features.items():
        values = np.asarray(fn(acts.text))
        if values.shape != (T,):
            raise DataError(f"feature {name!r} returned shape {values.shape}, expected ({T},): one value per character")
        keep = ~np.isnan(values.astype(np.float64))  # NaN: the feature does not apply here
        values = values[keep]
        if len(values) < 2 or np.all(values == values[0]):
            continue  # the feature never changes in this text: nothing to track
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
                                     kind, j) for j in range(A.shape[1])]
        results[name] = sorted(scores, key=lambda s: -s.score)
    return results


def best_table(results: dict[str, list[CellScore]]) -> str:
    """One line per feature: its best unit, best features first."""
    best = sorted((scores[0] for scores in results.values() if scores), key=lambda s: -s.score)
    header = f"{'feature':<18} {'best unit':<33} {'measure':<14} score"
    return "\n".join([header] + [s.describe() for s in best])
