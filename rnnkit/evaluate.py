"""Loss in nats per character, bits per character and perplexity.

Text is evaluated as B parallel streams with the hidden state carried from chunk to chunk (the
layout of training, rnnkit.data.batching), so every character after the first of each stream is
predicted with all of its stream's preceding context. The same layout serves validation during
training and `rnnkit eval`, so their numbers agree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data.batching import eval_chunks
from .errors import DataError

EVAL_STREAMS = 32  # B for evaluation
EVAL_SEQ_LEN = 256  # T for evaluation: longer chunks, fewer Python steps; the state carries anyway


@torch.no_grad()
def evaluate_tokens(model, tokens: np.ndarray, batch_size: int = EVAL_STREAMS,
                    seq_len: int = EVAL_SEQ_LEN) -> tuple[float, int]:
    """Mean cross-entropy (nats per character) over `tokens` and the number of characters scored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count, state = 0.0, 0, None
    try:
        for x, y in eval_chunks(tokens, batch_size, seq_len):
            logits, state = model(x.to(device), state)  # (B, t, V)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.to(device).reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
    finally:
        model.train(was_training)
    return total / count, count


def summary(nats: float, count: int) -> dict:
    return {"nats": nats, "bpc": nats / math.log(2), "perplexity": math.exp(nats), "chars": count}


def evaluate_text(model, text: str, unknown: str = "error") -> dict:
    """Loss of a loaded model (with its vocabulary) on `text`."""
    if model.vocab is None:
        raise DataError("this model has no vocabulary attached; load it with rnnkit.load(run_dir)")
    tokens = model.vocab.encode(model.normalize_text(text), unknown=unknown)
    return summary(*evaluate_tokens(model, tokens))


def evaluate(run_dir, file: str | None = None, checkpoint: str = "best", unknown: str = "error") -> dict:
    """`rnnkit eval`: loss on the run's test split, or on `file` if given."""
    from .checkpoint import load, read_config
    from .data.corpus import prepare_for_run, read_text
    model = load(run_dir, checkpoint)
    if file is not None:
        path = Path(file)
        if model.vocab.kind == "byte":
            if not path.is_file():
                raise DataError(f"no such file: {path}")
            tokens = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        else:
            tokens = model.vocab.encode(model.normalize_text(read_text(path)), unknown=unknown)
        if len(tokens) < 2:
            raise DataError(f"{path} is too short to evaluate ({len(tokens)} characters; need at least 2)")
        return {**summary(*evaluate_tokens(model, tokens)), "split": str(path)}
    _, data_cfg, _, vocab = read_config(run_dir)
    corpus = prepare_for_run(data_cfg, vocab)
    if corpus is None:
        raise DataError("the training text changed since this run was trained; pass a FILE to evaluate on")
    test = corpus.split("test")
    if len(test) < 2:
        raise DataError("this run has no test split (see --split); pass a FILE to evaluate on")
    return {**summary(*evaluate_tokens(model, test)), "split": "test"}
