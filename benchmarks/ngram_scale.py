"""Time and memory of fitting Witten-Bell character n-grams up to n = 20 on a few megabytes.

Default text: Shakespeare's complete works from ../shared/data (5 MB, 42 files), first 90% to fit,
last 10% to test. Prints JSON with the seconds to fit and score all 20 orders, the peak resident
memory of the process, and the test loss of the best order.

    python benchmarks/ngram_scale.py [TEXT_FILE_OR_DIR ...] [--max-n 20]
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from rnnkit.data import resolve_sources  # noqa: E402
from rnnkit.inspect.ngram import joint_vocab, loss_by_order  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "shakespeare_works"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", default=[str(DEFAULT)])
    ap.add_argument("--max-n", type=int, default=20)
    args = ap.parse_args()
    text = "".join(p.read_text("utf-8") for p in resolve_sources(args.paths, "**/*.txt"))
    vocab = joint_vocab(text)
    tokens = vocab.encode(text)
    cut = int(len(tokens) * 0.9)
    t0 = time.perf_counter()
    by_n = loss_by_order(tokens[:cut], tokens[cut:], args.max_n, len(vocab))
    seconds = time.perf_counter() - t0
    best = min(by_n, key=by_n.get)
    print(json.dumps({
        "characters": len(tokens), "vocab": len(vocab), "max_n": args.max_n, "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "best_n": best, "best_test_nats": round(by_n[best], 4), "test_nats_at_max_n": round(by_n[args.max_n], 4),
        "machine": describe()}, indent=2))


if __name__ == "__main__":
    main()
