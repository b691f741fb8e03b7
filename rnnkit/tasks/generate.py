"""One-to-many generation as a task: a class -> a short text (words by language, names by origin), or
with unlabelled examples (a .txt file, one per line: names.txt) an unconditional generator of them.

The data are the classifier's examples (rnnkit.data.examples, plus the `lines` format), split the same
way; the vocabulary is the characters of the training examples and the boundary symbol (or, with
--tokens byte, the 256 bytes; with --tokens bpe, byte-level BPE pieces learned on the training
examples, each example encoded on its own between boundaries), the classes their sorted labels. The model is rnnkit.models.generator.CharGenerator, trained with teacher forcing
on whole examples (the state starts afresh for each); the loss is the cross-entropy per predicted
character, the end of each example counted as one (makemore's convention). `rnnkit eval` reports the
test loss per class and what the samples are: words of that class seen in training, held-out words of
that class, or new strings, and, given a classifier run (`--judge`), how often it reads a sample as
the class it was written for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..config import TASK_CONFIGS, ExamplesConfig, GeneratorConfig, TrainConfig, build
from ..data.examples import ExampleBatches, Examples
from ..data.vocab import Vocab
from ..errors import CheckpointError, ConfigError, DataError, UsageError
from ..models.generator import BOUNDARY, CharGenerator, example_ids, example_nats
from .classify import splits, text_vocab

LANGUAGE_MODEL = False  # fine-tuning (--init-from) and the NumPy reference backend exist for language models
NAME = "generate"
CONFIGS = TASK_CONFIGS[NAME]  # (GeneratorConfig, ExamplesConfig)
EVAL_SAMPLES = 200  # samples per class that `rnnkit eval` draws to see what the generator writes


@dataclass
class RunConfig:
    """What a generator run directory's config.json holds."""

    model: GeneratorConfig
    data: ExamplesConfig
    train: TrainConfig
    vocab: Vocab
    classes: list  # empty for unlabelled examples


def read_run(run_dir: str | Path) -> RunConfig:
    run = ckpt.parse_config(run_dir, lambda raw: RunConfig(
        build(GeneratorConfig, raw["model"]), build(ExamplesConfig, raw["data"]), build(TrainConfig, raw["train"]),
        Vocab.from_json(raw["vocab"]), list(raw["classes"])))
    if run.model.vocab_size != len(run.vocab) or run.model.num_classes != len(run.classes):
        raise CheckpointError(f"{Path(run_dir) / ckpt.CONFIG} is inconsistent: the model's sizes do not match its "
                              "vocabulary and classes")
    return run


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> CharGenerator:
    run = read_run(run_dir)
    model = CharGenerator(run.model, vocab=run.vocab, classes=run.classes)
    ckpt.load_weights_into(model, ckpt.weights_path(run_dir, checkpoint))
    return model.to(device).eval()


def labelled(examples: Examples) -> bool:
    """Whether the examples carry labels (a .txt file of lines has none); a mix is an error."""
    blank = sum(1 for label in examples.labels if label == "")
    if blank and blank != len(examples):
        raise DataError("some examples have labels and some (from a .txt file of lines) have none; give one kind")
    return not blank


def class_ids(labels: list[str], classes: list[str]) -> np.ndarray:
    """The index of every label (0 for all when there are no classes)."""
    if not classes:
        return np.zeros(len(labels), dtype=np.int64)
    index = {c: i for i, c in enumerate(classes)}
    unseen = sorted(set(labels) - set(index))
    if unseen:
        raise DataError(f"label(s) {', '.join(map(repr, unseen[:10]))} are not among the classes of the training "
                        f"examples: {', '.join(classes)}")
    return np.array([index[c] for c in labels], dtype=np.int64)


