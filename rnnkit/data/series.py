"""Real-valued time series for forecasters: reading a CSV, splitting it in time order, windows.

The CSV has a header, a time column whose values increase row by row, and one or more numeric value
columns; a missing or non-numeric value is an error naming its row and column (the forecaster needs
every step). The split is contiguous: the first part trains, the next validates, the last tests, as
a forecast is always of the future. Values are normalised with the training part's mean and
standard deviation only (stored in the run), never with statistics of the span being forecast.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from .corpus import read_text


@dataclass
class Series:
    """times (N,) and values (N, F) of one series, and the names of the F value columns."""

    times: list[str]
    values: np.ndarray
    columns: list[str]


def read_series(path: str, time_column: str = "time", columns: str | list[str] = "") -> Series:
    """A CSV series; one-line errors naming the row and column of anything that is not a number."""
    rows = list(csv.reader(io.StringIO(read_text(path))))
    if len(rows) < 3:
        raise DataError(f"{path} needs a header and at least 2 rows")
    header = [h.strip() for h in rows[0]]
    if time_column not in header:
        raise DataError(f"{path} has no time column {time_column!r} (columns: {', '.join(header)}); "
                        "name it with --time-column")
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if isinstance(columns, str) else list(columns)
    wanted = wanted or [h for h in header if h != time_column]
    missing = [c for c in wanted if c not in header]
    if missing or not wanted:
        raise DataError(f"{path} has no column(s) {', '.join(missing) or '(none to model)'}; "
                        f"it has {', '.join(header)}")
    t_at, at = header.index(time_column), [header.index(c) for c in wanted]
    times, values, last = [], [], None
    for n, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}, row {n}: {len(row)} fields, but the header has {len(header)}")
        t = row[t_at].strip()
        key = _time_key(t)
        if last is not None and key is not None and key <= last:
            raise DataError(f"{path}, row {n}: time {t} does not come after the row before; sort the series")
        last = key if key is not None else last
        vals = []
        for c, i in zip(wanted, at):
            try:
                v = float(row[i])
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise DataError(f"{path}, row {n}: missing or non-numeric value {row[i]!r} in column {c!r}")
            vals.append(v)
        times.append(t)
        values.append(vals)
    return Series(times, np.array(values, dtype=np.float64), wanted)


def _time_key(t: str):
    """A sortable form of a time: a number, or the text itself (ISO dates sort as text)."""
    try:
        return (0, float(t))
    except ValueError:
        return (1, t) if t else None


def split_bounds(n: int, split: tuple) -> tuple[int, int]:
    """(train_end, val_end): train [0, a), validation [a, b), test [b, n), in time order."""
    a = int(round(n * split[0]))
    b = a + int(round(n * split[1]))
    return a, b


class WindowBatches:
    """Every window of T + 1 consecutive training steps, B at a time, in a seeded order per epoch;
    `get(i, epoch)` -> (inputs (B, T, F), targets (B, T, F)): each step's values and the next ones."""

    def __init__(self, values: np.ndarray, batch_size: int, seq_len: int, seed: int, rank: int = 0, world: int = 1):
        self.T = min(seq_len, len(values) - 1)
        starts = len(values) - self.T
        if starts < batch_size * world:
            raise DataError(f"the training part has {starts} windows of {self.T + 1} steps, fewer than one batch of "
                            f"{batch_size * world}; lower --batch-size or --seq-len")
        self.values = torch.from_numpy(values.astype(np.float32))
        self.B, self.seed, self.rank, self.world, self.starts = batch_size, seed, rank, world, starts
        self._epoch, self._order = None, None

    def __len__(self) -> int:
        return self.starts // (self.B * self.world)

    def get(self, i: int, epoch: int = 0):
        if self._epoch != epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.starts)
        size = self.B * self.world
        idx = self._order[i * size + self.rank * self.B:i * size + (self.rank + 1) * self.B]
        window = torch.stack([self.values[s:s + self.T + 1] for s in idx])  # (B, T + 1, F)
        return window[:, :-1], window[:, 1:]
