"""Generating text one character at a time with the hidden state carried.

The prime text goes through the model once; after that each new character costs one recurrent
step, because the state after step t is kept and fed back for step t+1 (no re-reading of the
prefix). Decoding strategies: sampling with temperature, top-k and top-p (nucleus) filtering,
greedy (argmax), and beam search over characters.

Steps run on `FastStepper` (rnnkit.fastsample: pre-arranged weights; its compiled loop, which also
makes the choices, chunks of CHUNK characters per call, or NumPy) by default, or on the model itself
with `fast=False` (`rnnkit sample --plain`). All feed the same logits to the same chooser with the
same random numbers (NumPy's PCG64, one uniform number per stream per step, drawn by inverse CDF), so
a seed gives the same text on every path. Several samples are generated
together as a batch of independent streams.
"""

from __future__ import annotations

import random
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .config import SCAN_CELLS, SampleConfig, build
from .errors import ConfigError, DataError, UsageError
from .fastsample import FastStepper, compiled as compiled_sampler
from .models.generator import BOUNDARY, CharGenerator, example_ids


def filter_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Scale by 1/temperature, then mask (to -inf) everything outside the top-k and the top-p nucleus.

    logits (N, V) -> float64 (N, V). The most likely character always survives.
    """
    logits = np.asarray(logits, dtype=np.float64) / temperature
    V = logits.shape[-1]
    if 0 < top_k < V:
        kth = np.partition(logits, V - top_k, axis=-1)[:, V - top_k:V - top_k + 1]  # (N, 1) k-th largest
        logits = np.where(logits < kth, -np.inf, logits)
    if top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        ranked = np.take_along_axis(logits, order, axis=-1)
        probs = np.exp(ranked - ranked[:, :1])
        probs /= probs.sum(axis=-1, keepdims=True)
        before = np.cumsum(probs, axis=-1) - probs  # mass strictly ahead of each character
        drop = np.empty_like(before, dtype=bool)
        np.put_along_axis(drop, order, before >= top_p, axis=-1)  # the top one has 0 ahead: always kept
        logits = np.where(drop, -np.inf, logits)
    return logits


def choose(logits: np.ndarray, opts: SampleConfig, rng: np.random.Generator | None = None,
           u: np.ndarray | None = None) -> np.ndarray:
    """Next token of each stream: argmax if greedy, else a draw from the filtered softmax by inverse
    CDF with one uniform number per stream (`u`, or drawn from `rng`). logits (N, V) -> (N,) int64."""
    if opts.greedy:
        return logits.argmax(axis=-1)
    if opts.temperature == 1.0 and not opts.top_k and opts.top_p >= 1.0:
        z = logits.astype(np.float64)  # nothing to filter: skip the filter's copies
    else:
        z = filter_logits(logits, opts.temperature, opts.top_k, opts.top_p)
    # Unnormalised CDF; the ufuncs are called directly, without NumPy's Python-level wrappers, because
    # at batch 1 this runs once per character and the wrappers cost more than the arithmetic.
    z -= np.maximum.reduce(z, axis=-1, keepdims=True)
    cdf = np.add.accumulate(np.exp(z, out=z), axis=-1, out=z)
    u = rng.random(len(cdf)) if u is None else u
    last = cdf.shape[-1] - 1
    if len(cdf) == 1:  # the common case of one stream: a binary search instead of a full comparison
        return np.array([min(int(cdf[0].searchsorted(u[0] * cdf[0, last], side="right")), last)])
    return np.minimum((cdf <= u[:, None] * cdf[:, last:]).sum(axis=-1), last)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed or random.SystemRandom().randrange(1, 2**62))


def _start_tokens(model, prime: str, unknown: str, rng: np.random.Generator) -> tuple[list[int], str]:
    """Token ids to condition on, and the text to print before the generated characters."""
    vocab = model.vocab
    if vocab is None:
        raise DataError("this model has no vocabulary attached; load it with rnnkit.load(run_dir)")
    if isinstance(model, CharGenerator):  # an example starts after the boundary; the prime begins it
        ids = example_ids(vocab, prime, unknown, end=False).tolist()
        return ids, prime if unknown == "error" else vocab.decode(ids[1:])
    if prime:
        prime = model.normalize_text(prime)  # line endings as the run read its training text
        ids = vocab.encode(prime, unknown=unknown).tolist()
        shown = prime if unknown == "error" else vocab.decode(ids)
        if ids:
            return ids, shown
    # No prime: start after a newline, the natural beginning of a line of text; a vocabulary without
    # one starts from a random symbol, which is then part of the sample.
    newline = vocab.encode("\n", unknown="skip").tolist()
    if newline:
        return newline, ""
    first = int(rng.integers(len(vocab)))
    return [first], vocab.decode([first])


CHUNK = 256  # steps the compiled loop runs before their text is decoded, shown and checked for the stop string


class _ModelStepper:
    """The plain path: the model's own forward, one step at a time."""

    def __init__(self, forward, device):
        self.forward, self.device = forward, device

    def step(self, tokens: np.ndarray, state):
        x = torch.from_numpy(np.asarray(tokens, dtype=np.int64))[:, None].to(self.device)  # (N, 1)
        logits, state = self.forward(x, state)
        return logits[:, -1].float().cpu().numpy(), state


