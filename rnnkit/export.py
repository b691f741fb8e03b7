"""ONNX export of language models, generators and classifiers, for runtimes without PyTorch
(onnxruntime).

`export_onnx(model, out)` writes two graphs of the same weights and the same function as
`CharRNN.forward`, with the recurrent state explicit on both sides:

    sequence.onnx   tokens (B, T) int64, state in -> logits (B, T, V), state out   (B and T dynamic)
    step.onnx       tokens (B, 1) int64, state in -> logits (B, 1, V), state out   (B dynamic)

The state is h (L, B, H) for rnn and gru, and h, c for lstm (inputs `h0` [`c0`], outputs `h` [`c`];
export.json's `state_inputs` and `state_outputs`), zeros to start; pass the outputs back in to
continue, exactly as with the PyTorch model. Beside them go vocab.json (the run's vocabulary JSON:
the symbols in id order), config.json (the run's) and export.json, which names the inputs and
outputs and their shapes so that a program can drive the graphs knowing nothing else. tests/test_export.py checks onnxruntime against
PyTorch over hundreds of steps with carried state, and runs the README's no-PyTorch example.

A generator (`CharGenerator`) exports the same two graphs; a conditional one takes `classes` (B,)
int64 after the tokens, and start.onnx (classes in, the state each class starts from out) goes with
them.

A classifier (`SequenceClassifier`) exports as one graph, classifier.onnx: tokens (B, T) int64 (or
values (B, T, F) / frames (B, T, H, W, C) float32) -> logits (B, C), for rows of equal length (one
text at a time, or texts of one length): packing, which keeps padding out of the state, has no ONNX
form, and on rows without padding the unpacked network computes exactly what the packed one does
(tests/test_classify.py proves it for the bidirectional case). vocab.json and the classes (in
export.json) go beside it.

The exporter is PyTorch's TorchScript-based one (`dynamo=False`): it writes the fused RNN/LSTM/GRU as
the ONNX operators of the same names, which onnxruntime runs as single kernels. The forecaster and
seq2seq models (their decoding loops) do not export yet.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import RnnkitError, UsageError
from .io import atomic_write, atomic_write_bytes, atomic_write_json
from .models.classifier import SequenceClassifier
from .models.generator import BOUNDARY, CharGenerator
from .models.lm import CharRNN

FILES = ("sequence.onnx", "step.onnx", "start.onnx", "classifier.onnx", "vocab.json", "config.json", "export.json")
OPSET = 17


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
    """CharRNN.forward (or a conditional CharGenerator's, classes first) with the state as separate
    tensors, as a graph's inputs and outputs must be."""

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


def export_onnx(model, out: str | Path, config_json: dict | None = None) -> dict:
    """Write the files above for `model` (a CharRNN, CharGenerator or SequenceClassifier, with its
    vocabulary) into `out`; returns what export.json holds."""
    if not isinstance(model, (CharRNN, SequenceClassifier)):
        raise UsageError(f"ONNX export covers language models, generators and classifiers (--task lm, generate, "
                         f"classify); this run's {type(model).__name__} does not export yet")
    if importlib.util.find_spec("onnx") is None:
        raise RnnkitError("ONNX export needs the onnx package (onnxruntime to run the graphs): "
                          "pip install 'rnnkit[export]'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, SequenceClassifier):
        return _export_classifier(model.eval(), out, config_json)
    c = model.config
    model = model.eval()
    conditional = isinstance(model, CharGenerator) and model.conditional
    state_names = ["h", "c"] if c.cell == "lstm" else ["h"]
    state_inputs = [f"{n}0" for n in state_names]
    inputs = ["tokens"] + (["classes"] if conditional else []) + state_inputs
    outputs = ["logits"] + state_names
    for name, T in (("sequence.onnx", 4), ("step.onnx", 1)):
        example = (torch.zeros(2, T, dtype=torch.int64), *([torch.zeros(2, dtype=torch.int64)] if conditional else []),
                   *model.init_state(2, torch.device("cpu")))
        axes = {"tokens": {0: "batch", **({1: "time"} if T > 1 else {})},
                "logits": {0: "batch", **({1: "time"} if T > 1 else {})},
                **({"classes": {0: "batch"}} if conditional else {}),
                **{n: {1: "batch"} for n in state_inputs + state_names}}
        _onnx_export(_Explicit(model, conditional), example, out / name, inputs, outputs, axes)
    if conditional:  # the learned state each class starts from (zeros for a model conditioned by steps only)
        _onnx_export(_Start(model), (torch.zeros(2, dtype=torch.int64),), out / "start.onnx", ["classes"],
                     state_inputs, {"classes": {0: "batch"}, **{n: {1: "batch"} for n in state_inputs}})
    _write_beside(model, out, config_json)
    meta = {"format": "onnx", "opset": OPSET, "model": "generator" if isinstance(model, CharGenerator) else
            "language model", "cell": c.cell, "num_layers": c.num_layers, "hidden_size": c.hidden_size,
            "vocab_size": c.vocab_size, "inputs": inputs, "outputs": outputs, "state_inputs": state_inputs,
            "state_outputs": state_names,
            "shapes": {"tokens": "(batch, time) int64; time is 1 for step.onnx", "logits": "(batch, time, vocab) float32",
                       **{n: "(layers, batch, hidden) float32" for n in state_inputs + state_names}},
            "state": f"feed {', '.join(state_names)} back in as {', '.join(state_inputs)} to continue the text; "
                     + ("start from start.onnx's state for the classes" if conditional else "zeros to start")}
    if isinstance(model, CharGenerator):
        meta["classes"] = list(model.classes) if conditional else []
        meta["boundary"] = BOUNDARY  # each sample starts after it and ends at the next one
        if conditional:
            meta["shapes"]["classes"] = "(batch,) int64 class indices, in the order of classes"
    atomic_write_json(out / "export.json", meta)
    return meta


def _write_beside(model, out: Path, config_json: dict | None) -> None:
    """vocab.json (when the model reads tokens) and the run's config.json."""
    if model.vocab is not None:
        atomic_write_json(out / "vocab.json", model.vocab.to_json())
        if getattr(model.vocab, "tokenizer_json", None):  # word and bpe tokens: the tokenizer, for any runtime
            atomic_write_bytes(out / "tokenizer.json", model.vocab.tokenizer_json().encode("utf-8"))
    if config_json is not None:
        atomic_write_json(out / "config.json", config_json)


def _onnx_export(module, example, path: Path, inputs, outputs, axes) -> None:
    with warnings.catch_warnings():  # the legacy exporter's deprecation and batch-size notes
        warnings.simplefilter("ignore")
        atomic_write(path, lambda tmp: torch.onnx.export(
            module, example, str(tmp), input_names=inputs, output_names=outputs, dynamic_axes=axes,
            opset_version=OPSET, dynamo=False))


def _export_classifier(model, out: Path, config_json: dict | None) -> dict:
    c = model.config
    name = "tokens" if not c.num_features else "values"
    step = tuple(c.frame_shape) if c.frame_shape else (c.num_features,) if c.num_features else ()
    example = (torch.zeros(2, 5, dtype=torch.int64) if not step else torch.zeros(2, 5, *step))
    _onnx_export(_Unpacked(model), (example,), out / "classifier.onnx", [name], ["logits"],
                 {name: {0: "batch", 1: "time"}, "logits": {0: "batch"}})
    _write_beside(model, out, config_json)
    meta = {"format": "onnx", "opset": OPSET, "model": "classifier", "cell": c.cell, "classes": list(model.classes),
            "inputs": [name], "outputs": ["logits"],
            "shapes": {name: "(batch, time) int64 token ids" if not step else
                       f"(batch, time, {', '.join(map(str, step))}) float32",
                       "logits": "(batch, classes) float32; softmax gives the class probabilities"},
            "rows": "every row of a batch must be a whole sequence of the same length (no padding)"}
    atomic_write_json(out / "export.json", meta)
    return meta


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
