"""Forecasting a real-valued series on the shared engine: reading the CSV, the windows, training,
evaluation one and several steps ahead against persistence, exact resume, the commands."""

import json
import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.data.series import WindowBatches, read_series
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.forecaster import SeriesRNN

from conftest import assert_resumes_exactly, run_cli

TINY = dict(task="series", hidden_size=24, embed_size=8, batch_size=16, seq_len=24, eval_every=50, sample_every=0,
            progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def waves(tmp_path_factory):
    """Two columns over 300 days: a noisy sine of period 25 and a slower, smaller cosine. (No trend: a
    recurrent forecaster does not extrapolate beyond the values it was trained on; difference first.)"""
    rng = np.random.default_rng(0)
    t = np.arange(300)
    a = 50 + 40 * np.sin(2 * math.pi * t / 25) + rng.normal(0, 2, 300)
    b = 5 * np.cos(2 * math.pi * t / 60) + rng.normal(0, 0.1, 300)
    path = tmp_path_factory.mktemp("series") / "waves.csv"
    path.write_text("day,a,b\n" + "".join(f"{d},{x:.4f},{y:.4f}\n" for d, x, y in zip(t, a, b)))
    return path


@pytest.fixture(scope="module")
def series_run(tmp_path_factory, waves):
    return rnnkit.train(waves, out=tmp_path_factory.mktemp("runs") / "s", time_column="day", max_steps=600, **TINY)


@pytest.mark.parametrize("content, message", [
    ("time,v\n1,2\n2,\n3,4\n", "row 3: missing or non-numeric value '' in column 'v'"),
    ("time,v\n1,2\n2,nan\n", "row 3: missing or non-numeric value 'nan' in column 'v'"),
    ("time,v\n1,2\n3,4\n2,5\n", "row 4: time 2 does not come after the row before"),
    ("t,v\n1,2\n2,3\n", "no time column 'time' (columns: t, v)"),
    ("time,v\n1,2\n2,3,4\n", "row 3: 3 fields, but the header has 2"),
])
def test_bad_series_are_named_by_row(tmp_path, content, message):
    path = tmp_path / "s.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_series(str(path))


def test_windows_cover_the_training_part_in_a_seeded_order():
    values = np.arange(40, dtype=np.float64)[:, None]  # (N, 1)
    w = WindowBatches(values, batch_size=4, seq_len=5, seed=1)
    assert len(w) == 35 // 4
    x, y = w.get(3, epoch=2)
    assert x.shape == (4, 5, 1) and torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    assert torch.equal(w.get(3, epoch=2)[0], WindowBatches(values, 4, 5, seed=1).get(3, epoch=2)[0])


def test_the_forecaster_learns_and_beats_persistence(series_run, waves):
    config = json.loads((series_run.dir / "config.json").read_text())
    values = np.loadtxt(waves, delimiter=",", skiprows=1)[:, 1:]
    assert config["task"] == "series" and config["columns"] == ["a", "b"]
    assert np.allclose(config["mean"], values[:210].mean(axis=0))  # the training part (70%) only
    one = rnnkit.evaluate(series_run.dir)
    assert one["split"] == "test" and one["steps"] == 60
    truth = values[240:]
    assert one["persistence_mse"] == pytest.approx(((values[239:299] - truth) ** 2).mean())
    assert one["mse"] < one["persistence_mse"] and one["mse_by_column"][0] < one["persistence_mse_by_column"][0]
    five = rnnkit.evaluate(series_run.dir, horizon=5)
    assert five["persistence_mse"] == pytest.approx(((values[235:295] - truth) ** 2).mean())
    assert five["mse"] < five["persistence_mse"]
    mine = rnnkit.load(series_run.dir).evaluate(values, horizon=5, start=240)  # the loaded model says the same
    assert mine["mse"] == pytest.approx(five["mse"]) and mine["steps"] == 60


def test_several_steps_ahead_is_the_model_fed_its_own_predictions(series_run, waves):
    model = rnnkit.load(series_run.dir)
    assert isinstance(model, SeriesRNN)
    values = np.loadtxt(waves, delimiter=",", skiprows=1)[:, 1:]
    norm = (values - model.mean) / model.std
    assert np.allclose(model.ahead(norm, 250, 1), model.one_step(norm)[250:])
    by_hand = norm[:248].copy()  # predict step 250 from steps 0..247: three predictions, fed back
    for _ in range(3):
        nxt = model.one_step(np.vstack([by_hand, np.zeros((1, 2))]))[-1]
        by_hand = np.vstack([by_hand, nxt])
    assert np.allclose(model.ahead(norm, 250, 3)[0], by_hand[-1], atol=1e-5)
    future = model.forecast(values[:248], steps=3)  # in the data's units
    assert np.allclose(future[-1], by_hand[-1] * model.std + model.mean, atol=1e-4)


def test_a_forecaster_resumes_exactly(tmp_path, waves):
    opts = dict(TINY, time_column="day", lr_schedule="constant", dropout=0.1, checkpoint_every=1000)
    assert_resumes_exactly(tmp_path, waves, opts, 30, 15, losses=False)


def test_forecaster_commands(tmp_path, series_run, trained_run):
    p = run_cli("eval", series_run.dir, "--horizon", "3", "--plot", tmp_path / "f.png")
    assert p.returncode == 0 and "3 step(s) ahead" in p.stdout and "persistence MSE" in p.stdout, p.stderr
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="--horizon is for forecasters"):
        rnnkit.evaluate(trained_run.dir, horizon=2)
    with pytest.raises(ConfigError, match="--horizon must be >= 1"):
        rnnkit.evaluate(series_run.dir, horizon=0)
