"""Labelled examples for many-to-one tasks: reading them, splitting them, batching them.

Formats (`ExamplesConfig.format`, "auto" decides by the extension; a directory is a folder):
- tsv / csv: one example per row, text then label (a first row "text,label" is a header and skipped);
- jsonl: one {"text": ..., "label": ...} object per line;
- folder: one file per class, one example per line, the class named by the file (`French.txt`), the
  format of the PyTorch tutorial "classifying names with a character-level RNN";
- lines (.txt): one unlabelled example per line (names.txt), for an unconditional generator; the
  label of each is "";
- npz: sequences of vectors instead of text, arrays x (N, T, F), y (N,) and optionally lengths (N,)
  (an image read one row per step is a sequence of its rows); or sequences of frames, x (N, T, H, W)
  grey or (N, T, H, W, C) with channels last (a video clip; uint8 pixels are read as value / 255);
- vectors (.csv with an "id,label,..." header): the same as CSV, one row per step: an example's id,
  its label and the step's F values; the rows of one example are consecutive, in order.

Batches hold examples of similar length (sorted within pools of many batches, the batches then
shuffled), padded to their longest member, with the lengths alongside so that the model packs them
and padding never reaches its state. An epoch's order depends only on the seed and the epoch, so a
resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .corpus import normalize_newlines, read_text
from .vocab import Vocab

POOL = 50  # batches whose examples are sorted by length together (bucketing without losing randomness)


@dataclass
class Examples:
    """Texts (or sequences of vectors, (T, F) arrays) and their labels (as given, strings)."""

    texts: list
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx) -> "Examples":
        return Examples([self.texts[i] for i in idx], [self.labels[i] for i in idx])


def read_examples(paths: list[str], fmt: str = "auto") -> Examples:
    """The examples of every path, in order; one-line errors naming the file and row at fault."""
    if not paths:
        raise DataError("no examples given: a TSV/CSV/JSONL file, a folder of files or (generate) a .txt file of lines")
    texts, labels = [], []
    for p in map(Path, paths):
        kind = _format_of(p, fmt)
        if kind in ("npz", "vectors"):
            seqs, names = _vectors(p) if kind == "npz" else _vector_rows(p)
            texts += seqs
            labels += names
            continue
        if kind == "folder":
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            if not files:
                raise DataError(f"{p} has no files: a folder of examples holds one file per class")
            for f in files:
                lines = [line for line in normalize_newlines(read_text(f)).split("\n") if line.strip()]
                texts += lines
                labels += [f.stem] * len(lines)
            continue
        text = normalize_newlines(read_text(p))
        if kind == "lines":
            lines = [line for line in text.split("\n") if line.strip()]
            texts += lines
            labels += [""] * len(lines)
            continue
        rows = _rows(p, text, kind)
        for n, (t, label) in rows:
            if not t or not label:
                raise DataError(f"{p}, row {n}: the {'text' if not t else 'label'} is empty")
            texts.append(t)
            labels.append(label)
    if not texts:
        raise DataError(f"no examples in {', '.join(paths)}")
    return Examples(texts, labels)


def _format_of(path: Path, fmt: str) -> str:
    if not path.exists():
        raise DataError(f"no such file or directory: {path}")
    if fmt != "auto":
        if (fmt == "folder") != path.is_dir():
            raise DataError(f"--format {fmt} does not fit {path}, which is {'a' if path.is_dir() else 'not a'} directory")
        return fmt
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix == ".csv" and _header(path)[:2] == ["id", "label"]:
        return "vectors"
    if suffix in (".tsv", ".csv", ".jsonl", ".npz"):
        return suffix[1:]
    if suffix == ".txt":
        return "lines"
    raise DataError(f"cannot tell the format of {path} from its extension; give --format tsv, csv, jsonl, lines, "
                    "npz or folder")


def _vectors(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """Sequences of vectors from an .npz file: x (N, T, F) numbers (or frames, (N, T, H, W[, C]),
    returned as (T, H, W, C) arrays), y (N,) labels, and optionally lengths (N,) (each example's first
    lengths[i] steps; all T without it). Loaded without pickle."""
    try:
        with np.load(path, allow_pickle=False) as f:
            lacking = [k for k in ("x", "y") if k not in f.files]
            if lacking:
                raise DataError(f"{path} needs arrays x (N, T, F) and y (N,); it lacks {', '.join(map(repr, lacking))}")
            x, y = np.asarray(f["x"]), np.asarray(f["y"])
            x = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)  # pixels -> [0, 1]
            lengths = np.asarray(f["lengths"]) if "lengths" in f.files else np.full(len(x), x.shape[1] if x.ndim >= 3 else 0)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz of numbers: {str(exc).splitlines()[0][:100]}") from None
    if x.ndim not in (3, 4, 5) or y.shape != (len(x),) or lengths.shape != (len(x),):
        raise DataError(f"{path}: x must be (N, T, F) vectors or (N, T, H, W[, C]) frames and y, lengths (N,); got x "
                        f"{x.shape}, y {y.shape}")
    if x.ndim == 4:  # grey frames get their one channel
        x = x[..., None]
    if not np.isfinite(x).all():
        raise DataError(f"{path}: x holds NaN or infinite values (example {int(np.argwhere(~np.isfinite(x))[0, 0])})")
    if (lengths < 1).any() or (lengths > x.shape[1]).any():
        raise DataError(f"{path}: every length must be in 1..{x.shape[1]}")
    return [x[i, :int(n)] for i, n in enumerate(lengths)], [str(v) for v in y.tolist()]


def _header(path: Path) -> list[str]:
    """The first row of a CSV file, lowercased (empty if it cannot be read)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return [c.strip().lower() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _vector_rows(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """Sequences of vectors from a CSV file of steps: a header "id,label,<F names>", then one row per
    step; consecutive rows with the same id make one example."""
    rows = csv.reader(io.StringIO(normalize_newlines(read_text(path))))
    header = next(rows, [])
    width = len(header)
    if [c.strip().lower() for c in header[:2]] != ["id", "label"] or width < 3:
        raise DataError(f"{path}: a file of vectors needs a header id,label,<one or more value columns>")
    seqs, labels, ids, steps = [], [], [], []
    seen = set()
    for n, row in enumerate(rows, 2):
        if not row:
            continue
        if len(row) != width:
            raise DataError(f"{path}, row {n}: {len(row)} fields, but the header has {width}")
        try:
            values = [float(v) for v in row[2:]]
        except ValueError:
            bad = next(i for i, v in enumerate(row[2:]) if not _is_float(v))
            raise DataError(f"{path}, row {n}: {row[2 + bad]!r} in column {header[2 + bad]!r} is not a number") from None
        if not all(np.isfinite(values)):
            raise DataError(f"{path}, row {n}: NaN or infinite value")
        if not ids or row[0] != ids[-1]:
            if row[0] in seen:
                raise DataError(f"{path}, row {n}: example {row[0]!r} continues after other examples; keep its "
                                "rows together")
            if steps:
                seqs.append(np.array(steps, dtype=np.float32))
            ids.append(row[0])
            seen.add(row[0])
            labels.append(row[1].strip())
            steps = []
        elif row[1].strip() != labels[-1]:
            raise DataError(f"{path}, row {n}: example {row[0]!r} changes its label")
        steps.append(values)
    if steps:
        seqs.append(np.array(steps, dtype=np.float32))
    return seqs, labels


def _is_float(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _rows(path: Path, text: str, kind: str):
    """(row number, (text, label)) for every non-blank row of a tsv/csv/jsonl file."""
    if kind == "jsonl":
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise DataError(f"{path}, line {n}: not a JSON object") from None
            if not isinstance(obj, dict) or "text" not in obj or "label" not in obj:
                raise DataError(f"{path}, line {n}: needs both \"text\" and \"label\"")
            yield n, (str(obj["text"]), str(obj["label"]))
        return
    reader = csv.reader(io.StringIO(text), delimiter="\t" if kind == "tsv" else ",",
                        quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
    for n, row in enumerate(reader, 1):
        if not row or not "".join(row).strip():
            continue
        if n == 1 and [c.strip().lower() for c in row] == ["text", "label"]:
            continue  # a header
        if len(row) != 2:
            raise DataError(f"{path}, row {n}: expected 2 columns (text, label), found {len(row)}")
        yield n, (row[0], row[1].strip())


def split_examples(examples: Examples, split: tuple, seed: int) -> tuple[Examples, Examples, Examples]:
    """A seeded random (train, validation, test) split by the fractions in `split`."""
    order = np.random.default_rng(seed).permutation(len(examples))
    a = int(round(len(order) * split[0]))
    b = a + int(round(len(order) * split[1]))
    return examples.subset(order[:a]), examples.subset(order[a:b]), examples.subset(order[b:])


def encode(examples: Examples, vocab: Vocab, classes: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """Token ids of every text and the class index of every label (unknown labels are an error)."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(examples.labels) - set(index))
    if unknown:
        raise DataError(f"label(s) {', '.join(map(repr, unknown[:10]))} not among the classes the model was "
                        f"trained on: {', '.join(classes)}")
    labels = np.array([index[c] for c in examples.labels], dtype=np.int64)
    if vocab is None:  # sequences of vectors: already numbers
        return list(examples.texts), labels
    return [vocab.encode(t, unknown="skip") for t in examples.texts], labels


def pad(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences -> (tokens (B, T) int64 padded with 0, lengths (B,) int64), or sequences of
    vectors (T_i, F) or frames (T_i, H, W, C) -> (values (B, T, ...) float32 padded with zeros,
    lengths); empty ones count 1."""
    lengths = np.array([max(len(s), 1) for s in seqs])
    vectors = seqs[0].ndim >= 2
    out = np.zeros((len(seqs), lengths.max(), *seqs[0].shape[1:]), dtype=np.float32 if vectors else np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return torch.from_numpy(out), torch.from_numpy(lengths)


class BucketedBatches:
    """One epoch of batches of B items (this process's share of B x world), bucketed by length: the
    items are shuffled, sorted by length within pools of POOL batches, cut into batches, and the
    batches shuffled. An epoch's order depends only on the seed and the epoch. `indices(i, epoch)`
    are the items of this process's part of batch i; subclasses turn them into tensors (`get`)."""

    what = "items"

    def __init__(self, lengths, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if len(lengths) < batch_size * world:
            raise DataError(f"{len(lengths)} training {self.what} are fewer than one batch of {batch_size * world}; "
                            "lower --batch-size")
        self.lengths, self.B, self.seed, self.rank, self.world = np.asarray(lengths), batch_size, seed, rank, world
        self._epoch, self._batches = None, None

    def __len__(self) -> int:
        return len(self.lengths) // (self.B * self.world)  # the remainder waits for another epoch's shuffle

    def _plan(self, epoch: int) -> list[np.ndarray]:
        """The global batches (index arrays of B x world items) of `epoch`."""
        rng = np.random.default_rng([self.seed, epoch])
        size = self.B * self.world
        order = rng.permutation(len(self.lengths))[:len(self) * size]
        batches = []
        for i in range(0, len(order), POOL * size):  # similar lengths together, the same randomness across pools
            pool = order[i:i + POOL * size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[j:j + size] for j in range(0, len(pool), size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def indices(self, i: int, epoch: int = 0) -> np.ndarray:
        if self._epoch != epoch:
            self._epoch, self._batches = epoch, self._plan(epoch)
        return self._batches[i][self.rank * self.B:(self.rank + 1) * self.B]


class ExampleBatches(BucketedBatches):
    """`get(i, epoch)` is batch i of that epoch: (tokens (B, T), lengths (B,), labels (B,))."""

    what = "examples"

    def __init__(self, seqs: list[np.ndarray], labels: np.ndarray, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1):
        super().__init__([len(s) for s in seqs], batch_size, seed, rank, world)
        self.seqs, self.labels = seqs, labels

    def get(self, i: int, epoch: int = 0):
        idx = self.indices(i, epoch)
        tokens, lengths = pad([self.seqs[j] for j in idx])
        return tokens, lengths, torch.from_numpy(self.labels[idx].astype(np.int64))
