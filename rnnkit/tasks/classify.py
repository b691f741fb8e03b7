"""Many-to-one classification as a task: a sequence of characters -> one class (word -> language,
name -> origin, sentence -> label).

The data are labelled examples (rnnkit.data.examples: TSV/CSV/JSONL or a folder of one file per
class), split at random with a stored seed or given as separate validation and test files; the
vocabulary is the characters (or, with --tokens word, the words) of the training examples and the
classes their sorted labels, both kept in config.json. The model is rnnkit.models.classifier.SequenceClassifier. The loss is the
cross-entropy per example (optionally weighted by inverse class frequency); `rnnkit eval` reports
accuracy, macro-F1, per-class precision and recall, the confusion matrix and the expected
calibration error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import checkpoint as ckpt
from ..config import TASK_CONFIGS, ClassifierConfig, ExamplesConfig, TrainConfig, build
from ..data.examples import ExampleBatches, Examples, encode, read_examples, split_examples
from ..data.pieces import PieceVocab
from ..data.vocab import Vocab, WordVocab
from ..errors import CheckpointError, DataError
from ..models.classifier import SequenceClassifier

LANGUAGE_MODEL = False  # fine-tuning (--init-from) and the NumPy reference backend exist for language models
NAME = "classify"
CONFIGS = TASK_CONFIGS[NAME]  # (ClassifierConfig, ExamplesConfig)


@dataclass
class RunConfig:
    """What a classifier run directory's config.json holds."""

    model: ClassifierConfig
    data: ExamplesConfig
    train: TrainConfig
    vocab: Vocab | WordVocab | None  # None for sequences of vectors
    classes: list


def read_run(run_dir: str | Path) -> RunConfig:
    run = ckpt.parse_config(run_dir, lambda raw: RunConfig(
        build(ClassifierConfig, raw["model"]), build(ExamplesConfig, raw["data"]), build(TrainConfig, raw["train"]),
        None if raw["vocab"] is None else Vocab.from_json(raw["vocab"]), list(raw["classes"])))
    if run.model.vocab_size != (len(run.vocab) if run.vocab else 0) or run.model.num_classes != len(run.classes):
        raise CheckpointError(f"{Path(run_dir) / ckpt.CONFIG} is inconsistent: the model's sizes do not match its "
                              "vocabulary and classes")
    return run


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> SequenceClassifier:
    run = read_run(run_dir)
    model = SequenceClassifier(run.model, vocab=run.vocab, classes=run.classes)
    ckpt.load_weights_into(model, ckpt.weights_path(run_dir, checkpoint))
    return model.to(device).eval()


def splits(data: ExamplesConfig) -> tuple[Examples, Examples, Examples]:
    """(train, validation, test) examples: files given for validation and test, or a random split."""
    every = read_examples(data.paths, data.format)
    if not (data.val or data.test):
        return split_examples(every, data.split, data.split_seed)
    val = read_examples(data.val, data.format) if data.val else Examples([], [])
    test = read_examples(data.test, data.format) if data.test else Examples([], [])
    return every, val, test


class Task:
    name = NAME
    unit = "example"
    loss_unit = "nats/example"
    carries_state = False  # every batch starts from zeros
    # --precision auto stays fp32 on CPUs: packed sequences under bf16 autocast ran about 40 times slower
    # than fp32 on the Zen 4 benchmark machine (160 against 3.7 ms a step for a 2x64 LSTM, batch 32).
    cpu_bf16 = False
    cuda_mixed = True  # unmeasured on a GPU

    def __init__(self, model_cfg: ClassifierConfig, data_cfg: ExamplesConfig, train_cfg: TrainConfig, vocab: Vocab,
                 classes: list[str], train: Examples, val: Examples, model: SequenceClassifier):
        self.model_cfg, self.data_cfg, self.train_cfg, self.vocab, self.classes = model_cfg, data_cfg, train_cfg, vocab, classes
        self.model = model
        self.train_seqs, self.train_labels = encode(train, vocab, classes)
        self.val_seqs, self.val_labels = encode(val, vocab, classes)
        model.check_steps(self.train_seqs, "training example")  # vectors or frames of the shape the model reads
        model.check_steps(self.val_seqs, "validation example")
        self.has_val = len(self.val_seqs) > 0
        counts = np.bincount(self.train_labels, minlength=len(classes))
        # Inverse class frequency, normalised so that a balanced data set gets weights of 1.
        self.weights = (torch.tensor(len(self.train_labels) / (len(classes) * np.maximum(counts, 1)), dtype=torch.float32)
                        if data_cfg.class_weights else None)

    def train_batches(self, rank: int = 0, world: int = 1) -> ExampleBatches:
        return ExampleBatches(self.train_seqs, self.train_labels, self.train_cfg.batch_size, self.train_cfg.seed,
                              rank, world)

    def items_per_step(self, world: int = 1) -> int:
        return self.train_cfg.batch_size * world

    def loss(self, net, batch, state, device, amp):
        tokens, lengths, labels = batch
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits, _ = net(tokens.to(device), lengths)  # (B, C)
        weight = self.weights.to(device) if self.weights is not None else None
        return F.cross_entropy(logits.float(), labels.to(device), weight=weight), None

    def validate(self, model) -> float:
        """Mean cross-entropy per validation example (unweighted)."""
        return float(F.cross_entropy(model.batched_logits(self.val_seqs), torch.from_numpy(self.val_labels)))

    def preview(self, model, step: int) -> None:
        return None  # nothing to print while training; `rnnkit eval` shows the metrics

    def write_config(self, run_dir: Path, train_cfg: TrainConfig) -> None:
        ckpt.write_config(run_dir, NAME, {"model": self.model_cfg, "data": self.data_cfg, "train": train_cfg},
                          {"vocab": self.vocab.to_json() if self.vocab else None, "classes": self.classes})

    def describe(self) -> str:
        c = self.model_cfg
        parts = ["no recurrence" if c.cell == "none" else
                 f"{c.cell} {c.num_layers}x{c.hidden_size}{' bidirectional' if c.bidirectional else ''}"]
        if c.ngram_buckets:
            parts.append(f"{c.ngram_buckets:,} hashed 2-{c.ngram_order}-gram embeddings")
        parts += [f"{c.pooling} pooling", f"{sum(p.numel() for p in self.model.parameters()):,} parameters",
                  f"{len(self.classes)} classes"]
        if self.vocab:
            parts.append(f"vocabulary {len(self.vocab)} {self.vocab.kind}s")
        else:
            parts.append("frames of {} x {} x {}".format(*c.frame_shape) if c.frame_shape else
                         f"{c.num_features} values a step")
        return "classify: " + ", ".join(parts + [f"{len(self.train_seqs):,} training examples"])