def _conditioned(model, label: str | None, device):
    """(forward(tokens, state) -> (logits, state), the class index): the model itself, or for a
    generator its forward with the class of `label` (one class for every stream) bound in."""
    if not isinstance(model, CharGenerator):
        if label is not None:
            raise UsageError("--class is for generators (--task generate); this model is a language model")
        return model, None
    index = model.class_index(label)
    if index is None:
        return model, None
    classes = torch.tensor([index], device=device)  # (1,): broadcast over the streams
    return (lambda tokens, state: model(tokens, state, classes=classes)), index


class Start(NamedTuple):
    """What a generation starts from, once its options are checked: see `prepare`."""
    opts: SampleConfig
    rng: np.random.Generator
    forward: Callable  # forward(tokens, state) -> (logits, state), a generator's class bound in
    class_index: int | None  # a conditional generator's class
    ids: list[int]  # the tokens to read before the first choice (prime, or a start symbol)
    shown: str  # the text printed before the generated characters


def prepare(model, length: int, rng: np.random.Generator | None, label: str | None, options: dict) -> Start:
    """Check a generation's options against `model` and make its start: the one place that decides how a
    sample begins, shared by `generate` and the server's batched sampler (rnnkit.streams) so that both
    give the same text for the same seed. Raises ConfigError / DataError / UsageError on bad options,
    an unknown class, or prime characters the vocabulary lacks."""
    options = dict(options)
    options.pop("num_samples", None)
    if isinstance(model, CharGenerator):
        if options.get("stop"):
            raise ConfigError("a generator's samples end at the end of the example; --stop does not apply")
        options["stop"] = BOUNDARY
    opts = build(SampleConfig, {**options, "length": length})
    rng = rng if rng is not None else _rng(opts.seed)
    model.eval()
    forward, class_index = _conditioned(model, label, next(model.parameters()).device)
    ids, shown = _start_tokens(model, opts.prime, opts.unknown, rng)
    return Start(opts, rng, forward, class_index, ids, shown)


