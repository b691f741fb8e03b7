"""What --resume does with the stop conditions: every stored limit (max_steps, max_epochs, budget) x
every limit given at resume (none, max_steps, max_epochs, budget).

The rule (rnnkit.train.resume_limits): limits given at resume replace all the stored ones; steps and
epochs count from the start of the run; a budget is more time for this invocation. With none given the
stored limits apply, and a run that already reached them says so, names the flags, and trains nothing.
"""

import json
import math
import shutil

import pytest

import rnnkit
from rnnkit import checkpoint as ckpt
from rnnkit.errors import ConfigError

from conftest import SMALL, run_cli

QUIET = dict(progress=False, eval_every=0, sample_length=0, checkpoint_every=1000)
STORED = {"max_steps": 10, "max_epochs": 1, "budget": 1.0}  # one stored limit per base run


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory, shakespeare_text):
    path = tmp_path_factory.mktemp("text") / "tiny.txt"  # 42 steps of 8 x 16 characters per epoch
    path.write_text(shakespeare_text[:6_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_text):
    """One finished run per kind of stored limit."""
    base = tmp_path_factory.mktemp("finished")
    runs = {}
    for name, value in STORED.items():
        run = rnnkit.train(tiny_text, out=base / name, log=lambda m: None, **{name: value}, **SMALL, **QUIET)
        assert run.stopped_by == name
        runs[name] = run.dir
    return runs


def _position(run_dir):
    progress = ckpt.load_tensors(run_dir / ckpt.TRAINER)[1]["progress"]
    steps_per_epoch = 42  # int(0.9 * 6000) characters in 8 streams of 16-step chunks
    return progress["step"], progress["epoch"] + progress["chunk"] / steps_per_epoch, progress["elapsed"]


def _copy(finished, stored, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished[stored], run)
    return run


def _stored_limits(run):
    train = json.loads((run / ckpt.CONFIG).read_text())["train"]
    return {k: train[k] for k in STORED}


@pytest.mark.parametrize("stored", STORED)
def test_nothing_given_and_the_stored_limit_reached_trains_nothing_and_says_why(finished, stored, tmp_path):
    run = _copy(finished, stored, tmp_path)
    before = _position(run)
    lines = []
    result = rnnkit.train(resume=run, progress=False, log=lines.append)
    assert result.stopped_by == stored and result.step == before[0] and _position(run)[0] == before[0]
    said = lines[-1]
    assert "already reached" in said and "--max-steps" in said and "--budget" in said, said
    assert {"max_steps": "--max-steps 10", "max_epochs": "--max-epochs 1", "budget": "--budget 1s"}[stored] in said


@pytest.mark.parametrize("stored", STORED)
def test_max_steps_given_replaces_every_stored_limit(finished, stored, tmp_path):
    run = _copy(finished, stored, tmp_path)
    step, _, _ = _position(run)
    result = rnnkit.train(resume=run, max_steps=step + 7, log=lambda m: None, **QUIET)
    assert result.stopped_by == "max_steps" and result.step == step + 7
    assert _stored_limits(run) == {"max_steps": step + 7, "max_epochs": 0, "budget": 0}
    rows = [json.loads(line) for line in (run / ckpt.METRICS).read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, step + 8))  # every step once


@pytest.mark.parametrize("stored", STORED)
def test_max_epochs_given_counts_from_the_start(finished, stored, tmp_path):
    run = _copy(finished, stored, tmp_path)
    _, epochs, _ = _position(run)
    target = math.floor(epochs) + 1
    result = rnnkit.train(resume=run, max_epochs=target, log=lambda m: None, **QUIET)
    assert result.stopped_by == "max_epochs" and result.step == 42 * target
    assert _stored_limits(run) == {"max_steps": 0, "max_epochs": target, "budget": 0}


@pytest.mark.parametrize("stored", STORED)
def test_budget_given_is_more_time(finished, stored, tmp_path):
    run = _copy(finished, stored, tmp_path)
    step, _, elapsed = _position(run)
    result = rnnkit.train(resume=run, budget="1s", log=lambda m: None, **QUIET)
    new_step, _, new_elapsed = _position(run)
    assert result.stopped_by == "budget" and result.step == new_step > step
    assert elapsed + 1.0 <= new_elapsed < elapsed + 5.0
    assert _stored_limits(run) == {"max_steps": 0, "max_epochs": 0, "budget": pytest.approx(elapsed + 1.0)}


def test_the_limits_given_at_resume_survive_a_later_plain_resume(finished, tmp_path):
    run = _copy(finished, "max_steps", tmp_path)
    rnnkit.train(resume=run, max_steps=12, log=lambda m: None, **QUIET)
    lines = []
    assert rnnkit.train(resume=run, progress=False, log=lines.append).step == 12
    assert "already reached --max-steps 12 (at step 12)" in lines[-1]


def test_a_limit_already_behind_the_run_is_an_error_that_says_where_it_stands(finished, tmp_path):
    run = _copy(finished, "max_steps", tmp_path)
    with pytest.raises(ConfigError, match=r"--max-steps 5 \(at step 10\) is already reached; give a higher "
                                          r"--max-steps"):
        rnnkit.train(resume=run, max_steps=5, **QUIET)
    with pytest.raises(ConfigError, match="give a limit > 0"):
        rnnkit.train(resume=run, max_steps=0, **QUIET)
    assert _stored_limits(run) == {"max_steps": 10, "max_epochs": 0, "budget": 0}  # untouched


def test_the_readme_scenario_from_the_cli(tmp_path, tiny_text):
    """`rnnkit train --budget ...`, then `rnnkit train --resume RUN --max-steps N` trains up to N."""
    run = tmp_path / "run"
    tiny = ["--hidden-size", "32", "--embed-size", "16", "--batch-size", "8", "--seq-len", "16", "--sample-length",
            "0", "--no-progress"]
    assert run_cli("train", tiny_text, "--out", run, "--budget", "1s", *tiny).returncode == 0
    step = _position(run)[0]
    p = run_cli("train", "--resume", run, "--max-steps", step + 30, "--no-progress", "--sample-length", "0")
    assert p.returncode == 0 and f"stopped by max_steps after {step + 30} steps" in p.stderr, p.stderr
    p = run_cli("train", "--resume", run, "--no-progress", "--sample-length", "0")
    assert p.returncode == 0 and f"already reached --max-steps {step + 30}" in p.stderr, p.stderr
    p = run_cli("train", "--resume", run, "--max-steps", 3, "--no-progress")
    assert p.returncode == 1 and "is already reached" in p.stderr.strip().splitlines()[-1]
