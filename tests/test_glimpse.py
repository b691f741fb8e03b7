"""Classifying images by glimpses on the shared engine: cluttered digits, the retina against its slow
reference, REINFORCE moving the locations, the whole-image baselines, exact resume, the commands and
--task video."""

import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.config import GlimpseConfig
from rnnkit.data.clips import write_clips
from rnnkit.data.digits import digit_split, load_digits, write_digits
from rnnkit.errors import DataError
from rnnkit.models.glimpse import GlimpseClassifier, pyramid, retina, retina_reference

from conftest import assert_resumes_exactly, run_cli

TINY = dict(task="glimpse", hidden_size=32, glimpse_hidden=16, batch_size=16, eval_every=100, lr=3e-3,
            sample_every=0, progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    write_digits(out, 400, seed=3, size=16)
    return out


def test_canvases_hold_their_digit_where_marked_and_repeat_by_seed(tmp_path, digits):
    images, labels = load_digits()
    train, val, test = digit_split()
    assert len(train) + len(val) + len(test) == 1797 and not (set(train) & set(test) or set(val) & set(test))
    assert all(np.bincount(labels[part], minlength=10).min() > 0 for part in (train, val, test))
    with np.load(digits / "test.npz") as f:
        x, y, where = f["x"], f["y"], f["where"]
    assert x.shape == (40, 16, 16) and x.dtype == np.uint8 and where.shape == (40, 2)
    test_images = {img.tobytes(): str(lab) for img, lab in zip(images[test], labels[test])}
    for canvas, label, (cx, cy) in zip(x, y, where):
        left, top = int(cx) - 4, int(cy) - 4
        window = canvas[top:top + 8, left:left + 8]
        # the digit is under the clutter (combined by maximum): some test image of this class fits beneath it
        fits = [lab for img, lab in test_images.items() if (window >= np.frombuffer(img, np.uint8).reshape(8, 8)).all()]
        assert label in fits
    write_digits(tmp_path, 400, seed=3, size=16)
    assert all((tmp_path / n).read_bytes() == (digits / n).read_bytes() for n in ("train.npz", "val.npz", "test.npz"))
    meta = json.loads((digits / "meta.json").read_text())
    assert meta["sizes"] == {"train": 320, "val": 40, "test": 40} and meta["classes"] == [str(i) for i in range(10)]


@pytest.mark.parametrize("channels", [1, 3])
def test_retina_matches_its_slow_reference(channels):
    torch.manual_seed(0)
    images = torch.rand(5, channels, 13, 11)
    loc = torch.tensor([[0.0, 0.0], [-1.0, -1.0], [1.0, 1.0], [0.37, -0.81], [-0.6, 0.95]])
    levels, pad = pyramid(images, 4, 3)
    fast = retina(levels, pad, loc, 4)
    assert fast.shape == (5, 3, channels, 4, 4)
    torch.testing.assert_close(fast, retina_reference(images, loc, 4, 3))


@pytest.mark.parametrize("policy", ["gaussian", "grid"])
def test_reinforce_moves_the_locations_toward_the_reward(policy):
    """With the classifier's loss left out, the policy gradient alone makes the sampled locations
    that were rewarded (here: those right of centre) more likely."""
    torch.manual_seed(0)
    cfg = GlimpseConfig(hidden_size=16, glimpse_hidden=8, glimpses=2, glimpse_size=4, scales=2, location_std=0.2,
                        num_classes=2, image_shape=[16, 16, 1], location_policy=policy)
    model = GlimpseClassifier(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    images = torch.rand(64, 16, 16, 1)
    first = model(images).locations[:, 1, 0].mean()
    for _ in range(60):
        out = model(images, sample=True)
        reward = (out.locations[:, 1, 0] > 0).float()[:, None]
        loss = -(out.log_pi * (reward - reward.mean())).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model(images).locations[:, 1, 0]
    assert (after > 0).float().mean() > 0.95 and after.mean() > first + 0.1


def test_a_glimpse_model_learns_and_its_baselines_run(tmp_path, digits):
    data = dict(val=str(digits / "val.npz"), test=str(digits / "test.npz"))
    ram = rnnkit.train(digits / "train.npz", out=tmp_path / "ram", max_steps=150, glimpses=3, glimpse_size=4,
                       **data, **TINY)
    result = rnnkit.evaluate(ram.dir)
    assert result["network"] == "ram" and result["examples"] == 40 and result["glimpses"] == 3
    assert len(result["on_object"]) == 3 and all(0 <= v <= 1 for v in result["on_object"])
    losses = [r["loss"] for r in map(json.loads, (ram.dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.3  # the hybrid loss goes down
    for network in ("cnn", "mlp"):
        run = rnnkit.train(digits / "train.npz", out=tmp_path / network, max_steps=60, network=network, **data, **TINY)
        assert rnnkit.evaluate(run.dir)["network"] == network and "on_object" not in rnnkit.evaluate(run.dir)
    model = rnnkit.load(ram.dir)
    with np.load(digits / "test.npz") as f:
        top = model.predict(f["x"][:3, ..., None] / 255.0, top_k=2)
    assert len(top) == 3 and all(len(t) == 2 and t[0][1] >= t[1][1] for t in top)


def test_a_glimpse_run_resumes_exactly(tmp_path, digits):
    assert_resumes_exactly(tmp_path, digits / "train.npz",
                           dict(TINY, glimpses=3, lr_schedule="constant", checkpoint_every=1000, eval_every=10,
                                val=str(digits / "val.npz")), 30, 20)


def test_glimpse_commands(tmp_path):
    out = tmp_path / "d"
    p = run_cli("data", "digits", "--out", out, "--num", "200", "--size", "16", "--clutter", "2")
    assert p.returncode == 0 and "200 canvases of 16 x 16 pixels" in p.stdout, p.stderr
    assert (out / "preview.png").read_bytes()[:4] == b"\x89PNG"
    p = run_cli("train", out / "train.npz", "--task", "glimpse", "--val", out / "val.npz", "--test", out / "test.npz",
                "--out", tmp_path / "run", "--max-steps", "5", "--batch-size", "8", "--hidden-size", "16",
                "--glimpses", "2", "--no-progress")
    assert p.returncode == 0, p.stderr
    p = run_cli("eval", tmp_path / "run", "--glimpses", tmp_path / "g.png", "--confusion", tmp_path / "c.png")
    assert p.returncode == 0 and "accuracy" in p.stdout and "glimpses on the object" in p.stdout, p.stderr
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "c.png").exists()
    # the baselines have no glimpses to draw (an option of the glimpse task alone picks the task)
    mlp = rnnkit.train(out / "train.npz", out=tmp_path / "mlp", max_steps=2, network="mlp", test=str(out / "test.npz"),
                       **{**TINY, "task": None})
    assert json.loads((mlp.dir / "config.json").read_text())["task"] == "glimpse"
    with pytest.raises(DataError, match="sees the whole image"):
        rnnkit.evaluate(mlp.dir, glimpses_png=str(tmp_path / "m.png"))
    # --task video is the classifier over clips, and says so for other data
    p = run_cli("train", out / "train.npz", "--task", "video", "--out", tmp_path / "v", "--max-steps", "2")
    assert p.returncode == 2 and "--task video reads clips" in p.stderr and "x has 3 dimensions" in p.stderr
    clips = tmp_path / "clips"
    write_clips(clips, 60, frames=3, size=12)
    p = run_cli("train", clips / "train.npz", "--task", "video", "--out", tmp_path / "v", "--max-steps", "2",
                "--batch-size", "8", "--hidden-size", "16", "--num-layers", "1", "--no-progress")
    assert p.returncode == 0 and json.loads((tmp_path / "v" / "config.json").read_text())["task"] == "classify", p.stderr
