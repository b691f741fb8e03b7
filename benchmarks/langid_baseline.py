"""Strong simple baselines for word -> language identification (the files langid_data.py writes).

Features: TF-IDF of character 1- to 4-grams within the word padded with spaces
(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4)), fitted on train.tsv only). Models:
logistic regression (C tuned on val.tsv), multinomial naive Bayes on the same features (alpha tuned
on val.tsv) and the majority class of train.tsv. Each model is fitted on train.tsv alone (no refit on
train+val, as a neural model that selects on val would be), then scored once on test.tsv: accuracy
and macro-F1. Needs scikit-learn (pip install -e ".[bench]").

    python benchmarks/langid_baseline.py runs/langid [--json benchmarks/results/langid-baseline.json] [--c-grid 1,3,10]
                                         [--save-probs FILE.npz]

--save-probs keeps the chosen logistic regression's class probabilities on val.tsv and test.tsv (arrays
`classes`, `val`, `test`; no pickle), for langid_rnn.py to set beside its own.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402

C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
ALPHA_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)


def read_split(path: Path) -> tuple[list[str], list[str]]:
    if not path.is_file():
        sys.exit(f"langid_baseline.py: {path} not found (make it with benchmarks/langid_data.py --out {path.parent})")
    words, labels = [], []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not all(parts):
                sys.exit(f"langid_baseline.py: {path}:{number}: expected `word<TAB>language`, got {line!r}")
            words.append(parts[0])
            labels.append(parts[1])
    return words, labels


def tune(make, grid, data):
    """Fit make(value) on train for each value; keep the best on val. Returns (model, value, val scores, fit s)."""
    from sklearn.metrics import accuracy_score
    (X_train, y_train), (X_val, y_val) = data["train"], data["val"]
    best, scores = None, {}
    for value in grid:
        t0 = time.perf_counter()
        model = make(value).fit(X_train, y_train)
        seconds = time.perf_counter() - t0
        scores[value] = round(accuracy_score(y_val, model.predict(X_val)), 4)
        if best is None or scores[value] > scores[best[1]]:
            best = (model, value, seconds)
    return best[0], best[1], scores, best[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", type=Path, help="directory with train.tsv, val.tsv and test.tsv")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--c-grid", default=",".join(f"{c:g}" for c in C_GRID), metavar="C,C,...",
                    help="logistic regression's C values to try on val.tsv (default: %(default)s; each fit takes "
                    "minutes on the larger data sets)")
    ap.add_argument("--save-probs", type=Path, metavar="FILE.npz",
                    help="write the logistic regression's class probabilities on val and test to this file")
    args = ap.parse_args()
    c_grid = tuple(float(c) for c in args.c_grid.split(","))
    try:
        from sklearn.dummy import DummyClassifier
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.naive_bayes import MultinomialNB
    except ImportError:
        sys.exit('langid_baseline.py: needs scikit-learn; install it with: pip install -e ".[bench]"')

    raw = {split: read_split(args.data_dir / f"{split}.tsv") for split in ("train", "val", "test")}
    t0 = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False)
    vectorizer.fit(raw["train"][0])
    features_s = time.perf_counter() - t0
    data = {split: (vectorizer.transform(words), labels) for split, (words, labels) in raw.items()}

    results = {}
    for name, make, grid, knob in (
            ("logistic regression", lambda c: LogisticRegression(C=c, max_iter=2000), c_grid, "C"),
            ("multinomial naive Bayes", lambda a: MultinomialNB(alpha=a), ALPHA_GRID, "alpha"),
            ("majority class", lambda _: DummyClassifier(strategy="most_frequent"), (None,), None)):
        model, value, val_scores, fit_s = tune(make, grid, data)
        X_test, y_test = data["test"]
        predicted = model.predict(X_test)
        results[name] = {
            **({knob: value, f"val_accuracy_by_{knob}": val_scores} if knob else {}),
            "val_accuracy": val_scores[value], "test_accuracy": round(accuracy_score(y_test, predicted), 4),
            "test_macro_f1": round(f1_score(y_test, predicted, average="macro"), 4), "fit_seconds": round(fit_s, 2)}
        if name == "logistic regression" and args.save_probs:
            np.savez(args.save_probs, classes=np.array(model.classes_, dtype=str),
                     val=model.predict_proba(data["val"][0]), test=model.predict_proba(X_test))
        if knob:  # per-language F1 shows which languages get confused (Danish and Norwegian, mostly)
            results[name]["test_f1_by_class"] = dict(zip(model.classes_, f1_score(
                y_test, predicted, labels=model.classes_, average=None).round(4).tolist()))

    report = {
        "data_dir": str(args.data_dir), "sizes": {split: len(raw[split][0]) for split in raw},
        "classes": sorted(set(raw["train"][1])), "features": "TfidfVectorizer(analyzer='char_wb', "
        "ngram_range=(1, 4), lowercase=False) fitted on train", "n_features": len(vectorizer.vocabulary_),
        "feature_fit_seconds": round(features_s, 2), "models": results, "machine": describe()}
    emit(report, args.json)


if __name__ == "__main__":
    main()