@torch.no_grad()
def generate(model, n: int = 1, length: int = 500, fast: bool = True, rng: np.random.Generator | None = None,
             on_text: Callable[[str], None] | None = None, label: str | None = None, **options) -> list[str]:
    """`n` independent samples (prime included), stepped together as a batch of n streams.

    `options` are SampleConfig's (temperature, top_k, top_p, greedy, beam, prime, seed, stop, unknown).
    `on_text` receives each piece of text as soon as it exists (only for n = 1). For a generator
    (rnnkit.models.generator), `label` is the class to write; each sample is one example, ending at the
    boundary (not included) or after `length` characters.
    """
    opts, rng, forward, class_index, ids, shown = prepare(model, length, rng, label, options)
    emit = on_text if (on_text and n == 1) else (lambda s: None)
    device = next(model.parameters()).device
    emit(shown)
    logits, state = forward(torch.tensor([ids], device=device), None)  # the prime, once: (1, P, V)
    if opts.beam:
        text = _beam_search(forward, model.vocab, logits[0, -1:], state, opts)
        text = _strip_boundary(model, text)
        emit(text)
        return [shown + text] * n  # beam search is deterministic: every "sample" is the best beam
    state = tuple(s.repeat(1, n, 1) for s in state)  # every stream starts from the prime's state
    compiled = False
    if fast:
        offset = model.input_offset(class_index) if class_index is not None else None
        reduced = compiled_sampler() and model.config.cell not in SCAN_CELLS  # bf16 and int8: the compiled loop's
        stepper = FastStepper(model, offset=offset, precision=opts.sample_weights if reduced else "fp32")
        state = stepper.from_torch_state(state)
        compiled = state.net is not None
    else:
        stepper = _ModelStepper(forward, device)
    last = np.repeat(logits[:, -1].float().cpu().numpy(), n, axis=0)  # (n, V)
    decoders = [model.vocab.decoder() for _ in range(n)]
    pieces = [[] for _ in range(n)]
    tails = [""] * n  # enough recent text to spot the stop string across piece boundaries
    live = list(range(n))
    hide_end = isinstance(model, CharGenerator)  # a generator's end symbol ends a sample; it is not text
    end = int(model.vocab.encode(BOUNDARY)[0]) if hide_end else -1
    block = 1024  # uniforms are drawn a block of steps at a time: the same numbers as one step at a time
    i = 0
    while i < opts.length:
        if i % block == 0:
            draws = rng.random((min(block, opts.length - i), n))
        if compiled:  # up to CHUNK steps in C (choices included), then their text here
            span = min(CHUNK, len(draws) - i % block)
            rows = stepper.run(state, last, draws[i % block:i % block + span], opts, end,
                               step_last=i + span < opts.length).tolist()
        else:
            rows = [choose(last, opts, u=draws[i % block]).tolist()]
        if compiled and not opts.stop:  # no stop string (so no generator): the chunk's text, stream by stream
            i += len(rows)
            for j in live:
                text = [decoders[j](row[j]) for row in rows]
                pieces[j] += text
                emit("".join(text))
        else:
            for nxt in rows:
                i += 1
                for j in live:
                    piece = decoders[j](nxt[j])
                    pieces[j].append(piece)
                    if not (hide_end and piece == BOUNDARY):
                        emit(piece)
                    if opts.stop:
                        tails[j] = (tails[j] + piece)[-(len(opts.stop) + len(piece)):]
                if opts.stop:
                    live = [j for j in live if opts.stop not in tails[j]]
                if not live:
                    break
        if not live or i == opts.length:
            break
        if not compiled:
            last, state = stepper.step(rows[0], state)  # one step, state carried
    return [shown + _strip_boundary(model, "".join(p)) for p in pieces]


def _strip_boundary(model, text: str) -> str:
    """A generator's sample without the end symbol that finished it."""
    return text[:-len(BOUNDARY)] if isinstance(model, CharGenerator) and text.endswith(BOUNDARY) else text


def sample_text(model, length: int = 500, on_text: Callable[[str], None] | None = None, fast: bool = True,
                rng: np.random.Generator | None = None, **options) -> str:
    """One sample, always a string (prime included); the options are `rnnkit sample`'s. For several,
    `generate` (or `CharRNN.samples`, `rnnkit.samples`) returns a list."""
    if options.get("num_samples", 1) != 1:
        raise ConfigError("sample returns one text; use samples(..., num_samples=N) for a list of N")
    return generate(model, 1, length=length, fast=fast, rng=rng, on_text=on_text, **options)[0]


def _beam_search(forward, vocab, last: torch.Tensor, state, opts: SampleConfig) -> str:
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
            logits, state = forward(tokens[:, None], state)  # (N, 1, V)
            last = logits[:, -1]
    candidates = finished + [(float(s), q) for s, q in zip(scores.tolist(), seqs)]
    return vocab.decode(max(candidates, key=lambda c: c[0])[1])
