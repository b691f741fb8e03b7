"""How big `rnnkit inspect`'s HTML report is: the default page (the top units of each quantity and
layer inlined) against the page with every unit (`--units all`), measured in the same run.

Trains the default 2x256 LSTM briefly on the first 90% of the bundled tiny Shakespeare (the units the
page keeps depend on what the cell search finds, so the weights should have learned something), then
writes both reports over the last 20,000 characters (2,000 shown, the inspect defaults).

    python benchmarks/report_size.py [--budget 60] [--json FILE]
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data import bundled_corpus  # noqa: E402
from rnnkit.inspect.run import inspect  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds (default 60)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = ap.parse_args()
    text = bundled_corpus().read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "train.txt").write_text(text[:int(0.9 * len(text))], encoding="utf-8")
        (tmp / "some.txt").write_text(text[-20000:], encoding="utf-8")
        run = rnnkit.train(tmp / "train.txt", out=tmp / "run", budget=args.budget, sample_length=0, progress=False)
        sizes = {}
        for name, units in (("default (32 units)", 32), ("every unit (--units all)", 0)):
            out = tmp / f"report-{units}.html"
            inspect(run.model, tmp / "some.txt", out, units=units)
            sizes[name] = out.stat().st_size
    emit({"report_bytes": sizes, "ratio": round(sizes["every unit (--units all)"] / sizes["default (32 units)"], 2),
          "model": "lstm 2x256 (defaults)", "training_s": args.budget, "machine": describe()}, args.json)


if __name__ == "__main__":
    main()
