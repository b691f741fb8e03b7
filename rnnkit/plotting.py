"""matplotlib without a display, and PNG files written atomically: shared by every figure."""

from __future__ import annotations

from .io import atomic_write


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path) -> None:
    """Write `fig` to `path` as PNG (atomically) and free it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    pyplot().close(fig)
