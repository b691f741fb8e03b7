"""Classifying cluttered translated digits by glimpses (`rnnkit data digits`, `--task glimpse`): the
recurrent attention model with several numbers of glimpses, against a CNN and an MLP that see the
whole canvas, and logistic regression on every pixel, in the same run on the same split.

Each network gets the same wall-clock budget (best validation weights kept) and is scored on the
test canvases, whose digit images no training canvas shows. For the recurrent attention models the
share of glimpses that fell on the digit (within half the finest patch of its centre) is reported
glimpse by glimpse, and `--picture` draws the glimpse paths of the model with the most glimpses.
Logistic regression needs scikit-learn, as do the digits themselves (pip install -e ".[bench]").

    python benchmarks/glimpses.py [--budget 600] [--glimpse-counts 2,4,6] [--num 50000] [--size 24]
        [--picture PNG] [--json FILE] [-- rnnkit train options]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402
from pixel_baseline import logistic_regression  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data.digits import write_digits  # noqa: E402

# Options after -- apply to every network.
DEFAULTS = dict(lr=3e-3, batch_size=64, hidden_size=256, eval_every=500, checkpoint_every=100000)


def train_and_score(files: dict, out: Path, budget: float, options: dict, picture: Path | None = None) -> dict:
    t0 = time.time()
    run = rnnkit.train(files["train"], out=out, task="glimpse", val=str(files["val"]), test=str(files["test"]),
                       budget=budget, progress=False, **options)
    wall = time.time() - t0
    result = rnnkit.evaluate(run.dir, glimpses_png=str(picture) if picture else None)
    report = {"options": {k: str(v) for k, v in options.items()}, "steps": run.step, "wall_s": round(wall, 1),
              "test_accuracy": round(result["accuracy"], 4), "test_macro_f1": round(result["macro_f1"], 4),
              "test_loss": round(result["loss"], 4)}
    if "on_object" in result:
        report["on_digit_by_glimpse"] = [round(v, 3) for v in result["on_object"]]
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=600.0, help="training seconds for each network (default 600)")
    ap.add_argument("--glimpse-counts", default="2,4,6", help="recurrent attention models to train, by their number "
                    "of glimpses (default 2,4,6)")
    ap.add_argument("--num", type=int, default=50000, help="canvases in all, split 80/10/10 (default 50000)")
    ap.add_argument("--size", type=int, default=24, help="canvas width in pixels (default 24)")
    ap.add_argument("--seed", type=int, default=0, help="the canvases' seed (default 0)")
    ap.add_argument("--no-baselines", action="store_true", help="only the recurrent attention models")
    ap.add_argument("--picture", type=Path, help="draw the glimpse paths of the model with the most glimpses here (PNG)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parse_with_train_args(ap)
    counts = sorted(int(c) for c in args.glimpse_counts.split(","))
    base = train_options("glimpse", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        meta = write_digits(Path(tmp) / "digits", args.num, args.seed, args.size)
        files = {name: Path(tmp) / "digits" / f"{name}.npz" for name in ("train", "val", "test")}
        report = {"data": {k: meta[k] for k in ("seed", "size", "clutter", "piece", "sizes", "digit_images")},
                  "budget_s": args.budget, "ram": {}}
        for n in counts:
            print(f"recurrent attention, {n} glimpses ...", flush=True)
            report["ram"][str(n)] = train_and_score(files, Path(tmp) / f"ram{n}", args.budget,
                                                    {**base, "network": "ram", "glimpses": n},
                                                    args.picture if n == counts[-1] else None)
        if not args.no_baselines:
            for network in ("cnn", "mlp"):
                print(f"{network} on the whole canvas ...", flush=True)
                report[network] = train_and_score(files, Path(tmp) / network, args.budget, {**base, "network": network})
            try:
                report["logistic_regression_on_pixels"] = logistic_regression(files, max_iter=300)
            except ImportError:
                report["logistic_regression_on_pixels"] = 'not run: needs scikit-learn (pip install -e ".[bench]")'
    report["machine"] = describe()
    emit(report, args.json)


if __name__ == "__main__":
    main()
