"""Where a sequence-to-sequence model looks: its attention weights over the source while it writes
each output token, as a PNG heat map and as self-contained HTML tables in the style of the language
model's report.

`rnnkit translate RUN "text" --attention map.png` draws one source; `rnnkit inspect RUN --text FILE`
decodes every line of FILE (a source, or source<TAB>reference to see the reference beside the output)
and writes one page with a map per line and two numbers per map that say how the model reads:
- sharpness: the mean over output tokens of the largest weight (1: each token reads one source token);
- monotone: the share of output tokens whose most-attended source position is at or after the last
  one's (1: the model reads left to right, as pronunciation and close language pairs mostly do).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from ..io import atomic_write_bytes
from ..plotting import pyplot, save_png


def plot_attention(source_tokens: list[str], output_tokens: list[str], weights: np.ndarray, path) -> None:
    """The attention weights as a PNG heat map: output tokens down, source tokens across."""
    plt = pyplot()
    T, S = weights.shape
    fig, ax = plt.subplots(figsize=(1.2 + 0.38 * S, 1.0 + 0.32 * T), dpi=110)
    ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    shown = lambda tokens: [t if t != " " else "␣" for t in tokens]  # noqa: E731  (a space, visible)
    ax.set_xticks(range(S), shown(source_tokens), rotation=90 if max(map(len, source_tokens)) > 1 else 0)
    ax.set_yticks(range(T), shown(output_tokens))
    ax.set(xlabel="source", ylabel="output")
    fig.tight_layout()
    save_png(fig, path)


def draw_image_attention(model, image: np.ndarray, path, beam: int = 0) -> dict:
    """A caption run's attention over one image (uint8 (H, W, C)) as a PNG: the image with its
    caption, then a panel per output word (and the end) with that word's weights over the feature
    grid, upsampled to the image and laid over it (brighter: more weight); and the same as a
    self-contained HTML page beside it (same name, .html). Returns the caption, its tokens, the
    weights (T, grid H, grid W) and the page's path."""
    text, tokens, weights = model.attention_grid(image, beam=beam)
    plt = pyplot()
    H, W = image.shape[:2]
    panels = 1 + len(tokens)
    cols = min(panels, 6)
    rows = (panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), dpi=110, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    shown = image if image.shape[2] == 3 else image[:, :, 0]
    axes[0, 0].imshow(shown, cmap=None if image.shape[2] == 3 else "gray")
    axes[0, 0].set_title("image", fontsize=8)
    for k, (token, w) in enumerate(zip(tokens, weights), 1):
        ax = axes[k // cols, k % cols]
        ax.imshow(shown, cmap=None if image.shape[2] == 3 else "gray")
        ax.imshow(w / max(float(w.max()), 1e-9), cmap="magma", alpha=0.6, extent=(-0.5, W - 0.5, H - 0.5, -0.5),
                  interpolation="bilinear", vmin=0, vmax=1)
        ax.set_title(f"{token} ({w.max():.2f})", fontsize=8)
    fig.suptitle(text, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
    page = Path(path).with_suffix(".html")
    atomic_write_bytes(page, image_attention_page(image, text, tokens, weights, f"attention: {text}").encode("utf-8"))
    return {"caption": text, "tokens": tokens, "weights": weights, "page": page}


def _overlay_png(image: np.ndarray, weights: np.ndarray | None, scale: int) -> str:
    """The image enlarged `scale` times, with `weights` (grid H, grid W) upsampled over it (bright
    where the weight is high, dark where it is low), as a base64 PNG."""
    import io

    from PIL import Image
    rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    big = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    if weights is not None:
        w = (weights / max(float(weights.max()), 1e-9) * 255).astype(np.uint8)
        heat = np.asarray(Image.fromarray(w).resize(big.size, Image.BILINEAR), dtype=np.float32)[:, :, None] / 255
        shown = np.asarray(big, dtype=np.float32) * (0.25 + 0.75 * heat)
        big = Image.fromarray(shown.astype(np.uint8))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_attention_page(image: np.ndarray, caption: str, tokens: list[str], weights: np.ndarray, title: str,
                         scale: int = 4) -> str:
    """A self-contained HTML page of a caption's attention: the image, then one panel per output
    word with the image lit where that word's attention falls, its largest weight under it."""
    cells = [f'<figure><img alt="image" src="data:image/png;base64,{_overlay_png(image, None, scale)}">'
             "<figcaption>image</figcaption></figure>"]
    for token, w in zip(tokens, weights):
        cells.append(f'<figure data-token="{html.escape(token)}"><img alt="{html.escape(token)}" '
                     f'src="data:image/png;base64,{_overlay_png(image, w, scale)}"><figcaption>'
                     f"<b>{html.escape(token)}</b> {float(w.max()):.2f}</figcaption></figure>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body {{ font: 14px system-ui, sans-serif; margin: 1em; }} figure {{ display: inline-block; margin: 0 .4em .8em 0; }}
img {{ image-rendering: pixelated; display: block; }} figcaption {{ text-align: center; }}</style></head>
<body><h1>{html.escape(title)}</h1><p id="caption">{html.escape(caption)}</p>
<p>Each panel lights the image where the word's attention falls (brightest: the cell of largest weight,
the number under the word).</p>
<div id="panels">{"".join(cells)}</div></body></html>
"""


def reading_stats(weights: np.ndarray) -> dict:
    """Sharpness (mean largest weight per output token) and monotone share (see the module doc)."""
    if not len(weights):
        return {"sharpness": 0.0, "monotone": 1.0}
    peaks = weights.argmax(axis=1)
    steps = np.diff(peaks)
    return {"sharpness": float(weights.max(axis=1).mean()),
            "monotone": float((steps >= 0).mean()) if len(steps) else 1.0}


def _table(source_tokens, output_tokens, weights) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(t) if t != ' ' else '&#9251;'}</th>" for t in source_tokens)
    rows = []
    for o, row in zip(output_tokens, weights):
        cells = "".join(f'<td style="background:rgba(33,102,172,{w:.3f});color:{"#fff" if w > 0.6 else "#000"}" '
                        f'title="{esc(o)} / {esc(s)}: {w:.3f}">{w * 100:.0f}</td>' for s, w in zip(source_tokens, row))
        rows.append(f"<tr><th class=out>{esc(o)}</th>{cells}</tr>")
    return f"<div class=scroll><table><tr><th></th>{head}</tr>{''.join(rows)}</table></div>"


def attention_page(maps: list[dict], title: str, png: bytes | None = None) -> str:
    """One self-contained page: for each map (source, output, optional references, source_tokens,
    output_tokens, weights) a heading, its reading numbers and the table of weights, each cell shaded
    by its weight (the value on hover); `png` (the first map as a picture) on top if given."""
    esc = html.escape
    sections = []
    for m in maps:
        stats = reading_stats(m["weights"])
        refs = m.get("references")
        verdict = ""
        if refs:
            right = m["output"] in refs
            verdict = (f' <span class={"right" if right else "wrong"}>{"matches" if right else "differs from"} '
                       f'the reference</span>: {esc(" | ".join(refs))}')
        sections.append(f"<h2>{esc(m['source'])} &rarr; {esc(m['output'])}</h2>"
                        f"<p class=stats>sharpness {stats['sharpness']:.2f}, monotone {stats['monotone']:.2f}{verdict}</p>"
                        + _table(m["source_tokens"], m["output_tokens"], m["weights"]))
    picture = (f'<img alt="attention of the first source" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
               if png else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.2em; }}
h2 {{ font-size: 1em; font-family: ui-monospace, monospace; margin-top: 1.6em; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 13px; }}
th, td {{ padding: 2px 5px; text-align: center; min-width: 1.8em; }}
th.out {{ text-align: right; font-weight: normal; color: #555; }}
p.note, p.stats {{ color: #555; max-width: 50em; }}
.right {{ color: #1a7f37; }} .wrong {{ color: #b42318; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p class=note>Each row is one output token; each column a source token; a cell is the attention weight (in
percent) the decoder gave that source token while writing that output token. Rows sum to 100.
Sharpness: the mean largest weight of a row (1: every output token reads one source token). Monotone:
the share of rows whose most-attended source token is at or after the row above's (1: read left to right).</p>
{picture}
{''.join(sections)}
</body></html>
"""


def attention_map_of(model, source: str, output: str, references: list[str] | None = None) -> dict:
    """The attention of `model` over `output` (teacher-forced) while it reads `source`, as a map."""
    src_tokens, out_tokens, weights = model.attention_map(source, output)
    return {"source": source, "output": output, "references": references,
            "source_tokens": src_tokens, "output_tokens": out_tokens, "weights": weights}


def attention_maps(model, sources: list[str], beam: int = 0, references: list[list[str]] | None = None) -> list[dict]:
    """Decode each source (greedy, or the best of a beam) and collect its attention over its output."""
    outputs = model.translate(sources, beam=beam)
    return [attention_map_of(model, source, outs[0][0], references[i] if references else None)
            for i, (source, outs) in enumerate(zip(sources, outputs))]


def write_map(maps: list[dict], png_path, page_path, title: str) -> None:
    """The first map as a PNG at `png_path` and every map on one page at `page_path`."""
    plot_attention(maps[0]["source_tokens"], maps[0]["output_tokens"], maps[0]["weights"], png_path)
    page = attention_page(maps, title, Path(png_path).read_bytes())
    atomic_write_bytes(page_path, page.encode("utf-8"))


def inspect_seq2seq(model, text_path, out, max_chars: int = 2000, beam: int = 0, unknown: str = "error",
                    run_name: str = "this run") -> dict:
    """`rnnkit inspect` on a seq2seq run: every non-empty line of the file is a source (before a tab,
    if there is one; after it, the reference), read until `max_chars` characters in all. The page
    goes to `out`, the first map's PNG beside it (stem + "-attention.png"). Source tokens never seen in
    training are an error unless `unknown` is "skip" (then they read as the unknown token)."""
    from ..data.corpus import normalize_newlines, read_text
    from ..tasks.seq2seq import check_known
    if model.config.attention == "none":
        raise UsageError(f"{run_name} has no attention (--attention none): there is no map to draw")
    sources, references, total = [], [], 0
    for line in normalize_newlines(read_text(text_path)).split("\n"):
        source, _, reference = line.partition("\t")
        if source.strip() and total < max_chars:
            sources.append(source.strip()[:max_chars - total])
            references.append([reference.strip()] if reference.strip() else [])
            total += len(sources[-1])
    if not sources:
        raise DataError(f"{text_path}: no source text in it")
    if unknown == "error":
        check_known(model.source_vocab, sources)
    maps = attention_maps(model, sources, beam, references if any(references) else None)
    out = Path(out)
    png_path = out.with_name(out.stem + "-attention.png")
    write_map(maps, png_path, out, f"{Path(text_path).name}: where the decoder looks")
    return {"maps": maps, "written": [out, png_path]}
