"""Cluttered translated digits, for classifying an image by a few glimpses (Mnih et al. 2014).

scikit-learn's bundled handwritten digits (1,797 images of 8 x 8 pixels, 16 grey levels; the UCI
"optical recognition of handwritten digits" test set) are placed at a random position on a larger
empty canvas, and pieces of other digits are scattered over it as clutter: Mnih et al.'s "cluttered
translated MNIST" built from data that is on the machine. The digit images are split first (70 / 10
/ 20 of the 1,797, the same split for every canvas size), so that no test canvas shows a digit
image that a training canvas shows; each split's canvases draw their digits, positions and clutter
from its own images only. Deterministic by seed: the same seed gives the same canvases, byte for byte.

`write_digits(out, num, seed)` writes train.npz, val.npz and test.npz (80/10/10 of `num` canvases)
in the format `rnnkit train` reads for images and sequences of vectors: x (N, S, S) uint8 pixels,
y (N,) class names ("0" .. "9"), and where (N, 2), the digit's centre (x, y) in pixels; meta.json
describing them; and preview.png, the first training canvases. `rnnkit data digits --out DIR` is
its command.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError

DIGIT = 8  # scikit-learn's digits are 8 x 8
SPLIT = (0.7, 0.1, 0.2)  # of the digit images: train, validation, test


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (1797, 8, 8) uint8 pixels in 0..255 and (1797,) labels 0..9."""
    try:
        from sklearn.datasets import load_digits as sk_load
    except ImportError:
        raise DataError("cluttered digits are made from scikit-learn's bundled digits: pip install scikit-learn") from None
    d = sk_load()
    return np.round(d.images * (255 / 16)).astype(np.uint8), d.target.astype(np.int64)


def digit_split(seed: int = 0, labels: np.ndarray | None = None) -> list[np.ndarray]:
    """The indices of the digit images of each split (train, val, test): a fixed permutation of the
    1,797, stratified by class so that every split holds every digit in the same proportion.
    `labels`: the digits' labels, if already loaded."""
    if labels is None:
        _, labels = load_digits()
    rng = np.random.default_rng([seed, 1797])
    parts = [[], [], []]
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cut = np.round(np.cumsum(SPLIT)[:2] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cut)):
            part.extend(chunk.tolist())
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


def make_canvases(images: np.ndarray, labels: np.ndarray, num: int, rng: np.random.Generator, size: int = 24,
                  clutter: int = 4, piece: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`num` canvases of size x size: each one digit of `images` at a uniformly random position, over
    `clutter` random piece x piece crops of other digits of `images` at random positions (the digit
    and the pieces are combined by their maximum). Returns (x (N, S, S) uint8, y (N,) labels,
    where (N, 2) the digit's centre (x, y) in pixels)."""
    x = np.zeros((num, size, size), np.uint8)
    y = np.zeros(num, np.int64)
    where = np.zeros((num, 2), np.float32)
    n = len(images)
    for i in range(num):
        canvas = x[i]
        for _ in range(clutter):
            src = images[rng.integers(n)]
            a, b = rng.integers(0, DIGIT - piece + 1, 2)
            top, left = rng.integers(0, size - piece + 1, 2)
            window = canvas[top:top + piece, left:left + piece]
            np.maximum(window, src[a:a + piece, b:b + piece], out=window)
        k = rng.integers(n)
        top, left = rng.integers(0, size - DIGIT + 1, 2)
        window = canvas[top:top + DIGIT, left:left + DIGIT]
        np.maximum(window, images[k], out=window)
        y[i] = labels[k]
        where[i] = (left + DIGIT / 2, top + DIGIT / 2)
    return x, y, where


def write_digits(out: str | Path, num: int, seed: int = 0, size: int = 24, clutter: int = 4, piece: int = 3) -> dict:
    """Canvases split 80/10/10 into out/train.npz, val.npz and test.npz (each from its own digit
    images), with meta.json and preview.png; returns the meta."""
    if size < DIGIT:
        raise DataError(f"a canvas must be at least {DIGIT} pixels wide to hold a digit, got {size}")
    if not 1 <= piece <= DIGIT:
        raise DataError(f"clutter pieces must be 1 to {DIGIT} pixels wide, got {piece}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_digits()
    counts = [num - 2 * (num // 10), num // 10, num // 10]
    splits, sizes = digit_split(labels=labels), {}
    for s, (name, idx, count) in enumerate(zip(("train", "val", "test"), splits, counts)):
        rng = np.random.default_rng([seed, s])
        x, y, where = make_canvases(images[idx], labels[idx], count, rng, size, clutter, piece)
        np.savez_compressed(out / f"{name}.npz", x=x, y=np.array([str(v) for v in y]), where=where)
        sizes[name] = count
        if name == "train":
            preview(x, y).save(out / "preview.png")
    meta = {"generator": "rnnkit.data.digits", "source": "scikit-learn's bundled digits (sklearn.datasets.load_digits)",
            "seed": seed, "size": size, "clutter": clutter, "piece": piece, "classes": [str(c) for c in range(10)],
            "sizes": sizes, "digit_images": {n: int(len(i)) for n, i in zip(("train", "val", "test"), splits)},
            "format": "x (N, S, S) uint8 pixels, y (N,) class names, where (N, 2) the digit's centre (x, y) in pixels"}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def preview(x: np.ndarray, y: np.ndarray, count: int = 16, scale: int = 4):
    """A PIL image: the first `count` canvases in a row of tiles, each with its class above it."""
    from PIL import Image, ImageDraw
    S, gap, label_h = x.shape[1], 4, 14
    count = min(count, len(x))
    img = Image.new("L", (count * (S * scale + gap), S * scale + label_h), 40)
    draw = ImageDraw.Draw(img)
    for i in range(count):
        left = i * (S * scale + gap)
        draw.text((left + 2, 1), str(y[i]), fill=255)
        img.paste(Image.fromarray(x[i]).resize((S * scale, S * scale), Image.NEAREST), (left, label_h))
    return img
