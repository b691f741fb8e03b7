"""Images with captions, for the caption task: the common caption formats, their splits, the images
loaded once into memory, and batches of (image, caption) pairs.

Formats (by content, whatever the file is called):
- Karpathy's split JSON (`dataset_flickr8k.json`, `dataset_coco.json`; what `rnnkit data scenes`
  writes): {"images": [{"filename", "filepath"?, "split", "sentences": [{"raw"} or {"tokens"}]}]};
  its split is used ("restval" counts as train; a split of another name, such as "unseen", is kept
  for evaluation).
- COCO's captions JSON (`captions_train2014.json`): {"images": [{"id", "file_name"}], "annotations":
  [{"image_id", "caption"}]}; split here by --split / --split-seed.
- Flickr8k's token file (`Flickr8k.token.txt`): lines `image.jpg#n<TAB>caption`; split likewise.
An image's path is read relative to the captions file's folder (below "filepath" when the entry has
one; else beside the file or in its "images" folder). Captions are lowercased and cut into words of
letters, digits and apostrophes, so the formats' punctuation and capitals do not matter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .examples import BucketedBatches
from .pairs import pad_ids

WORD = re.compile(r"[a-z0-9']+")


def normalise(caption: str) -> str:
    return " ".join(WORD.findall(caption.lower()))


@dataclass
class Captioned:
    """Images (N, H, W, C) uint8 and each image's captions."""

    images: np.ndarray
    captions: list[list[str]]
    names: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def pairs(self) -> tuple[np.ndarray, list[str]]:
        """(image index, caption) for every caption: the training examples."""
        idx = [i for i, caps in enumerate(self.captions) for _ in caps]
        return np.array(idx, dtype=np.int64), [c for caps in self.captions for c in caps]


def _entries(path: Path) -> list[tuple[Path, list[str], str | None]]:
    """(image path, captions, split or None) per image, from any of the formats."""
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not valid UTF-8 (first bad byte at offset {e.start})") from None
    base = path.parent
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})") from None
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, list):
            raise DataError(f"{path}: expected Karpathy's split JSON or COCO's captions JSON (an \"images\" list)")
        if "annotations" in data:  # COCO
            by_id = {im.get("id"): (im.get("file_name"), []) for im in images if isinstance(im, dict)}
            for a in data["annotations"]:
                if a.get("image_id") not in by_id:
                    raise DataError(f"{path}: a caption names image id {a.get('image_id')!r}, which the file does not list")
                by_id[a["image_id"]][1].append(str(a.get("caption", "")))
            return [(base / str(name), caps, None) for name, caps in by_id.values()]
        out = []
        for n, im in enumerate(images):
            if not isinstance(im, dict) or "filename" not in im or not isinstance(im.get("sentences"), list):
                raise DataError(f"{path}: image entry {n} needs \"filename\" and \"sentences\"")
            folder = base / im["filepath"] if im.get("filepath") else base
            caps = [s["raw"] if "raw" in s else " ".join(s.get("tokens", [])) for s in im["sentences"]]
            split = {"restval": "train"}.get(im.get("split"), im.get("split"))
            out.append((folder / im["filename"], caps, split))
        return out
    by_name: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, tab, caption = line.partition("\t")
        if not tab:
            raise DataError(f"{path}, line {n}: expected image#n<TAB>caption (Flickr8k's token file), found no tab")
        by_name.setdefault(name.split("#")[0].strip(), []).append(caption)
    return [(base / name, caps, None) for name, caps in by_name.items()]


def _resolve(path: Path) -> Path:
    """An image's path, or the same name in an "images" folder beside it if only that exists."""
    if not path.is_file() and (path.parent / "images" / path.name).is_file():
        return path.parent / "images" / path.name
    return path


def load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    path = _resolve(path)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size:
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path} is not an image Pillow can read ({e})") from None


def load_images(paths: list[Path], size: int, shape: tuple | None = None) -> np.ndarray:
    """The images at `paths` as one uint8 array (N, H, W, C), resized to `size` square if it is not 0;
    else each must have the first one's size (or `shape`), and the error names the one that does not."""
    images = []
    for path in paths:
        pixels = load_image(path, size)
        shape = shape or pixels.shape
        if pixels.shape != shape:
            raise DataError(f"{path} is {pixels.shape[1]} x {pixels.shape[0]} pixels where the first image is "
                            f"{shape[1]} x {shape[0]}; give --image-size to resize them all")
        images.append(pixels)
    return np.stack(images)


def read_captions(paths: list[str], split: tuple, seed: int, image_size: int = 0,
                  skip_missing: bool = False) -> dict[str, Captioned]:
    """The images and captions of every file, by split (train, val, test, and any other split the
    file names); images without a split of their own are dealt by the seeded fractions `split`.
    Images the files name but the folder lacks are an error naming them, or left out with
    `skip_missing`."""
    if not paths:
        raise DataError("caption needs a captions file (Karpathy JSON, COCO captions JSON or Flickr8k tokens)")
    entries = [e for p in paths for e in _entries(Path(p))]
    missing = [e[0] for e in entries if not _resolve(e[0]).is_file()]
    if missing and not skip_missing:
        shown = ", ".join(str(m) for m in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DataError(f"{len(missing):,} of the {len(entries):,} images the captions name are missing: {shown} "
                        "(--skip-missing leaves them out)")
    entries = [e for e in entries if _resolve(e[0]).is_file()]
    if not entries:
        raise DataError(f"no images in {', '.join(map(str, paths))}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(entries))
    a, b = int(round(len(order) * split[0])), int(round(len(order) * (split[0] + split[1])))
    dealt = np.empty(len(entries), dtype=object)
    dealt[order[:a]], dealt[order[a:b]], dealt[order[b:]] = "train", "val", "test"
    groups: dict[str, list[int]] = {}
    for i, (_, caps, own) in enumerate(entries):
        caps = [normalise(c) for c in caps]
        if not any(caps):
            raise DataError(f"image {entries[i][0]} has no caption with a word in it")
        groups.setdefault(own or dealt[i], []).append(i)
    out, shape = {}, None
    for name, idx in groups.items():
        images = load_images([entries[i][0] for i in idx], image_size, shape)
        shape = images.shape[1:]
        out[name] = Captioned(images, [[c for c in map(normalise, entries[i][1]) if c] for i in idx],
                              [str(entries[i][0]) for i in idx])
    return out


class CaptionBatches(BucketedBatches):
    """Batches of B (image, caption) pairs bucketed by caption length; `get(i, epoch)` is (images (B,
    H, W, C) floats in [0, 1], placeholder lengths (B,), captions (B, T) framed by BOS and EOS,
    caption lengths (B,))."""

    what = "captions"

    def __init__(self, images: np.ndarray, image_of: np.ndarray, targets: list[np.ndarray], batch_size: int,
                 seed: int, rank: int = 0, world: int = 1):
        super().__init__([len(t) for t in targets], batch_size, seed, rank, world)
        self.images, self.image_of, self.targets = images, image_of, targets

    def get(self, i: int, epoch: int = 0):
        idx = self.indices(i, epoch)
        x = torch.from_numpy(self.images[self.image_of[idx]]).float() / 255.0
        tgt, tgt_len = pad_ids([self.targets[j] for j in idx], bos=True, eos=True)
        return x, torch.ones(len(idx), dtype=torch.int64), tgt, tgt_len
