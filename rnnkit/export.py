"""ONNX export of a character language model, for runtimes without PyTorch (onnxruntime).

`export_onnx(model, out)` writes two graphs of the same weights and the same function as
`CharRNN.forward`, with the recurrent state explicit on both sides:

    sequence.onnx   tokens (B, T) int64, state in -> logits (B, T, V), state out   (B and T dynamic)
    step.onnx       tokens (B, 1) int64, state in -> logits (B, 1, V), state out   (B dynamic)

The state is h (L, B, H) for rnn and gru, and h, c for lstm (inputs `h0` [`c0`], outputs `h` [`c`]),
zeros to start; pass the outputs back in to continue, exactly as with the PyTorch model. Beside
them go vocab.json (the symbols, in id order: {"kind": "char", "chars": [...]} or {"kind": "byte"}),
config.json (the run's) and export.json, which names the inputs and outputs and their shapes so that
a program can drive the graphs knowing nothing else. tests/test_export.py checks onnxruntime against
PyTorch over hundreds of steps with carried state, and runs the README's no-PyTorch example.

The exporter is PyTorch's TorchScript-based one (`dynamo=False`): it writes the fused RNN/LSTM/GRU as
the ONNX operators of the same names, which onnxruntime runs as single kernels. Only language models
export for now; the other tasks' models (packed sequences, beam search) do not.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import RnnkitError, UsageError
from .io import atomic_write, atomic_write_json

FILES = ("sequence.onnx", "step.onnx", "vocab.json", "config.json", "export.json")
OPSET = 17


class _Explicit(nn.Module):
    """CharRNN.forward with the state as separate tensors, as a graph's inputs and outputs must be."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens, *state):
        logits, new = self.model(tokens, tuple(state))
        return (logits, *new)


def export_onnx(model, out: str | Path, config_json: dict | None = None) -> dict:
    """Write the files above for `model` (a CharRNN in eval mode, with its vocabulary) into `out`;
    returns what export.json holds."""
    from .models.lm import CharRNN
    if type(model) is not CharRNN:  # a CharGenerator is a CharRNN that also needs its class
        raise UsageError(f"ONNX export covers character language models (--task lm); this run's "
                         f"{type(model).__name__} does not export yet")
    if importlib.util.find_spec("onnx") is None:
        raise RnnkitError("ONNX export needs the onnx package (onnxruntime to run the graphs): "
                          "pip install 'rnnkit[export]'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c = model.config
    model = model.eval()
    state_names = ["h", "c"] if c.cell == "lstm" else ["h"]
    inputs = ["tokens"] + [f"{n}0" for n in state_names]
    outputs = ["logits"] + state_names
    state_axes = {0: "layers", 1: "batch", 2: "hidden"}
    for name, T in (("sequence.onnx", 4), ("step.onnx", 1)):
        tokens = torch.zeros(2, T, dtype=torch.int64)
        state = tuple(model.init_state(2, torch.device("cpu")))
        axes = {"tokens": {0: "batch", **({1: "time"} if T > 1 else {})},
                "logits": {0: "batch", **({1: "time"} if T > 1 else {})},
                **{n: {1: "batch"} for n in inputs[1:] + outputs[1:]}}
        with warnings.catch_warnings():  # the legacy exporter's deprecation and batch-size notes
            warnings.simplefilter("ignore")
            atomic_write(out / name, lambda tmp: torch.onnx.export(
                _Explicit(model), (tokens, *state), str(tmp), input_names=inputs, output_names=outputs,
                dynamic_axes=axes, opset_version=OPSET, dynamo=False))
    vocab = model.vocab
    atomic_write_json(out / "vocab.json", {"kind": "byte"} if vocab.kind == "byte" else
                      {"kind": "char", "chars": list(vocab.chars)})
    if config_json is not None:
        atomic_write_json(out / "config.json", config_json)
    meta = {"format": "onnx", "opset": OPSET, "cell": c.cell, "num_layers": c.num_layers, "hidden_size": c.hidden_size,
            "vocab_size": c.vocab_size, "inputs": inputs, "outputs": outputs,
            "shapes": {"tokens": "(batch, time) int64; time is 1 for step.onnx", "logits": "(batch, time, vocab) float32",
                       **{n: "(layers, batch, hidden) float32, zeros to start" for n in inputs[1:] + outputs[1:]}},
            "state": f"feed {', '.join(outputs[1:])} back in as {', '.join(inputs[1:])} to continue the text",
            "axes": {"state": state_axes}}
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
