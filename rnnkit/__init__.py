"""rnnkit: train, sample and look inside recurrent networks (RNN, LSTM, GRU): character language
models, sequence classifiers, conditional generators, forecasters, encoder-decoders, image
captioners and visual question answerers.

The public API (everything else may change):

    run = rnnkit.train("input.txt", out="runs/x", budget="2m")     # returns a Run
    model = rnnkit.load("runs/x")                                   # a CharRNN with its vocabulary
    print(model.sample(length=300, prime="ROMEO:", temperature=0.8))
    print(model.evaluate(open("other.txt").read()))                 # nats, bits per char, perplexity
    rnnkit.train("words.tsv", task="classify")                      # or "generate", "series", "seq2seq",
                                                                    # "caption", "vqa";
    rnnkit.load(run_dir)                                            # ... each loads as its own model
    rnnkit.export("runs/x", "runs/x-onnx")                          # ONNX graphs for onnxruntime
    rnnkit.serve(["runs/x"], port=8000)                             # HTTP until Ctrl-C (`rnnkit serve`)

The names below are imported on first use (PEP 562), so that `import rnnkit` and the command line's
`--help` and usage errors do not pay for importing PyTorch (over a second) before they need it.
"""

import sys
import types

__version__ = "0.2.0"

# public name -> the module that defines it
_EXPORTS = {
    "CharRNN": ".models", "DataConfig": ".config", "ModelConfig": ".config", "SampleConfig": ".config",
    "TrainConfig": ".config", "Run": ".train", "RnnkitError": ".errors", "Vocab": ".data", "evaluate": ".api",
    "load": ".tasks", "prepare": ".data", "sample": ".api", "samples": ".api", "train": ".train",
    "export": ".export", "serve": ".serve", "ServeConfig": ".config",
    # the other tasks' models and configs
    "SequenceClassifier": ".models.classifier", "CharGenerator": ".models.generator",
    "SeriesRNN": ".models.forecaster", "Seq2Seq": ".models.seq2seq", "ClassifierConfig": ".config",
    "GeneratorConfig": ".config", "ForecasterConfig": ".config", "Seq2SeqConfig": ".config",
    "ExamplesConfig": ".config", "SeriesConfig": ".config", "PairsConfig": ".config",
    "Captioner": ".models.captioner", "VQAModel": ".models.vqa", "CaptionConfig": ".config",
    "CaptionDataConfig": ".config", "VQAConfig": ".config", "VQADataConfig": ".config",
}
_RENAMED = {"prepare": "prepare_text",  # rnnkit.prepare is rnnkit.data.prepare_text
            "export": "export_run"}  # rnnkit.export(run_dir, out) is `rnnkit export RUN --out DIR`

__all__ = sorted([*_EXPORTS, "__version__"])


class _Package(types.ModuleType):
    """This package's module type. Importing a submodule binds it to the package's attribute of the
    same name (`rnnkit.train` = the module rnnkit/train.py); the public function must keep the name,
    as it did when this file imported everything at once, so those bindings are not kept (the
    submodules stay importable as `rnnkit.train` through sys.modules)."""

    def __setattr__(self, name, value):
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    from importlib import import_module
    value = getattr(import_module(_EXPORTS[name], __name__), _RENAMED.get(name, name))
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return __all__