class Task:
    name = NAME
    unit = "char"
    loss_unit = "nats/char"
    carries_state = False  # every example starts from its class's initial state
    # Batches are padded, not packed (a causal model never looks past a position, and the padding's
    # predictions are masked out of the loss), so bf16 autocast is as fast here as for the language model.
    cpu_bf16 = True
    cuda_mixed = True  # unmeasured on a GPU

    def __init__(self, model_cfg: GeneratorConfig, data_cfg: ExamplesConfig, train_cfg: TrainConfig, vocab: Vocab,
                 classes: list[str], train: Examples, val: Examples, model: CharGenerator):
        self.model_cfg, self.data_cfg, self.train_cfg, self.vocab, self.classes = model_cfg, data_cfg, train_cfg, vocab, classes
        self.model = model
        # Characters of the validation examples that training never saw are skipped (the vocabulary is
        # the training split's); the test metrics in `rnnkit eval` say so instead.
        self.train_seqs = [example_ids(vocab, t, unknown="skip") for t in train.texts]
        self.train_labels = class_ids(train.labels, classes)
        self.val_seqs = [example_ids(vocab, t, unknown="skip") for t in val.texts]
        self.val_labels = class_ids(val.labels, classes)
        self.has_val = len(self.val_seqs) > 0
        if vocab.kind != "char":  # the trainer reports per symbol read; eval adds nats per character
            self.unit = "byte" if vocab.kind == "byte" else "token"
            self.loss_unit = f"nats/{self.unit}"
        self.mean_chars = float(np.mean([len(s) - 1 for s in self.train_seqs]))

    def train_batches(self, rank: int = 0, world: int = 1) -> ExampleBatches:
        return ExampleBatches(self.train_seqs, self.train_labels, self.train_cfg.batch_size, self.train_cfg.seed,
                              rank, world)

    def items_per_step(self, world: int = 1) -> int:
        """Characters predicted per step, on average (for the speed the bar shows)."""
        return max(1, round(self.train_cfg.batch_size * self.mean_chars * world))

    def loss(self, net, batch, state, device, amp):
        """Mean cross-entropy per predicted character of a batch of examples."""
        tokens, lengths, labels = batch  # (B, T) boundary + text + boundary, padded
        tokens = tokens.to(device)
        classes = labels.to(device) if self.model.conditional else None
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits, _ = net(tokens[:, :-1], classes=classes)  # (B, T - 1, V)
        return example_nats(logits, tokens, lengths).sum() / (lengths - 1).sum().to(device), None

    def validate(self, model) -> float:
        """Loss per predicted character over the validation examples."""
        return float(model.nats(self.val_seqs, self.val_labels).sum() / sum(len(s) - 1 for s in self.val_seqs))

    def preview(self, model, step: int) -> str:
        return f"--- samples at step {step} ---\n" + show_samples(model, self.train_cfg.seed + step)

    def write_config(self, run_dir: Path, train_cfg: TrainConfig) -> None:
        ckpt.write_config(run_dir, NAME, {"model": self.model_cfg, "data": self.data_cfg, "train": train_cfg},
                          {"vocab": self.vocab.to_json(), "classes": self.classes})

    def describe(self) -> str:
        c = self.model_cfg
        how = (f"{len(self.classes)} classes, condition {c.condition}" if self.classes else "unlabelled")
        return (f"generate: {c.cell} {c.num_layers}x{c.hidden_size}, {sum(p.numel() for p in self.model.parameters()):,} "
                f"parameters, {how}, vocabulary {len(self.vocab)}, {len(self.train_seqs):,} training examples")


def show_samples(model: CharGenerator, seed: int, temperature: float = 1.0) -> str:
    """A few samples to look at: a line of 8, or for a conditional model a line of 4 per class (the
    first 6 classes)."""
    if not model.conditional:
        return " ".join(model.samples(8, seed=seed, length=60, temperature=temperature))
    return "\n".join(f"{c}: " + " ".join(model.samples(4, label=c, seed=seed, length=60, temperature=temperature))
                     for c in model.classes[:6])


def setup(model_o: dict, data_o: dict, train_cfg: TrainConfig, device, d, log, resumed: RunConfig | None = None,
          init_from=None, extend_vocab: bool = False) -> Task:
    data_cfg = resumed.data if resumed is not None else build(ExamplesConfig, data_o)
    train, val, _ = splits(data_cfg)
    if not len(train):
        raise DataError("no training examples (see --split)")
    if not isinstance(train.texts[0], str):
        raise DataError("a generator writes text; sequences of vectors are for --task classify")
    if data_cfg.tokens == "word":
        raise ConfigError("a generator writes characters, bytes or BPE pieces (--tokens char, byte or bpe); --tokens "
                          "word reads unseen words as one unknown token, which it could not write")
    if resumed is not None:
        vocab, classes, model_cfg = resumed.vocab, resumed.classes, resumed.model
    else:
        if any(BOUNDARY in t for t in train.texts):  # a TSV cell can hold no newline, but be sure
            raise DataError("an example contains a line break; a generator's examples are single lines")
        classes = sorted(set(train.labels)) if labelled(train) else []
        vocab = (Vocab("char", sorted(set("".join(train.texts)) | {BOUNDARY})) if data_cfg.tokens == "char" else
                 text_vocab(train.texts, data_cfg))  # bytes, or BPE learned line by line: the boundary is a byte
        model_cfg = build(GeneratorConfig, {**model_o, "vocab_size": len(vocab), "num_classes": len(classes)})
    labelled(val)
    torch.manual_seed(train_cfg.seed)  # the same seed gives the same initial weights
    model = CharGenerator(model_cfg, vocab=vocab, classes=classes).to(device)
    return Task(model_cfg, data_cfg, train_cfg, vocab, classes, train, val, model)


