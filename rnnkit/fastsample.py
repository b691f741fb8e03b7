"""A fast stateful stepper for sampling: one character costs one vector-matrix product per layer,
in C (rnnkit/_csample.c) where the package was built with a compiler, else in NumPy.

Stepping `nn.LSTM` one character at a time on a CPU spends most of its time outside the arithmetic
(dispatch, weight repacking by oneDNN on every call). Generation needs only
`logits, state = step(token, state)`, so `FastStepper` pre-arranges the weights once:

- layer 0's input projection is a table: embedding @ W_ih^T + b for every symbol, so reading a
  character is a row lookup instead of a matrix product;
- a layer's new hidden state h_k is needed twice: by the layer above now (W_ih of layer k+1, or the
  output head for the top layer) and by the layer itself at the next step (W_hh of layer k). Both
  are one product, h_k @ [W_hh_k^T | W_ih_{k+1}^T]; the recurrent half waits in the state for the
  next step. So a step costs L vector-matrix products, not 2L + 1;
- sigmoid gates are computed as 0.5 * tanh(x / 2) + 0.5 with the 1/2 folded into the weights, so
  the LSTM's four gates need a single tanh over 4H values;
- at batch 1 the arithmetic is tiny and the cost is NumPy's per-call overhead, so every operation
  writes into buffers the state owns (`out=`): no allocation, no slicing inside the step.

It computes the same function as `CharRNN.forward` (tests/test_fastsample.py: distributions agree to
1e-5) for batches of N independent streams. The plain model path stays available for checking.

mingru and minlstm step here too, on NumPy only: their gates read only the input, so a layer's
product has no recurrent half (h_k @ [W_ih_{k+1}^T], G = 0 below) and the cell is elementwise.

The compiled loop works on the same state buffers, with the products' weights packed in tiles of
64 columns (`pack`; fp32, or a bfloat16 or int8 copy), and `run` goes further: it chooses each token too,
from the uniforms the caller drew, exactly as rnnkit.sample.choose does, for many steps per call.
The NumPy code below is its reference (tests compare the two step by step and token by token) and
its fallback (`compiled()` is None without the module, or with RNNKIT_SAMPLER=numpy).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .config import SCAN_CELLS

try:  # the compiled loop (rnnkit/_csample.c), built when the package is installed where a C compiler is
    from . import _csample
except ImportError:  # pragma: no cover - an install without a compiler
    _csample = None

BATCHED = 8  # streams from which a step's products go through torch.mm instead of np.dot
CELLS = {"rnn": 0, "relu": 1, "lstm": 2, "gru": 3}  # _csample's cell codes
WTYPES = {"fp32": 0, "bf16": 1, "int8": 2}  # and how its packed weights are stored


def compiled() -> str | None:
    """The instruction set the compiled sampler runs on ("avx512", "avx2", "baseline"), or None when
    sampling runs on NumPy: no compiled module, or RNNKIT_SAMPLER=numpy in the environment
    (RNNKIT_SAMPLER=avx2 or baseline, set before rnnkit loads, caps the instruction set instead)."""
    if _csample is None or os.environ.get("RNNKIT_SAMPLER", "").lower() == "numpy":
        return None
    return _csample.ISA


def _g(v: np.ndarray) -> np.ndarray:
    """minGRU/minLSTM's candidate activation (rnnkit.models.scan.g): v + 1/2, or sigmoid(v) below 0."""
    return np.where(v >= 0, v + 0.5, 0.5 * np.tanh(0.5 * v) + 0.5).astype(np.float32)


def to_bf16(w: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), rounded to nearest even: the top half of each float."""
    u = np.ascontiguousarray(w, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def to_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A product's weights [W; biases] (K + 1, M) -> (q (K, M) int8, aux (2, M) float32): each column's
    weights as whole numbers in [-127, 127] times that column's scale (its largest |weight| / 127),
    rounded to nearest, and the biases kept apart in float32, so that a large bias does not coarsen the
    column's weights. w[:-1] is approximately q * aux[0]; the bias row is aux[1] exactly."""
    weights, bias = w[:-1], w[-1]
    scale = np.abs(weights).max(axis=0) / 127
    scale[scale == 0] = 1.0  # an all-zero column: any scale gives zeros
    q = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)
    return q, np.ascontiguousarray(np.stack([scale, bias]), dtype=np.float32)


