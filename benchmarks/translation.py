"""English -> French on gettext messages: rnnkit's encoder-decoder against two simple baselines, on
the same catalog-disjoint split (translation_data.py), in the same run.

Trains `rnnkit train train.tsv --task seq2seq --val val.tsv --test test.tsv` (byte-level BPE pieces
on both sides, 2,000 per side, learned from the training messages; `-- --source-tokens char
--target-tokens char` for characters) for a wall-clock budget, then scores the test messages with
greedy decoding and beam search (BLEU and chrF by sacrebleu, exact match), beside
- copy: the English message itself, unchanged (interface strings share names, numbers, options);
- word by word: each English word replaced by its most frequent French translation among the training
  messages that are one word on both sides (case kept for a capitalised word), other words copied.

    python benchmarks/translation.py runs/gettext-fr [--budget 1200] [--beam 5] [--json FILE] [--keep DIR]
                                     [-- rnnkit train options]
"""

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data.pairs import read_pairs  # noqa: E402
from rnnkit.tasks.seq2seq import sequence_metrics  # noqa: E402

DEFAULTS = dict(cell="lstm", num_layers=2, hidden_size=256, embed_size=64, bidirectional=True, attention="general",
                input_feeding=False, dropout=0.3, batch_size=128, source_tokens="bpe", target_tokens="bpe", bpe_vocab=2000,
                eval_every=500, checkpoint_every=2000, sample_every=0)


def word_dictionary(sources: list[str], targets: list[str]) -> dict[str, str]:
    """English word -> its most frequent French word, from the one-word messages."""
    counts = defaultdict(Counter)
    for s, t in zip(sources, targets):
        if len(s.split()) == 1 and len(t.split()) == 1:
            counts[s.lower().strip(".:,")][t.strip(".:,")] += 1
    return {w: c.most_common(1)[0][0] for w, c in counts.items()}


def word_by_word(text: str, dictionary: dict[str, str]) -> str:
    out = []
    for w in text.split():
        core = w.strip(".:,")
        french = dictionary.get(core.lower())
        if french is None:
            out.append(w)
            continue
        if core[:1].isupper():
            french = french[:1].upper() + french[1:]
        out.append(w.replace(core, french) if core else w)
    return " ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", type=Path, help="directory with train.tsv, val.tsv and test.tsv (translation_data.py)")
    ap.add_argument("--budget", type=float, default=1200.0, help="training seconds (default 1200)")
    ap.add_argument("--beam", type=int, default=5, help="beam width for the beam-search row (default 5)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="train into DIR and keep the run (default: a temporary "
                    "directory, removed at the end); DIR must not exist")
    args = parse_with_train_args(ap)  # rnnkit train options after --
    options = train_options("seq2seq", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    d = args.data_dir
    train, test = read_pairs([str(d / "train.tsv")]), read_pairs([str(d / "test.tsv")])
    refs = test.references()
    sources = list(refs)
    references = [refs[s] for s in sources]
    rows = {}
    dictionary = word_dictionary(train.sources, train.targets)
    for name, outputs in (("copy the source", sources),
                          ("word by word", [word_by_word(s, dictionary) for s in sources])):
        rows[name] = sequence_metrics(outputs, references, "char")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        run = rnnkit.train(d / "train.tsv", out=args.keep or Path(tmp) / "run", task="seq2seq", val=str(d / "val.tsv"),
                           test=str(d / "test.tsv"), budget=args.budget, progress=False, **options)
        wall = time.time() - t0
        model = rnnkit.load(run.dir)
        for name, beam in (("rnnkit, greedy", 0), (f"rnnkit, beam {args.beam}", args.beam)):
            t0 = time.perf_counter()
            outputs = [o[0][0] for o in model.translate(sources, beam=beam)]
            seconds = time.perf_counter() - t0
            rows[name] = {**sequence_metrics(outputs, references, "char"),
                          "messages_per_s": round(len(sources) / seconds, 1)}
            rows[name]["examples"] = [{"source": s, "output": o, "reference": r[0]}
                                      for s, o, r in list(zip(sources, outputs, references))[:12]]
    for r in rows.values():
        for k in ("bleu", "chrf", "exact_match", "token_error_rate"):
            r[k] = round(r[k], 4)
        r.pop("sequence_error_rate", None)
    emit({"machine": describe(), "options": {k: str(v) for k, v in options.items()}, "budget_s": args.budget,
          "steps": run.step, "wall_s": round(wall, 1), "train_pairs": len(train), "test_messages": len(sources),
          "dictionary_words": len(dictionary), "results": rows}, args.json)


if __name__ == "__main__":
    main()
