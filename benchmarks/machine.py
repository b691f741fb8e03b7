"""A one-line description of the machine a benchmark ran on."""

import os
import platform

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