def pack(w: np.ndarray, tile: int) -> np.ndarray:
    """w (K, M) -> its columns in tiles of `tile` (the last padded with zeros), each tile's K rows side
    by side: (ceil(M / tile), K, tile), the layout the compiled loop streams through."""
    K, M = w.shape
    tiles = -(-M // tile)
    padded = np.zeros((K, tiles * tile), dtype=w.dtype)
    padded[:, :M] = w
    return np.ascontiguousarray(padded.reshape(K, tiles, tile).transpose(1, 0, 2))


class StepState:
    """The stepper's state for N streams, updated in place by `FastStepper.step`.

    Per layer k: `h[k]` (N, H), `c[k]` (N, H) for the LSTM, and `out[k]`, the last product
    [h_k, 1] @ [W_hh_k^T | W_ih_{k+1}^T; biases]: its first G columns are the recurrent half of the
    layer's next pre-activation, the rest the input of the layer above (for the top layer: the logits).
    """

    def __init__(self, stepper: "FastStepper", h: np.ndarray, c: np.ndarray | None, out: list | None = None):
        L, G, H = stepper.L, stepper.G, stepper.H
        n = h.shape[1]
        # h sits in (N, H + 1) buffers whose last column is 1, so the product adds the biases too.
        self.h1 = [np.concatenate([h[k], np.ones((n, 1))], axis=1).astype(np.float32) for k in range(L)]
        self.h = [a[:, :H] for a in self.h1]
        self.c = [np.array(c[k], dtype=np.float32) for k in range(L)] if c is not None else None
        self.out = ([np.ascontiguousarray(o, dtype=np.float32) for o in out] if out is not None
                    else [a @ w for a, w in zip(self.h1, stepper.w_next)])
        # From 8 streams on, PyTorch's matrix product (oneDNN/MKL) beats NumPy's OpenBLAS for these thin
        # shapes (at 64 rows of a 2x128 LSTM: 140 against 200 us a layer); the tensors share the buffers.
        self.batched = n >= BATCHED
        if self.batched:
            self.h1_t = [torch.from_numpy(a) for a in self.h1]
            self.out_t = [torch.from_numpy(o) for o in self.out]
        # Views and scratch buffers, made once so that a step only calls ufuncs with out=.
        self.rec = [o[:, :G] for o in self.out]
        self.above = [o[:, G:] for o in self.out]  # input pre-activation of layer k+1 (top: the logits)
        pre, s = np.empty((n, G), dtype=np.float32), np.empty((n, G), dtype=np.float32)
        self.pre, self.s, self.tmp = pre, s, np.empty((n, H), dtype=np.float32)
        self.net = None
        if stepper.compiled:  # the C loop works on these very buffers (its own scratch aside)
            self._scratch = (np.empty(G, dtype=np.float32), np.empty(H, dtype=np.float32))
            self.net = _csample.make(CELLS["relu" if stepper.relu else stepper.cell], H, n, stepper.table,
                                     stepper.w_run, [w.shape[1] for w in stepper.w_next], self.h1, self.c, self.out,
                                     *self._scratch, WTYPES[stepper.precision], stepper.threads_for(n),
                                     stepper.aux)
        if stepper.cell == "lstm":  # gates arranged [i, f, o | g]: the sigmoids are one slice
            self.pre_sig, self.g = pre[:, :3 * H], pre[:, 3 * H:]
            self.sig, self.i, self.f, self.o = s[:, :3 * H], s[:, :H], s[:, H:2 * H], s[:, 2 * H:3 * H]
        elif stepper.cell == "gru":  # [r, z | n]; rec's n part is W_hn h + b_hn
            self.rz, self.r, self.z = s[:, :2 * H], s[:, :H], s[:, H:2 * H]
            self.rec_rz = [r[:, :2 * H] for r in self.rec]
            self.rec_n = [r[:, 2 * H:] for r in self.rec]


class FastStepper:
    """`logits, state = stepper.step(tokens, state)` with tokens (N,) ints and logits (N, V) float32;
    the state comes from `zero_state(n)` or `from_torch_state(model_state)` and is updated in place."""

    def __init__(self, model, offset=None, precision: str = "fp32", compiled_loop: bool = True,
                 threads: int | None = None):
        """`offset` (E,), optional: a vector added to every symbol's embedding (a generator's class
        input, rnnkit.models.generator), folded into the table. `precision` "bf16" keeps a bfloat16
        copy of the recurrent and output weights for the compiled loop (half the bytes a step reads),
        "int8" whole numbers with a scale per column (`to_int8`, a quarter of the bytes); the
        distributions stay within the tolerances tests/test_fastsample.py checks. "fp32" keeps
        them as they are. `compiled_loop` False keeps to NumPy even where the C loop exists. `threads`:
        how many threads share each product of the compiled loop; None chooses (`threads_for`)."""
        if precision not in WTYPES:
            raise ValueError(f"precision must be fp32, bf16 or int8, got {precision!r}")
        cfg = model.config
        self.cell, self.L, self.H = cfg.cell, cfg.num_layers, cfg.hidden_size
        self.relu = cfg.cell == "rnn" and cfg.nonlinearity == "relu"
        sd = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in model.state_dict().items()}
        H = self.H
        gates = {"lstm": 4, "gru": 3, "rnn": 1, "mingru": 2, "minlstm": 3}[self.cell]
        self.scan = self.cell in SCAN_CELLS
        # G: width of a layer's recurrent pre-activation, the part of a product kept for the next step
        self.G = G = 0 if self.scan else gates * H
        # LSTM gates are reordered from PyTorch's [i, f, g, o] to [i, f, o, g]; the pre-activations of
        # the sigmoid gates (LSTM i, f, o; GRU r, z) are halved.
        order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H] if self.cell == "lstm" else np.arange(gates * H)
        scale = np.ones(gates * H, dtype=np.float32)
        scale[:{"lstm": 3 * H, "gru": 2 * H}.get(self.cell, 0)] = 0.5
        w_x, b_x, w_h, b_h = [], [], [], []
        for k in range(self.L):
            if self.scan:  # no recurrent matrix: the product of h_k feeds the layer above alone
                w_x.append(sd[f"rnn.weight_ih_l{k}"].T)
                b_x.append(sd[f"rnn.bias_ih_l{k}"])
                w_h.append(np.zeros((H, 0), np.float32))
                b_h.append(np.zeros(0, np.float32))
                continue
            b_ih, b_hh = sd[f"rnn.bias_ih_l{k}"][order] * scale, sd[f"rnn.bias_hh_l{k}"][order] * scale
            w_x.append(sd[f"rnn.weight_ih_l{k}"][order].T * scale)
            w_h.append(sd[f"rnn.weight_hh_l{k}"][order].T * scale)
            if self.cell == "gru":  # the reset gate multiplies (W_hn h + b_hn): b_hn stays on the h side
                b_x.append(np.concatenate([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:]]))
                b_h.append(np.concatenate([np.zeros(2 * H, np.float32), b_hh[2 * H:]]))
            else:
                b_x.append(b_ih + b_hh)
                b_h.append(np.zeros(G, np.float32))
        w_x.append(sd["head.weight"].T)  # the "layer above" the top layer is the output head
        b_x.append(sd["head.bias"])
        embed = sd["embed.weight"]  # (V, E)
        if offset is not None:
            embed = embed + offset.detach().to("cpu", torch.float32).numpy()[None]
        self.table = np.ascontiguousarray(embed @ w_x[0] + b_x[0], dtype=np.float32)  # (V, G)
        # (H + 1, G + width of what is above): [W_hh_k^T | W_ih_{k+1}^T] with the biases as the last row
        self.w_next = [np.ascontiguousarray(np.vstack([np.hstack([w_h[k], w_x[k + 1]]),
                                                       np.concatenate([b_h[k], b_x[k + 1]])]), dtype=np.float32)
                       for k in range(self.L)]
        self.w_next_t = [torch.from_numpy(w) for w in self.w_next]
        self.compiled = compiled_loop and compiled() is not None and not self.scan
        if precision != "fp32" and not self.compiled:
            raise ValueError(f"{precision} sampling weights need the compiled sampler (rnnkit._csample), which "
                             "steps rnn, lstm and gru")
        self.precision, self.threads, self.aux = precision, threads, None
        if self.compiled:  # the compiled loop's copy: packed in tiles, in bf16 or int8 if asked
            if precision == "int8":
                quantized = [to_int8(w) for w in self.w_next]
                self.w_run = [pack(q, _csample.TILE) for q, _ in quantized]
                self.aux = [aux for _, aux in quantized]
            else:
                self.w_run = [pack(to_bf16(w) if precision == "bf16" else w, _csample.TILE) for w in self.w_next]

    def threads_for(self, n: int) -> int:
        """Threads for the products of n streams: as asked, or two (where there are two cores) once a
        step reads 2 MiB of weights or more, more than a core's L2 cache holds, so that two cores'
        caches and memory bandwidth serve it. Below that one thread is faster in `generate`: the
        products are short, and the time between them (PyTorch reading the prime, the text decoded
        between chunks) leaves the helper waking and spinning against the main thread."""
        if self.threads is not None:
            return self.threads
        big = sum(w.nbytes for w in self.w_run) >= 2 << 20
        return min(2, os.cpu_count() or 1) if big else 1

    def zero_state(self, n: int) -> StepState:
        zeros = np.zeros((self.L, n, self.H), dtype=np.float32)
        return StepState(self, zeros, zeros if self.cell == "lstm" else None)

    def from_torch_state(self, state) -> StepState:
        """A CharRNN state (tuple of (L, N, H) tensors) -> this stepper's state."""
        arrays = [s.detach().to("cpu", torch.float32).numpy() for s in state]
        return StepState(self, arrays[0], arrays[1] if len(arrays) == 2 else None)

    def gather(self, parts: list) -> StepState:
        """One state holding, in order, rows of several states: `parts` is a list of (state, rows), rows
        a slice or an index array. Every number is copied, none recomputed (the pending products
        included), so a stream continues exactly as it would have in its own batch."""
        L = self.L
        h = np.stack([np.concatenate([s.h[k][rows] for s, rows in parts]) for k in range(L)])  # (L, N, H)
        c = (np.stack([np.concatenate([s.c[k][rows] for s, rows in parts]) for k in range(L)])
             if self.cell == "lstm" else None)
        out = [np.concatenate([s.out[k][rows] for s, rows in parts]) for k in range(L)]
        return StepState(self, h, c, out)

    def run(self, state: StepState, last: np.ndarray, uniforms: np.ndarray, opts, end: int = -1,
            step_last: bool = True) -> np.ndarray:
        """The compiled loop: choose each stream's next token from `last` (N, V) float32 with the
        uniforms (T, N), as rnnkit.sample.choose does with `opts` (a SampleConfig), and step, T times
        (fewer once every stream has chosen `end`, when given); after the last choice, step only if
        `step_last`, leaving the new logits in `last`. Returns the tokens (t, N) of the t steps chosen."""
        if state.net is None:
            raise ValueError("this state has no compiled loop (see rnnkit.fastsample.compiled)")
        uniforms = np.ascontiguousarray(uniforms, dtype=np.float64)
        tokens = np.empty(uniforms.shape, dtype=np.int64)
        steps = _csample.run(state.net, last, uniforms, tokens, bool(opts.greedy), float(opts.temperature),
                             int(opts.top_k), float(opts.top_p), int(end), bool(step_last))
        return tokens[:steps]

    def step(self, tokens, state: StepState) -> tuple[np.ndarray, StepState]:
        S, H = state, self.H
        if S.net is not None:
            _csample.step(S.net, np.ascontiguousarray(tokens, dtype=np.int64))
            return S.above[-1].copy(), S
        # Layer 0's input pre-activation: rows of the table (one stream: a view, no copy).
        x = self.table[tokens[0]] if len(tokens) == 1 else self.table[np.asarray(tokens)]
        for k in range(self.L):
            h = S.h[k]
            if self.cell == "lstm":
                np.add(x, S.rec[k], out=S.pre)
                np.tanh(S.pre, out=S.pre)  # i, f, o arrive halved: sigmoid(v) = 0.5 * tanh(v / 2) + 0.5
                np.multiply(S.pre_sig, 0.5, out=S.sig)
                S.sig += 0.5
                c = S.c[k]
                c *= S.f
                np.multiply(S.i, S.g, out=S.tmp)
                c += S.tmp  # c = f * c + i * g
                np.tanh(c, out=h)
                h *= S.o  # h = o * tanh(c)
            elif self.cell == "gru":
                np.add(x[..., :2 * H], S.rec_rz[k], out=S.rz)
                np.tanh(S.rz, out=S.rz)
                S.rz *= 0.5
                S.rz += 0.5
                np.multiply(S.r, S.rec_n[k], out=S.tmp)
                S.tmp += x[..., 2 * H:]
                np.tanh(S.tmp, out=S.tmp)  # n = tanh(x_n + r * (W_hn h + b_hn))
                h -= S.tmp
                h *= S.z
                h += S.tmp  # h = (1 - z) * n + z * h
            elif self.cell == "mingru":  # x = [k_z, k_h]: h = (1 - z) h + z g(k_h)
                z = 0.5 * np.tanh(0.5 * x[..., :H]) + 0.5
                h += z * (_g(x[..., H:]) - h)
            elif self.cell == "minlstm":  # x = [k_f, k_i, k_h]: h = f' h + i' g(k_h), f' + i' = 1
                f, i = 0.5 * np.tanh(0.5 * x[..., :H]) + 0.5, 0.5 * np.tanh(0.5 * x[..., H:2 * H]) + 0.5
                h += i / (f + i) * (_g(x[..., 2 * H:]) - h)
            else:
                np.add(x, S.rec[k], out=S.pre)
                if self.relu:
                    np.maximum(S.pre, 0, out=h)
                else:
                    np.tanh(S.pre, out=h)
            if S.batched:  # next step's recurrent half | input above
                torch.mm(S.h1_t[k], self.w_next_t[k], out=S.out_t[k])
            else:
                np.dot(S.h1[k], self.w_next[k], out=S.out[k])
            x = S.above[k]
        return x.copy(), S
