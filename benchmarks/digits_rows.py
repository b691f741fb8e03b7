"""Sequential processing of non-sequence data: scikit-learn's bundled 8x8 digits read one row of 8
pixels per step by rnnkit's recurrent classifier, against logistic regression on the 64 flat pixels,
on the same split, in the same run.

The 1,797 images (pixel values / 16) are split 80/10/10 with a seeded permutation and written as
train/val/test .npz files (x (N, 8, 8): 8 steps of 8 values; y the digit); `rnnkit train --task
classify` trains on them for a wall-clock budget (best validation weights kept) and scores the test
file; logistic regression (C tuned on the validation file) is fitted on the same training images.
Needs scikit-learn (pip install -e ".[bench]"); its digits ship inside the package.

    python benchmarks/digits_rows.py [--budget 120] [--seed 0] [--json FILE]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402

import rnnkit  # noqa: E402

OPTIONS = dict(cell="gru", num_layers=1, hidden_size=128, embed_size=32, bidirectional=True, pooling="mean",
               dropout=0.1, batch_size=32, eval_every=100, checkpoint_every=5000)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=120.0, help="training seconds (default 120)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args()
    try:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        sys.exit('digits_rows.py: needs scikit-learn; install it with: pip install -e ".[bench]"')
    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32), digits.target  # (N, 8, 8): rows are steps
    order = np.random.default_rng(args.seed).permutation(len(x))
    a, b = int(0.8 * len(x)), int(0.9 * len(x))
    parts = {"train": order[:a], "val": order[a:b], "test": order[b:]}
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, idx in parts.items():
            files[name] = Path(tmp) / f"{name}.npz"
            np.savez(files[name], x=x[idx], y=y[idx].astype(str))
        run = rnnkit.train(files["train"], out=Path(tmp) / "run", task="classify", val=str(files["val"]),
                           test=str(files["test"]), budget=args.budget, progress=False, **OPTIONS)
        result = rnnkit.evaluate(run.dir)
    flat = x.reshape(len(x), -1)
    best = None
    for c in (0.1, 0.3, 1.0, 3.0, 10.0):
        model = LogisticRegression(C=c, max_iter=5000).fit(flat[parts["train"]], y[parts["train"]])
        val = model.score(flat[parts["val"]], y[parts["val"]])
        if best is None or val > best[1]:
            best = (c, val, model.score(flat[parts["test"]], y[parts["test"]]))
    report = {"split": {k: len(v) for k, v in parts.items()}, "seed": args.seed,
              "rnnkit": {"options": {k: str(v) for k, v in OPTIONS.items()}, "budget_s": args.budget, "steps": run.step,
                         "test_accuracy": round(result["accuracy"], 4), "test_macro_f1": round(result["macro_f1"], 4)},
              "logistic_regression_flat_pixels": {"C": best[0], "val_accuracy": round(best[1], 4),
                                                  "test_accuracy": round(best[2], 4)},
              "machine": describe()}
    emit(report, args.json)


if __name__ == "__main__":
    main()
