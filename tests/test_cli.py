"""The real `rnnkit` command in subprocesses: happy paths, help, signals. (Every bad input is a row of
the README's table, run by tests/test_bad_input_table.py.)"""

import json
import re
import subprocess
import sys

import pytest

from conftest import run_cli, start_cli

TINY = ["--hidden-size", "16", "--embed-size", "8", "--num-layers", "1", "--batch-size", "4", "--seq-len", "8",
        "--sample-every", "0", "--no-progress"]


def _one_line_error(proc, *needles, after_progress=False):
    """Exit status 1 or 2 and one line of error; a failure mid-training may follow progress lines."""
    assert proc.returncode in (1, 2), proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or after_progress, proc.stderr
    assert lines[-1].startswith("rnnkit")
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def test_train_sample_eval_round_trip(tmp_path, small_corpus):
    run = tmp_path / "run"
    p = run_cli("train", small_corpus, "--out", run, "--max-steps", "30", "--sample-length", "40", *TINY)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.rstrip("\n")) == 40  # the closing sample goes to stdout
    p = run_cli("sample", run, "--length", "50", "--seed", "1", "--prime", "ROMEO:", "--top-p", "0.9")
    assert p.returncode == 0 and p.stdout.startswith("ROMEO:") and len(p.stdout) == 6 + 50 + 1
    again = run_cli("sample", run, "--length", "50", "--seed", "1", "--prime", "ROMEO:", "--top-p", "0.9")
    assert again.stdout == p.stdout
    prime = tmp_path / "prime.txt"
    prime.write_text("JULIET:\n")
    p = run_cli("sample", run, "--length", "10", "--prime-file", prime, "--num-samples", "2", "--greedy")
    assert p.stdout.count("JULIET:\n") == 2
    # Several samples are told apart even when a stop string ends each one with blank lines.
    p = run_cli("sample", run, "--length", "300", "--num-samples", "3", "--stop", "\n", "--seed", "4")
    parts = re.split(r"^--- sample (\d) of 3 ---\n", p.stdout, flags=re.M)
    assert p.returncode == 0 and parts[0] == "" and parts[1::2] == ["1", "2", "3"], p.stdout
    p = run_cli("sample", run, "--length", "300", "--num-samples", "3", "--stop", "\n", "--seed", "4", "--jsonl")
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["sample"] for r in rows] == [1, 2, 3] and [r["text"] + "\n" for r in rows] == parts[2::2]
    p = run_cli("eval", run, "--json")
    result = json.loads(p.stdout)
    assert result["split"] == "test" and result["bpc"] > 0
    p = run_cli("eval", run, small_corpus)
    assert "nats/char" in p.stdout and "bits/char" in p.stdout and "perplexity" in p.stdout


def test_interrupted_run_resumes_from_the_cli(tmp_path, small_corpus):
    run = tmp_path / "run"
    assert run_cli("train", small_corpus, "--out", run, "--max-steps", "10", *TINY).returncode == 0
    p = run_cli("train", "--resume", run, "--max-steps", "20", "--no-progress", "--sample-length", "5")
    assert p.returncode == 0 and "resuming" in p.stderr
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 20


def test_the_progress_bar_ends_on_the_validation_loss_the_last_line_reports(tmp_path, small_corpus):
    # The last periodic validation is at step 20, the final one at step 30: the bar must show the latter.
    p = run_cli("train", small_corpus, "--out", tmp_path / "run", "--max-steps", "30", "--eval-every", "20",
                "--hidden-size", "32", "--embed-size", "16", "--batch-size", "8", "--seq-len", "16",
                "--sample-length", "0")
    assert p.returncode == 0, p.stderr
    shown = re.findall(r"val (\d+\.\d+)", p.stderr)
    final = float(re.search(r"validation loss (\d+\.\d+) nats/char", p.stderr).group(1))
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_loss" in r] == [20, 30]
    assert shown and float(shown[-1]) == round(final, 3), (shown, final)


def test_help_and_usage_errors_answer_without_importing_torch():
    """`rnnkit --help`, argument errors and bad option values need neither PyTorch nor NumPy, which take
    over a second to import (benchmarks/cli_startup.py times it)."""
    code = """
import sys
from rnnkit.cli import main
for argv in (["--help"], ["train", "--help"], ["sample", "--help"], ["cells", "--help"], ["sample"],
             ["train", "--lr", "fast"], ["sample", "run", "--temperature", "0"], ["train", "--budget", "soon"]):
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    assert status in (0, 1, 2), (argv, status)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy"))
assert not heavy, heavy[:5]
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "--budget must look like 90s" in p.stderr and "--temperature must be > 0" in p.stderr


def test_help_explains_every_flag():
    for command in ("train", "sample", "eval", "prepare", "predict", "translate", "inspect", "data"):
        p = run_cli(command, "--help")
        assert p.returncode == 0
        flags = [w for w in p.stdout.split() if w.startswith("--")]
        assert len(flags) > 3
    p = run_cli("train", "--help")
    for flag in ("--cell", "--budget", "--resume", "--init-from", "--byte-level", "--split", "--grad-clip",
                 "--lr-schedule", "--backend", "--force", "--task", "--pooling", "--condition", "--attention",
                 "--time-column", "--target-tokens", "--tokens", "--ngram-buckets", "--input-dropout"):
        assert flag in p.stdout


def test_prepare_reports_the_encoding(tmp_path, small_corpus):
    p = run_cli("prepare", small_corpus, "--out", tmp_path / "prep")
    assert p.returncode == 0 and "60,000 tokens (uint8)" in p.stdout
    assert (tmp_path / "prep" / "tokens.bin").stat().st_size == 60_000
    assert json.loads((tmp_path / "prep" / "vocab.json").read_text())["kind"] == "char"


# -- bad input: one line, non-zero exit, nothing lost ------------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, small_corpus):
    run = tmp_path_factory.mktemp("cli") / "run"
    p = run_cli("train", small_corpus, "--out", run, "--max-steps", "5", "--sample-length", "0", *TINY)
    assert p.returncode == 0, p.stderr
    return run


def test_existing_run_directory(tmp_path, cli_run, small_corpus):
    before = {p.name: p.read_bytes() for p in cli_run.iterdir()}
    _one_line_error(run_cli("train", small_corpus, "--out", cli_run, *TINY), "already exists", "--force")
    assert {p.name: p.read_bytes() for p in cli_run.iterdir()} == before


def test_ctrl_c_saves_a_checkpoint_and_the_run_resumes(tmp_path, small_corpus):
    import signal
    import time
    run = tmp_path / "run"
    proc = start_cli("train", small_corpus, "--out", run, "--max-steps", 100000, "--checkpoint-every", 100000, *TINY)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 2000):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "--resume" in err and "Traceback" not in err
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    p = run_cli("train", "--resume", run, "--max-steps", str(max(steps) + 3), "--no-progress", "--sample-length", "0")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, max(steps) + 4))


def test_numpy_backend_from_the_cli(tmp_path, small_corpus):
    run = tmp_path / "np"
    p = run_cli("train", small_corpus, "--out", run, "--backend", "numpy", "--cell", "lstm", "--num-layers", "1",
                "--hidden-size", "12", "--embed-size", "6", "--batch-size", "4", "--seq-len", "8", "--max-steps", "10",
                "--sample-every", "0", "--sample-length", "20", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.rstrip("\n")) == 20
