"""Loss in nats per character, bits per character and perplexity.

Text is evaluated as B parallel streams with the hidden state carried from chunk to chunk (the
layout of training, rnnkit.data.batching), so every character after the first of each stream is
predicted with all of its stream's preceding context. The same layout serves validation during
training and `rnnkit eval`, so their numbers agree.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .data.batching import eval_chunks
from .data.pieces import PieceVocab
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


def summary(nats: float, count: int, chars: int | None = None, tokens: int = 0) -> dict:
    """nats, bits and perplexity per symbol (a character or byte). For word and bpe tokens, `chars`
    (the characters the `tokens` evaluated tokens spell) adds the same per token and the loss per
    character: the total over the characters the `count` scored tokens cover (each evaluation stream's
    first token is context only)."""
    if chars is None:
        return {"nats": nats, "bpc": nats / math.log(2), "perplexity": math.exp(nats), "chars": count}
    covered = chars * count / tokens  # the scored tokens' share of the characters
    per_char = nats * count / covered
    return {"nats": per_char, "bpc": per_char / math.log(2), "nats_per_token": nats,
            "perplexity_per_token": math.exp(nats), "tokens": count, "chars": round(covered)}


def evaluate_text(model, text: str, unknown: str = "error") -> dict:
    """Loss of a loaded model (with its vocabulary) on `text`."""
    if model.vocab is None:
        raise DataError("this model has no vocabulary attached; load it with rnnkit.load(run_dir)")
    text = model.normalize_text(text)
    tokens = model.vocab.encode(text, unknown=unknown)
    if isinstance(model.vocab, PieceVocab):  # word or bpe tokens
        return summary(*evaluate_tokens(model, tokens), chars=len(text), tokens=len(tokens))
    return summary(*evaluate_tokens(model, tokens))
