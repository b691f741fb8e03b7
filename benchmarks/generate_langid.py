"""Words by language (one-to-many): rnnkit's class-conditional generator against the same model
without the class, and against per-language character n-grams, on the word-disjoint language-ID
split (langid_data.py), in the same run.

Trains `rnnkit train DIR/train.tsv --task generate --val DIR/val.tsv --test DIR/test.tsv` twice for
the same wall-clock budget: with the language fed in (`--condition both`) and without
(`--condition none`, the unconditional baseline). Reports, per language, the test loss in nats per
character (each word's end counted) of both and of a Witten-Bell character n-gram fitted on that
language's training words alone (the order chosen on the validation words); then for 200 samples
a language from the conditional model, the share that are training words of that language, held-out
words of it, or new strings; and how often a held-out judge, TF-IDF character 1-4-grams + logistic
regression fitted on train.tsv (as in langid_baseline.py; C chosen on val.tsv), reads a sample as the
language it was written for, beside its accuracy on the real test words. Needs scikit-learn.

    python benchmarks/generate_langid.py runs/langid [--budget 240] [--json FILE] [-- rnnkit train options]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from langid_baseline import read_split, tune  # noqa: E402
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.inspect.ngram import joint_vocab, loss_by_order  # noqa: E402

DEFAULTS = dict(cell="lstm", num_layers=2, hidden_size=256, embed_size=64, dropout=0.2, batch_size=64,
                eval_every=500, checkpoint_every=2000, sample_every=0)
SAMPLES = 200


def ngram_losses(train: list[str], val: list[str], test: list[str], max_n: int = 7) -> tuple[int, float]:
    """(order chosen on val, test loss per character) of a Witten-Bell n-gram of one class's words."""
    stream = lambda words: "\n" + "\n".join(words) + "\n"  # noqa: E731
    vocab = joint_vocab(stream(train), stream(val), stream(test))
    on_val = loss_by_order(vocab.encode(stream(train)), vocab.encode(stream(val)), max_n, len(vocab))
    n = min(on_val, key=on_val.get)
    return n, loss_by_order(vocab.encode(stream(train)), vocab.encode(stream(test)), n, len(vocab))[n]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", type=Path, help="directory with train.tsv, val.tsv and test.tsv (langid_data.py)")
    ap.add_argument("--budget", type=float, default=240.0, help="training seconds for each model (default 240)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parse_with_train_args(ap)  # rnnkit train options after --
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        sys.exit('generate_langid.py: needs scikit-learn; install it with: pip install -e ".[bench]"')
    options = train_options("generate", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    d = args.data_dir
    raw = {split: read_split(d / f"{split}.tsv") for split in ("train", "val", "test")}
    classes = sorted(set(raw["train"][1]))

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for condition in ("both", "none"):
            t0 = time.time()
            run = rnnkit.train(d / "train.tsv", out=Path(tmp) / condition, task="generate", val=str(d / "val.tsv"),
                               test=str(d / "test.tsv"), budget=args.budget, progress=False,
                               **{**options, "condition": condition})
            wall = time.time() - t0
            results[condition] = {"steps": run.step, "wall_s": round(wall, 1),
                                  "eval": rnnkit.evaluate(run.dir, num_samples=1)}
        model = rnnkit.load(Path(tmp) / "both")
        samples = {c: model.samples(SAMPLES, label=c, seed=1) for c in classes}

    t0 = time.time()
    by_class = {s: {c: [w for w, lab in zip(*raw[s]) if lab == c] for c in classes} for s in raw}
    ngrams = {c: ngram_losses(by_class["train"][c], by_class["val"][c], by_class["test"][c]) for c in classes}
    ngram_s = time.time() - t0

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False).fit(raw["train"][0])
    data = {s: (vectorizer.transform(words), labels) for s, (words, labels) in raw.items()}
    judge, C, _, _ = tune(lambda c: LogisticRegression(C=c, max_iter=2000), (3.0, 10.0, 30.0), data)
    judge_test = float(np.mean(judge.predict(data["test"][0]) == np.array(data["test"][1])))

    rows = {}
    seen = {c: set(by_class["train"][c]) for c in classes}
    held = {c: set(by_class["val"][c]) | set(by_class["test"][c]) for c in classes}
    for c in classes:
        texts = samples[c]
        judged = judge.predict(vectorizer.transform([t or " " for t in texts]))
        rows[c] = {
            "test_nats_conditional": round(results["both"]["eval"]["per_class"][c]["nats"], 4),
            "test_nats_unconditional": round(results["none"]["eval"]["per_class"][c]["nats"], 4),
            "test_nats_ngram": round(ngrams[c][1], 4), "ngram_order": ngrams[c][0],
            "samples_in_train": float(np.mean([t in seen[c] for t in texts])),
            "samples_held_out": float(np.mean([t in held[c] and t not in seen[c] for t in texts])),
            "samples_judged_as_class": float(np.mean(judged == c)),
            "examples": texts[:6],
        }
    summary = {
        "test_nats_conditional": round(results["both"]["eval"]["nats"], 4),
        "test_nats_unconditional": round(results["none"]["eval"]["nats"], 4),
        "classes_where_conditional_wins": sum(r["test_nats_conditional"] < r["test_nats_unconditional"]
                                              for r in rows.values()),
        "samples_judged_as_class": round(float(np.mean([r["samples_judged_as_class"] for r in rows.values()])), 4),
        "judge_accuracy_on_test_words": round(judge_test, 4), "judge_C": C,
    }
    emit({"machine": describe(), "options": {k: str(v) for k, v in options.items()}, "budget_s": args.budget,
          "runs": {k: {"steps": v["steps"], "wall_s": v["wall_s"]} for k, v in results.items()},
          "ngram_seconds": round(ngram_s, 1), "summary": summary, "per_class": rows}, args.json)


if __name__ == "__main__":
    main()