def evaluate_run(run_dir, file: str | None = None, checkpoint: str = "best", unknown: str = "error",
                 num_samples: int = EVAL_SAMPLES, judge: str | None = None, seed: int = 1) -> dict:
    """`rnnkit eval` on a generator: the loss per character on the run's test examples (or `file`),
    overall and per class, then `num_samples` samples per class (temperature 1): the fractions that are
    training examples of that class, held-out (validation and test) examples of it, or new strings; and
    with `judge` (a classifier run directory) the fraction it classifies as the class asked for."""
    if num_samples < 1:
        raise UsageError(f"--samples must be >= 1, got {num_samples}")
    run = read_run(run_dir)
    model = load(run_dir, checkpoint)
    train, val, test = splits(run.data)
    examples = test
    if file:
        from ..data.examples import read_examples
        examples = read_examples([file], run.data.format if run.data.format not in ("folder", "lines") else "auto")
    if not len(examples):
        raise DataError("this run has no test examples (see --split or --test); pass a FILE to evaluate on")
    labels = examples.labels if labelled(examples) and run.classes else None
    if unknown == "error" and run.vocab.kind == "char":  # bytes and BPE pieces read any text
        missing = sorted(set("".join(examples.texts)) - set(run.vocab.chars))
        if missing:
            run.vocab.encode("".join(missing))  # raises the usual one-line error naming them
    result = {**model.evaluate(examples.texts, labels, unknown="skip"), "split": str(file) if file else "test"}
    result["samples"] = sample_report(model, train, Examples(val.texts + test.texts, val.labels + test.labels),
                                      num_samples, seed)
    if judge is not None:
        result["judge"], result["judge_run"] = judge_samples(model, judge, result["samples"]), str(judge)
    for r in result["samples"].values():
        del r["all_texts"]
    return result


def sample_report(model: CharGenerator, train: Examples, held_out: Examples, n: int, seed: int) -> dict:
    """What `n` samples per class (one group for an unconditional model) are: {class: {'in_train',
    'held_out', 'novel' (fractions), 'texts' (the first 10)}}; membership is within the class's own
    examples for a conditional model, among all examples otherwise."""
    groups = model.classes if model.conditional else [None]
    report = {}
    for c in groups:
        texts = model.samples(n, label=c, seed=seed, length=100)
        seen = {t for t, lab in zip(train.texts, train.labels) if c is None or lab == c}
        kept = {t for t, lab in zip(held_out.texts, held_out.labels) if c is None or lab == c} - seen
        in_train = np.mean([t in seen for t in texts])
        held = np.mean([t in kept for t in texts])
        report["all" if c is None else c] = {"in_train": float(in_train), "held_out": float(held),
                                             "novel": float(1 - in_train - held), "texts": texts[:10],
                                             "all_texts": texts}
    return report


def judge_samples(model: CharGenerator, judge_dir: str, report: dict) -> dict:
    """A classifier run's accuracy on the samples: {class: fraction read as that class, 'mean': ...}."""
    from . import load as load_any
    from ..models.classifier import SequenceClassifier
    if not model.conditional:
        raise UsageError("--judge scores a conditional generator's samples against their classes; this "
                         "generator is unconditional")
    judge = load_any(judge_dir)
    if not isinstance(judge, SequenceClassifier) or judge.vocab is None:
        raise UsageError(f"--judge needs a classifier of text (a classify run); {judge_dir} is not one")
    accuracy = {}
    for c, r in report.items():
        accuracy[c] = float(np.mean([top[0][0] == c for top in judge.predict(r["all_texts"])]))
    accuracy["mean"] = float(np.mean(list(accuracy.values())))
    return accuracy
