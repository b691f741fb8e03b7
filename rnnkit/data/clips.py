"""Moving shapes: short grey-scale clips whose class is the way a shape moves, for video
classification from frames (the lectures' "video -> class" many-to-one shape).

Each clip is T frames of S x S pixels with one shape (a disc, a square or a triangle, of random size
and brightness) that moves one of eight ways, plus a still distractor shape and pixel noise. The
eight classes come in four pairs, and the second of each pair is the first played backwards: the
same frames in the opposite order (right/left, down/up, clockwise/anticlockwise around a centre,
grow/shrink). So a model that averages its frames, or looks at any one of them, cannot tell the
two of a pair apart (it is at best 50% right within a pair, 50% overall); only the order tells, by
construction. Deterministic by seed: the same seed gives the same clips, byte for byte.

`write_clips(out, num, seed)` writes train.npz, val.npz and test.npz (80/10/10) in the format
`rnnkit train` reads for a classifier: x (N, T, S, S) uint8 frames, y (N,) class names; a
meta.json describing them; and preview.png, the first training clip of each class, one row of
frames per class. `rnnkit data clips --out DIR` is its command.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# The pairs: the second of each is the first's frames in reverse order.
PAIRS = (("right", "left"), ("down", "up"), ("clockwise", "anticlockwise"), ("grow", "shrink"))
MOTIONS = tuple(name for pair in PAIRS for name in pair)
SHAPES = ("disc", "square", "triangle")


def _draw(draw, shape: str, x: float, y: float, r: float, fill: int) -> None:
    if shape == "disc":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif shape == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=fill)
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)


def _path(pair: int, rng: np.random.Generator, frames: int, size: int) -> list[tuple[float, float, float]]:
    """(x, y, radius) of the moving shape in each frame, for the first motion of pair `pair`."""
    t = np.arange(frames) / (frames - 1)  # 0 .. 1
    r = rng.uniform(0.08, 0.14) * size
    if pair == 3:  # grow: from small to large, in place
        x, y = rng.uniform(0.35, 0.65, 2) * size
        r0, r1 = rng.uniform(0.05, 0.09) * size, rng.uniform(0.2, 0.28) * size
        return [(x, y, r0 + (r1 - r0) * s) for s in t]
    if pair == 2:  # clockwise on screen (y grows downwards): the angle increases
        cx, cy = rng.uniform(0.4, 0.6, 2) * size
        radius, start = rng.uniform(0.18, 0.28) * size, rng.uniform(0, 2 * np.pi)
        sweep = rng.uniform(0.9, 1.4) * np.pi
        return [(cx + radius * np.cos(start + sweep * s), cy + radius * np.sin(start + sweep * s), r) for s in t]
    length = rng.uniform(0.35, 0.6) * size  # right (pair 0) or down (pair 1): a straight line
    along0 = rng.uniform(0.15 * size, 0.85 * size - length)
    across = rng.uniform(0.2, 0.8) * size
    points = [(along0 + length * s, across) for s in t]
    return [(a, b, r) if pair == 0 else (b, a, r) for a, b in points]


def make_clips(num: int, seed: int = 0, frames: int = 8, size: int = 32, noise: float = 0.08):
    """`num` clips (classes balanced, in a seeded random order): frames (N, T, S, S) uint8, labels (N,)."""
    from PIL import Image, ImageDraw
    if frames < 3 or size < 12 or num < 1:
        raise ValueError("clips need at least 3 frames of 12 x 12 pixels, and at least one clip")
    rng = np.random.default_rng(seed)
    labels = np.array([MOTIONS[i % len(MOTIONS)] for i in range(num)])[rng.permutation(num)]
    x = np.empty((num, frames, size, size), dtype=np.uint8)
    for n, label in enumerate(labels):
        k = MOTIONS.index(label)
        path = _path(k // 2, rng, frames, size)
        if k % 2:  # the second of a pair: the same motion played backwards
            path = path[::-1]
        shape, still = rng.choice(SHAPES), rng.choice(SHAPES)
        fill, still_fill = int(rng.integers(150, 256)), int(rng.integers(60, 140))
        sx, sy = rng.uniform(0.1, 0.9, 2) * size
        sr = rng.uniform(0.05, 0.09) * size
        for f, (px, py, pr) in enumerate(path):
            img = Image.new("L", (size, size), 0)
            draw = ImageDraw.Draw(img)
            _draw(draw, still, sx, sy, sr, still_fill)  # the distractor, the same in every frame
            _draw(draw, shape, px, py, pr, fill)
            pixels = np.asarray(img, dtype=np.float32) / 255 + rng.normal(0, noise, (size, size))
            x[n, f] = np.clip(pixels * 255, 0, 255).round().astype(np.uint8)
    return x, labels


def write_clips(out: str | Path, num: int, seed: int = 0, frames: int = 8, size: int = 32) -> dict:
    """Clips split 80/10/10 into out/train.npz, val.npz and test.npz, with meta.json; returns the meta."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = make_clips(num, seed, frames, size)
    cut = [int(num * 0.8), int(num * 0.9)]
    sizes = {}
    for name, part in zip(("train", "val", "test"), np.split(np.arange(num), cut)):
        np.savez_compressed(out / f"{name}.npz", x=x[part], y=y[part])
        sizes[name] = int(len(part))
    meta = {"generator": "rnnkit.data.clips", "seed": seed, "frames": frames, "size": size, "classes": list(MOTIONS),
            "pairs": [list(p) for p in PAIRS], "sizes": sizes,
            "format": "x (N, T, S, S) uint8 frames, y (N,) class names; the second class of each pair is the "
                      "first played backwards"}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    preview(x[:cut[0]], y[:cut[0]]).save(out / "preview.png")
    return meta


def preview(x: np.ndarray, y: np.ndarray, scale: int = 3):
    """A PIL image: the first clip of each class, frames left to right, one row per class, named."""
    from PIL import Image, ImageDraw
    T, S = x.shape[1], x.shape[2]
    label_w, gap = 96, 2
    img = Image.new("L", (label_w + T * (S * scale + gap), len(MOTIONS) * (S * scale + gap)), 40)
    draw = ImageDraw.Draw(img)
    for row, name in enumerate(MOTIONS):
        found = np.flatnonzero(y == name)
        top = row * (S * scale + gap)
        draw.text((4, top + S * scale // 2 - 5), name, fill=255)
        if not len(found):
            continue
        for f in range(T):
            frame = Image.fromarray(x[found[0], f]).resize((S * scale, S * scale), Image.NEAREST)
            img.paste(frame, (label_w + f * (S * scale + gap), top))
    return img
