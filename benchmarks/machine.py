"""The machine a benchmark ran on, in one line (`describe`), and how a benchmark reports its results (`emit`)."""

import json
import os
import platform
import sys
from pathlib import Path

import torch


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, PyTorch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}, {platform.system()} {platform.machine()}")


def emit(report: dict, path: Path | None = None) -> None:
    """Print a benchmark's report as JSON, and write it to `path` too if one was given (--json)."""
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")


def train_options(task: str, defaults: dict, train_args: list[str]) -> dict:
    """A benchmark's `rnnkit.train` options: its defaults, overridden by `rnnkit train` flags given
    after `--` on its command line (checked and typed by rnnkit's own parser)."""
    from rnnkit.cli import build_parser
    from rnnkit.config import TASK_CONFIGS, TrainConfig, overrides_from_args
    extra = build_parser().parse_args(["train", "--task", task, *train_args])
    options = dict(defaults)
    for cls in (*TASK_CONFIGS[task], TrainConfig):
        options.update(overrides_from_args(extra, cls))
    return options


def parse_with_train_args(parser):
    """`parser`'s arguments, with `args.train_args` the `rnnkit train` options given after a `--`
    (split off first, so they may follow positional arguments and options in any order)."""
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.train_args = argv[cut + 1:]
    return args
