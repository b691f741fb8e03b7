"""Data-parallel training with PyTorch's own engine: `torchrun --nproc-per-node N -m rnnkit train ...`.

torchrun starts N processes and sets RANK, WORLD_SIZE and LOCAL_RANK; `Dist` joins them (gloo on
the CPU, NCCL on CUDA) and offers the few collective steps the training loop needs. Without
torchrun it is a single process and every operation is trivial, so the loop reads the same either
way.

How the work is split: the training split is laid out as B x N streams (B = --batch-size per
process); process r trains streams r*B .. (r+1)*B - 1 and DistributedDataParallel averages the
gradients, which is exactly one process training all B x N streams (tests/test_distributed.py).
Process 0 alone validates, writes checkpoints and metrics, and prints.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


class Dist:
    def __init__(self, rank: int = 0, world: int = 1):
        self.rank, self.world = rank, world

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The average of `value` over all processes."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world

    def any(self, flag: bool) -> bool:
        """True on every process if it is true on any (so all stop at the same step)."""
        if not self.active:
            return flag
        t = torch.tensor([1 if flag else 0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t)

    def broadcast(self, obj):
        """Process 0's `obj` on every process."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every process's `tensor`, concatenated along `dim` in rank order (on every process)."""
        if not self.active:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def setup(device_type: str) -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo", timeout=timedelta(minutes=30))
    return Dist(dist.get_rank(), dist.get_world_size())


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Process 0 of a torchrun job, or a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0
