"""One self-contained HTML page to look inside a model on a piece of text.

The page (no network, no external scripts or fonts) shows the text with every character coloured
by one cell's activation, blue (-1 or shut) to red (+1 or open) as in the paper and lecture slides;
controls switch the layer, the cell and the quantity (h, the LSTM cell state c shown as tanh(c), or
a gate); hovering a character shows the model's top-5 guesses for the next one; a loss view
colours every character by how surprised the model was; the cells found by the interpretable-cell
search are listed with their scores and support and open with one click, and the features it left
out for too little support are named. A link can open a given view: `report.html#cell=c/2/242`
(quantity, layer from 1, cell; a cell the page does not hold is named as missing and the best cell
opens instead), `#view=loss`, or `#hover=120` (character 120's tooltip, as if the pointer were on
it).

Activations travel inside the page as base64 bytes, each value quantised to 256 levels over its
known range. Every unit of every quantity would make 2,000 characters of a 2x256 LSTM an 8 MB page
(2,000 x 256 units x 2 layers x 6 quantities), so by default only `DEFAULT_UNITS` units of each
quantity and layer are inlined (`choose_units`): every cell the page lists, the units the search
ranked highest for any feature, and then the units that vary most over the shown text. That page
is about 1.2 MB; the cell selector offers only the units present and says how many there are, and
`units=0` (`rnnkit inspect --units all`) inlines them all. (Deflating the bytes instead, for the
browser's DecompressionStream, saves only a sixth: 6.1 MB of quantised values became 5.1 MB.)
"""

from __future__ import annotations

import base64
import html
import json

import numpy as np

from ..config import DEFAULT_UNITS
from ..errors import DataError
from ..plotting import pyplot, save_png
from .activations import Activations, describe_symbol
from .cells import CellScore, CellSearch


# Value range of each quantity, for colouring: tanh-bounded, or sigmoid gates in [0, 1].
_TANH_GATES = {"candidate", "new"}


def _range(kind: str) -> tuple[float, float]:
    if kind.startswith("gate:") and kind[5:] not in _TANH_GATES:
        return 0.0, 1.0
    return -1.0, 1.0


def _shown(values: np.ndarray, kind: str) -> np.ndarray:
    """What the page colours by: the cell state is unbounded, so the paper colours tanh(c)."""
    return np.tanh(values) if kind == "c" else values


