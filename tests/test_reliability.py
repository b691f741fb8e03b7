"""Faults and hostile input: kills at any moment, malicious files, failing disks, concurrent runs.

Everything goes through the real `rnnkit` command in subprocesses with real signals and real
file systems (a small tmpfs where the test may mount one).
"""

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit import checkpoint as ckpt
from rnnkit.errors import RnnkitError
from rnnkit.train import read_metrics

from conftest import run_cli, start_cli

MODEL = ["--hidden-size", "96", "--embed-size", "16", "--num-layers", "2", "--batch-size", "16", "--seq-len", "32",
         "--sample-every", "0", "--no-progress", "--seed", "7"]


def _last_step(run: Path) -> int:
    """The last step metrics.jsonl records (lines cut by a kill are skipped)."""
    return max([r["step"] for r in read_metrics(run / ckpt.METRICS) if "loss" in r], default=0)


def _temporaries(run: Path) -> list:
    return sorted(p.name for p in run.glob(".*.tmp"))


def _wait(predicate, proc, timeout=60.0, poll=0.01) -> bool:
    """Poll until predicate() or the process ends; True if the predicate came true first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    raise AssertionError("timed out")


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, small_corpus):
    every, total = 10, 400
    args = ["--max-steps", total, "--checkpoint-every", every, "--eval-every", 100, *MODEL]
    ref = run_cli("train", small_corpus, "--out", tmp_path / "ref", *args)
    assert ref.returncode == 0, ref.stderr

    run, rng = tmp_path / "run", random.Random(0)
    kills, mid_write, lost = 0, 0, []
    proc = start_cli("train", small_corpus, "--out", run, *args)
    while True:
        saved = ckpt.load_tensors(run / ckpt.TRAINER)[1]["progress"]["step"] if (run / ckpt.TRAINER).exists() else 0
        # Let the process get past its start and write at least one checkpoint of its own, then kill
        # it either at a random moment or as soon as a checkpoint file is being written.
        if _wait(lambda: _last_step(run) > saved + every, proc):
            if kills % 2:
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                _wait(lambda: bool(_temporaries(run)), proc, timeout=10, poll=0.0002)
        if proc.poll() is not None:  # it finished first
            assert proc.returncode == 0, proc.communicate()[1]
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        mid_write += bool(_temporaries(run))  # a temporary file left behind: killed inside a write
        # Nothing readable became unreadable; at most --checkpoint-every steps of work were lost.
        for name in (ckpt.TRAINER, ckpt.LAST, ckpt.CONFIG):
            assert (run / name).exists()
        rnnkit.load(run, "best"), rnnkit.load(run, "last")
        resumable = ckpt.load_tensors(run / ckpt.TRAINER)[1]["progress"]["step"]
        lost.append(_last_step(run) - resumable)
        assert 0 <= lost[-1] <= every, (lost, _last_step(run), resumable)
        if kills >= 10 and mid_write:
            break
        proc = start_cli("train", "--resume", run, "--no-progress")
    assert kills >= 10 and mid_write >= 1, (kills, mid_write)
    print(f"\n{kills} SIGKILLs, {mid_write} inside a checkpoint write; steps lost per kill: {lost}")
    if proc.returncode:  # killed: finish the run
        done = run_cli("train", "--resume", run, "--no-progress")
        assert done.returncode == 0, done.stderr
    assert not _temporaries(run)
    for name in (ckpt.LAST, ckpt.BEST, ckpt.TRAINER):
        a, _ = ckpt.load_tensors(tmp_path / "ref" / name)
        b, _ = ckpt.load_tensors(run / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name  # bit for bit
    assert [r["loss"] for r in read_metrics(run / ckpt.METRICS) if "loss" in r] == \
        [r["loss"] for r in read_metrics(tmp_path / "ref" / ckpt.METRICS) if "loss" in r]


def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path, small_corpus):
    run = tmp_path / "run"
    proc = start_cli("train", small_corpus, "--out", run, "--max-steps", 100000, "--checkpoint-every", 100000, *MODEL)
    _wait(lambda: _last_step(run) >= 15, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "stopped by SIGTERM" in err and "--resume" in err
    assert ckpt.load_tensors(run / ckpt.TRAINER)[1]["progress"]["step"] == _last_step(run) >= 15


# -- checkpoints are data, not code ------------------------------------------------------------------


class _Plant:
    """Unpickling this creates the marker file: proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious_files(marker: Path) -> dict:
    raw = pickle.dumps({"weights": _Plant(marker)})
    zipped = marker.parent / "zipped.pt"
    torch.save({"weights": _Plant(marker)}, zipped)  # what torch.save would produce: a zip around a pickle
    return {"pickle": raw, "torch.save": zipped.read_bytes()}


RUN_FILES = [ckpt.CONFIG, ckpt.BEST, ckpt.LAST, ckpt.TRAINER, ckpt.METRICS]


def _readers(run):
    """Everything that reads a run directory: loading (what sample, eval and inspect do) and resuming."""
    return {"load best": lambda: rnnkit.load(run, "best"), "load last": lambda: rnnkit.load(run, "last"),
            "resume": lambda: rnnkit.train(resume=run, max_steps=152, progress=False, log=lambda m: None)}


# Which reader must refuse which planted file (the others do not read it, or, for the metrics.jsonl
# log, skip the lines that are not JSON).
MUST_REFUSE = {(ckpt.CONFIG, "load best"), (ckpt.CONFIG, "load last"), (ckpt.CONFIG, "resume"),
               (ckpt.BEST, "load best"), (ckpt.LAST, "load last"), (ckpt.TRAINER, "resume")}


