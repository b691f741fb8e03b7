"""Looking inside trained models (Karpathy, Johnson & Fei-Fei, "Visualizing and Understanding
Recurrent Networks", 2015): per-step activations, an HTML heat-map report, the interpretable-cell
search, gate saturation and character n-gram baselines."""

from .activations import Activations, activations
from .cells import CellScore, CellSearch, FeatureSupport, search
from .compare import Comparison, compare
from .features import BUILTIN as FEATURES
from .gates import saturation
from .ngram import NGramModel, loss_by_order
from .report import render_report

__all__ = ["Activations", "CellScore", "CellSearch", "Comparison", "FeatureSupport", "FEATURES", "NGramModel",
           "activations", "compare", "loss_by_order", "render_report", "saturation", "search"]
