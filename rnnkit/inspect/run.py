"""What the `inspect`, `cells`, `gates`, `ngram` and `compare` commands do, as functions that take a
run directory and text files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.corpus import read_text
from ..errors import DataError
from ..io import atomic_write_bytes
from ..plotting import pyplot, save_png
from . import cells as cell_search
from . import gates as gate_stats
from .activations import Activations, activations
from .features import BUILTIN, load_features
from .report import DEFAULT_UNITS, plot_heatmap, render_report


def feature_set(user_features: str | None = None, only: list[str] | None = None) -> dict:
    """The built-in features plus the user's (which win on a name clash), optionally a subset."""
    features = dict(BUILTIN)
    if user_features:
        features.update(load_features(user_features))
    if only:
        unknown = sorted(set(only) - set(features))
        if unknown:
            raise DataError(f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(sorted(features))}")
        features = {k: features[k] for k in only}
    return features


def kinds_for(acts: Activations, which: str) -> list[str]:
    """'state' (h and c), 'all' (also the gates) or a comma list such as 'h,gate:forget'."""
    if which == "state":
        return [k for k in acts.kinds() if not k.startswith("gate:")]
    if which == "all":
        return acts.kinds()
    chosen = [k.strip() for k in which.split(",") if k.strip()]
    bad = [k for k in chosen if k not in acts.kinds()]
    if bad:
        raise DataError(f"unknown quantity {', '.join(bad)}; this model has {', '.join(acts.kinds())}")
    return chosen


def find_cells(model, text: str, features: dict, kinds: str = "state", min_support: int = cell_search.MIN_SUPPORT,
               min_stretches: int = cell_search.MIN_STRETCHES, unknown: str = "error") -> cell_search.CellSearch:
    acts = activations(model, text, unknown=unknown)
    return cell_search.search(acts, features, kinds_for(acts, kinds), min_support, min_stretches)


def plot_best_cells(found: cell_search.CellSearch, path: Path) -> None:
    """Bar chart: the best unit's score for every scored feature."""
    plt = pyplot()
    best = found.best()[::-1]  # barh draws bottom up: the best on top
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(best) + 1.2), dpi=110)
    ax.barh([f"{s.feature} (L{s.layer + 1} {s.kind} #{s.unit})" for s in best], [s.score for s in best],
            color=["tab:orange" if s.metric == "auc" else "tab:blue" for s in best])
    ax.set(xlim=(0, 1), xlabel="score: |Pearson r| (blue) or max(AUC, 1 - AUC) (orange)",
           title="best cell per feature")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    save_png(fig, path)


def inspect(model, text_path: str | Path, out: str | Path, max_chars: int = 2000, search_chars: int = 20000,
            features: dict | None = None, npz: str | Path | None = None, lstmvis: str | Path | None = None,
            title: str = "", units: int = DEFAULT_UNITS, min_support: int = cell_search.MIN_SUPPORT,
            min_stretches: int = cell_search.MIN_STRETCHES, unknown: str = "error") -> dict:
    """Write the HTML report (and its PNG figures beside it); returns what was written and found.

    `units`: units of each quantity and layer inlined in the page (0: all; see report.choose_units).
    `unknown`: characters of the text that the vocabulary lacks: "error" or "skip" them.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise DataError(f"the report's directory {out.parent} does not exist")
    text = read_text(text_path, max(search_chars, max_chars))
    scored = activations(model, text, unknown=unknown)  # the search and the gate statistics use all of it
    acts = scored.head(max_chars)  # the page shows the start (causal: the same values as a shorter run)
    found = cell_search.search(scored, features if features is not None else BUILTIN, None, min_support, min_stretches)
    best = found.best()
    cfg = model.config
    steps = "characters" if len(acts.text) == len(acts.tokens) else "tokens"  # word and bpe runs step by token
    info = (f"{cfg.cell} {cfg.num_layers}x{cfg.hidden_size} on {len(acts.tokens):,} {steps} of "
            f"{Path(text_path).name}; cells scored on {len(text):,} characters")
    page = render_report(acts, model.vocab, title or f"rnnkit: inside {Path(text_path).name}", best, info, found, units)
    atomic_write_bytes(out, page.encode("utf-8"))
    written = [out]
    if best:
        plot_best_cells(found, out.with_name(out.stem + "-cells.png"))
        top = best[0]
        plot_heatmap(acts, top.kind, top.layer, top.unit, out.with_name(out.stem + "-heatmap.png"),
                     title=f"{top.feature}: layer {top.layer + 1} {top.kind} cell {top.unit} "
                           f"({'AUC' if top.metric == 'auc' else 'r'} = {top.raw:.3f} over {len(text):,} characters)")
        written += [out.with_name(out.stem + "-cells.png"), out.with_name(out.stem + "-heatmap.png")]
    stats = gate_stats.saturation(scored, cfg.cell)
    if stats:
        gate_stats.plot(stats, out.with_name(out.stem + "-gates.png"))
        written.append(out.with_name(out.stem + "-gates.png"))
    if npz:
        acts.save_npz(npz)
        written.append(Path(npz))
    if lstmvis:
        written.append(acts.save_lstmvis(lstmvis, model.vocab))
    return {"written": written, "cells": best, "left_out": found.left_out_line(), "gates": gate_stats.summary(stats)}


def ngram_table(by_order: dict) -> str:
    best = min(by_order, key=by_order.get)
    lines = [f"{'n':>3} {'nats/char':>10} {'bits/char':>10}"]
    lines += [f"{n:>3} {loss:>10.4f} {loss / np.log(2):>10.4f}{'  <- best' if n == best else ''}"
              for n, loss in by_order.items()]
    return "\n".join(lines)


def plot_ngram_orders(by_order: dict, path) -> None:
    """Test loss against n."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.plot(list(by_order), list(by_order.values()), marker="o")
    ax.set(xlabel="n (characters of context + 1)", ylabel="test loss (nats / character)",
           title="Witten-Bell character n-grams")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
