"""Image captioning on generated scenes: Show, Attend and Tell (soft attention over the CNN's grid)
against Show and Tell (the image only starts the decoder) and two baselines without a network, on
the same split, in the same run.

Writes `rnnkit data scenes` (--num images of 48 x 48 pixels, seed 0: train/val/test 80/10/10 of the
images without a held-out pair, and the "unseen" split of every image holding a red square or a
blue triangle), trains `rnnkit train captions.json --task caption` twice for the same wall-clock
budget (with and without attention), and scores greedy and beam-3 captions of the test and unseen
images: BLEU-1..4 (sacrebleu) and CIDEr-D against the four references of each image, and the
captioning speed in images per second at batch 64 (the whole split) and batch 1 (100 test images one
at a time). Baselines:
- nearest neighbour: the first caption of the training image closest in pixels (Euclidean, on
  images shrunk to 12 x 12), the classic retrieval baseline;
- the most frequent caption shape: one fixed caption, the most common training caption, for every
  image (what a language model with no image can do at best, by BLEU, about).

    python benchmarks/captions.py [--num 6000] [--budget 300] [--json FILE] [--keep DIR] [-- rnnkit train options]
"""

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data.captions import read_captions  # noqa: E402
from rnnkit.data.scenes import write_scenes  # noqa: E402
from rnnkit.tasks.caption import caption_metrics  # noqa: E402

DEFAULTS = dict(cell="lstm", num_layers=1, hidden_size=256, embed_size=64, attention="general", dropout=0.1,
                batch_size=64, eval_every=200, checkpoint_every=2000, sample_every=0)


def shrink(images: np.ndarray) -> np.ndarray:
    """(N, 48, 48, 3) -> (N, 432): 4 x 4 block means, flattened."""
    N, H, W, C = images.shape
    return images.reshape(N, H // 4, 4, W // 4, 4, C).mean(axis=(2, 4)).reshape(N, -1)


def nearest_neighbour(train, part) -> list[str]:
    a, b = shrink(train.images), shrink(part.images)
    out = []
    for i in range(0, len(b), 256):
        d = (b[i:i + 256] ** 2).sum(1)[:, None] - 2 * b[i:i + 256] @ a.T + (a ** 2).sum(1)[None]
        out += [train.captions[j][0] for j in d.argmin(axis=1)]
    return out


def rounded(m: dict) -> dict:
    return {k: round(v, 4 if k == "exact_match" else 2 if k.startswith("bleu") else 3) for k, v in m.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=6000, help="scenes to generate, all splits (default 6000)")
    ap.add_argument("--budget", type=float, default=300.0, help="training seconds of each model (default 300)")
    ap.add_argument("--beam", type=int, default=3, help="beam width of the beam rows (default 3)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="write the scenes (DIR/scenes) and the runs "
                    "(DIR/attention, DIR/no_attention) in DIR and keep them")
    args = parse_with_train_args(ap)
    options = train_options("caption", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        meta = write_scenes(root / "scenes", args.num, seed=0)
        data = read_captions([str(root / "scenes" / "captions.json")], (0.8, 0.1, 0.1), 0)
        train = data["train"]
        report = {"machine": describe(), "options": {k: str(v) for k, v in options.items()}, "budget_s": args.budget,
                  "images": meta["images_per_split"], "rows": {}}
        common = Counter(c for caps in train.captions for c in caps).most_common(1)[0][0]
        for split in ("test", "unseen"):
            part = data[split]
            report["rows"].setdefault("nearest neighbour (pixels)", {})[split] = rounded(
                caption_metrics(nearest_neighbour(train, part), part.captions))
            report["rows"].setdefault("most frequent caption", {})[split] = rounded(
                caption_metrics([common] * len(part), part.captions))
        for name, folder, attention in (("Show, Attend and Tell", "attention", options["attention"]),
                                        ("Show and Tell", "no_attention", "none")):
            t0 = time.time()
            run = rnnkit.train(root / "scenes" / "captions.json", out=root / folder,
                               task="caption", budget=args.budget, progress=False, **{**options, "attention": attention})
            wall = time.time() - t0
            model = rnnkit.load(run.dir)
            for beam in (0, args.beam):
                row = report["rows"].setdefault(f"{name}, {'beam ' + str(beam) if beam else 'greedy'}", {})
                for split in ("test", "unseen"):
                    part = data[split]
                    t0 = time.perf_counter()
                    outputs = [o[0][0] for o in model.caption(part.images, beam=beam)]
                    row[split] = {**rounded(caption_metrics(outputs, part.captions)),
                                  "images_per_s": round(len(part) / (time.perf_counter() - t0), 1),
                                  "examples": [{"output": o, "references": r[:2]}
                                               for o, r in list(zip(outputs, part.captions))[:4]]}
                row["steps"], row["wall_s"] = run.step, round(wall, 1)
                one = data["test"].images[:100]  # batch 1: one image at a time
                t0 = time.perf_counter()
                for image in one:
                    model.caption(image[None], beam=beam)
                row["images_per_s_batch_1"] = round(len(one) / (time.perf_counter() - t0), 1)
        report["most_frequent_caption"] = common
        emit(report, args.json)


if __name__ == "__main__":
    main()
