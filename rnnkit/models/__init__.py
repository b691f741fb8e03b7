"""One file per recurrent family (rnn.py, lstm.py, gru.py) and the language model around them (lm.py)."""

from .lm import FAMILIES, CharRNN, StepTrace, grow_vocabulary

__all__ = ["FAMILIES", "CharRNN", "StepTrace", "grow_vocabulary"]
