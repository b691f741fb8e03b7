"""Data-parallel training through torchrun with 2 CPU processes (gloo), in real subprocesses."""

import json
import os

import torch

from rnnkit import checkpoint as ckpt

import _forked_cli
from conftest import run_cli

COMMON = ["--hidden-size", "16", "--embed-size", "8", "--num-layers", "2", "--seq-len", "8", "--sample-length", "0",
          "--no-progress", "--eval-every", "0", "--lr-schedule", "constant", "--threads", "1",
          "--precision", "fp32"]  # the comparison at 1e-6 is of fp32 arithmetic


def torchrun(*args):
    """`torchrun --standalone --nproc-per-node 2 -m rnnkit ARGS`: the launcher forked like run_cli's commands
    (conftest.py), its two workers fresh interpreters."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return _forked_cli.run(["--standalone", "--nproc-per-node", "2", "-m", "rnnkit", *map(str, args)], env,
                           module="torch.distributed.run")


def _weights(run):
    return ckpt.load_tensors(run / ckpt.LAST)[0]


def test_two_processes_equal_one_process_on_the_combined_batch(tmp_path, small_corpus):
    one = run_cli("train", small_corpus, "--out", tmp_path / "one", "--batch-size", "8", "--max-steps", "6", *COMMON)
    assert one.returncode == 0, one.stderr
    two = torchrun("train", small_corpus, "--out", tmp_path / "two", "--batch-size", "4", "--max-steps", "6", *COMMON)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes" in two.stderr
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
    # Process 0 alone wrote the metrics: one row per step.
    rows = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 7))


def test_resume_with_the_same_number_of_processes(tmp_path, small_corpus):
    straight = torchrun("train", small_corpus, "--out", tmp_path / "s", "--batch-size", "4", "--max-steps", "8",
                        "--dropout", "0.1", *COMMON)
    assert straight.returncode == 0, straight.stderr[-3000:]
    first = torchrun("train", small_corpus, "--out", tmp_path / "r", "--batch-size", "4", "--max-steps", "4",
                     "--dropout", "0.1", *COMMON)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = torchrun("train", "--resume", tmp_path / "r", "--max-steps", "8", "--no-progress", "--sample-length", "0")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(tmp_path / "s"), _weights(tmp_path / "r")
    assert all(torch.equal(a[k], b[k]) for k in a)  # carried state and each process's dropout RNG restored
    alone = run_cli("train", "--resume", tmp_path / "r", "--max-steps", "10", "--no-progress")
    assert alone.returncode == 1 and "trained by 2 process(es)" in alone.stderr and "Traceback" not in alone.stderr


def test_a_glimpse_run_trains_in_two_processes(tmp_path):
    """The recurrent attention model's sampled locations and REINFORCE term go through DDP."""
    from rnnkit.data.digits import write_digits
    write_digits(tmp_path / "d", 200, size=16)
    p = torchrun("train", tmp_path / "d" / "train.npz", "--task", "glimpse", "--glimpses", "3", "--out", tmp_path / "g",
                 "--batch-size", "8", "--max-steps", "3", "--hidden-size", "16", "--no-progress", "--eval-every", "0",
                 "--threads", "1")
    assert p.returncode == 0 and "2 processes" in p.stderr, p.stderr[-3000:]