def text_vocab(texts: list[str], data_cfg: ExamplesConfig):
    """The vocabulary of --tokens: the training texts' characters, the 256 bytes, their words, or a
    byte-level BPE tokenizer learned on them (stored inside config.json, as JSON)."""
    if data_cfg.tokens == "word":
        return WordVocab.from_texts(texts, data_cfg.min_count)
    if data_cfg.tokens == "byte":
        return Vocab.bytes()
    if data_cfg.tokens == "bpe":
        return PieceVocab.learn("bpe", "\n".join(texts), data_cfg.bpe_vocab)
    return Vocab("char", sorted(set("".join(texts))))


def setup(model_o: dict, data_o: dict, train_cfg: TrainConfig, device, d, log, resumed: RunConfig | None = None,
          init_from=None, extend_vocab: bool = False) -> Task:
    data_cfg = resumed.data if resumed is not None else build(ExamplesConfig, data_o)
    train, val, _ = splits(data_cfg)
    if resumed is not None:
        vocab, classes, model_cfg = resumed.vocab, resumed.classes, resumed.model
    else:
        classes = sorted(set(train.labels))
        if "" in classes:
            raise DataError("classification needs labelled examples; a .txt file of lines has no labels (a "
                            "generator can learn from it: --task generate)")
        if len(classes) < 2:
            raise DataError(f"classification needs at least 2 classes in the training examples; found "
                            f"{len(classes)} ({', '.join(classes)})")
        if isinstance(train.texts[0], str):
            vocab = text_vocab(train.texts, data_cfg)
            sizes = {"vocab_size": len(vocab)}
        else:  # sequences of vectors (T, F) or of frames (T, H, W, C) (an .npz file)
            step = [int(n) for n in train.texts[0].shape[1:]]
            vocab, sizes = None, {"num_features": int(np.prod(step)), "frame_shape": step if len(step) == 3 else []}
        model_cfg = build(ClassifierConfig, {**model_o, **sizes, "num_classes": len(classes)})
    torch.manual_seed(train_cfg.seed)  # the same seed gives the same initial weights
    model = SequenceClassifier(model_cfg, vocab=vocab, classes=classes).to(device)
    return Task(model_cfg, data_cfg, train_cfg, vocab, classes, train, val, model)


def evaluate_run(run_dir, file: str | None = None, checkpoint: str = "best", unknown: str = "error") -> dict:
    """`rnnkit eval` on a classifier: metrics on the run's test examples, or on `file` (same formats)."""
    run = read_run(run_dir)
    model = load(run_dir, checkpoint)
    examples = read_examples([file], run.data.format if run.data.format != "folder" else "auto") if file else \
        splits(run.data)[2]
    if not len(examples):
        raise DataError("this run has no test examples (see --split or --test); pass a FILE to evaluate on")
    if unknown == "error" and run.vocab is not None and run.vocab.kind == "char":  # unknown words are read as one
        missing = sorted(set("".join(examples.texts)) - set(run.vocab.chars))
        if missing:
            run.vocab.encode("".join(missing))  # raises the usual one-line error naming them
    return {**model.evaluate(examples.texts, examples.labels), "split": str(file) if file else "test"}


def confusion_table(result: dict) -> str:
    """The confusion matrix as text: rows are true classes, columns predicted ones."""
    classes, m = result["classes"], result["confusion"]
    w = max(5, *(len(c) for c in classes)) + 1
    head = " " * w + "".join(f"{c[:w - 1]:>{w}}" for c in classes)
    return "\n".join([head] + [f"{c:<{w}}" + "".join(f"{v:>{w},}" for v in row) for c, row in zip(classes, m)])


def plot_confusion(result: dict, path) -> None:
    """The confusion matrix as a PNG, each row normalised to the true class's count."""
    from ..plotting import pyplot, save_png
    plt = pyplot()
    m = np.array(result["confusion"], dtype=np.float64)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(result["classes"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * n, 0.8 + 0.5 * n), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), result["classes"], rotation=90)
    ax.set_yticks(range(n), result["classes"])
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=f"accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}")
    fig.tight_layout()
    save_png(fig, path)
