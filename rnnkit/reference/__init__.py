"""From-scratch NumPy models with hand-written backward passes (min-char-rnn, done right).

`ReferenceRNN` and `ReferenceLSTM` compute a one-layer CharRNN in float64 with every gradient written
out; tests check them against numerical gradients and against PyTorch autograd.
"""

from .bridge import NumpyCharRNN, build_reference
from .common import ReferenceModel, softmax_cross_entropy
from .lstm import ReferenceLSTM
from .rnn import ReferenceRNN

__all__ = ["NumpyCharRNN", "ReferenceLSTM", "ReferenceModel", "ReferenceRNN", "build_reference",
           "softmax_cross_entropy"]
