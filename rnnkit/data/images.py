"""Labelled images in an .npz file, for the glimpse task: x (N, H, W) or (N, H, W, C) pixels, uint8
(0..255) or floats in [0, 1]; y (N,) class names; optionally where (N, 2), a point of interest per
image (x, y) in pixels (the digit's centre for `rnnkit data digits`), which only the evaluation's
"glimpses on the object" figure reads. Loaded without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .examples import BucketedBatches


@dataclass
class LabelledImages:
    images: np.ndarray            # (N, H, W, C) uint8, or float32 in [0, 1]
    labels: list[str]             # (N,) class names
    where: np.ndarray | None      # (N, 2) float (x, y) in pixels, or None

    def __len__(self) -> int:
        return len(self.labels)

    def floats(self, idx) -> torch.Tensor:
        """Images `idx` as float32 (B, H, W, C) in [0, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(self.images[idx]))
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def read_images(path: str | Path) -> LabelledImages:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (the glimpse task reads an .npz of images x and classes y)")
    try:
        with np.load(path, allow_pickle=False) as f:
            lacking = [k for k in ("x", "y") if k not in f.files]
            if lacking:
                raise DataError(f"{path} needs arrays x (N, H, W[, C]) and y (N,); it lacks {', '.join(map(repr, lacking))}")
            x, y = np.asarray(f["x"]), np.asarray(f["y"])
            where = np.asarray(f["where"], dtype=np.float32) if "where" in f.files else None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz of numbers: {str(exc).splitlines()[0][:100]}") from None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or y.shape != (len(x),) or len(x) == 0:
        raise DataError(f"{path}: x must be (N, H, W) or (N, H, W, C) images and y (N,) classes, N > 0; got x "
                        f"{x.shape}, y {y.shape}")
    if x.shape[3] > 4:
        raise DataError(f"{path}: x is {x.shape}, images of {x.shape[3]} channels; images have 1 to 4 (N, H, W[, C]) "
                        "(clips, (N, T, H, W), are for --task video)")
    if where is not None and where.shape != (len(x), 2):
        raise DataError(f"{path}: where must be (N, 2), got {where.shape}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
            raise DataError(f"{path}: x must hold numbers, got {x.dtype}")
        x = x.astype(np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DataError(f"{path}: pixels that are not uint8 must be finite floats in [0, 1]")
    return LabelledImages(x, [str(v) for v in y.tolist()], where)


class ImageBatches(BucketedBatches):
    """Shuffled batches of B images; `get(i, epoch)` is (images (B, H, W, C) in [0, 1], labels (B,))."""

    what = "images"

    def __init__(self, data: LabelledImages, labels: np.ndarray, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1):
        super().__init__(np.zeros(len(data), dtype=np.int64), batch_size, seed, rank, world)
        self.data, self.labels = data, labels

    def get(self, i: int, epoch: int = 0):
        idx = np.sort(self.indices(i, epoch))
        return self.data.floats(idx), torch.from_numpy(self.labels[idx])
