"""ONNX export of every task's model, for runtimes without PyTorch (onnxruntime).

`export_onnx(model, out)` writes graphs of the model's weights with the recurrent state explicit on
both sides, plus export.json, which names every graph's inputs and outputs and their shapes so that a
program can drive the graphs knowing nothing else. tests/test_export.py checks onnxruntime against
PyTorch for each kind, and runs the README's no-PyTorch sampling example.

Language models and generators (`CharRNN`, `CharGenerator`), and the forecaster (`SeriesRNN`, values
(B, T, F) float32 in place of tokens):

    sequence.onnx   tokens (B, T) int64, state in -> logits (B, T, V), state out   (B and T dynamic)
    step.onnx       tokens (B, 1) int64, state in -> logits (B, 1, V), state out   (B dynamic)

(mingru and minlstm language models: step.onnx only; their scan over time has no ONNX operator.)

The state is h (L, B, H) for rnn, gru, mingru and minlstm, and h, c for lstm (inputs `h0` [`c0`], outputs `h` [`c`]),
zeros to start; pass the outputs back in to continue, exactly as with the PyTorch model. A
conditional generator takes `classes` (B,) int64 after the tokens, and start.onnx (classes in, the
state each class starts from out) goes with them. The forecaster's values are normalised with the
mean and std that export.json carries (predictions likewise).

Seq2seq and captioning (`Seq2Seq`, `Captioner`), two graphs:

    encoder.onnx    source (B, S) int64 padded with 0 and lengths (B,) int64 (a captioner: images
                    (B, H, W, C) float32 in [0, 1]) -> memory, [keys,] h0 [c0] (the decoder's start)
    decoder.onnx    one step: token (B,) int64 (BOS first), [lengths,] memory, [keys,] h0 [c0] [feed0]
                    -> logits (B, V), h [c] [feed], attention (B, S)

The encoder's outputs are named as the decoder's inputs, so they go in as they come out; each step's
h, c and feed go back in as h0, c0, feed0. The source is packed inside the encoder graph (ONNX's RNN
operators take the lengths), so rows of any lengths batch together, and attention gives padding 0.

Classifiers, question answering and glimpses, one graph each (classifier.onnx, vqa.onnx,
glimpse.onnx) from the inputs to the logits. A classifier's rows must be of equal length (one text at
a time, or texts of one length): its packing has no ONNX form, and on rows without padding the
unpacked network computes exactly what the packed one does (tests/test_classify.py proves it for the
bidirectional case). A glimpse model's graph is its deterministic path (the policy's mean or best
cell), the one `predict` takes, and also gives the locations.

Beside the graphs go the vocabularies (vocab.json; source_vocab.json, target_vocab.json,
question_vocab.json; tokenizer.json for word and bpe tokens), the run's config.json and export.json.
The exporter is PyTorch's TorchScript-based one (`dynamo=False`): it writes the fused RNN/LSTM/GRU as
the ONNX operators of the same names, which onnxruntime runs as single kernels.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from .config import SCAN_CELLS
from .data.pairs import BOS, EOS, PAD, UNK
from .errors import RnnkitError, UsageError
from .io import atomic_write, atomic_write_bytes, atomic_write_json
from .models.captioner import Captioner
from .models.classifier import SequenceClassifier
from .models.forecaster import SeriesRNN
from .models.generator import BOUNDARY, CharGenerator
from .models.glimpse import GlimpseClassifier
from .models.lm import CharRNN
from .models.seq2seq import Seq2Seq
from .models.vqa import VQAModel

GRAPHS = ("sequence.onnx", "step.onnx", "start.onnx", "encoder.onnx", "decoder.onnx", "classifier.onnx",
          "vqa.onnx", "glimpse.onnx")
FILES = GRAPHS + ("vocab.json", "tokenizer.json", "source_vocab.json", "target_vocab.json", "question_vocab.json",
                  "config.json", "export.json")
OPSET = 17
STATE_SHAPE = "(layers, batch, hidden) float32"


class _Unpacked(nn.Module):
    """SequenceClassifier.forward for rows without padding: the fused layer called on the padded
    tensor directly (equal to the packed call when every row is T long), pooled over every step."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens):
        m = self.model
        x = m.step_inputs(tokens)  # (B, T, E)
        lengths = torch.ones(x.shape[:2], dtype=torch.int64).sum(dim=1)  # (B,) every row T long
        if m.rnn is None:
            return m.head(m.pool(x, lengths))
        out, new = m.rnn(x)
        if m.config.pooling == "last":
            return m.head(m.last(new[0] if isinstance(new, tuple) else new))  # h_n (L x D, B, H)
        return m.head(m.pool(out, lengths))


