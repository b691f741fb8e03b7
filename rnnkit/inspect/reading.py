"""Prediction as it reads: how a classifier's belief moves, character by character.

For each text, the classifier is run on every prefix (the first 1, 2, ..., T characters), each read
as a whole input, so the curve at position t is exactly what `predict` says of text[:t + 1]. That is
T forward passes of up to T steps, cheap for the words and sentences classifiers read, and the same
for every pooling and for bidirectional models (whose output for a prefix would otherwise need the
unread future). `rnnkit inspect` on a classifier run writes one self-contained HTML page (a row of
characters, under it one row per leading class coloured by its probability, the number on hover,
and the predicted class at each position) and a PNG of the curves beside it.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import torch.nn.functional as F

from ..errors import DataError
from ..io import atomic_write_bytes
from ..plotting import pyplot, save_png

SHOWN = 5  # classes drawn per text: those that reach the highest probability anywhere in it
PLOTTED = 6  # texts in the PNG


def prefix_probs(model, text: str) -> np.ndarray:
    """Class probabilities after each prefix of `text`: (T, C), row t for text[:t + 1]."""
    ids = model.vocab.encode(text, unknown="skip")
    seqs = [ids[:t + 1] for t in range(len(ids))]
    return F.softmax(model.batched_logits(seqs), dim=-1).numpy()


def reading(model, texts: list[str]) -> list[dict]:
    """For each text: the pieces the model reads (characters, or words for a word vocabulary), the
    per-prefix probabilities, the classes worth showing and the final prediction."""
    words = model.vocab.kind == "word"
    out = []
    for text in texts:
        # What the model reads, one piece a step: its words (unknown ones included, read as one token),
        # or the characters its vocabulary has.
        pieces = text.split() if words else [ch for ch in text if ch in model.vocab._index]
        if not pieces:
            continue
        joined = (" " if words else "").join(pieces)
        probs = prefix_probs(model, joined)  # (T, C)
        shown = np.argsort(-probs.max(axis=0), kind="stable")[:min(SHOWN, probs.shape[1])]
        out.append({"text": joined, "pieces": pieces, "sep": " " if words else "", "probs": probs,
                    "shown": shown.tolist(), "final": int(probs[-1].argmax())})
    if not out:
        raise DataError("no text to read: every line is empty or outside the model's vocabulary")
    return out


def _colour(p: float) -> str:
    """White (0) to deep blue (1)."""
    r = int(255 - p * (255 - 33))
    g = int(255 - p * (255 - 102))
    b = int(255 - p * (255 - 172))
    return f"#{r:02x}{g:02x}{b:02x}"


def plot(model, read: list[dict], path) -> bytes:
    """Curves of the shown classes' probabilities against the characters read, one panel per text
    (at most PLOTTED); returns the PNG's bytes too."""
    plt = pyplot()
    n = min(len(read), PLOTTED)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), dpi=100, squeeze=False)
    for ax, r in zip(axes[:, 0], read[:n]):
        T = len(r["pieces"])
        for c in r["shown"]:
            ax.plot(range(T), r["probs"][:, c], marker="o", ms=3, label=model.classes[c])
        ax.set_xticks(range(T), [ch if ch != " " else "␣" for ch in r["pieces"]], fontsize=8,
                      rotation=90 if r["sep"] else 0)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("probability")
        ax.legend(fontsize=7, loc="upper left", ncol=min(len(r["shown"]), 5))
    axes[-1, 0].set_xlabel("characters read")
    fig.tight_layout()
    save_png(fig, path)
    return Path(path).read_bytes()


def render(model, read: list[dict], title: str, png: bytes | None = None) -> str:
    """The page: per text, the characters and one row per shown class coloured by its probability."""
    esc = html.escape
    blocks = []
    for r in read:
        probs, text, pieces = r["probs"], r["text"], r["pieces"]
        head = "".join(f"<th>{esc(ch) if ch != ' ' else '&#9251;'}</th>" for ch in pieces)
        rows = []
        for c in r["shown"]:
            cells = "".join(f'<td style="background:{_colour(p)};color:{"#fff" if p > 0.6 else "#000"}" '
                            f'title="{esc(model.classes[c])} after {esc(r["sep"].join(pieces[:t + 1]))}: {p:.3f}">'
                            f'{p * 100:.0f}</td>' for t, p in enumerate(probs[:, c]))
            rows.append(f"<tr><th class=cls>{esc(model.classes[c])}</th>{cells}</tr>")
        best = "".join(f"<td>{esc(model.classes[int(k)])}</td>" for k in probs.argmax(axis=1))
        final = model.classes[r["final"]]
        blocks.append(f"<section><h2>{esc(text)} &rarr; {esc(final)} ({probs[-1, r['final']]:.2f})</h2>"
                      f"<div class=scroll><table><tr><th></th>{head}</tr>{''.join(rows)}"
                      f"<tr class=best><th class=cls>predicted</th>{best}</tr></table></div></section>")
    picture = (f'<img alt="probability of each class as the text is read" src="data:image/png;base64,'
               f'{base64.b64encode(png).decode("ascii")}">' if png else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; }} h2 {{ font-size: 1.05em; font-family: ui-monospace, monospace; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 13px; }}
th, td {{ padding: 2px 4px; text-align: center; min-width: 1.6em; }}
th.cls {{ text-align: right; font-weight: normal; color: #555; white-space: nowrap; }}
tr.best td {{ font-size: 10px; color: #555; }}
img {{ max-width: 100%; }}
p.note {{ color: #555; max-width: 50em; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p class=note>Each column is what the classifier predicts after reading the text up to and including that
character or word (the prefix classified as a whole input); each row is a class, coloured by its probability in
percent (white 0, blue 100); hover a cell for the exact value. The last row is the most likely class at each
point.</p>
{''.join(blocks)}
{picture}
</body></html>
"""


def inspect_classifier(model, text_path, out, max_chars: int = 2000) -> dict:
    """`rnnkit inspect` on a classifier: the page at `out` and the curves at out's stem + ".png";
    every non-empty line of the file is a text, read until `max_chars` characters in all."""
    from ..data.corpus import normalize_newlines, read_text
    if model.vocab is None:
        raise DataError("this classifier reads sequences of vectors; inspect reads text")
    texts, total = [], 0
    for line in normalize_newlines(read_text(text_path)).split("\n"):
        if line.strip() and total < max_chars:
            texts.append(line[:max_chars - total])
            total += len(texts[-1])
    read = reading(model, texts)
    out = Path(out)
    png_path = out.with_name(out.stem + "-reading.png")
    png = plot(model, read, png_path)
    page = render(model, read, f"{Path(text_path).name}: the classifier's prediction as it reads", png)
    atomic_write_bytes(out, page.encode("utf-8"))
    return {"texts": [(r["text"], model.classes[r["final"]], float(r["probs"][-1, r["final"]])) for r in read],
            "written": [out, png_path]}
