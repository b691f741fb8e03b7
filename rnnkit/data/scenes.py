"""Scenes: small images of two shapes with captions and questions, for image captioning and visual
question answering on a machine with no image corpus (in the style of CLEVR, itself synthetic).

Each image is S x S RGB pixels on a dark background with two objects, each a shape (circle, square,
triangle) of a colour (red, green, blue, yellow, purple) and a size (small, large), one beside or
above the other, plus optional clutter (grey specks) and pixel noise. Its captions come from a small
grammar that names both objects and where the first is from the second ("a small red circle left of
a large blue square", the same read the other way round, "a red circle and a blue square", "there
is ..."); its questions need the image: the colour of a shape, the shape of a colour, how many
objects of a shape, whether there is a colour-shape pair (yes and no equally often), and the colour
of the object left of / above another.

Split: every image holding one of the held-out colour-shape pairs (`UNSEEN`: red squares and blue
triangles; their colours and shapes are all seen elsewhere) goes to the split "unseen", to test
generalisation to new combinations; the others are dealt 80/10/10 to train, val and test.

`write_scenes(out, num, seed)` writes
    images/000000.png ...           the images
    captions.json                   Karpathy's split format (as for Flickr8k/30k and COCO):
                                    {"dataset", "images": [{"filename", "filepath", "imgid", "split",
                                    "sentences": [{"raw", "tokens"}]}]}
    vqa/<split>_questions.json      the VQA v2 formats: {"questions": [{"image_id", "question",
    vqa/<split>_annotations.json    "question_id"}]} and {"annotations": [{"question_id", "image_id",
                                    "question_type", "multiple_choice_answer", "answers": [...]}]}
    meta.json, preview.png          what was made, and the first training images in a grid
Deterministic by seed: the same seed gives the same files, byte for byte. `rnnkit data scenes --out DIR`
is its command.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .clips import _draw

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 230), "yellow": (230, 210, 40),
           "purple": (160, 60, 200)}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
UNSEEN = (("red", "square"), ("blue", "triangle"))
SPLITS = ("train", "val", "test", "unseen")
_DRAWN = {"circle": "disc", "square": "square", "triangle": "triangle"}  # clips' names for the shapes


def _objects(rng: np.random.Generator, size: int) -> list[dict]:
    """Two objects, side by side or one above the other, never overlapping."""
    objs = []
    for _ in range(2):
        objs.append({"colour": str(rng.choice(list(COLOURS))), "shape": str(rng.choice(SHAPES)),
                     "size": str(rng.choice(SIZES))})
    horizontal = bool(rng.integers(2))
    for o in objs:
        o["r"] = (0.09 if o["size"] == "small" else 0.16) * size
    a, b = rng.uniform(0.2, 0.35) * size, rng.uniform(0.65, 0.8) * size  # the two centres along the axis
    across = rng.uniform(0.3, 0.7, 2) * size
    for o, along, other in zip(objs, (a, b), across):
        o["x"], o["y"] = (along, other) if horizontal else (other, along)
    if rng.integers(2):  # which one is named first is random, so "left of" and "right of" both occur
        objs.reverse()
    return objs


def _relation(first: dict, second: dict) -> str:
    """Where `first` is from `second`: the axis they are apart along decides."""
    dx, dy = first["x"] - second["x"], first["y"] - second["y"]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _name(o: dict, size: bool = True) -> str:
    return f"{o['size'] + ' ' if size else ''}{o['colour']} {o['shape']}"


def captions(objs: list[dict]) -> list[str]:
    a, b = objs
    return [f"a {_name(a)} {_relation(a, b)} a {_name(b)}", f"a {_name(b)} {_relation(b, a)} a {_name(a)}",
            f"a {_name(a, False)} and a {_name(b, False)}", f"there is a {_name(a)} {_relation(a, b)} a {_name(b, False)}"]


def questions(objs: list[dict], rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(type, question, answer) for one image; every answer needs the image."""
    a, b = objs
    out = []
    for o, other in ((a, b), (b, a)):
        if o["shape"] != other["shape"]:
            out.append(("colour", f"what colour is the {o['shape']}?", o["colour"]))
        if o["colour"] != other["colour"]:
            out.append(("shape", f"what shape is the {o['colour']} object?", o["shape"]))
    shape = str(rng.choice(SHAPES))
    out.append(("count", f"how many {shape}s are there?", str(sum(o["shape"] == shape for o in objs))))
    if rng.integers(2):  # yes: a pair in the image; no: a pair that is not (yes and no equally often)
        o = objs[int(rng.integers(2))]
        colour, shape, answer = o["colour"], o["shape"], "yes"
    else:
        present = {(o["colour"], o["shape"]) for o in objs}
        absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
        colour, shape = absent[int(rng.integers(len(absent)))]
        answer = "no"
    out.append(("exist", f"is there a {colour} {shape}?", answer))
    if a["shape"] != b["shape"]:
        rel = _relation(a, b)
        if rel in ("left of", "above"):
            out.append(("relate", f"what colour is the object {rel} the {b['shape']}?", a["colour"]))
    return out


