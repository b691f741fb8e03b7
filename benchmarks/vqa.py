"""Visual question answering on generated scenes: the question-and-image model against the same
model seeing only the question, or only the image, and the majority answer of each question type,
on the same split, in the same run (the dataset-bias lesson of Jabri et al. 2016).

Writes `rnnkit data scenes` (--num images, 48 x 48 pixels, seed 0; about five questions an image:
the colour of a shape, the shape of a colour, how many of a shape, whether a colour-shape pair is
there (yes and no equally often), the colour of the object left of / above another), trains `rnnkit
train vqa/train_questions.json --task vqa --val vqa/val_questions.json` three times for the same
wall-clock budget (`--inputs both`, `question`, `image`; `--models` adds `attention`, the full model
with the question's attention over the grid, `--attention additive`), and reports the accuracy on
the test questions and on the "unseen" split's (images holding a red square or a blue triangle,
never seen in training), overall and per question type. `--picture` draws the attention model's
weights for the first test question of each type.

    python benchmarks/vqa.py [--num 6000] [--budget 300] [--models both,question,image] [--picture PNG]
        [--json FILE] [--keep DIR] [-- rnnkit train options]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, emit, parse_with_train_args, train_options  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.data.scenes import write_scenes  # noqa: E402

MODELS = {"both": {"inputs": "both"}, "question": {"inputs": "question"}, "image": {"inputs": "image"},
          "attention": {"inputs": "both", "attention": "additive"}}
DEFAULTS = dict(cell="lstm", num_layers=1, hidden_size=256, embed_size=64, dropout=0.1, batch_size=64, lr=1e-3,
                eval_every=300, checkpoint_every=3000, sample_every=0)  # lr 5e-3 (the default) learnt nothing of the images


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=6000, help="scenes to generate, all splits (default 6000)")
    ap.add_argument("--budget", type=float, default=300.0, help="training seconds of each model (default 300)")
    ap.add_argument("--models", default="both,question,image", help="which models to train, of both, question, image "
                    "and attention (default: both,question,image)")
    ap.add_argument("--picture", type=Path, help="draw the attention model's weights for one test question of each "
                    "type here (PNG)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="write the scenes (DIR/scenes) and the runs (DIR/both, "
                    "DIR/question, DIR/image) in DIR and keep them")
    args = parse_with_train_args(ap)
    models = args.models.split(",")
    if not set(models) <= set(MODELS):
        ap.error(f"--models: choose from {', '.join(MODELS)}")
    options = train_options("vqa", DEFAULTS, args.train_args)
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        meta = write_scenes(root / "scenes", args.num, seed=0)
        vqa = root / "scenes" / "vqa"
        report = {"machine": describe(), "options": {k: str(v) for k, v in options.items()}, "budget_s": args.budget,
                  "questions": meta["questions_per_split"], "rows": {}}
        for name in models:
            t0 = time.time()
            run = rnnkit.train(vqa / "train_questions.json", out=root / name, task="vqa",
                               val=str(vqa / "val_questions.json"), test=str(vqa / "test_questions.json"),
                               budget=args.budget, progress=False, **{**options, **MODELS[name]})
            row = report["rows"][name] = {"steps": run.step, "wall_s": round(time.time() - t0, 1)}
            if name == "attention" and args.picture:
                row["picture"] = draw_attention(run.dir, vqa / "test_questions.json", args.picture)
            for split in ("test", "unseen"):
                r = rnnkit.evaluate(run.dir, str(vqa / f"{split}_questions.json"))
                row[split] = {"accuracy": round(r["accuracy"], 4),
                              "per_type": {k: round(v["accuracy"], 4) for k, v in r["per_type"].items()}}
                report.setdefault("majority", {})[split] = {
                    "accuracy": round(r["majority_accuracy"], 4),
                    "per_type": {k: round(v["majority"], 4) for k, v in r["per_type"].items()}}
        emit(report, args.json)


def draw_attention(run_dir: Path, questions_file: Path, path: Path) -> list:
    """One panel per question type: the first test question of that type, its image under the
    model's attention weights, the answer given and the true one. Returns what was drawn."""
    from rnnkit.data.questions import read_questions
    from rnnkit.tasks.vqa import plot_attention
    q = read_questions(questions_file)
    firsts = {}
    for i, kind in enumerate(q.kinds):
        firsts.setdefault(kind, i)
    picked = [firsts[k] for k in sorted(firsts)]
    weights = []
    answers = rnnkit.load(run_dir).answer(q.images[q.image_of[picked]], [q.questions[i] for i in picked],
                                          attention=weights)
    plot_attention([(q.images[q.image_of[i]], w, f"{q.questions[i]}?\n{a[0][0]} (true: {q.answers[i]})")
                    for i, w, a in zip(picked, weights, answers)], path)
    return [{"question": q.questions[i], "answer": a[0][0], "reference": q.answers[i], "max_weight": round(float(w.max()), 3)}
            for i, w, a in zip(picked, weights, answers)]


if __name__ == "__main__":
    main()
