"""Video classification from frames: the moving-shapes generator, the per-frame CNN classifier, the
order-blind baseline (--cell none) and the `rnnkit data clips` command."""

import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.config import ClassifierConfig
from rnnkit.data.clips import MOTIONS, PAIRS, make_clips
from rnnkit.errors import ConfigError
from rnnkit.models.classifier import SequenceClassifier

from conftest import run_cli

TINY = dict(task="classify", hidden_size=24, embed_size=16, batch_size=16, eval_every=20, sample_every=0,
            progress=False, log=lambda m: None)


def _track(frames: np.ndarray):
    """Centroid (x, y) and area of the moving shape in each frame: it is drawn brighter (>= 150)
    than the still distractor (< 140), so with no noise its pixels are the bright ones."""
    out = []
    for f in frames:
        ys, xs = np.nonzero(f >= 145)
        out.append((xs.mean(), ys.mean(), len(xs)))
    return np.array(out)


def test_clips_move_as_their_class_says_and_repeat_by_seed():
    x, y = make_clips(160, seed=3, frames=6, size=32, noise=0.0)
    assert x.shape == (160, 6, 32, 32) and x.dtype == np.uint8
    assert sorted(set(y)) == sorted(MOTIONS) and all((y == m).sum() == 20 for m in MOTIONS)  # balanced
    for frames, label in zip(x, y):
        t = _track(frames)
        dx, dy, growth = t[-1] - t[0]
        v = np.diff(t[:, :2], axis=0)
        turn = np.sign(v[:-1, 0] * v[1:, 1] - v[:-1, 1] * v[1:, 0]).sum()  # > 0: clockwise on screen (y down)
        expected = {"right": dx > 3, "left": dx < -3, "down": dy > 3, "up": dy < -3, "grow": growth > 0,
                    "shrink": growth < 0, "clockwise": turn > 0, "anticlockwise": turn < 0}[label]
        assert expected, (label, t)
    again, y2 = make_clips(160, seed=3, frames=6, size=32, noise=0.0)
    assert np.array_equal(x, again) and np.array_equal(y, y2)
    assert not np.array_equal(make_clips(16, seed=4)[0], make_clips(16, seed=3)[0])


def _model(cell, pooling, **kw):
    torch.manual_seed(0)
    cfg = ClassifierConfig(cell=cell, num_layers=1, hidden_size=12, embed_size=8, num_classes=3, pooling=pooling,
                           num_features=8 * 8, frame_shape=[8, 8, 1], **kw)
    return SequenceClassifier(cfg).eval()


@pytest.mark.parametrize("cell, pooling", [("gru", "last"), ("lstm", "max"), ("none", "mean"), ("none", "max"),
                                           ("none", "attention")])
def test_padding_never_changes_a_clip_classification(cell, pooling):
    model = _model(cell, pooling, bidirectional=cell != "none")
    clips = [torch.rand(n, 8, 8, 1) for n in (3, 7, 1)]
    alone = torch.cat([model(c[None])[0] for c in clips])
    padded = torch.rand(3, 7, 8, 8, 1)  # garbage after each clip's end must not matter
    for i, c in enumerate(clips):
        padded[i, :len(c)] = c
    batched, _ = model(padded, torch.tensor([len(c) for c in clips]))
    assert torch.allclose(alone, batched, atol=1e-5)


def test_averaging_is_blind_to_the_order_and_the_recurrence_is_not():
    clip = torch.rand(1, 6, 8, 8, 1)
    backwards = clip.flip(1)
    averaging, recurrent = _model("none", "mean"), _model("gru", "last")
    assert torch.allclose(averaging(clip)[0], averaging(backwards)[0], atol=1e-6)
    assert not torch.allclose(recurrent(clip)[0], recurrent(backwards)[0], atol=1e-3)


def test_no_recurrence_is_for_classifiers_and_needs_a_pooling():
    with pytest.raises(ConfigError, match="--cell none has no final state"):
        ClassifierConfig(cell="none", pooling="last")
    p = run_cli("train", "--cell", "none", "--max-steps", "1")
    assert p.returncode == 1 and "--cell none (no recurrence) is for classifiers only" in p.stderr


def test_data_command_and_a_clip_classifier(tmp_path):
    out = tmp_path / "clips"
    p = run_cli("data", "clips", "--out", out, "--num", "240", "--frames", "4", "--size", "12", "--seed", "1")
    assert p.returncode == 0 and "240 clips of 4 frames" in p.stdout, p.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sizes"] == {"train": 192, "val": 24, "test": 24} and meta["pairs"] == [list(q) for q in PAIRS]
    assert (out / "preview.png").read_bytes()[:4] == b"\x89PNG"
    before = (out / "train.npz").read_bytes()
    p = run_cli("data", "clips", "--out", out, "--num", "10")
    assert p.returncode == 1 and "pass --force" in p.stderr and (out / "train.npz").read_bytes() == before
    run = rnnkit.train(out / "train.npz", out=tmp_path / "r", val=str(out / "val.npz"), test=str(out / "test.npz"),
                       max_steps=30, **TINY)
    model = rnnkit.load(run.dir)
    assert model.config.frame_shape == [12, 12, 1] and model.config.num_features == 144
    with np.load(out / "test.npz") as f:
        frames = f["x"][:2, ..., None] / 255.0  # (2, T, H, W, 1), as the loader reads them
    assert [len(p) for p in model.predict(list(frames), top_k=3)] == [3, 3]
    assert rnnkit.evaluate(run.dir)["examples"] == 24
