"""Generating text one character at a time with the hidden state carried.

The prime text goes through the model once; after that each new character costs one recurrent
step, because the state after step t is kept and fed back for step t+1 (no re-reading of the
prefix). Decoding strategies: sampling with temperature, top-k and top-p (nucleus) filtering,
greedy (argmax), and beam search over characters.
"""

from __future__ import annotations

import random
from typing import Callable

import torch
import torch.nn.functional as F

from .config import SampleConfig, build
from .errors import DataError


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Scale by 1/temperature, then mask (to -inf) everything outside the top-k and the top-p nucleus.

    logits (N, V) -> (N, V). The most likely character always survives.
    """
    logits = logits / temperature
    V = logits.shape[-1]
    if 0 < top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass strictly ahead of each character
        drop_sorted = before >= top_p  # the first character has 0 ahead of it, so it is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _start_tokens(model, prime: str, unknown: str, generator: torch.Generator) -> tuple[list[int], str]:
    """Token ids to condition on, and the text to print before the generated characters."""
    vocab = model.vocab
    if vocab is None:
        raise DataError("this model has no vocabulary attached; load it with rnnkit.load(run_dir)")
    if prime:
        ids = vocab.encode(prime, unknown=unknown).tolist()
        shown = prime if unknown == "error" else vocab.decode(ids)
        if ids:
            return ids, shown
    # No prime: start after a newline, the natural beginning of a line of text; a vocabulary without
    # one starts from a random symbol, which is then part of the sample.
    newline = vocab.encode("\n", unknown="skip").tolist()
    if newline:
        return newline, ""
    first = int(torch.randint(len(vocab), (1,), generator=generator))
    return [first], vocab.decode([first])


@torch.no_grad()
def sample_text(model, length: int = 500, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                greedy: bool = False, beam: int = 0, prime: str = "", seed: int = 0, stop: str = "",
                unknown: str = "error", generator: torch.Generator | None = None,
                on_text: Callable[[str], None] | None = None, **ignored) -> str:
    """One sample (prime included). `on_text` receives each piece of text as soon as it exists."""
    opts = build(SampleConfig, dict(length=length, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                                    beam=beam, prime=prime, seed=seed, stop=stop, unknown=unknown))
    unknown_keys = set(ignored) - {"num_samples"}
    if unknown_keys:
        build(SampleConfig, {k: ignored[k] for k in unknown_keys})  # raises a ConfigError naming them
    if generator is None:
        generator = torch.Generator().manual_seed(opts.seed or random.SystemRandom().randrange(1, 2**62))
    emit = on_text or (lambda s: None)
    model.eval()
    device = next(model.parameters()).device
    ids, shown = _start_tokens(model, opts.prime, opts.unknown, generator)
    emit(shown)
    logits, state = model(torch.tensor([ids], device=device), None)  # the prime, once: (1, P, V)
    if opts.beam:
        text = _beam_search(model, logits[0, -1:], state, opts)
        emit(text)
        return shown + text
    decode = model.vocab.decoder()
    pieces: list[str] = []
    tail = ""  # enough recent text to spot the stop string across piece boundaries
    last = logits[:, -1]  # (1, V)
    for i in range(opts.length):
        if opts.greedy:
            nxt = int(last.argmax(dim=-1))
        else:
            probs = filter_logits(last.float(), opts.temperature, opts.top_k, opts.top_p).softmax(dim=-1).cpu()
            nxt = int(torch.multinomial(probs, 1, generator=generator))
        piece = decode(nxt)
        pieces.append(piece)
        emit(piece)
        if opts.stop:
            tail = (tail + piece)[-(len(opts.stop) + len(piece)):]
            if opts.stop in tail:
                break
        if i + 1 < opts.length:
            logits, state = model(torch.tensor([[nxt]], device=device), state)  # one step, state carried
            last = logits[:, -1]
    return shown + "".join(pieces)


def _beam_search(model, last: torch.Tensor, state, opts: SampleConfig) -> str:
    """The `opts.beam` most likely continuations of `opts.length` characters; returns the best.

    Scores are summed log-probabilities. With a stop string, a beam that produces it is finished;
    the search ends when a finished beam scores at least as well as every live one (scores only
    fall as beams grow, so no live beam can overtake it).
    """
    V = last.shape[-1]
    device = last.device
    scores = torch.zeros(1, device=device)  # (N,) one live beam to start
    seqs: list[list[int]] = [[]]
    finished: list[tuple[float, list[int]]] = []
    vocab = model.vocab
    for i in range(opts.length):
        logp = F.log_softmax(last.float(), dim=-1)  # (N, V)
        flat = (scores[:, None] + logp).reshape(-1)  # (N * V,)
        top = torch.topk(flat, min(opts.beam, flat.numel()))
        parents, tokens = top.indices // V, top.indices % V
        seqs = [seqs[p] + [t] for p, t in zip(parents.tolist(), tokens.tolist())]
        scores = top.values
        state = tuple(s[:, parents] for s in state)  # (L, N, H): each beam inherits its parent's state
        if opts.stop:
            done = [j for j, s in enumerate(seqs) if opts.stop in vocab.decode(s[-(len(opts.stop) * 4 + 4):])]
            finished += [(float(scores[j]), seqs[j]) for j in done]
            keep = [j for j in range(len(seqs)) if j not in done]
            if finished and (not keep or max(f[0] for f in finished) >= float(scores[keep].max())):
                break
            if len(keep) < len(seqs):
                idx = torch.tensor(keep, device=device)
                seqs, scores = [seqs[j] for j in keep], scores[idx]
                state = tuple(s[:, idx] for s in state)
                tokens = tokens[idx]
        if i + 1 < opts.length:
            logits, state = model(tokens[:, None], state)  # (N, 1, V)
            last = logits[:, -1]
    candidates = finished + [(float(s), q) for s, q in zip(scores.tolist(), seqs)]
    return vocab.decode(max(candidates, key=lambda c: c[0])[1])


def sample(run_dir, checkpoint: str = "best", on_text: Callable[[str], None] | None = None,
           **options) -> list[str]:
    """`rnnkit sample`: `num_samples` samples from a run directory (a list, even of one)."""
    from .checkpoint import load
    opts = build(SampleConfig, options)
    model = load(run_dir, checkpoint)
    generator = torch.Generator().manual_seed(opts.seed or random.SystemRandom().randrange(1, 2**62))
    out = []
    for k in range(opts.num_samples):
        if on_text and k:
            on_text("\n")  # keep consecutive streamed samples apart
        out.append(sample_text(model, **{**options, "num_samples": 1}, generator=generator, on_text=on_text))
    return out