def test_malicious_pickles_are_never_executed(tmp_path, trained_run):
    marker = tmp_path / "pwned"
    refused, tried = set(), 0
    for name in RUN_FILES:
        for kind, payload in _malicious_files(marker).items():
            for reader in _readers(None):
                run = tmp_path / f"{name}-{kind}-{reader}"
                shutil.copytree(trained_run.dir, run)
                (run / name).write_bytes(payload)
                tried += 1
                try:
                    _readers(run)[reader]()
                except RnnkitError as exc:
                    assert "\n" not in str(exc) and ("corrupted" in str(exc) or "truncated" in str(exc)), exc
                    refused.add((name, reader))
                assert not marker.exists(), (name, kind, reader)
    assert tried == 30 and MUST_REFUSE <= refused
    print(f"\n{tried} planted files read, {len(refused)} (file, reader) pairs refused, none executed")
    # The same through the command line: one line, exit status 1, nothing executed.
    for name, command in [(ckpt.CONFIG, ["sample", "RUN"]), (ckpt.BEST, ["eval", "RUN"]),
                          (ckpt.LAST, ["sample", "RUN", "--checkpoint", "last"]),
                          (ckpt.TRAINER, ["train", "--resume", "RUN", "--no-progress"])]:
        run = tmp_path / f"cli-{name}"
        shutil.copytree(trained_run.dir, run)
        (run / name).write_bytes(_malicious_files(marker)["torch.save"])
        p = run_cli(*[str(run) if a == "RUN" else a for a in command])
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1 and "corrupted" in lines[0], p.stderr
        assert not marker.exists()


def test_a_malicious_token_cache_is_never_executed(tmp_path, small_corpus):
    marker = tmp_path / "pwned"
    env_cache = Path(os.environ["RNNKIT_CACHE"])
    corpus = tmp_path / "corpus.txt"  # a path of its own: the only cache entry that names it is this test's
    corpus.write_bytes(small_corpus.read_bytes())
    first = run_cli("prepare", corpus)
    assert first.returncode == 0, first.stderr
    [entry] = [p.parent for p in env_cache.glob("*/meta.json") if str(corpus) in p.read_text()]
    for name in ("meta.json", "vocab.json", "tokens.bin"):
        for payload in _malicious_files(marker).values():
            (entry / name).write_bytes(payload)
            p = run_cli("prepare", corpus)
            assert p.returncode == 0 and not marker.exists(), p.stderr  # seen as stale and rebuilt
    assert json.loads((entry / "meta.json").read_text())["num_tokens"] == 60_000


# -- the environment fails ---------------------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs mounted for the test (needs root); yields a function to set its size/mode."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")

    def remount(options):
        subprocess.run(["mount", "-o", f"remount,{options}", str(mnt)], check=True)
    yield mnt, remount
    subprocess.run(["umount", str(mnt)], check=True)


def _fill(directory: Path, leave: int) -> Path:
    """Fill the file system of `directory` until `leave` bytes are free."""
    st = os.statvfs(directory)
    filler = directory / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def test_full_disk_gives_a_clear_error_and_keeps_the_checkpoint(tmpfs, small_corpus):
    mnt, _ = tmpfs
    run = mnt / "run"
    first = run_cli("train", small_corpus, "--out", run, "--max-steps", 20, "--checkpoint-every", 10, *MODEL)
    assert first.returncode == 0, first.stderr
    before = (run / ckpt.TRAINER).read_bytes()
    filler = _fill(mnt, leave=64 * 1024)  # room for the log, not for a checkpoint
    p = run_cli("train", "--resume", run, "--max-steps", 40, "--no-progress")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "cannot write" in lines[-1] and "No space left on device" in lines[-1], lines
    assert (run / ckpt.TRAINER).read_bytes() == before and not _temporaries(run)
    filler.unlink()
    p = run_cli("train", "--resume", run, "--max-steps", 40, "--no-progress")  # space again: it goes on
    assert p.returncode == 0, p.stderr
    assert ckpt.load_tensors(run / ckpt.TRAINER)[1]["progress"]["step"] == 40


def test_read_only_run_directory(tmpfs, small_corpus):
    mnt, remount = tmpfs
    run = mnt / "run"
    first = run_cli("train", small_corpus, "--out", run, "--max-steps", 10, *MODEL)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    remount("ro")
    try:
        p = run_cli("train", "--resume", run, "--max-steps", 20, "--no-progress")
        assert p.returncode == 1 and p.stderr.strip().splitlines() == [
            f"rnnkit train: error: cannot lock run directory {run}: Read-only file system"]
        p = run_cli("train", small_corpus, "--out", mnt / "new", *MODEL)
        assert p.returncode == 1 and "Read-only file system" in p.stderr and "Traceback" not in p.stderr
        p = run_cli("sample", run, "--length", "20", "--seed", "1")  # reading needs no writing
        assert p.returncode == 0 and len(p.stdout) >= 20, p.stderr
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    finally:
        remount("rw")


def test_two_runs_in_one_directory(tmp_path, small_corpus):
    run = tmp_path / "run"
    first = start_cli("train", small_corpus, "--out", run, "--max-steps", 100000, "--checkpoint-every", 20, *MODEL)
    try:
        _wait(lambda: _last_step(run) >= 5, first)
        expected = f"rnnkit train: error: run directory {run} is in use by another rnnkit process (pid {first.pid}); " \
                   "wait for it to finish or stop it"
        for args in (["--resume", run, "--no-progress"], [small_corpus, "--out", run, "--force", *MODEL]):
            p = run_cli("train", *args)
            assert p.returncode == 1 and p.stderr.strip().splitlines() == [expected], p.stderr
        assert first.poll() is None  # the first run never noticed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    p = run_cli("train", "--resume", run, "--max-steps", _last_step(run) + 5, "--no-progress")  # free again
    assert p.returncode == 0, p.stderr