def _image(objs: list[dict], rng: np.random.Generator, size: int, clutter: int, noise: float) -> np.ndarray:
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (size, size), (12, 12, 16))
    draw = ImageDraw.Draw(img)
    for _ in range(clutter):  # grey specks, never the colours the captions name
        x, y = rng.uniform(0, size, 2)
        g = int(rng.integers(60, 130))
        draw.rectangle([x, y, x + 1, y + 1], fill=(g, g, g))
    for o in objs:
        _draw(draw, _DRAWN[o["shape"]], o["x"], o["y"], o["r"], COLOURS[o["colour"]])
    pixels = np.asarray(img, dtype=np.float32)
    if noise:
        pixels = pixels + rng.normal(0, noise * 255, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_scenes(num: int, seed: int = 0, size: int = 48, clutter: int = 0, noise: float = 0.0):
    """`num` scenes: images (N, S, S, 3) uint8, their objects, captions, questions and splits."""
    if size < 24 or num < 1:
        raise ValueError("scenes need at least 24 x 24 pixels and at least one image")
    rng = np.random.default_rng(seed)
    images, scenes = np.empty((num, size, size, 3), dtype=np.uint8), []
    for n in range(num):
        objs = _objects(rng, size)
        images[n] = _image(objs, rng, size, clutter, noise)
        unseen = any((o["colour"], o["shape"]) in UNSEEN for o in objs)
        split = "unseen" if unseen else str(rng.choice(SPLITS[:3], p=[0.8, 0.1, 0.1]))
        scenes.append({"objects": [{k: (round(float(v), 2) if k in "xyr" else v) for k, v in o.items()} for o in objs],
                       "captions": captions(objs), "questions": questions(objs, rng), "split": split})
    return images, scenes


def write_scenes(out: str | Path, num: int, seed: int = 0, size: int = 48, clutter: int = 0,
                 noise: float = 0.0) -> dict:
    """Write the files the module docstring lists; returns meta.json's content."""
    from PIL import Image
    out = Path(out)
    images, scenes = make_scenes(num, seed, size, clutter, noise)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "vqa").mkdir(exist_ok=True)
    entries, vqa, qid = [], {s: ([], []) for s in SPLITS}, 0
    for n, (pixels, scene) in enumerate(zip(images, scenes)):
        name = f"{n:06d}.png"
        Image.fromarray(pixels).save(out / "images" / name)
        entries.append({"filename": name, "filepath": "images", "imgid": n, "split": scene["split"],
                        "objects": scene["objects"],
                        "sentences": [{"raw": c, "tokens": c.split()} for c in scene["captions"]]})
        qs, anns = vqa[scene["split"]]
        for kind, question, answer in scene["questions"]:
            qs.append({"image_id": n, "question": question, "question_id": qid})
            anns.append({"question_id": qid, "image_id": n, "question_type": kind, "answer_type": kind,
                         "multiple_choice_answer": answer,
                         "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": i + 1}
                                     for i in range(10)]})  # VQA v2 has ten answers per question; here all agree
            qid += 1
    (out / "captions.json").write_text(json.dumps({"dataset": "scenes", "images": entries}))
    for split, (qs, anns) in vqa.items():
        (out / "vqa" / f"{split}_questions.json").write_text(json.dumps({"questions": qs}))
        (out / "vqa" / f"{split}_annotations.json").write_text(json.dumps({"annotations": anns}))
    train = [i for i, e in enumerate(entries) if e["split"] == "train"][:16]
    if train:  # the first training images, 8 to a row
        rows = (len(train) + 7) // 8
        grid = np.full((rows * (size + 2), 8 * (size + 2), 3), 255, dtype=np.uint8)
        for k, i in enumerate(train):
            r, c = divmod(k, 8)
            grid[r * (size + 2):r * (size + 2) + size, c * (size + 2):c * (size + 2) + size] = images[i]
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out / "preview.png")
    meta = {"num": num, "seed": seed, "size": size, "clutter": clutter, "noise": noise, "colours": list(COLOURS),
            "shapes": list(SHAPES), "sizes": list(SIZES), "unseen_pairs": [list(p) for p in UNSEEN],
            "images_per_split": {s: sum(e["split"] == s for e in entries) for s in SPLITS},
            "questions_per_split": {s: len(vqa[s][0]) for s in SPLITS}}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
