"""rnnkit: train, sample and look inside character-level RNN, LSTM and GRU language models.

The public API (everything else may change):

    run = rnnkit.train("input.txt", out="runs/x", budget="2m")     # returns a Run
    model = rnnkit.load("runs/x")                                   # a CharRNN with its vocabulary
    print(model.sample(length=300, prime="ROMEO:", temperature=0.8))
    print(model.evaluate(open("other.txt").read()))                 # nats, bits per char, perplexity
"""

__version__ = "0.1.0"

from .checkpoint import load  # noqa: E402
from .config import DataConfig, ModelConfig, SampleConfig, TrainConfig  # noqa: E402
from .data import Vocab  # noqa: E402
from .data import prepare_text as prepare  # noqa: E402
from .errors import RnnkitError  # noqa: E402
from .evaluate import evaluate  # noqa: E402
from .models import CharRNN  # noqa: E402
from .sample import sample  # noqa: E402
from .train import Run, train  # noqa: E402

__all__ = ["CharRNN", "DataConfig", "ModelConfig", "Run", "RnnkitError", "SampleConfig", "TrainConfig", "Vocab",
           "__version__", "evaluate", "load", "prepare", "sample", "train"]
