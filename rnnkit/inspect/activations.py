"""Per-step internals of a trained model over any text (Karpathy, Johnson & Fei-Fei 2015, section 4).

`activations(model, text)` runs the readable per-step cells (`CharRNN.forward_steps`) over the text
in chunks, carrying the state, and returns for every character t:
- the hidden state h of every layer, the LSTM cell state c, and every gate's activation (T, H);
- the model's next-character distribution after reading t (its top-k characters and probabilities);
- the loss of character t given the characters before it (nats; NaN for the first character).
The result saves to `.npz` and to LSTMVis's input format (HDF5 states, token file, dictionary).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError


@dataclass
class Activations:
    """Arrays over T characters; per-layer lists hold (T, H) float32 arrays."""

    chars: list  # the T symbols as text (a byte-level model may show partial UTF-8 as '\ufffd')
    tokens: np.ndarray  # (T,) token ids
    h: list = field(default_factory=list)
    c: list = field(default_factory=list)  # LSTM only
    gates: dict = field(default_factory=dict)  # gate name -> per-layer list
    loss: np.ndarray = None  # (T,) nats; loss[t] = -log p(char t | chars < t); loss[0] = NaN
    top_ids: np.ndarray = None  # (T, k) most likely next tokens after reading char t
    top_probs: np.ndarray = None  # (T, k)

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def ends(self) -> np.ndarray:
        """(T,) the offset in `text` of each step's last character: t itself for characters and bytes;
        for word and bpe tokens, which spell several characters (or none yet, a character split across
        tokens), where the text read so far ends. Features of the text are read there."""
        return np.maximum(np.cumsum([len(c) for c in self.chars]) - 1, 0)

    def kinds(self) -> list[str]:
        """What can be looked at: 'h', 'c' (LSTM) and 'gate:<name>' for each gate."""
        return ["h"] + (["c"] if self.c else []) + [f"gate:{g}" for g in self.gates]

    def values(self, kind: str, layer: int) -> np.ndarray:
        """(T, H) activations of `kind` ('h', 'c' or 'gate:<name>') in `layer` (0-based)."""
        if kind == "h":
            per_layer = self.h
        elif kind == "c" and self.c:
            per_layer = self.c
        elif kind.startswith("gate:") and kind[5:] in self.gates:
            per_layer = self.gates[kind[5:]]
        else:
            raise DataError(f"no activation {kind!r}; this model has {', '.join(self.kinds())}")
        if not 0 <= layer < len(per_layer):
            raise DataError(f"layer {layer + 1} does not exist; this model has {len(per_layer)} layer(s)")
        return per_layer[layer]

    def head(self, n: int) -> "Activations":
        """The first n characters (what a run over only those characters would give: the model is causal)."""
        cut = lambda layers: [a[:n] for a in layers]  # noqa: E731
        return Activations(self.chars[:n], self.tokens[:n], cut(self.h), cut(self.c),
                           {g: cut(v) for g, v in self.gates.items()}, self.loss[:n], self.top_ids[:n],
                           self.top_probs[:n])

    def save_npz(self, path: str | Path) -> None:
        arrays = {"tokens": self.tokens, "loss": self.loss, "top_ids": self.top_ids, "top_probs": self.top_probs,
                  "chars": np.array(self.chars, dtype=object).astype(str)}
        for k, a in enumerate(self.h):
            arrays[f"h_l{k}"] = a
        for k, a in enumerate(self.c):
            arrays[f"c_l{k}"] = a
        for g, layers in self.gates.items():
            for k, a in enumerate(layers):
                arrays[f"gate_{g}_l{k}"] = a
        np.savez_compressed(path, **arrays)

    def save_lstmvis(self, directory: str | Path, vocab) -> Path:
        """LSTMVis's input: states.h5 (states{k}: c for LSTM, else h; output{k}: h), train.h5 ('words':
        token ids), train.dict (one 'symbol id' line per symbol) and lstm.yml tying them together."""
        import h5py
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with h5py.File(out / "states.h5", "w") as f:
            for k in range(len(self.h)):
                f.create_dataset(f"states{k + 1}", data=(self.c or self.h)[k])
                f.create_dataset(f"output{k + 1}", data=self.h[k])
        with h5py.File(out / "train.h5", "w") as f:
            f.create_dataset("words", data=self.tokens.astype(np.int64))
        symbols = (vocab.chars if vocab.kind == "char" else [f"0x{i:02x}" for i in range(256)] if vocab.kind == "byte"
                   else [vocab.symbol(i) for i in range(len(vocab))])
        lines = [f"{_dict_name(s)} {i}" for i, s in enumerate(symbols)]
        (out / "train.dict").write_text("\n".join(lines) + "\n", encoding="utf-8")
        types = ",\n".join(f"    {{type: state, layer: {k + 1}, path: states{k + 1}}},\n"
                           f"    {{type: output, layer: {k + 1}, path: output{k + 1}}}" for k in range(len(self.h)))
        (out / "lstm.yml").write_text(
            "name: rnnkit export\ndescription: hidden states exported by rnnkit\n\n"
            "files:\n  states: states.h5\n  train: train.h5\n  words: train.dict\n\n"
            "word_sequence:\n  file: train\n  path: words\n  dict_file: words\n\n"
            f"states:\n  file: states\n  types: [\n{types}\n  ]\n", encoding="utf-8")
        return out


def _dict_name(symbol: str) -> str:
    """LSTMVis splits dictionary lines on white space, so white space and escapes get names."""
    named = {" ": "<space>", "\n": "<newline>", "\t": "<tab>", "\r": "<cr>"}
    if symbol in named:
        return named[symbol]
    if len(symbol) != 1:  # a word or bpe token: its characters, white space named
        return "".join(_dict_name(c) for c in symbol) or "<empty>"
    return symbol if symbol.isprintable() and not symbol.isspace() else f"<U+{ord(symbol):04X}>"


@torch.no_grad()
def activations(model, text: str, chunk_len: int = 256, top_k: int = 5, unknown: str = "error") -> Activations:
    """Run `model` (a CharRNN with its vocabulary) over `text`; see the module docstring."""
    if model.vocab is None:
        raise DataError("this model has no vocabulary attached; load it with rnnkit.load(run_dir)")
    tokens = model.vocab.encode(model.normalize_text(text), unknown=unknown)  # line endings as in training
    if len(tokens) == 0:
        raise DataError("the text to inspect is empty")
    model.eval()
    device = next(model.parameters()).device
    ids = torch.from_numpy(tokens.astype(np.int64)).to(device)[None]  # (1, T)
    L, state = model.config.num_layers, None
    h, c = [[] for _ in range(L)], [[] for _ in range(L)]
    gates = {g: [[] for _ in range(L)] for g in model.family.GATES}
    logps = []
    for t0 in range(0, ids.shape[1], chunk_len):
        logits, state, trace = model.forward_steps(ids[:, t0:t0 + chunk_len], state)  # carried across chunks
        logps.append(F.log_softmax(logits[0].float(), dim=-1).cpu())  # (t, V)
        for k in range(L):
            h[k].append(trace.h[k][0].cpu())
            if trace.c:
                c[k].append(trace.c[k][0].cpu())
            for g in gates:
                gates[g][k].append(trace.gates[g][k][0].cpu())
    logp = torch.cat(logps)  # (T, V): row t predicts character t + 1
    loss = np.full(len(tokens), np.nan, dtype=np.float32)
    target = torch.from_numpy(tokens[1:].astype(np.int64))
    loss[1:] = (-logp[:-1].gather(1, target[:, None])[:, 0]).numpy()
    top = torch.topk(logp.exp(), min(top_k, logp.shape[1]), dim=-1)
    cat = lambda parts: torch.cat(parts).numpy().astype(np.float32)  # noqa: E731
    # characters and word/bpe pieces decode as text (a piece may hold part of a character: its text
    # comes with the piece that completes it); a byte shows as ASCII or U+FFFD
    decode = model.vocab.decoder() if model.vocab.kind != "byte" else (lambda i: chr(i) if i < 128 else "\ufffd")
    return Activations(
        chars=[decode(i) for i in tokens.tolist()], tokens=tokens,
        h=[cat(p) for p in h], c=[cat(p) for p in c] if model.config.cell == "lstm" else [],
        gates={g: [cat(p) for p in layers] for g, layers in gates.items()},
        loss=loss, top_ids=top.indices.numpy(), top_probs=top.values.numpy().astype(np.float32))


def describe_symbol(vocab, token: int) -> str:
    """A symbol as a person reads it in a table or tooltip."""
    if vocab.kind == "byte":
        return repr(chr(token)) if token < 128 else f"0x{token:02x}"
    if vocab.chars is None:  # a word or bpe token
        return json.dumps(vocab.symbol(token), ensure_ascii=False)
    return json.dumps(vocab.chars[token], ensure_ascii=False)
