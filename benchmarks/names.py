"""Names (makemore's setting): an unconditional generator of names.txt, on makemore's split, against
character n-gram baselines on the same split, in the same run.

makemore (Karpathy) holds out min(1000, 10%) of the words as its test set, chosen by
torch.randperm after torch.manual_seed(3407); its transformer reaches about 1.92 nats per character
there (the end of each name counted as a character). This script makes the same split from
`../shared/data/names.txt` (or the file given), takes 1000 more names out of the training part as a
validation set (for picking the best weights; makemore has none), trains
`rnnkit train train.txt --task generate --val val.txt --test test.txt` for a wall-clock budget and
scores the test names. Beside it: interpolated Witten-Bell character n-grams (orders 1-8) fitted on
the training names as one stream with a newline after each, scored on the test names the same way
(so a context may reach into the previous name, which only costs the n-gram).

    python benchmarks/names.py [--names NAMES.txt] [--budget 600] [--json FILE] [-- rnnkit train options]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.inspect.ngram import joint_vocab, loss_by_order  # noqa: E402

NAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "names.txt"
SEED = 3407  # makemore's default --seed
# The generator's settings (any can be overridden after --), chosen with 90-second probes on the
# validation names (see the README's names section).
DEFAULTS = dict(cell="lstm", num_layers=2, hidden_size=256, embed_size=64, dropout=0.5, batch_size=64, lr=5e-3,
                eval_every=250, checkpoint_every=2000, sample_every=0)


def makemore_split(words: list[str]) -> tuple[list[str], list[str]]:
    """makemore's create_datasets: (train, test) words."""
    torch.manual_seed(SEED)
    test_size = min(1000, int(len(words) * 0.1))
    rp = torch.randperm(len(words)).tolist()
    return [words[i] for i in rp[:-test_size]], [words[i] for i in rp[-test_size:]]


def ngram_baseline(train: list[str], test: list[str], max_n: int = 8) -> dict:
    """Test loss per character (each name's letters and its end) of n-grams of every order."""
    train_text, test_text = "\n" + "\n".join(train) + "\n", "\n" + "\n".join(test) + "\n"
    vocab = joint_vocab(train_text, test_text)
    return loss_by_order(vocab.encode(train_text), vocab.encode(test_text), max_n, len(vocab))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names", type=Path, default=NAMES, help=f"one name per line (default: {NAMES})")
    ap.add_argument("--budget", type=float, default=600.0, help="training seconds (default 600)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parse_with_train_args(ap)  # rnnkit train options after --
    options = train_options("generate", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    words = [w.strip() for w in args.names.read_text("utf-8").splitlines()]
    words = [w for w in words if w]
    train, test = makemore_split(words)
    train, val = train[:-1000], train[-1000:]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, part in (("train", train), ("val", val), ("test", test)):
            (d / f"{name}.txt").write_text("\n".join(part) + "\n", encoding="utf-8")
        t0 = time.time()
        run = rnnkit.train(d / "train.txt", out=d / "run", task="generate", val=str(d / "val.txt"),
                           test=str(d / "test.txt"), budget=args.budget, progress=False, **options)
        wall = time.time() - t0
        result = rnnkit.evaluate(run.dir, num_samples=1000)
    t0 = time.time()
    ngrams = ngram_baseline(train + val, test)
    best_n = min(ngrams, key=ngrams.get)
    emit({
        "machine": describe(),
        "split": {"seed": SEED, "train": len(train), "val": len(val), "test": len(test)},
        "rnnkit": {"options": {k: str(v) for k, v in options.items()}, "budget_s": args.budget, "steps": run.step,
                   "wall_s": round(wall, 1), "test_nats_per_char": round(result["nats"], 4),
                   "samples_in_train": result["samples"]["all"]["in_train"],
                   "samples_held_out": result["samples"]["all"]["held_out"],
                   "samples_novel": result["samples"]["all"]["novel"], "examples": result["samples"]["all"]["texts"]},
        "ngram": {"test_nats_per_char": {n: round(v, 4) for n, v in ngrams.items()}, "best_order": best_n,
                  "best": round(ngrams[best_n], 4), "seconds": round(time.time() - t0, 1)},
        "makemore_transformer_reference": 1.92,
    }, args.json)


if __name__ == "__main__":
    main()
