"""Word -> language identification: rnnkit's recurrent classifier against the character n-gram
baselines, on the same word-disjoint split, in the same run.

Trains `rnnkit train DIR/train.tsv --task classify --val DIR/val.tsv --test DIR/test.tsv` for a
wall-clock budget (the best validation weights are kept), scores them on test.tsv, then runs
`langid_baseline.py` (TF-IDF of character 1-4-grams + logistic regression, naive Bayes, majority
class) on the very same files. Make the data with `langid_data.py` first; the baselines need
scikit-learn (pip install -e ".[bench]").

Then it sets the two strongest models side by side on the same words: how often both are wrong, how
often at least one is right, and the test accuracy of their averaged probabilities (the weight of
the recurrent model chosen on val.tsv), which shows how much of what one gets wrong the other gets
right, i.e. how far apart they really are.

    python benchmarks/langid_rnn.py data/langid [--budget 600] [--json FILE] [--c-grid 3,10,30]
                                    [--no-baseline] [-- rnnkit train options]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from langid_baseline import read_split  # noqa: E402
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402

import rnnkit  # noqa: E402

# The classifier's settings for this benchmark (any of them can be overridden after --), from probes on
# this split's validation set (README, "Word -> language identification"): a bidirectional GRU (0.841 against
# an LSTM's 0.833 in 90 s), one layer of 256 rather than two (0.8575 against 0.8443 in 150 s: twice the
# steps), hashed 2-3-gram embeddings (0.8703 in 150 s), dropout 0.4 on the inputs as well as before the
# head, and weight decay 0.1: without input dropout the n-gram model overfits (best 0.8626 in 600 s).
DEFAULTS = dict(cell="gru", num_layers=1, hidden_size=256, embed_size=64, bidirectional=True, pooling="max",
                ngram_buckets=20000, ngram_order=3, input_dropout=0.4, dropout=0.4, weight_decay=0.1,
                batch_size=128, eval_every=500, checkpoint_every=2000)
WEIGHTS = [w / 10 for w in range(1, 10)]  # the recurrent model's share in the averaged probabilities


def side_by_side(model, probs: dict, splits: dict) -> dict:
    """The recurrent model and the logistic regression on the same words: errors in common, and the
    averaged probabilities (weight chosen on val, scored on test)."""
    assert list(probs["classes"]) == model.classes, "the two models order the classes differently"
    mine, truth = {}, {}
    for split, (words, labels) in splits.items():
        mine[split] = model.predict_proba(words).numpy()
        truth[split] = np.array([model.classes.index(label) for label in labels])
    right = {name: p["test"].argmax(1) == truth["test"] for name, p in (("rnn", mine), ("lr", probs))}
    accuracy = {split: {w: float(((w * mine[split] + (1 - w) * probs[split]).argmax(1) == truth[split]).mean())
                        for w in WEIGHTS} for split in ("val", "test")}
    w = max(WEIGHTS, key=lambda w: accuracy["val"][w])
    return {"test_both_wrong": round(float((~right["rnn"] & ~right["lr"]).mean()), 4),
            "test_either_right": round(float((right["rnn"] | right["lr"]).mean()), 4),
            "test_only_rnn_right": round(float((right["rnn"] & ~right["lr"]).mean()), 4),
            "test_only_lr_right": round(float((~right["rnn"] & right["lr"]).mean()), 4),
            "average_rnn_weight": w, "average_val_accuracy": round(accuracy["val"][w], 4),
            "average_test_accuracy": round(accuracy["test"][w], 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", type=Path, help="directory with train.tsv, val.tsv and test.tsv (langid_data.py)")
    ap.add_argument("--budget", type=float, default=600.0, help="training seconds (default 600)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--c-grid", metavar="C,C,...", help="the baseline's C values (default: langid_baseline.py's)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="train and score the recurrent model only (a probe: compare settings by val accuracy)")
    args = parse_with_train_args(ap)  # rnnkit train options after --
    options = train_options("classify", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    d = args.data_dir
    splits = {split: read_split(d / f"{split}.tsv") for split in ("val", "test")}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        run = rnnkit.train(d / "train.tsv", out=Path(tmp) / "run", task="classify", val=str(d / "val.tsv"),
                           test=str(d / "test.tsv"), budget=args.budget, progress=False, **options)
        wall = time.time() - t0
        model = rnnkit.load(run.dir)
        val, result = model.evaluate(*splits["val"]), model.evaluate(*splits["test"])
        report = {"rnnkit": {
            "options": {k: str(v) for k, v in options.items()}, "budget_s": args.budget, "steps": run.step,
            "wall_s": round(wall, 1), "best_val_loss": round(run.best_val_loss, 4),
            "val_accuracy": round(val["accuracy"], 4), "test_accuracy": round(result["accuracy"], 4),
            "test_macro_f1": round(result["macro_f1"], 4), "test_ece": round(result["ece"], 4),
            "test_f1_by_class": {c: round(v["f1"], 4) for c, v in result["per_class"].items()}}}
        if not args.no_baseline:
            baseline_json, probs_file = Path(tmp) / "baseline.json", Path(tmp) / "probs.npz"
            subprocess.run([sys.executable, str(Path(__file__).with_name("langid_baseline.py")), str(d),
                            "--json", str(baseline_json), "--save-probs", str(probs_file),
                            *(["--c-grid", args.c_grid] if args.c_grid else [])], check=True, stdout=subprocess.DEVNULL)
            baseline = json.loads(baseline_json.read_text())
            with np.load(probs_file) as probs:
                report["rnnkit_and_logistic_regression"] = side_by_side(model, dict(probs), splits)
            report["baselines"] = {
                name: {k: m[k] for k in ("val_accuracy", "test_accuracy", "test_macro_f1", "C", "val_accuracy_by_C",
                                         "alpha") if k in m} for name, m in baseline["models"].items()}
            lr = report["baselines"]["logistic regression"]["test_accuracy"]
            report["rnnkit_minus_logistic_regression_points"] = round(100 * (result["accuracy"] - lr), 2)
    report["machine"] = describe()
    emit(report, args.json)


if __name__ == "__main__":
    main()
