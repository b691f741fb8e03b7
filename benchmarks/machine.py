"""The machine a benchmark ran on, in one line (`describe`), and how a benchmark reports its results (`emit`)."""

import json
import os
import platform
import sys
from pathlib import Path

import torch


def describe() -> str:
    """CPU name, family/model, vector extensions, L2 per core, cores and software, in one line. The
    family and model matter where a cloud CPU's name is only "AMD EPYC" (family 23 is Zen 1 or 2, 25
    Zen 3 or 4, 26 Zen 5)."""
    cpu, facts = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as fh:
            info = dict(line.split(":", 1) for line in fh.read().split("\n\n")[0].splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        cpu = info.get("model name", cpu)
        if "cpu family" in info:
            facts.append(f"family {info['cpu family']} model {info.get('model', '?')}")
        flags = set(info.get("flags", "").split())
        isa = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2", "fma") if f in flags]
        facts.append(" ".join(isa) or "no AVX2")
    except (OSError, ValueError):
        pass
    try:
        facts.append("L2 " + Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip())
    except OSError:
        pass
    detail = f" ({', '.join(facts)})" if facts else ""
    return (f"{cpu}{detail}, {os.cpu_count()} cores, PyTorch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, Python {platform.python_version()}, {platform.system()} {platform.machine()}")


def fma_peak(threads: int | None = None, seconds: float = 0.5) -> dict | None:
    """The CPU's float32 multiply-add peak, measured: rnnkit's compiled probe (`_csample.fma_flops`,
    chains of fused multiply-adds on registers at the widest vector width the compiled sampler uses)
    on one thread, and on `threads` (default: every core) at once. GFLOP/s; None without the module.

    This is the hardware's ceiling (vector width x FMA ports x clock, as the clock really runs), which
    no matrix product can beat; a "peak" from torch.matmul is only what that BLAS reaches."""
    try:
        from rnnkit import _csample
    except ImportError:
        return None
    import threading
    import time

    def rate(n: int) -> float:
        iters, elapsed = 1 << 16, 0.0
        while elapsed < seconds / 10:  # grow the work until one call takes a tenth of the time asked
            iters *= 2
            t = time.perf_counter()
            _csample.fma_flops(iters)
            elapsed = time.perf_counter() - t
        iters = int(iters * seconds / elapsed)  # each thread's share: about `seconds` of work
        flops = [0.0] * n
        def work(i):
            flops[i] = _csample.fma_flops(iters)
        pool = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        t = time.perf_counter()
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        return sum(flops) / (time.perf_counter() - t) / 1e9

    n = threads or os.cpu_count() or 1
    return {"isa": _csample.ISA, "one_core_gflops": round(max(rate(1) for _ in range(3)), 1),
            "all_cores_gflops": round(max(rate(n) for _ in range(3)), 1), "cores": n}


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
