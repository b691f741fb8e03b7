"""The README's bad-input table is a test: every row's command runs through the real CLI in a
sandbox, and its last line of stderr and its exit status must be what the row says.

In the "what you see" column, `…` stands for any text (absolute paths, byte offsets, numbers that
depend on the machine).
"""

import pickle
import re
import shlex
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- bad-input-table -->", "<!-- /bad-input-table -->"
TINY = ["--hidden-size", "16", "--embed-size", "8", "--num-layers", "1", "--batch-size", "4", "--seq-len", "8",
        "--sample-every", "0", "--no-progress"]


def table_rows() -> list[tuple[str, str, str, int]]:
    """(what, command, expected last line, exit status) for each row of the README table."""
    text = README.read_text("utf-8")
    body = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    rows = []
    for line in body.strip().splitlines()[2:]:  # after the header and the |---| line
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 4, line
        what, command, expected, status = cells
        rows.append((what, command.strip("`"), expected.strip("`"), int(status)))
    return rows


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, small_corpus, shakespeare_text):
    """The files the table's commands name, in a fresh directory."""
    box = tmp_path_factory.mktemp("bad-input")
    shutil.copy(small_corpus, box / "text.txt")
    (box / "empty.txt").write_bytes(b"")
    (box / "latin1.txt").write_bytes("café au lait\n".encode("latin-1") * 100)
    (box / "short.txt").write_text(shakespeare_text[:18])
    (box / "alien.txt").write_text("To be, or not to be: ¿qué?\n" * 10)
    (box / "one.tsv").write_text("anna\tnames\nbob\tnames\n")
    (box / "nolabel.tsv").write_text("just some text\n")
    (box / "gaps.csv").write_text("time,v\n1,2.5\n2,\n3,4\n")
    (box / "empty.tsv").write_bytes(b"")
    (box / "halfpair.tsv").write_text("cat\tK AE1 T\ndog\t \n")
    (box / "words.tsv").write_text("".join(f"{w}\tfwd\n{w[::-1]}\trev\n" for w in shakespeare_text[:4000].split()
                                           if len(w) > 2))
    (box / "lost.json").write_text('{"images": [{"filename": "gone.png", "split": "train", "sentences": [{"raw": "a"}]}]}')
    (box / "notext").mkdir()
    (box / "notext" / "notes.md").write_text("not matched by the default --glob\n")
    rng = np.random.default_rng(0)
    for name, size in (("frames.npz", 8), ("frames12.npz", 12)):  # clips of 3 grey frames, two classes
        np.savez(box / name, x=rng.integers(0, 256, (20, 3, size, size), dtype=np.uint8), y=np.array(["a", "b"] * 10))
    (box / "clips").mkdir()
    (box / "clips" / "train.npz").write_bytes(b"an earlier data set")
    (box / "notarun").mkdir()
    (box / "notarun" / "thesis.tex").write_text("precious\n")
    p = run_cli("train", "text.txt", "--out", "run", "--max-steps", "5", "--sample-length", "0", *TINY, cwd=box)
    assert p.returncode == 0, p.stderr
    p = run_cli("train", "words.tsv", "--task", "generate", "--out", "gen", "--max-steps", "2", *TINY, cwd=box)
    assert p.returncode == 0, p.stderr
    p = run_cli("train", "words.tsv", "--task", "seq2seq", "--attention", "none", "--out", "plain", "--max-steps", "2",
                *TINY[:TINY.index("--seq-len")], *TINY[TINY.index("--seq-len") + 2:], cwd=box)
    assert p.returncode == 0, p.stderr
    p = run_cli("train", "text.txt", "--tokens", "bpe", "--bpe-vocab", "300", "--out", "bpe", "--max-steps", "2",
                "--sample-length", "0", *TINY, cwd=box)
    assert p.returncode == 0, p.stderr
    for name in ("notok", "badtok"):
        shutil.copytree(box / "bpe", box / name)
    (box / "notok" / "tokenizer.json").unlink()
    (box / "badtok" / "tokenizer.json").write_text("{oops")
    for name in ("truncated", "flipped", "badconfig", "pickled"):
        shutil.copytree(box / "run", box / name)
    weights = (box / "run" / "model.safetensors").read_bytes()
    (box / "truncated" / "model.safetensors").write_bytes(weights[:len(weights) // 2])
    (box / "flipped" / "model.safetensors").write_bytes(weights[:-3] + bytes([weights[-3] ^ 1]) + weights[-2:])
    (box / "badconfig" / "config.json").write_text("{not json")
    (box / "pickled" / "model.safetensors").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return box


def _run(row, box: Path):
    what, command, expected, status = row
    argv = shlex.split(command)
    assert argv[0] == "rnnkit", command
    p = run_cli(*argv[1:], cwd=box)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    problems = []
    if "Traceback" in p.stderr:
        problems.append("a traceback")
    if p.returncode != status:
        problems.append(f"exit status {p.returncode}, not {status}")
    if not lines or not re.fullmatch(pattern, lines[-1]):
        problems.append(f"last line {lines[-1] if lines else '(none)'!r}")
    return f"{what} ({command}): " + "; ".join(problems) if problems else None


def test_every_row_of_the_readme_bad_input_table(sandbox):
    rows = table_rows()
    assert len(rows) >= 25
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(lambda r: _run(r, sandbox), rows) if f]
    assert not failures, "\n".join(failures)
    assert (sandbox / "notarun" / "thesis.tex").read_text() == "precious\n"  # --force spared it
