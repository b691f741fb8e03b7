"""Video classification from frames: moving-shapes clips (`rnnkit data clips`), where the order of
the frames is the whole signal, classified by a per-frame CNN + recurrent network against the same
CNN with its frame features averaged (no recurrence), in the same run on the same split; and, as a
strong simple baseline that does see the order, logistic regression on every pixel of every frame.

Each model gets the same wall-clock budget (best validation weights kept) and is scored on the test
clips, overall and per class. The eight motions come in four pairs whose second is the first played
backwards, so averaging frames can at best name the pair (50% overall); the per-pair accuracy shows
whether a model does better than that. Logistic regression needs scikit-learn (pip install -e ".[bench]").

    python benchmarks/video_clips.py [--budget 180] [--num 5000] [--seed 0] [--json FILE] [-- rnnkit train options]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402
from pixel_baseline import logistic_regression  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data.clips import PAIRS, write_clips  # noqa: E402

# The recurrent model; the averaging baseline is the same with --cell none --pooling mean (same CNN,
# same embedding size, same optimiser and budget). Options after -- apply to both.
DEFAULTS = dict(cell="gru", num_layers=1, hidden_size=128, embed_size=64, pooling="last", dropout=0.1,
                batch_size=32, eval_every=200, checkpoint_every=5000)
AVERAGING = dict(cell="none", pooling="mean")


def train_and_score(files: dict, out: Path, budget: float, options: dict) -> dict:
    t0 = time.time()
    run = rnnkit.train(files["train"], out=out, task="classify", val=str(files["val"]), test=str(files["test"]),
                       budget=budget, progress=False, **options)
    wall = time.time() - t0
    result = rnnkit.evaluate(run.dir)
    classes, confusion = result["classes"], np.array(result["confusion"])
    pair_of = {name: i for i, pair in enumerate(PAIRS) for name in pair}
    # Right about the pair (which way of moving), whatever the direction: what averaging can reach.
    pair_right = sum(confusion[i, j] for i, a in enumerate(classes) for j, b in enumerate(classes)
                     if pair_of[a] == pair_of[b])
    return {"options": {k: str(v) for k, v in options.items()}, "steps": run.step, "wall_s": round(wall, 1),
            "test_accuracy": round(result["accuracy"], 4), "test_macro_f1": round(result["macro_f1"], 4),
            "test_pair_accuracy": round(float(pair_right / confusion.sum()), 4),
            "test_recall_by_class": {c: round(v["recall"], 4) for c, v in result["per_class"].items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=180.0, help="training seconds for each model (default 180)")
    ap.add_argument("--num", type=int, default=5000, help="clips in all, split 80/10/10 (default 5000)")
    ap.add_argument("--seed", type=int, default=0, help="the clips' seed (default 0)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parse_with_train_args(ap)
    recurrent = train_options("classify", DEFAULTS, args.train_args)
    averaging = {**recurrent, **AVERAGING}
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        meta = write_clips(Path(tmp) / "clips", args.num, args.seed)
        files = {name: Path(tmp) / "clips" / f"{name}.npz" for name in ("train", "val", "test")}
        report = {"data": {k: meta[k] for k in ("seed", "frames", "size", "classes", "sizes")},
                  "recurrent": train_and_score(files, Path(tmp) / "gru", args.budget, recurrent),
                  "frame_averaging": train_and_score(files, Path(tmp) / "avg", args.budget, averaging)}
        try:
            report["logistic_regression_on_pixels"] = logistic_regression(files)
        except ImportError:
            report["logistic_regression_on_pixels"] = 'not run: needs scikit-learn (pip install -e ".[bench]")'
    report["machine"] = describe()
    emit(report, args.json)


if __name__ == "__main__":
    main()