class _Explicit(nn.Module):
    """CharRNN.forward (or a conditional CharGenerator's, classes first; or SeriesRNN's) with the state
    as separate tensors, as a graph's inputs and outputs must be."""

    def __init__(self, model, conditional: bool):
        super().__init__()
        self.model, self.conditional = model, conditional

    def forward(self, tokens, *rest):
        if self.conditional:
            logits, new = self.model(tokens, tuple(rest[1:]), rest[0])
        else:
            logits, new = self.model(tokens, tuple(rest))
        return (logits, *new)


class _Start(nn.Module):
    """A conditional generator's state before the first symbol, from the classes (B,)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, classes):
        return self.model.initial_state(classes.shape[0], classes)


class _Encoder(nn.Module):
    """Seq2Seq.encode (source, lengths; or a captioner's images) -> memory, keys, the decoder's start state."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *source):
        memory, _, state, keys = self.model.encode(*source) if len(source) == 2 else self.model.encode(source[0])
        return (memory, *([keys] if self.model.config.attention != "none" else []), *state)


class _DecoderStep(nn.Module):
    """Seq2Seq.step with everything explicit: token, [lengths,] memory, [keys,] state..., [feed] ->
    logits, state..., [feed], attention. The mask comes from the lengths (a captioner's grid: all real)."""

    def __init__(self, model, lengths: bool, num_state: int):
        super().__init__()
        self.model, self.lengths, self.num_state = model, lengths, num_state

    def forward(self, token, *rest):
        if self.lengths:
            lengths, rest = rest[0], rest[1:]
        memory = rest[0]
        keys, rest = (rest[1], rest[2:]) if self.model.config.attention != "none" else (memory, rest[1:])
        state = tuple(rest[:self.num_state])
        feed = rest[self.num_state] if self.model.feeds else None
        if self.lengths:
            mask = torch.arange(memory.shape[1], device=memory.device)[None] < lengths[:, None]
        else:
            mask = torch.ones_like(memory[..., 0], dtype=torch.bool)
        logits, new, att, alpha = self.model.step(token, state, feed, memory, mask, keys)
        return (logits, *new, *([att] if self.model.feeds else []), alpha)


class _Call(nn.Module):
    """`call(model, *inputs)` as a module: what of the model's result a graph returns."""

    def __init__(self, model, call):
        super().__init__()
        self.model, self.call = model, call

    def forward(self, *inputs):
        return self.call(self.model, *inputs)


def export_onnx(model, out: str | Path, config_json: dict | None = None) -> dict:
    """Write the files above for `model` (any task's, with its vocabularies attached) into `out`;
    returns what export.json holds."""
    exporters = ((SequenceClassifier, _export_classifier), (Seq2Seq, _export_seq2seq), (SeriesRNN, _export_recurrent),
                 (VQAModel, _export_vqa), (GlimpseClassifier, _export_glimpse), (CharRNN, _export_recurrent))
    exporter = next((f for kind, f in exporters if isinstance(model, kind)), None)
    if exporter is None:
        raise UsageError(f"ONNX export covers the models of rnnkit's tasks; {type(model).__name__} is not one of them")
    if importlib.util.find_spec("onnx") is None:
        raise RnnkitError("ONNX export needs the onnx package (onnxruntime to run the graphs): "
                          "pip install 'rnnkit[export]'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "onnx", "opset": OPSET, **exporter(model.eval(), out)}
    if config_json is not None:
        atomic_write_json(out / "config.json", config_json)
    atomic_write_json(out / "export.json", meta)
    return meta


def _state_names(cell: str) -> tuple[list[str], list[str]]:
    """The state's graph inputs (h0 [c0]) and outputs (h [c])."""
    names = ["h", "c"] if cell == "lstm" else ["h"]
    return [f"{n}0" for n in names], names


def _export_recurrent(model, out: Path) -> dict:
    """Language models and generators (tokens in), the forecaster (values in): sequence.onnx and step.onnx."""
    c = model.config
    series = isinstance(model, SeriesRNN)
    conditional = isinstance(model, CharGenerator) and model.conditional
    state_inputs, state_names = _state_names(c.cell)
    x = "values" if series else "tokens"
    inputs = [x] + (["classes"] if conditional else []) + state_inputs
    outputs = ["predictions" if series else "logits"] + state_names
    zeros = tuple(torch.zeros(c.num_layers, 2, c.hidden_size) for _ in state_inputs)
    # mingru/minlstm: step.onnx alone. Their sequence form is a scan over time (or a loop) that ONNX has
    # no operator for (no logcumsumexp; a traced loop would fix the length), so a sequence is fed a
    # token at a time, which is how a sampler reads it anyway.
    graphs = (("step.onnx", 1),) if c.cell in SCAN_CELLS else (("sequence.onnx", 4), ("step.onnx", 1))
    for name, T in graphs:
        example = (torch.zeros(2, T, c.num_features) if series else torch.zeros(2, T, dtype=torch.int64),
                   *([torch.zeros(2, dtype=torch.int64)] if conditional else []), *zeros)
        time = {1: "time"} if T > 1 else {}
        axes = {x: {0: "batch", **time}, outputs[0]: {0: "batch", **time},
                **({"classes": {0: "batch"}} if conditional else {}),
                **{n: {1: "batch"} for n in state_inputs + state_names}}
        _onnx_export(_Explicit(model, conditional), example, out / name, inputs, outputs, axes)
    files = [name for name, _ in graphs]
    if conditional:  # the learned state each class starts from (zeros for a model conditioned by steps only)
        _onnx_export(_Start(model), (torch.zeros(2, dtype=torch.int64),), out / "start.onnx", ["classes"],
                     state_inputs, {"classes": {0: "batch"}, **{n: {1: "batch"} for n in state_inputs}})
        files.append("start.onnx")
    kind = "forecaster" if series else "generator" if isinstance(model, CharGenerator) else "language model"
    meta = {"model": kind, "files": files + _write_vocab(out, "vocab.json", getattr(model, "vocab", None)),
            "cell": c.cell, "num_layers": c.num_layers, "hidden_size": c.hidden_size,
            "inputs": inputs, "outputs": outputs, "state_inputs": state_inputs, "state_outputs": state_names,
            "shapes": {**{n: STATE_SHAPE for n in state_inputs + state_names}},
            "state": f"feed {', '.join(state_names)} back in as {', '.join(state_inputs)} to continue; "
                     + ("start from start.onnx's state for the classes" if conditional else "zeros to start")
                     + ("; no sequence.onnx for this cell: read a sequence one token at a time" if c.cell in SCAN_CELLS
                        else "")}
    if series:
        meta.update(num_features=c.num_features, columns=list(model.columns or []),
                    mean=[float(v) for v in model.mean] if model.mean is not None else None,
                    std=[float(v) for v in model.std] if model.std is not None else None)
        meta["shapes"].update(values="(batch, time, features) float32, normalised: (x - mean) / std; time is 1 "
                                     "for step.onnx",
                              predictions="(batch, time, features) float32: row t predicts step t + 1, normalised")
        return meta
    meta["vocab_size"] = c.vocab_size
    meta["shapes"].update(tokens="(batch, time) int64; time is 1 for step.onnx",
                          logits="(batch, time, vocab) float32")
    if isinstance(model, CharGenerator):
        meta["classes"] = list(model.classes) if conditional else []
        meta["boundary"] = BOUNDARY  # each sample starts after it and ends at the next one
        if conditional:
            meta["shapes"]["classes"] = "(batch,) int64 class indices, in the order of classes"
    return meta


def _export_seq2seq(model, out: Path) -> dict:
    c = model.config
    captioner = isinstance(model, Captioner)
    state_inputs, state_names = _state_names(c.cell)
    feed_in, feed_out = (["feed0"], ["feed"]) if model.feeds else ([], [])
    enc_inputs = ["images"] if captioner else ["source", "lengths"]
    keys = ["keys"] if c.attention != "none" else []  # without attention the decoder reads the memory's shape only
    enc_outputs = ["memory"] + keys + state_inputs
    if captioner:
        example = (torch.zeros(2, *c.image_shape),)
    else:
        example = (torch.full((2, 5), 4, dtype=torch.int64), torch.tensor([5, 3]))
    with _quiet_stderr():  # the TorchScript exporter's C++ notes on shape inference of the packed sequence
        _onnx_export(_Encoder(model), example, out / "encoder.onnx", enc_inputs, enc_outputs,
                     {**{n: {0: "batch"} for n in enc_inputs}, **({"source": {0: "batch", 1: "source"}} if not captioner
                                                                   else {}),
                      "memory": {0: "batch", 1: "source"}, "keys": {0: "batch", 1: "source"},
                      **{n: {1: "batch"} for n in state_inputs}})
    with torch.no_grad():
        memory, keys_, *state = _Encoder(model)(*example)
    dec_inputs = ["token"] + ([] if captioner else ["lengths"]) + ["memory"] + keys + state_inputs + feed_in
    dec_outputs = ["logits"] + state_names + feed_out + ["attention"]
    dec_example = (torch.full((2,), BOS, dtype=torch.int64), *([] if captioner else [example[1]]), memory, keys_,
                   *state, *([torch.zeros(2, c.hidden_size)] if model.feeds else []))
    _onnx_export(_DecoderStep(model, not captioner, len(state_inputs)), dec_example, out / "decoder.onnx", dec_inputs,
                 dec_outputs, {"token": {0: "batch"}, "lengths": {0: "batch"}, "memory": {0: "batch", 1: "source"},
                               "keys": {0: "batch", 1: "source"}, "logits": {0: "batch"},
                               "attention": {0: "batch", 1: "source"},
                               **{n: {1: "batch"} for n in state_inputs + state_names},
                               **{n: {0: "batch"} for n in feed_in + feed_out}})
    files = ["encoder.onnx", "decoder.onnx"]
    if not captioner:
        files += _write_vocab(out, "source_vocab.json", model.source_vocab)
    files += _write_vocab(out, "target_vocab.json", model.target_vocab)
    source_shape = (f"(batch, {', '.join(map(str, c.image_shape))}) float32 in [0, 1]" if captioner else
                    "(batch, source) int64 token ids of source_vocab.json, padded with 0 after each row's length")
    return {"model": "captioner" if captioner else "seq2seq", "files": files, "cell": c.cell,
            "num_layers": c.num_layers, "hidden_size": c.hidden_size, "attention": c.attention,
            "target_vocab_size": c.target_vocab_size, "max_length": c.max_length,
            "encoder": {"inputs": enc_inputs, "outputs": enc_outputs},
            "decoder": {"inputs": dec_inputs, "outputs": dec_outputs},
            "specials": {"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK}, "never_output": [PAD, BOS, UNK],
            "shapes": {enc_inputs[0]: source_shape, **({} if captioner else {"lengths": "(batch,) int64 each source's "
                                                                                   "length"}),
                       "memory": "(batch, source, width) float32",
                       **{n: "(batch, source, hidden) float32" for n in keys},
                       "token": "(batch,) int64: the last output token, bos to start",
                       "logits": "(batch, target vocab) float32", "attention": "(batch, source) float32",
                       **{n: STATE_SHAPE for n in state_inputs + state_names},
                       **{n: "(batch, hidden) float32" for n in feed_in + feed_out}},
            "decoding": "run the encoder once; then step the decoder from token bos with its outputs as the next "
                        f"step's inputs ({', '.join(state_names + feed_out)} -> {', '.join(state_inputs + feed_in)}), "
                        "never choosing pad, bos or unk, until eos"}


def _export_classifier(model, out: Path) -> dict:
    c = model.config
    name = "tokens" if not c.num_features else "values"
    step = tuple(c.frame_shape) if c.frame_shape else (c.num_features,) if c.num_features else ()
    example = (torch.zeros(2, 5, dtype=torch.int64) if not step else torch.zeros(2, 5, *step))
    _onnx_export(_Unpacked(model), (example,), out / "classifier.onnx", [name], ["logits"],
                 {name: {0: "batch", 1: "time"}, "logits": {0: "batch"}})
    return {"model": "classifier", "files": ["classifier.onnx"] + _write_vocab(out, "vocab.json", model.vocab),
            "cell": c.cell, "classes": list(model.classes), "inputs": [name], "outputs": ["logits"],
            "shapes": {name: "(batch, time) int64 token ids" if not step else
                       f"(batch, time, {', '.join(map(str, step))}) float32",
                       "logits": "(batch, classes) float32; softmax gives the class probabilities"},
            "rows": "every row of a batch must be a whole sequence of the same length (no padding)"}


def _vqa_call(model, *inputs):
    seen = model.config.inputs
    images = inputs[0] if seen != "question" else None
    tokens, lengths = inputs[-2:] if seen != "image" else (None, None)
    return model(images, tokens, lengths)


def _export_vqa(model, out: Path) -> dict:
    c = model.config
    seen = c.inputs
    inputs = (["images"] if seen != "question" else []) + (["tokens", "lengths"] if seen != "image" else [])
    example = {"images": torch.zeros(2, *c.image_shape), "tokens": torch.full((2, 4), 4, dtype=torch.int64),
               "lengths": torch.tensor([4, 2])}
    with _quiet_stderr():
        _onnx_export(_Call(model, _vqa_call), tuple(example[n] for n in inputs), out / "vqa.onnx", inputs, ["logits"],
                     {"images": {0: "batch"}, "tokens": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                      "logits": {0: "batch"}})
    files = ["vqa.onnx"] + (_write_vocab(out, "question_vocab.json", model.question_vocab) if seen != "image" else [])
    return {"model": "vqa", "files": files, "cell": c.cell, "answers": list(model.answers or []), "inputs": inputs,
            "outputs": ["logits"],
            "shapes": {"images": f"(batch, {', '.join(map(str, c.image_shape))}) float32 in [0, 1]",
                       "tokens": "(batch, time) int64 ids of question_vocab.json, padded with 0 after each length",
                       "lengths": "(batch,) int64 each question's length",
                       "logits": "(batch, answers) float32; softmax gives the answers' probabilities"}}


def _glimpse_call(model, images):
    result = model(images)
    return (result.logits,) if result.locations is None else (result.logits, result.locations)


def _export_glimpse(model, out: Path) -> dict:
    c = model.config
    outputs = ["logits"] + (["locations"] if c.network == "ram" else [])
    _onnx_export(_Call(model, _glimpse_call), (torch.zeros(2, *c.image_shape),), out / "glimpse.onnx", ["images"],
                 outputs, {"images": {0: "batch"}, **{n: {0: "batch"} for n in outputs}})
    return {"model": "glimpse", "files": ["glimpse.onnx"], "network": c.network, "classes": list(model.classes or []),
            "inputs": ["images"], "outputs": outputs,
            "shapes": {"images": f"(batch, {', '.join(map(str, c.image_shape))}) float32 in [0, 1]",
                       "logits": "(batch, classes) float32; softmax gives the class probabilities",
                       "locations": "(batch, glimpses, 2) float32: each glimpse's centre (x, y) in [-1, 1]"}}


def _write_vocab(out: Path, name: str, vocab) -> list[str]:
    """A vocabulary's JSON (and, for word and bpe tokens of a language model, tokenizer.json); the files written."""
    if vocab is None:
        return []
    atomic_write_json(out / name, vocab.to_json())
    if getattr(vocab, "tokenizer_json", None):  # word and bpe tokens: the tokenizer, for any runtime
        atomic_write_bytes(out / "tokenizer.json", vocab.tokenizer_json().encode("utf-8"))
        return [name, "tokenizer.json"]
    return [name]


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what C++ writes to file descriptor 2 (Python's own errors still raise)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _onnx_export(module, example, path: Path, inputs, outputs, axes) -> None:
    axes = {k: v for k, v in axes.items() if k in inputs or k in outputs}
    with warnings.catch_warnings():  # the legacy exporter's deprecation and batch-size notes
        warnings.simplefilter("ignore")
        atomic_write(path, lambda tmp: torch.onnx.export(
            module, example, str(tmp), input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, dynamo=False))
    import onnx
    graph = onnx.load(str(path), load_external_data=False).graph
    names = ([i.name for i in graph.input], [o.name for o in graph.output])
    if names != (list(inputs), list(outputs)):  # an input the function never reads is dropped from the graph
        raise RnnkitError(f"internal error: {path.name} has inputs {names[0]} and outputs {names[1]}, "
                          f"not {list(inputs)} and {list(outputs)}")


def export_run(run_dir: str | Path, out: str | Path, format: str = "onnx", checkpoint: str = "best",
               force: bool = False) -> dict:
    """`rnnkit export RUN --format onnx --out DIR` (`rnnkit.export` in Python): the run's model and
    config, never over earlier files unless `force`; returns what export.json holds."""
    from . import checkpoint as ckpt
    from .tasks import load
    if format != "onnx":
        raise UsageError(f"unknown export format {format!r}; rnnkit writes onnx")
    out = Path(out)
    present = [n for n in FILES if (out / n).exists()]
    if present and not force:
        raise RnnkitError(f"{out} already holds {', '.join(present)}; pass --force to overwrite it")
    model = load(run_dir, checkpoint)
    return export_onnx(model, out, ckpt.read_config_json(run_dir))
