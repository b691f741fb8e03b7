"""Batches as B parallel contiguous streams, for truncated backprop through time.

The split's N tokens are cut into B streams of S = (N - 1) // B tokens each; stream b starts at
b * S. Chunk i of a batch holds tokens [i*T, (i+1)*T) of every stream, so row b of chunk i+1 is the
continuation of row b of chunk i, and the hidden state left by chunk i is the right starting state
for chunk i+1 (torch-rnn's DataLoader lays data out the same way). Targets are the inputs shifted by
one token.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError


class StreamBatches:
    """Chunk i -> (x, y), each (B, T) int64, over B contiguous streams of `tokens`."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, split: str = "train",
                 rank: int = 0, world: int = 1):
        n = len(tokens)
        streams = batch_size * world  # with N processes the split is cut into B x N streams
        need = streams * seq_len + 1
        if n < need:
            who = f"{streams} streams ({world} processes x {batch_size})" if world > 1 else f"{batch_size} streams"
            raise DataError(
                f"the {split} split has {n:,} characters but one batch of {who} x {seq_len} steps "
                f"needs at least {need:,}; use more text or lower --batch-size / --seq-len")
        self.tokens = tokens
        self.B, self.T = batch_size, seq_len
        self.stream_len = (n - 1) // streams  # S
        # This process's streams: rank r owns streams r*B .. (r+1)*B - 1 of the B x N layout.
        self.starts = np.arange(rank * batch_size, (rank + 1) * batch_size, dtype=np.int64) * self.stream_len  # (B,)
        self.num_chunks = self.stream_len // seq_len  # full chunks per epoch; the ragged tail is skipped

    def __len__(self) -> int:
        return self.num_chunks

    @property
    def tokens_per_epoch(self) -> int:
        return self.num_chunks * self.B * self.T

    def get(self, i: int, epoch: int = 0, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunk i: inputs and next-token targets, each (B, T) int64. Every epoch reads the same
        streams (`epoch` is accepted for the trainer, which passes it to every task's batches)."""
        T = self.T if length is None else length
        idx = self.starts[:, None] + i * self.T + np.arange(T)  # (B, T)
        x = torch.from_numpy(self.tokens[idx].astype(np.int64))
        y = torch.from_numpy(self.tokens[idx + 1].astype(np.int64))
        return x, y


def eval_chunks(tokens: np.ndarray, batch_size: int, seq_len: int):
    """Every chunk of `tokens` laid out as streams, the last one possibly shorter, for evaluation.

    Unlike training, short texts are accepted: the number of streams shrinks so each stream has at
    least one step. Covers all but at most B - 1 of the N - 1 predictable tokens.
    """
    n = len(tokens)
    if n < 2:
        raise DataError(f"need at least 2 characters to evaluate, got {n}")
    B = max(1, min(batch_size, (n - 1) // max(1, seq_len)))
    S = (n - 1) // B
    starts = np.arange(B, dtype=np.int64)[:, None] * S  # (B, 1)
    for t0 in range(0, S, seq_len):
        idx = starts + t0 + np.arange(min(seq_len, S - t0))  # (B, t)
        yield (torch.from_numpy(tokens[idx].astype(np.int64)),
               torch.from_numpy(tokens[idx + 1].astype(np.int64)))
