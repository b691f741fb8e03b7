"""Grapheme to phoneme on CMUdict: rnnkit's encoder-decoder with attention against the same model
without attention, on the same word-disjoint split, in the same run.

Trains `rnnkit train cmudict.tsv --task seq2seq` (split 90/5/5 of the distinct words, --split-seed 0;
every pronunciation of a word is a reference) for a wall-clock budget, then the same model with
`--attention none` (Sutskever et al.'s encoder-decoder) for the same budget, and scores both, beside
a letter-context baseline without neural networks (g2p_baseline.py: letters aligned to phonemes by
EM, each letter's phonemes read from the widest window of letters around it seen in training), on
the test words: word error rate (a word is right if its output matches any of its pronunciations) and
phoneme error rate (edits to the closest pronunciation, by jiwer, over its length), on the
39-phoneme set (stress digits removed from output and references, as the G2P literature reports)
and with stress; greedy and beam 5; and the decoding speed in words per second. Make the data with
`g2p_data.py` first.

    python benchmarks/g2p.py runs/cmudict.tsv [--budget 1800] [--baseline-budget 1800] [--json FILE] [--keep DIR]
                             [-- rnnkit train options]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from g2p_baseline import LetterContextG2P  # noqa: E402
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.config import PairsConfig  # noqa: E402
from rnnkit.tasks.seq2seq import sequence_metrics, splits, strip_stress  # noqa: E402

DEFAULTS = dict(cell="lstm", num_layers=2, hidden_size=256, embed_size=64, bidirectional=True, attention="general",
                input_feeding=False, dropout=0.3, batch_size=128, eval_every=1000, checkpoint_every=2000, sample_every=0)


def score(run_dir: Path) -> dict:
    """Test metrics of a run: greedy and beam 5, with and without stress; words per second."""
    out = {}
    for beam in (0, 5):
        for ignore in (True, False):
            t0 = time.perf_counter()
            r = rnnkit.evaluate(run_dir, beam=beam, ignore_stress=ignore)
            seconds = time.perf_counter() - t0
            key = f"{'beam5' if beam else 'greedy'}{'' if ignore else '_with_stress'}"
            out[key] = {"wer": round(r["sequence_error_rate"], 4), "per": round(r["token_error_rate"], 4)}
            if ignore:
                out[key]["words_per_s"] = round(r["sources"] / seconds, 1)  # decoding and scoring, one process
    out["test_words"], out["test_nats_per_phoneme"] = r["sources"], round(r["nats"], 4)
    out["examples"] = r["examples"][:8]
    return out


def letter_context(train, test) -> dict:
    """The non-neural baseline, trained on the training pairs and scored like the models (39 phonemes)."""
    t0 = time.perf_counter()
    model = LetterContextG2P().fit([(s, strip_stress(t).split()) for s, t in zip(train.sources, train.targets)])
    fit_s = time.perf_counter() - t0
    references = test.references()
    words = sorted(references)
    t0 = time.perf_counter()
    outputs = [" ".join(model.predict(w)) for w in words]
    seconds = time.perf_counter() - t0
    r = sequence_metrics(outputs, [[strip_stress(t) for t in references[w]] for w in words], "word")
    return {"wer": round(r["sequence_error_rate"], 4), "per": round(r["token_error_rate"], 4),
            "words_per_s": round(len(words) / seconds, 1), "fit_s": round(fit_s, 1),
            "aligned_pairs": model.aligned, "table_entries": len(model.table)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the TSV from g2p_data.py")
    ap.add_argument("--budget", type=float, default=1800.0, help="training seconds of the attention model (default 1800, "
                    "the issue's 30 minutes)")
    ap.add_argument("--baseline-budget", type=float, default=None, help="training seconds of the model without "
                    "attention (default: the same; 0 skips it)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="train into DIR/attention and DIR/no_attention and keep "
                    "the runs (default: a temporary directory, removed at the end)")
    args = parse_with_train_args(ap)  # rnnkit train options after --
    options = train_options("seq2seq", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    train, val, test = splits(PairsConfig(paths=[str(args.data)]))
    report = {"machine": describe(), "options": {k: str(v) for k, v in options.items()},
              "split": {"seed": 0, "train_words": len(set(train.sources)), "val_words": len(set(val.sources)),
                        "test_words": len(set(test.sources)), "train_pairs": len(train)}}
    report["letter_context"] = letter_context(train, test)
    print(f"letter-context baseline: {report['letter_context']}", flush=True)
    baseline_budget = args.budget if args.baseline_budget is None else args.baseline_budget
    with tempfile.TemporaryDirectory() as tmp:
        for name, budget, attention in (("attention", args.budget, options["attention"]),
                                        ("no_attention", baseline_budget, "none")):
            if not budget:
                continue
            t0 = time.time()
            run = rnnkit.train(args.data, out=(args.keep or Path(tmp)) / name, task="seq2seq", budget=budget, progress=False,
                               **{**options, "attention": attention})
            report[name] = {"attention": attention, "budget_s": budget, "steps": run.step,
                            "wall_s": round(time.time() - t0, 1), "parameters": rnnkit.load(run.dir).num_parameters(),
                            **score(run.dir)}
    emit(report, args.json)


if __name__ == "__main__":
    main()
