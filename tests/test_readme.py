"""The README's commands, read top to bottom as a newcomer copies them: every run directory a command
uses was made by an earlier one, and no command makes a directory that an earlier one already made
(it would be refused without --force)."""

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _code_blocks(text: str, until: str) -> list[str]:
    """Fenced bash/python blocks before the heading `until`, in order."""
    head = text.split(until)[0]
    return re.findall(r"```(?:bash|python)\n(.*?)```", head, flags=re.S)


def _steps(blocks: list[str]):
    """(made, used) run directories of each README line, in order."""
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(("rnnkit ", "torchrun ", "pip ")):
                for command in line.split("&&"):
                    words = shlex.split(command)
                    if "rnnkit" not in words[:3] and "-m" not in words:
                        continue
                    verb = next(w for w in words if w in ("train", "sample", "eval", "inspect", "cells", "gates",
                                                          "compare", "prepare", "ngram", "predict", "translate",
                                                          "data", "caption", "answer", "export", "serve"))
                    made = [words[i + 1] for i, w in enumerate(words) if w in ("--out", "-o") and verb == "train"]
                    used = [words[i + 1] for i, w in enumerate(words) if w in ("--resume", "--init-from")]
                    after = words[words.index(verb) + 1:]
                    if verb in ("sample", "eval", "inspect", "cells", "gates", "compare", "predict",
                                "translate", "caption", "answer", "export") and after:
                        used.append(after[0])
                    if verb == "serve":  # every run directory it names (the README's serve lines give no flags)
                        used += [w for w in after if not w.startswith("-")]
                    yield made, used, line
            for name in re.findall(r"\bout=\"([^\"]+)\"", line):
                yield [name], [], line
            for name in re.findall(r"rnnkit\.(?:load|sample|samples|evaluate)\(\"([^\"]+)\"", line):
                yield [], [name], line


def test_every_run_directory_in_the_readme_exists_when_it_is_used():
    made_so_far = {}
    steps = list(_steps(_code_blocks(README.read_text(encoding="utf-8"), "## What it does")))
    assert len(steps) > 10  # the Set-up and Using-it blocks were found
    for made, used, line in steps:
        for name in used:
            assert name in made_so_far, f"{line!r} uses {name}, which no earlier README command makes"
        for name in made:
            assert name not in made_so_far or "--force" in line, \
                f"{line!r} makes {name}, which {made_so_far[name]!r} already made"
            made_so_far[name] = line


def test_the_set_up_command_names_its_run_directory():
    setup = _code_blocks(README.read_text(encoding="utf-8"), "## Using it")[0]
    assert re.search(r"rnnkit train .*--out runs/mine", setup), setup
