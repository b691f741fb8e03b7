"""Characters against word and BPE tokens: validation loss in nats per character after the same
training time, on tiny Shakespeare and on Shakespeare's complete works.

Every level trains rnnkit's default model (2x256 LSTM, batch 32 x 64 tokens) for the same budget on
the same characters: the splits are cut by characters (first 90% train, last 10% validation, no test)
before tokenizing, and the word and BPE tokenizers are learned on the training part only. The loss is
over the whole validation split with the state carried, per token and converted to nats per
character (total nats over the characters the scored tokens spell). The character model is the
baseline of the same run.

    python benchmarks/tokens.py [--budget 140] [--levels char,bpe:512,bpe:2048] [--json FILE]

Needs ../shared/data/shakespeare_works (see its README); without it, tiny Shakespeare only.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data import bundled_corpus  # noqa: E402
from rnnkit.evaluate import evaluate_tokens, summary  # noqa: E402

WORKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "shakespeare_works"


def level_options(level: str) -> dict:
    """'char', 'bpe:512', 'word:2000' -> rnnkit.train options."""
    kind, _, size = level.partition(":")
    if kind == "char":
        return {}
    return {"tokens": kind, f"{kind}_vocab": int(size)}


def run_level(data, level: str, budget: float, out: Path) -> dict:
    t0 = time.perf_counter()
    run = rnnkit.train(data, out=out, budget=f"{budget}s", split=(0.9, 0.1, 0.0), sample_every=0, sample_length=0,
                       progress=False, log=lambda m: None, **level_options(level))
    trained = time.perf_counter() - t0
    from rnnkit.data.corpus import prepare_for_run
    from rnnkit.tasks.lm import read_run
    corpus = prepare_for_run(read_run(run.dir).data, run.model.vocab)
    val = corpus.split("val")
    chars = corpus.chars[1] if corpus.chars is not None else None
    result = summary(*evaluate_tokens(run.model, val), chars=chars, tokens=len(val))
    return {"level": level, "vocab": len(run.model.vocab), "steps": run.step, "seconds": trained,
            "val_nats_per_char": result["nats"], "val_nats_per_token": result.get("nats_per_token", result["nats"]),
            "val_tokens": len(val), "chars_per_token": (chars / len(val)) if chars else 1.0,
            "train_tokens": len(corpus.split("train"))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=140.0, help="training seconds per level and corpus")
    ap.add_argument("--levels", default="char,bpe:512,bpe:2048", help="comma-separated: char, word:N, bpe:N")
    ap.add_argument("--corpora", default="tiny,works", help="tiny (bundled tiny Shakespeare), works (complete works)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    corpora = {"tiny": bundled_corpus(), "works": WORKS}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.corpora.split(","):
            data = corpora[name]
            if not Path(data).exists():
                print(f"skipping {name}: {data} is not there", file=sys.stderr)
                continue
            for level in args.levels.split(","):
                r = run_level(data, level, args.budget, Path(tmp) / f"{name}-{level.replace(':', '-')}")
                r["corpus"] = name
                print(f"{name} {level}: {r['val_nats_per_char']:.4f} nats/char ({r['steps']} steps)", file=sys.stderr)
                results.append(r)
    emit({"benchmark": "tokens", "machine": describe(), "budget_s": args.budget, "model": "rnnkit defaults",
          "results": results}, args.json)


if __name__ == "__main__":
    main()
