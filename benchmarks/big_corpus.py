"""Data bigger than memory: preparation speed and training memory on a generated 2 GB corpus.

Writes a corpus of --gb gigabytes (tiny Shakespeare repeated, with every copy's lines in a different
order so it is not one block repeated), prepares it (`rnnkit prepare`, timed, peak memory), then
trains the default model for --steps steps on it and on a 100x smaller corpus, each in a fresh
process, and reports their peak resident memory. Everything it wrote is deleted at the end.

    python benchmarks/big_corpus.py [--gb 2] [--steps 100] [--dir /tmp]
"""

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from rnnkit.data import bundled_corpus  # noqa: E402

CHILD = """
import json, resource, sys, time
import rnnkit
t = time.perf_counter()
corpus = rnnkit.prepare(sys.argv[1], out=sys.argv[2])
prep_s = time.perf_counter() - t
prep_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if int(sys.argv[4]):
    rnnkit.train(sys.argv[1], out=sys.argv[3], max_steps=int(sys.argv[4]), eval_every=0, sample_every=0,
                 progress=False, log=lambda m: None)
print(json.dumps({"prepare_s": prep_s, "prepare_peak_rss_mb": prep_rss, "tokens": len(corpus.tokens),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_corpus(path: Path, size: int) -> None:
    lines = bundled_corpus().read_text("utf-8").splitlines(keepends=True)
    rng = random.Random(0)
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < size:
            rng.shuffle(lines)
            block = "".join(lines)
            fh.write(block)
            written += len(block)


def run(text: Path, work: Path, steps: int) -> dict:
    env_cache = work / "cache"
    out = subprocess.run([sys.executable, "-c", CHILD, str(text), str(work / "prep"), str(work / "run"), str(steps)],
                         capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "RNNKIT_CACHE": str(env_cache)})
    shutil.rmtree(work / "run", ignore_errors=True)
    shutil.rmtree(work / "prep", ignore_errors=True)
    shutil.rmtree(env_cache, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rnnkit-big-", dir=args.dir))
    try:
        results = {}
        for label, size in (("small", int(args.gb * 1e9 / 100)), ("big", int(args.gb * 1e9))):
            text = work / f"{label}.txt"
            t = time.perf_counter()
            write_corpus(text, size)
            gen_s = time.perf_counter() - t
            r = run(text, work, args.steps)
            r["bytes"] = text.stat().st_size
            r["prepare_mb_per_s"] = round(r["bytes"] / 1e6 / r["prepare_s"], 1)
            r["generate_s"] = round(gen_s, 1)
            results[label] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}
            text.unlink()
            print(label, json.dumps(results[label]), flush=True)
        results["machine"] = describe()
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
