"""Visual question answering on the shared engine: VQA v2 files, the model and its blind baselines,
exact resume and the commands."""

import json

import numpy as np
import pytest
from PIL import Image

import rnnkit
from rnnkit.data.questions import read_questions
from rnnkit.data.scenes import write_scenes
from rnnkit.errors import ConfigError, DataError

from conftest import assert_resumes_exactly, run_cli

TINY = dict(task="vqa", hidden_size=64, embed_size=16, num_layers=1, batch_size=32, eval_every=100, lr=1e-3,
            sample_every=0, progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    write_scenes(out, 600, seed=4, size=24)
    return out


def _train(scenes, out, inputs, steps=900):
    vqa = scenes / "vqa"
    return rnnkit.train(vqa / "train_questions.json", out=out, val=str(vqa / "val_questions.json"),
                        test=str(vqa / "test_questions.json"), max_steps=steps, inputs=inputs, **TINY)


@pytest.fixture(scope="module")
def both_run(tmp_path_factory, scenes):
    return _train(scenes, tmp_path_factory.mktemp("runs") / "both", "both")


def test_vqa_files_are_read_with_their_images(tmp_path, scenes):
    q = read_questions(scenes / "vqa" / "test_questions.json")
    qs = json.loads((scenes / "vqa" / "test_questions.json").read_text())["questions"]
    assert len(q) == len(qs) and q.questions[0] == qs[0]["question"].rstrip("?")
    first = np.asarray(Image.open(scenes / "images" / f"{qs[0]['image_id']:06d}.png"))
    assert np.array_equal(q.images[q.image_of[0]], first) and len(q.images) == len({x["image_id"] for x in qs})
    assert set(q.kinds) <= {"colour", "shape", "count", "exist", "relate"} and "exist" in q.kinds
    (tmp_path / "val_questions.json").write_text(json.dumps({"questions": [{"image_id": 0, "question": "q?",
                                                                             "question_id": 1}]}))
    with pytest.raises(DataError, match="no such file: .*val_annotations.json"):
        read_questions(tmp_path / "val_questions.json")
    (tmp_path / "val_annotations.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(DataError, match="question 1 has no answer in val_annotations.json"):
        read_questions(tmp_path / "val_questions.json")
    with pytest.raises(DataError, match=r"--image-pattern .{id}.png. cannot name image \d+"):
        read_questions(scenes / "vqa" / "test_questions.json", pattern="{id}.png")


def test_the_model_beats_its_question_only_baseline(tmp_path, scenes, both_run):
    both = rnnkit.evaluate(both_run.dir)
    blind = rnnkit.evaluate(_train(scenes, tmp_path / "q", "question").dir)
    assert blind["inputs"] == "question" and both["questions"] == blind["questions"]
    # The question alone can only guess among the answers its type allows (colour: 1 in 5).
    assert both["per_type"]["colour"]["accuracy"] > blind["per_type"]["colour"]["accuracy"] + 0.25, both["per_type"]
    assert blind["per_type"]["exist"]["accuracy"] < 0.65  # yes and no equally often: no shortcut
    model = rnnkit.load(both_run.dir)
    out = model.answer(np.zeros((2, 24, 24, 3), dtype=np.uint8), ["is there a red circle?", "how many squares?"],
                       top_k=2)
    assert len(out) == 2 and all(len(o) == 2 and o[0][1] >= o[1][1] for o in out)


def test_a_vqa_run_resumes_exactly(tmp_path, scenes):
    vqa = scenes / "vqa"
    assert_resumes_exactly(tmp_path, vqa / "train_questions.json",
                           dict(TINY, dropout=0.2, lr_schedule="constant", checkpoint_every=1000, eval_every=10,
                                val=str(vqa / "val_questions.json")), 30, 20)


def test_answer_and_eval_commands(tmp_path, scenes, both_run):
    image = scenes / "images" / "000000.png"
    p = run_cli("answer", both_run.dir, image, "what colour is the circle?", "--top-k", "3")
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0 and len(lines) == 3 and all(len(x.split("\t")) == 2 for x in lines), p.stderr
    p = run_cli("eval", both_run.dir)
    assert p.returncode == 0 and "(inputs: both): accuracy" in p.stdout and "colour" in p.stdout, p.stderr
    p = run_cli("answer", both_run.dir, tmp_path / "none.png", "what?")
    assert p.returncode == 1 and "image not found" in p.stderr
    Image.new("RGBA", (24, 24)).save(tmp_path / "rgba.png")  # converted to RGB, not refused
    assert run_cli("answer", both_run.dir, tmp_path / "rgba.png", "how many circles?").returncode == 0
    (tmp_path / "words.txt").write_text("not an image")
    p = run_cli("answer", both_run.dir, tmp_path / "words.txt", "what?")
    assert p.returncode == 1 and "is not an image Pillow can read" in p.stderr


def test_question_guided_attention_over_the_grid(tmp_path, scenes):
    vqa = scenes / "vqa"
    run = rnnkit.train(vqa / "train_questions.json", out=tmp_path / "att", max_steps=20, inputs="both",
                       attention="additive", **TINY)
    model = rnnkit.load(run.dir)
    weights = []
    images = np.zeros((2, 24, 24, 3), dtype=np.uint8)
    out = model.answer(images, ["is there a red circle?", "how many squares?"], attention=weights)
    assert len(out) == 2 and [w.shape for w in weights] == [(3, 3), (3, 3)]
    assert all(abs(w.sum() - 1) < 1e-5 and (w >= 0).all() for w in weights)  # a distribution over the 9 cells
    with pytest.raises(ConfigError, match="needs --inputs both"):
        rnnkit.train(vqa / "train_questions.json", out=tmp_path / "bad", max_steps=1, inputs="question",
                     attention="additive", **TINY)
    image = scenes / "images" / "000000.png"
    p = run_cli("answer", run.dir, image, "what colour is the circle?", "--attention", tmp_path / "a.png")
    assert p.returncode == 0 and (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG", p.stderr
    plain = rnnkit.train(vqa / "train_questions.json", out=tmp_path / "plain", max_steps=1, inputs="both", **TINY)
    p = run_cli("answer", plain.dir, image, "what colour is the circle?", "--attention", tmp_path / "b.png")
    assert p.returncode == 1 and "has no attention over the image" in p.stderr
