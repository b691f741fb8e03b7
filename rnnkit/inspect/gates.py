"""Gate saturation statistics (Karpathy, Johnson & Fei-Fei 2015, section 4.2 and figure 3).

For each sigmoid gate of each layer, the fraction of time steps each unit spends left-saturated
(activation < 0.1: the gate is shut) and right-saturated (> 0.9: wide open). A forget gate that is
right-saturated most of the time marks a unit that remembers across long spans; one that is
left-saturated behaves like a feed-forward unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..plotting import pyplot, save_png
from .activations import Activations

SIGMOID_GATES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update"), "mingru": ("update",),
                 "minlstm": ("forget", "input")}  # minlstm's as normalised, f' + i' = 1
# What a unit whose gate is (shut, open) most of the time does.
MEANING = {
    "input": ("rarely write to their cell", "write to their cell at every step"),
    "forget": ("forget at once, like feed-forward units", "remember"),
    "output": ("keep their cell hidden", "always expose their cell"),
    "reset": ("ignore the previous state", "use all of the previous state"),
    "update": ("overwrite their state", "keep their state"),
    # minGRU's update gate is the other way round from PyTorch's GRU: h' = (1 - z) h + z h~
    ("mingru", "update"): ("keep their state", "overwrite their state"),
    ("minlstm", "input"): ("rarely write to their state", "write to their state at every step"),
}


@dataclass
class GateSaturation:
    gate: str
    layer: int  # 0-based
    left: np.ndarray  # (H,) fraction of steps below `low`
    right: np.ndarray  # (H,) fraction of steps above `high`
    cell: str = "lstm"  # the family, for what a gate's saturation means (MEANING)


def saturation(acts: Activations, cell: str, low: float = 0.1, high: float = 0.9) -> list[GateSaturation]:
    """Per gate and layer, each unit's left- and right-saturated fractions. Empty for vanilla RNNs."""
    out = []
    for gate in SIGMOID_GATES.get(cell, ()):
        for layer, values in enumerate(acts.gates[gate]):
            out.append(GateSaturation(gate, layer, (values < low).mean(axis=0), (values > high).mean(axis=0), cell))
    return out


def summary(stats: list[GateSaturation], majority: float = 0.5) -> list[str]:
    """One sentence per gate and layer, e.g. 'layer 2: 14% of forget-gate units are right-saturated
    more than half the time: these remember'."""
    lines = []
    for s in stats:
        right, left = (s.right > majority).mean(), (s.left > majority).mean()
        shut, open_ = MEANING.get((s.cell, s.gate), MEANING[s.gate])
        lines.append(f"layer {s.layer + 1}: {right:.0%} of {s.gate}-gate units are right-saturated more than half "
                     f"the time: these {open_}; {left:.0%} are left-saturated more than half the time: these {shut}")
    return lines


def plot(stats: list[GateSaturation], path: str | Path) -> None:
    """The paper's figure: one panel per gate, a dot per unit at (left fraction, right fraction),
    coloured by layer. Units near the top left are always open, near the bottom right always shut."""
    plt = pyplot()
    gates = list(dict.fromkeys(s.gate for s in stats))
    fig, axes = plt.subplots(1, len(gates), figsize=(3.6 * len(gates), 3.8), dpi=110, squeeze=False)
    colours = plt.get_cmap("viridis")
    layers = max(s.layer for s in stats) + 1
    for ax, gate in zip(axes[0], gates):
        for s in (s for s in stats if s.gate == gate):
            ax.scatter(s.left, s.right, s=8, alpha=0.6, color=colours(s.layer / max(1, layers - 1)),
                       label=f"layer {s.layer + 1}")
        ax.plot([0, 1], [1, 0], color="grey", linewidth=0.6, linestyle="--")
        ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{gate} gate", xlabel="fraction left-saturated (< 0.1)")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("fraction right-saturated (> 0.9)")
    axes[0][-1].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
