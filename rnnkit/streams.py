"""Many generation requests stepped together: the sampler behind `rnnkit serve`.

A request asks for `n` samples; each sample is a stream, a row of a batch. A `Sampler` owns one
thread that keeps every live stream of a model in one batched `FastStepper` state and advances all
of them by one character per step, so 64 clients cost one (64, H) product per layer per character
instead of 64 products of one row. Streams join as their requests arrive (after the model has read
the prime once) and leave as they end; nobody waits for anybody else.

For a request alone in the batch the text is exactly `rnnkit.sample.generate`'s for the same seed and
options: the same start (`sample.prepare`), the same chooser (`sample.choose`) and the same random
numbers (the request's own PCG64, one uniform per stream per step). With other requests beside it, each
row's arithmetic is the same; only a matrix product's last float bits may differ with the batch size.

The engine thread writes each stream's tokens into an array and its count; the reader (the HTTP
handler, another thread) decodes what it has not seen yet. The engine wakes a waiting reader at most
every `flush` seconds, so a fast stream costs one wake-up per few dozen characters, not one per character.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Callable

import numpy as np
import torch

from .errors import RnnkitError, UsageError
from .fastsample import FastStepper
from .models.generator import BOUNDARY, CharGenerator
from .sample import choose, prepare


class Busy(RnnkitError):
    """The sampler holds as many streams as it may; the request can be retried shortly."""


class Stream:
    """One request's `n` samples as the engine steps them; read it with `take()` from one thread.

    `tokens` (n, length) holds the chosen tokens, `count` how many steps are done, `ends[j]` the
    count at which sample j stopped (at its stop string or a generator's end of example), -1 while it runs.
    """

    def __init__(self, model, n: int, start, block: int = 1024):
        self.opts, self.rng, self.forward = start.opts, start.rng, start.forward
        self.class_index, self.ids, self.shown = start.class_index, start.ids, start.shown
        self.n = n
        self.tokens = np.zeros((n, start.opts.length), dtype=np.int64)
        self.count = 0
        self.ends = np.full(n, -1)
        self._running, self._length = n, start.opts.length  # samples not yet stopped; steps at most
        self.finished = False
        self.error: str | None = None
        self.cancelled = False
        self.started = time.perf_counter()
        self._block = block
        self._draws = None
        # The options `choose` reads, as a key: streams with equal keys are chosen together.
        o = start.opts
        self.key = (o.greedy, o.temperature, o.top_k, o.top_p)
        vocab = model.vocab
        self._chars = vocab.chars if vocab.kind == "char" else None  # bytes and word/bpe pieces: decoders
        self._end_id = int(vocab.encode(BOUNDARY)[0]) if isinstance(model, CharGenerator) else None
        # Engine side, only for streams with a stop string: each sample's recent text.
        self._stop_decoders = [vocab.decoder() for _ in range(n)] if o.stop else None
        self._tails = [""] * n
        # Reader side: what each sample has been given so far.
        self._decoders = [vocab.decoder() for _ in range(n)] if self._chars is None else None
        self._read = [0] * n
        self._shown_sent = False
        # Waking the reader: `wake` is called (from the engine thread) when the reader is waiting.
        self.wake: Callable[[], None] | None = None
        self.armed = False
        self._told_at = 0.0

    # -- engine side ------------------------------------------------------------------------------

    def uniforms(self) -> np.ndarray:
        """This step's n uniform numbers: drawn a block of steps at a time, like `generate` does."""
        i = self.count % self._block
        if i == 0:
            self._draws = self.rng.random((min(self._block, self.opts.length - self.count), self.n))
        return self._draws[i]

    def record(self, tokens: np.ndarray) -> bool:
        """Store this step's tokens (n,); True once the request is complete."""
        i = self.count
        self.tokens[:, i] = tokens
        if self._stop_decoders is not None:
            stop = self.opts.stop
            for j in np.flatnonzero(self.ends < 0):
                piece = self._stop_decoders[j](tokens[j])
                self._tails[j] = (self._tails[j] + piece)[-(len(stop) + len(piece)):]
                if stop in self._tails[j]:
                    self.ends[j] = i + 1
                    self._running -= 1
        self.count = i + 1
        return self.count == self._length or not self._running

    def tell(self, now: float, flush: float) -> None:
        """Wake the reader if it waits and there is news worth a wake-up."""
        if self.armed and (self.finished or now - self._told_at >= flush):
            self.armed = False
            self._told_at = now
            self.wake()

    def finish(self, error: str | None = None) -> None:
        self.error = error
        self.finished = True
        if self.armed and self.wake is not None:
            self.armed = False
            self.wake()

    # -- reader side ------------------------------------------------------------------------------

    def take(self) -> list[tuple[int, str]]:
        """(sample index, text) for every sample with text the reader has not had yet: the prime
        first, then the generated characters (a generator's end of example left out)."""
        out = []
        if not self._shown_sent:
            self._shown_sent = True
            if self.shown:
                out += [(j, self.shown) for j in range(self.n)]
        count = self.count  # read once: the engine may move on meanwhile
        for j in range(self.n):
            end = int(self.ends[j])
            upto = count if end < 0 else end
            if end >= 0 and self._end_id is not None and self.tokens[j, end - 1] == self._end_id:
                upto = end - 1  # a generator's end symbol ends the sample; it is not text
            a = self._read[j]
            if upto <= a:
                continue
            ids = self.tokens[j, a:upto]
            if self._chars is not None:
                text = "".join([self._chars[t] for t in ids.tolist()])
            else:
                text = "".join(self._decoders[j](t) for t in ids.tolist())
            self._read[j] = upto
            if text:
                out.append((j, text))
        return out

    def chars(self) -> int:
        """Characters generated so far (token steps, over all samples)."""
        return int(sum(self.count if e < 0 else e for e in self.ends.tolist()))


class _Lane:
    """The live streams that share one stepper (a generator's class has its own input table), their
    batched state and the logits each row chooses from next."""

    def __init__(self, stepper: FastStepper):
        self.stepper = stepper
        self.streams: list[Stream] = []
        self.state = None
        self.last = None  # (N, V) float32

    def add(self, joining: list[tuple[Stream, np.ndarray, tuple]]) -> None:
        """Streams whose prime has been read: (stream, its last logits (1, V), its torch state)."""
        parts, lasts = ([(self.state, slice(None))], [self.last]) if self.streams else ([], [])
        for stream, last, state in joining:
            state = tuple(s.repeat(1, stream.n, 1) for s in state)  # every sample starts from the prime
            parts.append((self.stepper.from_torch_state(state), slice(None)))
            lasts.append(np.repeat(last, stream.n, axis=0))
            self.streams.append(stream)
        self.state = self.stepper.gather(parts)
        self.last = np.concatenate(lasts)

    def keep(self, keep: list[Stream]) -> np.ndarray:
        """Drop every stream not in `keep` (finished or cancelled), copying the others' rows; returns
        the kept rows' old indices."""
        rows, a = [np.zeros(0, dtype=np.int64)], 0
        for s in self.streams:
            if s in keep:
                rows.append(np.arange(a, a + s.n))
            a += s.n
        rows = np.concatenate(rows)
        self.streams = keep
        if keep:
            self.state = self.stepper.gather([(self.state, rows)])
            self.last = self.last[rows]
        else:
            self.state = self.last = None
        return rows

    @property
    def rows(self) -> int:
        return sum(s.n for s in self.streams)

    def tick(self, now: float, flush: float) -> None:
        """One character for every stream: choose, record, drop the finished, step the rest."""
        streams = [s for s in self.streams if not s.cancelled]
        if len(streams) != len(self.streams):
            for s in self.streams:
                if s.cancelled:
                    s.finish()
            self.keep(streams)
            if not streams:
                return
        N = len(self.last)
        u = np.empty(N)
        spans, a = [], 0
        groups: dict[tuple, list] = {}
        for s in streams:
            u[a:a + s.n] = s.uniforms()
            spans.append((s, a, a + s.n))
            groups.setdefault(s.key, []).append((s, a, a + s.n))
            a += s.n
        if len(groups) == 1:
            tokens = choose(self.last, streams[0].opts, u=u)
        else:
            tokens = np.empty(N, dtype=np.int64)
            for members in groups.values():
                rows = np.concatenate([np.arange(a, b) for _, a, b in members])
                tokens[rows] = choose(self.last[rows], members[0][0].opts, u=u[rows])
        done = []
        for s, a, b in spans:
            if s.record(tokens[a:b]):
                done.append(s)
            elif s.armed:
                s.tell(now, flush)
        if done:
            for s in done:
                s.finish()
            keep = [s for s in streams if s not in done]
            tokens = tokens[self.keep(keep)]
            if not keep:
                return
        self.last, self.state = self.stepper.step(tokens, self.state)


class Sampler:
    """Batched generation for one model (a CharRNN language model or a CharGenerator): `submit`
    returns a `Stream` the engine thread fills; `close` stops the thread.

    `max_streams` bounds the samples held at once (running and waiting to start): beyond it `submit`
    raises `Busy`, which the server answers with 503."""

    def __init__(self, model, max_streams: int = 256, flush: float = 0.05, name: str = "model"):
        self.model = model.eval()
        self.max_streams, self.flush = max_streams, flush
        self._lanes: dict = {}  # class index (None: no class) -> _Lane
        self._steppers: dict = {}
        self._pending: list[Stream] = []
        self._held = 0  # samples running or waiting
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"rnnkit sampler {name}", daemon=True)
        self._thread.start()

    @property
    def held(self) -> int:
        return self._held

    def submit(self, n: int = 1, length: int = 500, label: str | None = None, **options) -> Stream:
        """Start `n` samples (the options are `generate`'s; not beam search, which is not stepped in
        batches). Bad options raise here, before anything runs."""
        if n < 1:
            raise UsageError(f"n must be >= 1, got {n}")
        start = prepare(self.model, length, None, label, options)
        if start.opts.beam:
            raise UsageError("beam search is not batched; use rnnkit.sample.generate")
        stream = Stream(self.model, n, start)
        with self._cond:
            if self._closed:
                raise Busy("the sampler is shutting down")
            if self._held + n > self.max_streams:
                raise Busy(f"the server is generating {self._held} samples, its limit is {self.max_streams}; "
                           "retry shortly")
            self._held += n
            self._pending.append(stream)
            self._cond.notify()
        return stream

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)

    # -- the engine thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._lanes and not self._closed:
                    self._cond.wait()
                if self._closed:
                    for s in self._pending + [s for lane in self._lanes.values() for s in lane.streams]:
                        s.finish("the server is shutting down")
                    return
                joining, self._pending = self._pending, []
            try:
                self._admit(joining)
                now = time.perf_counter()
                for key, lane in list(self._lanes.items()):
                    before = lane.rows
                    lane.tick(now, self.flush)
                    if lane.rows != before:
                        self._release(before - lane.rows)
                    if not lane.streams:
                        del self._lanes[key]
            except Exception as exc:  # a bug: fail the requests in flight, keep serving new ones
                traceback.print_exc(file=sys.stderr)
                streams = joining + [s for lane in self._lanes.values() for s in lane.streams]
                for s in streams:
                    if not s.finished:
                        s.finish(f"internal error: {exc}")
                self._lanes.clear()
                with self._cond:
                    self._held = 0

    def _release(self, n: int) -> None:
        with self._cond:
            self._held -= n

    @torch.no_grad()
    def _admit(self, joining: list[Stream]) -> None:
        """Read each new stream's prime (one forward of the model) and add its rows to its lane."""
        by_lane: dict = {}
        for s in joining:
            if s.cancelled or s.opts.length == 0:
                s.finish()
                self._release(s.n)
                continue
            logits, state = s.forward(torch.tensor([s.ids]), None)  # (1, P, V)
            by_lane.setdefault(s.class_index, []).append((s, logits[:, -1].float().numpy(), state))
        for index, items in by_lane.items():
            if index not in self._lanes:
                if index not in self._steppers:  # arranged once per class, kept for the next lane
                    offset = self.model.input_offset(index) if index is not None else None
                    # one thread: the server's cores go to the event loop, the clients and the other models
                    self._steppers[index] = FastStepper(self.model, offset=offset, threads=1)
                self._lanes[index] = _Lane(self._steppers[index])
            self._lanes[index].add(items)
