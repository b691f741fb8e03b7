"""Image captioning on the shared engine: the scene generator, the caption formats, the captioner
(the seq2seq decoder over a CNN's grid), its metrics, exact resume and the commands."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

import rnnkit
from rnnkit.config import CaptionConfig
from rnnkit.data.captions import normalise, read_captions
from rnnkit.data.pairs import SideVocab
from rnnkit.data.scenes import UNSEEN, make_scenes, write_scenes
from rnnkit.errors import DataError
from rnnkit.models.captioner import Captioner
from rnnkit.tasks.caption import attention_penalty, caption_metrics, cider_d

from conftest import assert_resumes_exactly, run_cli

TINY = dict(task="caption", hidden_size=96, embed_size=16, num_layers=1, batch_size=32, eval_every=50,
            sample_every=0, progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    write_scenes(out, 500, seed=3, size=24)
    return out


@pytest.fixture(scope="module")
def caption_run(tmp_path_factory, scenes):
    return rnnkit.train(scenes / "captions.json", out=tmp_path_factory.mktemp("runs") / "cap", max_steps=500,
                        **dict(TINY, eval_every=250))  # validation is most of a tiny run's time: twice is enough


def test_scenes_are_deterministic_and_hold_out_combinations(tmp_path):
    a, sa = make_scenes(300, seed=1, size=32)
    b, sb = make_scenes(300, seed=1, size=32)
    assert np.array_equal(a, b) and sa == sb and not np.array_equal(a, make_scenes(300, seed=2, size=32)[0])
    for s in sa:
        pairs = {(o["colour"], o["shape"]) for o in s["objects"]}
        assert (s["split"] == "unseen") == bool(pairs & set(UNSEEN))
        assert all(o["colour"] in s["captions"][0] or o["colour"] in s["captions"][1] for o in s["objects"])
    answers = [q[2] for s in sa for q in s["questions"] if q[0] == "exist"]
    assert abs(answers.count("yes") - answers.count("no")) < 0.15 * len(answers)  # yes as often as no
    write_scenes(tmp_path / "x", 40, seed=1, size=32)
    entry = json.loads((tmp_path / "x" / "captions.json").read_text())["images"][0]
    assert entry["filename"] == "000000.png" and len(entry["sentences"]) == 4
    pixels = np.asarray(Image.open(tmp_path / "x" / "images" / "000000.png"))
    assert np.array_equal(pixels, make_scenes(40, seed=1, size=32)[0][0])
    split = entry["split"]
    qs = json.loads((tmp_path / "x" / "vqa" / f"{split}_questions.json").read_text())["questions"]
    anns = json.loads((tmp_path / "x" / "vqa" / f"{split}_annotations.json").read_text())["annotations"]
    assert [q["question_id"] for q in qs] == [a["question_id"] for a in anns] and qs[0]["image_id"] == 0


def test_the_caption_formats_read_alike(tmp_path):
    for name, colour in (("a.png", (255, 0, 0)), ("b.png", (0, 0, 255))):
        Image.new("RGB", (16, 16), colour).save(tmp_path / name)
    caps = {"a.png": ["A red image.", "Red, all red!"], "b.png": ["A blue image"]}
    (tmp_path / "karpathy.json").write_text(json.dumps({"images": [
        {"filename": n, "split": "test", "sentences": [{"raw": c} for c in cs]} for n, cs in caps.items()]}))
    (tmp_path / "coco.json").write_text(json.dumps({
        "images": [{"id": i, "file_name": n} for i, n in enumerate(caps)],
        "annotations": [{"image_id": i, "caption": c} for i, cs in enumerate(caps.values()) for c in cs]}))
    (tmp_path / "flickr.token.txt").write_text("".join(f"{n}#{k}\t{c}\n" for n, cs in caps.items()
                                                       for k, c in enumerate(cs)))
    for f in ("karpathy.json", "coco.json", "flickr.token.txt"):
        parts = read_captions([str(tmp_path / f)], (0.0, 0.0, 1.0), 0)
        assert list(parts) == ["test"], f
        assert parts["test"].captions == [["a red image", "red all red"], ["a blue image"]], f
        assert parts["test"].images.shape == (2, 16, 16, 3) and parts["test"].images[1, 0, 0, 2] == 255
    assert normalise("Don't  STOP, 2 birds.") == "don't stop 2 birds"
    Image.new("RGB", (20, 16)).save(tmp_path / "b.png")
    with pytest.raises(DataError, match="b.png is 20 x 16 pixels where the first image is 16 x 16; give --image-size"):
        read_captions([str(tmp_path / "coco.json")], (0.0, 0.0, 1.0), 0)
    assert read_captions([str(tmp_path / "coco.json")], (0.0, 0.0, 1.0), 0, image_size=8)["test"].images.shape[1] == 8
    (tmp_path / "a.png").unlink()
    with pytest.raises(DataError, match="1 of the 2 images the captions name are missing: .*a.png"):
        read_captions([str(tmp_path / "flickr.token.txt")], (0.0, 0.0, 1.0), 0)
    kept = read_captions([str(tmp_path / "flickr.token.txt")], (0.0, 0.0, 1.0), 0, skip_missing=True)["test"]
    assert kept.captions == [["a blue image"]]
    (tmp_path / "bad.txt").write_text("a.png a caption without a tab\n")
    with pytest.raises(DataError, match="line 1: expected image#n<TAB>caption"):
        read_captions([str(tmp_path / "bad.txt")], (0.0, 0.0, 1.0), 0)


def test_cider_and_bleu_by_hand():
    refs = [["a red circle left of a blue square", "a blue square right of a red circle"],
            ["a green triangle above a small yellow circle", "a small yellow circle below a green triangle"]]
    assert cider_d([r[0] for r in refs], refs) == pytest.approx(cider_d([r[1] for r in refs], refs))
    perfect = cider_d(["a red circle left of a blue square", "a green triangle above a small yellow circle"],
                      [refs[0][:1], refs[1][:1]])
    assert perfect == pytest.approx(10.0)  # a hypothesis equal to its only reference: cosine 1 at every order
    half = cider_d(["a red circle left of a blue square", "purple purple purple"], [refs[0][:1], refs[1][:1]])
    assert half == pytest.approx(5.0)  # the mean over images: 10 and 0
    m = caption_metrics(["a red circle left of a blue square"], [refs[0]])
    assert m["bleu4"] == pytest.approx(100.0) and m["exact_match"] == 1.0
    alpha = torch.tensor([[[0.5, 0.5], [1.0, 0.0], [0.2, 0.8]]])  # (B=1, T=3, S=2), the last step padding
    real = torch.tensor([[True, True, False]])
    assert float(attention_penalty(alpha, real)) == pytest.approx((1 - 1.5) ** 2 + (1 - 0.5) ** 2)


@pytest.mark.parametrize("attention", ["none", "general", "additive"])
def test_a_batch_of_images_equals_each_alone_and_beam_one_is_greedy(attention):
    torch.manual_seed(0)
    vocab = SideVocab("word", "a red blue circle square".split())
    cfg = CaptionConfig(cell="lstm", num_layers=2, hidden_size=16, embed_size=8, attention=attention,
                        target_vocab_size=len(vocab), image_shape=[16, 16, 3])
    model = Captioner(cfg, target_vocab=vocab).eval()
    images = torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8)
    x, lengths = model.image_batch(images)
    target = torch.tensor([[1, 4, 5, 6], [1, 7, 4, 5], [1, 8, 8, 4]])
    logits, alpha = model(x, lengths, target)
    assert alpha.shape == (3, 4, 4)  # 16 / 8 = a 2 x 2 grid
    if attention != "none":
        torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 4))
    for i in range(3):
        one, _ = model(x[i:i + 1], lengths[:1], target[i:i + 1])
        torch.testing.assert_close(one, logits[i:i + 1], rtol=1e-5, atol=1e-5)
    greedy = model.caption(images.numpy(), max_length=6)
    assert [g[0][0] for g in greedy] == [b[0][0] for b in model.caption(images.numpy(), beam=1, max_length=6)]
    with pytest.raises(ValueError, match="reads images of 16 x 16 x 3, got 8 x 8 x 3"):
        model.caption(np.zeros((8, 8, 3), dtype=np.uint8))


def test_a_tiny_captioner_learns_the_scenes(scenes, caption_run):
    result = rnnkit.evaluate(caption_run.dir)
    assert set(result["splits"]) == {"test", "unseen"}
    test = result["splits"]["test"]
    # Well above the image-blind baseline, the most frequent training caption for every image (a
    # short "a ... and a ..." caption, which BLEU-1 rewards: about 62 here, so CIDEr and BLEU-4 judge).
    data = read_captions([str(scenes / "captions.json")], (0.8, 0.1, 0.1), 0)
    common = Counter(c for caps in data["train"].captions for c in caps).most_common(1)[0][0]
    blind = caption_metrics([common] * len(data["test"]), data["test"].captions)
    assert test["cider"] > 2 * blind["cider"] and test["bleu4"] > blind["bleu4"] + 15, (blind, test["examples"][:3])
    beam = rnnkit.evaluate(caption_run.dir, beam=3)["splits"]["test"]
    assert beam["bleu4"] > 0.8 * test["bleu4"]


def test_a_caption_run_resumes_exactly(tmp_path, scenes):
    assert_resumes_exactly(tmp_path, scenes / "captions.json", dict(TINY, dropout=0.2, lr_schedule="constant",
                                                                    checkpoint_every=1000, eval_every=10), 30, 20)


def test_caption_command_and_its_attention(tmp_path, scenes, caption_run):
    image = scenes / "images" / "000000.png"
    p = run_cli("caption", caption_run.dir, image, "--beam", "3", "--nbest", "2", "--attention", tmp_path / "att.png")
    fields = p.stdout.strip().split("\t")
    assert p.returncode == 0 and fields[0] == str(image) and len(fields) == 5, p.stderr
    assert (tmp_path / "att.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "att.html").read_text()
    words = fields[1].split()
    assert page.count("<figure data-token=") == len(words) + 1 and "http" not in page  # each word and the end
    from test_inspect import _chromium_or_skip
    from rnnkit.inspect.browser import open_page
    _chromium_or_skip()
    dom, errors = open_page(tmp_path / "att.html", tmp_path / "att-shot.png")
    assert errors == [] and dom.count("<img") == len(words) + 2 and fields[1] in dom
    p = run_cli("eval", caption_run.dir, "--beam", "2")
    assert p.returncode == 0 and "test (beam 2): BLEU-1" in p.stdout and "unseen (beam 2)" in p.stdout, p.stderr
    Image.new("RGB", (30, 30)).save(tmp_path / "big.png")
    p = run_cli("caption", caption_run.dir, tmp_path / "big.png")
    assert p.returncode == 1 and "big.png is 30 x 30 pixels; this model reads 24 x 24" in p.stderr
    p = run_cli("translate", caption_run.dir, "abc")
    assert p.returncode == 2 and "translate needs a seq2seq run" in p.stderr
    p = run_cli("data", "scenes", "--out", scenes, "--num", "10")
    assert p.returncode == 1 and "already holds captions.json" in p.stderr
    p = run_cli("data", "scenes", "--out", tmp_path / "s", "--num", "12", "--size", "24", "--clutter", "3")
    assert p.returncode == 0 and "12 scenes of 24 x 24 pixels" in p.stdout and (tmp_path / "s" / "preview.png").exists()
