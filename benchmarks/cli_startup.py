"""How long the `rnnkit` command takes to answer `--help` and usage errors (target: < 0.3 s).

Each command runs as a fresh process, as a user types it; the figure is the median wall time of
--repeats runs. Baselines measured in the same run: a bare `python -c pass` (the floor any Python
command pays) and `python -c "import torch"` (what every command paid before PyTorch was imported
lazily).

    python benchmarks/cli_startup.py [--repeats 7]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

COMMANDS = {
    "baseline: python -c pass": ["-c", "pass"],
    "baseline: python -c 'import torch'": ["-c", "import torch"],
    "rnnkit --help": ["-m", "rnnkit", "--help"],
    "rnnkit train --help": ["-m", "rnnkit", "train", "--help"],
    "rnnkit sample (missing RUN_DIR)": ["-m", "rnnkit", "sample"],
    "rnnkit train --budget soon": ["-m", "rnnkit", "train", "--budget", "soon"],
    "rnnkit sample run --temperature 0": ["-m", "rnnkit", "sample", "run", "--temperature", "0"],
}


def wall(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *argv], capture_output=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7, help="runs per command (default 7)")
    args = ap.parse_args()
    print(describe())
    results = {name: round(wall(argv, args.repeats), 3) for name, argv in COMMANDS.items()}
    width = max(map(len, results))
    for name, seconds in results.items():
        print(f"{name:<{width}}  {seconds:.3f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
