"""From-scratch NumPy models with hand-written backward passes (min-char-rnn, done right).

`ReferenceRNN`, `ReferenceLSTM`, `ReferenceMinGRU` and `ReferenceMinLSTM` compute a one-layer CharRNN in
float64 with every gradient written out; tests check them against numerical gradients and against
PyTorch autograd (for the min cells: autograd through the parallel scan).
"""

from .bridge import NumpyCharRNN, build_reference
from .common import ReferenceModel, softmax_cross_entropy
from .lstm import ReferenceLSTM
from .minrnn import ReferenceMinGRU, ReferenceMinLSTM
from .rnn import ReferenceRNN

__all__ = ["NumpyCharRNN", "ReferenceLSTM", "ReferenceMinGRU", "ReferenceMinLSTM", "ReferenceModel", "ReferenceRNN",
           "build_reference", "softmax_cross_entropy"]
