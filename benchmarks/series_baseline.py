"""Simple forecasting baselines on a `time,value` CSV (the file series_data.py writes).

Split: contiguous, the first rows train and the last round(n * --test-fraction) rows are the test
span (sunspots, 309 years, 0.2: train 1700-1946, test 1947-2008). Every test value is forecast from
the true series up to --horizon steps before it: at horizon 1 each prediction uses true past values
(teacher-forced); at H > 1 the model is run H steps from that origin, each prediction fed back as
the next input. Scores: MSE and MAE on the test span, in the series' own units.

- persistence: the value at the origin (y[t-H]);
- training mean: the mean of the training part, for scale;
- AR(p): y[t] = c + a_1 y[t-1] + ... + a_p y[t-p] fitted by least squares (one-step errors) on the
  training part. p (1..--max-p) is the one with the lowest H-step MSE on a validation span, the last
  --test-fraction of the training part, when fitted on the rest; then refitted on the whole training
  part. The test span is never seen before the final score.

    python benchmarks/series_baseline.py runs/sunspots.csv [--test-fraction 0.2] [--horizon 1] [--json FILE]
"""

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402


def read_series(path: Path, column: str | None) -> tuple[list[str], np.ndarray, str]:
    """The time column, one value column (the first unless named) as float64, and its name."""
    if not path.is_file():
        sys.exit(f"series_baseline.py: {path} not found (make it with benchmarks/series_data.py --out {path})")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or len(rows[0]) < 2 or rows[0][0] != "time":
        sys.exit(f"series_baseline.py: {path}: the header must be `time,<value column>[,...]`")
    header = rows[0]
    name = column or header[1]
    if name not in header[1:]:
        sys.exit(f"series_baseline.py: {path}: no column {name!r}; the value columns are {header[1:]}")
    index = header.index(name)
    try:
        values = np.array([float(row[index]) for row in rows[1:]])
    except (ValueError, IndexError) as err:
        sys.exit(f"series_baseline.py: {path}: a row has no number in column {name!r} ({err})")
    if not np.isfinite(values).all():
        sys.exit(f"series_baseline.py: {path}: column {name!r} has NaN or infinite values")
    times = [row[0] for row in rows[1:]]
    try:  # numeric times must increase; other time formats (dates) are taken in the order given
        if any(float(b) <= float(a) for a, b in zip(times, times[1:])):
            sys.exit(f"series_baseline.py: {path}: the rows are not in increasing time order")
    except ValueError:
        pass
    return times, values, name


def fit_ar(y: np.ndarray, p: int) -> np.ndarray:
    """Least-squares [c, a_1, ..., a_p] for y[t] = c + sum_k a_k y[t-k], over every t in p..len(y)-1."""
    lags = np.stack([y[p - k:len(y) - k] for k in range(1, p + 1)], axis=1)  # (rows, p), column k-1 = lag k
    design = np.hstack([np.ones((len(lags), 1)), lags])
    return np.linalg.lstsq(design, y[p:], rcond=None)[0]


def forecast_ar(y: np.ndarray, coef: np.ndarray, targets: np.ndarray, horizon: int) -> np.ndarray:
    """Forecast y[t] for each t in targets from the true y up to t - horizon, feeding predictions back."""
    p = len(coef) - 1
    origins = targets - horizon
    # window[:, k] = y[origin - k]: the p most recent known values, newest first.
    window = np.stack([y[origins - k] for k in range(p)], axis=1)  # (targets, p)
    for _ in range(horizon):
        step = coef[0] + window @ coef[1:]
        window = np.hstack([step[:, None], window[:, :-1]])
    return window[:, 0]


def scores(truth: np.ndarray, predicted: np.ndarray) -> dict:
    error = predicted - truth
    return {"mse": round(float(np.mean(error ** 2)), 3), "mae": round(float(np.mean(np.abs(error))), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path, help="CSV with a header `time,value[,...]`, rows in time order")
    ap.add_argument("--column", help="value column to forecast (default: the first after time)")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="last fraction of rows to test on (default 0.2)")
    ap.add_argument("--horizon", type=int, default=1, help="steps ahead; >1 feeds predictions back (default 1)")
    ap.add_argument("--max-p", type=int, default=20, help="largest AR order tried on the validation span (default 20)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args()
    if not 0 < args.test_fraction < 1:
        sys.exit("series_baseline.py: --test-fraction must be between 0 and 1")
    if args.horizon < 1 or args.max_p < 1:
        sys.exit("series_baseline.py: --horizon and --max-p must be at least 1")

    times, y, name = read_series(args.csv, args.column)
    n_train = len(y) - round(len(y) * args.test_fraction)
    n_fit = n_train - round(n_train * args.test_fraction)  # the AR order's validation span is [n_fit, n_train)
    # Each order needs data to fit (more rows than coefficients) and p + H - 1 known values before its first target.
    orders = [p for p in range(1, args.max_p + 1) if n_fit - p > 2 * (p + 1) and n_fit >= p + args.horizon - 1]
    if n_train == len(y) or n_fit == n_train or not orders:
        sys.exit(f"series_baseline.py: {len(y)} rows are too few for --test-fraction {args.test_fraction} "
                 f"and --horizon {args.horizon}")

    H = args.horizon
    val_targets, test_targets = np.arange(n_fit, n_train), np.arange(n_train, len(y))
    val_mse = {p: scores(y[val_targets], forecast_ar(y, fit_ar(y[:n_fit], p), val_targets, H))["mse"]
               for p in orders}
    p = min(val_mse, key=val_mse.get)
    coef = fit_ar(y[:n_train], p)
    truth = y[test_targets]
    models = {
        "persistence": scores(truth, y[test_targets - H]),
        "training mean": scores(truth, np.full(len(truth), y[:n_train].mean())),
        f"AR({p})": scores(truth, forecast_ar(y, coef, test_targets, H)),
    }
    report = {
        "file": str(args.csv), "column": name, "rows": len(y), "horizon": H,
        "split": {"train_rows": [0, n_train], "test_rows": [n_train, len(y)],
                  "train_times": [times[0], times[n_train - 1]], "test_times": [times[n_train], times[-1]],
                  "ar_validation_rows": [n_fit, n_train]},
        "ar": {"p": p, "val_mse_by_p": val_mse, "coefficients": [round(float(c), 5) for c in coef]},
        "test": models, "test_rmse": {k: round(math.sqrt(v["mse"]), 3) for k, v in models.items()},
        "machine": describe()}
    emit(report, args.json)


if __name__ == "__main__":
    main()