def _quantise(values: np.ndarray, kind: str) -> str:
    lo, hi = _range(kind)
    q = np.clip(np.rint((_shown(values, kind) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)  # (T, n)
    return base64.b64encode(q.tobytes()).decode("ascii")


def choose_units(acts: Activations, per_layer: int = DEFAULT_UNITS, cells: list[CellScore] | None = None,
                 found: CellSearch | None = None) -> dict[str, list[int]]:
    """The units to inline for each quantity and layer: "kind/layer" (layer 0-based) -> sorted units.

    Up to `per_layer` units each (every unit when it is 0 or at least H): first every unit in
    `cells`, so each listed cell opens, even past the limit; then, up to half the limit, the units
    `found` ranked highest, taking each feature's next best in turn so that one feature many units
    track (position in the line) does not crowd out the rest; then the units whose shown value
    varies most over the text, which covers the quantities the search did not score (the gates).
    """
    if per_layer < 0:
        raise DataError(f"the number of units per quantity and layer must be >= 0 (0: all), got {per_layer}")
    H = acts.h[0].shape[1]
    everything = per_layer == 0 or per_layer >= H
    features = sorted(found.scores.values(), key=lambda s: -s[0].score) if found else []
    chosen = {}
    for kind in acts.kinds():
        for layer in range(len(acts.h)):
            if everything:
                chosen[f"{kind}/{layer}"] = list(range(H))
                continue
            units = dict.fromkeys(c.unit for c in (cells or []) if (c.kind, c.layer) == (kind, layer))
            ranked = [[s.unit for s in scores if (s.kind, s.layer) == (kind, layer)] for scores in features]
            for rank in range(H):
                for r in ranked:
                    if len(units) < per_layer // 2 and rank < len(r):
                        units.setdefault(r[rank])
                if len(units) >= per_layer // 2:
                    break
            spread = _shown(acts.values(kind, layer), kind).std(axis=0)  # (H,)
            for unit in np.argsort(-spread, kind="stable"):
                if len(units) >= per_layer:
                    break
                units.setdefault(int(unit))
            chosen[f"{kind}/{layer}"] = sorted(units)
    return chosen


def render_report(acts: Activations, vocab, title: str, cells: list[CellScore] | None = None, info: str = "",
                  found: CellSearch | None = None, units: int = DEFAULT_UNITS) -> str:
    """The report page as a string.

    `cells`: the CellScores to list (may be empty); `found`: the whole search, which picks the units
    to inline (`choose_units`) and names the features left out; `units`: units of each quantity and
    layer to inline, 0 for all of them.
    """
    T, H, L = len(acts.tokens), acts.h[0].shape[1], len(acts.h)
    present = choose_units(acts, units, cells, found)
    data = {
        "chars": acts.chars,
        "loss": [None if np.isnan(x) else round(float(x), 3) for x in acts.loss],
        "top": [[[describe_symbol(vocab, int(i)), round(float(p), 3)] for i, p in zip(ids, probs)]
                for ids, probs in zip(acts.top_ids, acts.top_probs)],
        "T": T, "H": H, "L": L, "kinds": acts.kinds(),
        "ranges": {k: _range(k) for k in acts.kinds()},
        "units": present,  # "kind/layer" -> the units present; acts[key] holds their columns, in this order
        "acts": {f"{k}/{layer}": _quantise(acts.values(k, layer)[:, present[f"{k}/{layer}"]], k)
                 for k in acts.kinds() for layer in range(L)},
        "cells": [{"feature": c.feature, "metric": c.metric, "score": round(c.score, 3), "raw": round(c.raw, 3),
                   "layer": c.layer, "kind": c.kind, "unit": c.unit, "support": c.support, "stretches": c.stretches}
                  for c in (cells or [])],
        "leftOut": found.left_out_line() if found else "",
    }
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__INFO__", html.escape(info)) \
                .replace("__DATA__", payload)


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>__TITLE__</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
 header { padding: 10px 16px; background: #fff; border-bottom: 1px solid #ddd; position: sticky; top: 0; z-index: 2; }
 h1 { font-size: 17px; margin: 0 0 4px; } .info { color: #666; font-size: 12px; }
 .controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin-top: 8px; }
 .controls label { display: flex; gap: 6px; align-items: center; }
 main { display: flex; gap: 16px; padding: 12px 16px; }
 #text { flex: 1; font: 13px/1.55 ui-monospace, "DejaVu Sans Mono", monospace; white-space: pre-wrap; word-break: break-all;
         background: #fff; border: 1px solid #ddd; padding: 10px; min-width: 0; }
 #text span { border-radius: 2px; }
 #text span.hover { outline: 1px solid #000; }
 aside { width: 330px; flex-shrink: 0; }
 aside h2 { font-size: 14px; margin: 0 0 6px; }
 #cells button { display: block; width: 100%; text-align: left; margin: 2px 0; padding: 4px 6px; border: 1px solid #ccc;
                 background: #fff; border-radius: 3px; cursor: pointer; font-size: 12px; }
 #cells button.active { background: #e8f0ff; border-color: #4a7bd0; }
 #tip { position: fixed; pointer-events: none; background: #fff; border: 1px solid #999; padding: 6px 8px; font-size: 12px;
        box-shadow: 0 2px 6px rgba(0,0,0,.2); display: none; z-index: 3; min-width: 170px; }
 #tip table { border-collapse: collapse; } #tip td { padding: 0 6px 0 0; font-family: ui-monospace, monospace; }
 .legend { display: inline-block; width: 140px; height: 10px; vertical-align: middle;
           background: linear-gradient(to right, rgb(71,71,255), #fff, rgb(255,71,71)); border: 1px solid #ccc; }
 #error, #missing { color: #b00; font-weight: bold; }
</style></head>
<body data-status="loading">
<header>
 <h1>__TITLE__</h1><div class="info">__INFO__</div>
 <div class="controls">
  <label>view <select id="mode"><option value="act">cell activation</option><option value="loss">loss per character</option></select></label>
  <label>quantity <select id="kind"></select></label>
  <label>layer <select id="layer"></select></label>
  <label>cell <select id="unit"></select> <input id="unitSlider" type="range" min="0" value="0"></label>
  <span id="unitNote" class="info"></span>
  <span id="legend"><span class="legend"></span> <span id="legendText"></span></span>
  <span id="missing"></span> <span id="error"></span>
 </div>
</header>
<main><div id="text"></div>
<aside><h2>Cells found by the search</h2><div id="cells"></div><p id="leftOut" class="info"></p></aside></main>
<div id="tip"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
window.onerror = function (msg) { document.body.dataset.status = "error"; document.getElementById("error").textContent = "error: " + msg; };
const D = JSON.parse(document.getElementById("data").textContent);
const $ = (id) => document.getElementById(id);
const bytes = {};  // "kind/layer" -> Uint8Array of T x (units present) quantised values, decoded on first use
function acts(kind, layer) {
  const key = kind + "/" + layer;
  if (!bytes[key]) { const s = atob(D.acts[key]); const a = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); bytes[key] = a; }
  return bytes[key];
}
// The page may hold only some units of each quantity and layer (rnnkit inspect --units): a unit's
// column is its place in D.units[key], not its number.
const column = {};  // "kind/layer" -> Map(unit -> column)
for (const key in D.units) column[key] = new Map(D.units[key].map((u, j) => [u, j]));
function value(q, kind) { const r = D.ranges[kind]; return r[0] + (r[1] - r[0]) * q / 255; }
function at(kind, layer, unit, t) { const key = kind + "/" + layer;
  return value(acts(kind, layer)[t * D.units[key].length + column[key].get(unit)], kind); }
function diverging(v) {  // -1 blue, 0 white, +1 red; never so dark that black text is lost
  const a = Math.round(255 * (1 - 0.72 * Math.min(1, Math.abs(v))));
  return v >= 0 ? `rgb(255,${a},${a})` : `rgb(${a},${a},255)`;
}
const spans = [];
const text = $("text");
D.chars.forEach((c, t) => { const s = document.createElement("span"); s.textContent = c; s.dataset.t = t;
  spans.push(s); text.appendChild(s); });
D.kinds.forEach((k) => { const o = document.createElement("option"); o.value = k; o.textContent = k.replace("gate:", "gate: "); $("kind").appendChild(o); });
for (let l = 0; l < D.L; l++) { const o = document.createElement("option"); o.value = l; o.textContent = l + 1; $("layer").appendChild(o); }
const listed = {};  // "kind/layer/unit" -> the features whose best cell it is, named in the selector
D.cells.forEach((c) => { const k = `${c.kind}/${c.layer}/${c.unit}`; (listed[k] = listed[k] || []).push(c.feature); });
function fillUnits(kind, layer, keep) {  // the selector offers only the units in the page
  const units = D.units[kind + "/" + layer], sel = $("unit");
  sel.textContent = "";
  units.forEach((u) => { const o = document.createElement("option"); o.value = u;
    const f = listed[`${kind}/${layer}/${u}`]; o.textContent = f ? `${u} (${f.join(", ")})` : u; sel.appendChild(o); });
  const unit = units.includes(keep) ? keep : units[0];
  sel.value = unit; $("unitSlider").max = units.length - 1; $("unitSlider").value = units.indexOf(unit);
  $("unitNote").textContent = units.length === D.H ? `all ${D.H} cells` : `${units.length} of ${D.H} cells in this ` +
    "page: the listed ones, the search's best and the most variable (rnnkit inspect --units all for every cell)";
}
function state() { return { mode: $("mode").value, kind: $("kind").value, layer: +$("layer").value, unit: +$("unit").value }; }
function paint() {
  const s = state();
  document.body.dataset.view = s.mode === "loss" ? "loss" : `${s.kind}/${s.layer + 1}/${s.unit}`;  // as in #cell=
  if (s.mode === "loss") {
    spans.forEach((el, t) => { const x = D.loss[t]; const v = x === null ? 0 : Math.min(1, x / 6);
      const a = Math.round(255 * (1 - 0.72 * v)); el.style.background = `rgb(255,${a},${a})`; });
    $("legendText").textContent = "loss: white 0, red >= 6 nats";
  } else {
    const key = s.kind + "/" + s.layer, a = acts(s.kind, s.layer), r = D.ranges[s.kind];
    const n = D.units[key].length, j = column[key].get(s.unit);
    spans.forEach((el, t) => { let v = value(a[t * n + j], s.kind);
      if (r[0] === 0) v = 2 * v - 1;  // gates in [0, 1]: shut blue, open red
      el.style.background = diverging(v); });
    $("legendText").textContent = r[0] === 0 ? "0 (shut) to 1 (open)" : (s.kind === "c" ? "tanh(c): -1 to +1" : "-1 to +1");
  }
  document.querySelectorAll("#cells button").forEach((b) => b.classList.toggle("active",
    s.mode === "act" && b.dataset.kind === s.kind && +b.dataset.layer === s.layer && +b.dataset.unit === s.unit));
}
function show(kind, layer, unit) { $("mode").value = "act"; $("kind").value = kind; $("layer").value = layer;
  fillUnits(kind, layer, unit); paint(); }
D.cells.forEach((c) => { const b = document.createElement("button");
  b.dataset.kind = c.kind; b.dataset.layer = c.layer; b.dataset.unit = c.unit;
  b.textContent = `${c.feature}: layer ${c.layer + 1} ${c.kind} #${c.unit}, ` + (c.metric === "auc" ? `AUC ${c.raw}` : `r ${c.raw}`) +
    ` (n=${c.support.toLocaleString("en")} in ${c.stretches.toLocaleString("en")} stretch${c.stretches === 1 ? "" : "es"})`;
  b.onclick = () => show(c.kind, c.layer, c.unit); $("cells").appendChild(b); });
if (!D.cells.length) $("cells").textContent = "none (run with the search enabled)";
$("leftOut").textContent = D.leftOut;
$("mode").onchange = paint;
["kind", "layer"].forEach((id) => $(id).onchange = () => { fillUnits($("kind").value, +$("layer").value, +$("unit").value); paint(); });
$("unit").onchange = () => { $("unitSlider").value = D.units[$("kind").value + "/" + $("layer").value].indexOf(+$("unit").value); paint(); };
$("unitSlider").oninput = () => { $("unit").value = D.units[$("kind").value + "/" + $("layer").value][+$("unitSlider").value]; paint(); };
const tip = $("tip");
function esc(s) { return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]); }
let hovered = null;
text.onmousemove = (e) => {
  const t = e.target.dataset ? e.target.dataset.t : undefined;
  if (hovered) hovered.classList.remove("hover");
  if (t === undefined) { tip.style.display = "none"; hovered = null; return; }
  const s = state(), i = +t; hovered = e.target; hovered.classList.add("hover");
  const v = at(s.kind, s.layer, s.unit, i);
  let rows = D.top[i].map(([c, p]) => `<tr><td>${esc(c)}</td><td>${(100 * p).toFixed(1)}%</td></tr>`).join("");
  tip.innerHTML = `<b>${esc(JSON.stringify(D.chars[i]))}</b> at ${i}<br>${s.kind} layer ${s.layer + 1} cell ${s.unit}: ${v.toFixed(3)}` +
    `<br>loss: ${D.loss[i] === null ? "n/a" : D.loss[i].toFixed(3) + " nats"}<br>next character guesses:<table>${rows}</table>`;
  tip.style.display = "block";
  tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 200) + "px"; tip.style.top = (e.clientY + 14) + "px";
};
text.onmouseleave = () => { tip.style.display = "none"; };
// A link can open a given view: report.html#cell=c/2/242 (quantity/layer/cell, layer from 1) or #view=loss.
const want = new URLSearchParams(location.hash.slice(1));
const asked = (want.get("cell") || "").split("/");
const askedKey = asked[0] + "/" + (+asked[1] - 1);
if (asked.length === 3 && column[askedKey] && column[askedKey].has(+asked[2]))
  show(asked[0], +asked[1] - 1, +asked[2]);
else if (D.cells.length) show(D.cells[0].kind, D.cells[0].layer, D.cells[0].unit);
else show(D.kinds[0], 0, D.units[D.kinds[0] + "/0"][0]);
if (want.get("cell") !== null && !(column[askedKey] && column[askedKey].has(+asked[2])))
  $("missing").textContent = `cell ${want.get("cell")} is not in this page (rnnkit inspect --units all holds every cell)`;
if (want.get("view") === "loss") { $("mode").value = "loss"; paint(); }
// #hover=T shows character T's tooltip as if the pointer were on it (for screenshots and tests).
if (want.get("hover") !== null && spans[+want.get("hover")])
  spans[+want.get("hover")].dispatchEvent(new MouseEvent("mousemove", { bubbles: true, clientX: 120, clientY: 160 }));
document.body.dataset.status = "ready";
</script>
</body></html>
"""


def plot_heatmap(acts: Activations, kind: str, layer: int, unit: int, path, title: str = "",
                 width: int = 90, max_lines: int = 30) -> None:
    """The report's picture as a PNG: the text wrapped at `width` characters, each character on a
    background from blue (-1 or shut) to red (+1 or open) by one cell's activation."""
    plt = pyplot()
    from matplotlib.colors import LinearSegmentedColormap

    lo, hi = _range(kind)
    values = acts.values(kind, layer)[:, unit]
    values = np.tanh(values) if kind == "c" else values
    scaled = (values - lo) / (hi - lo) * 2 - 1  # -> [-1, 1] for the colour map
    rows, row, col = [], [], 0  # rows of (t, char), wrapped at newlines and at `width`
    for t, piece in enumerate(acts.chars):
        for ch in piece:  # a word or bpe token colours each of its characters
            row.append((t, ch))
            col += 1
            if ch == "\n" or col >= width:
                rows.append(row)
                row, col = [], 0
        if len(rows) >= max_lines:
            break
    if row and len(rows) < max_lines:
        rows.append(row)
    cmap = LinearSegmentedColormap.from_list("bwr_light", [(0.28, 0.28, 1.0), (1, 1, 1), (1.0, 0.28, 0.28)])
    fig = plt.figure(figsize=(width * 0.085 + 0.4, len(rows) * 0.19 + 0.6), dpi=120)
    ax = fig.add_axes((0, 0, 1, 1 - 0.35 / (len(rows) * 0.19 + 0.6)))
    ax.set_xlim(0, width)
    ax.set_ylim(len(rows), 0)
    ax.axis("off")
    for y, line in enumerate(rows):
        for x, (t, ch) in enumerate(line):
            ax.add_patch(plt.Rectangle((x, y), 1, 1, color=cmap((scaled[t] + 1) / 2), linewidth=0))
            shown = "↵" if ch == "\n" else ch
            if shown.strip():
                ax.text(x + 0.5, y + 0.55, shown, ha="center", va="center", family="monospace", fontsize=7.5)
    fig.suptitle(title or f"{kind}, layer {layer + 1}, cell {unit}", fontsize=9, y=0.995)
    save_png(fig, path)
