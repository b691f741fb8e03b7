"""The character language model as a task: many-to-many, one next-character prediction per input
character, trained with teacher forcing and truncated backprop through time.

What the trainer gets from it (see rnnkit.tasks): the prepared text as B parallel streams (chunk i+1
of every stream continues chunk i, so the carried hidden state is always the right one), the
CharRNN, the cross-entropy of a chunk, the validation loss over the validation split (as streams,
with the state carried), and a short sample to print now and then. The carried state is this task's
business: the trainer only passes it back in, detaches it between steps and drops it at epoch ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import checkpoint as ckpt
from ..config import TASK_CONFIGS, DataConfig, ModelConfig, TrainConfig, build
from ..data.batching import StreamBatches
from ..data.corpus import Corpus, prepare, prepare_for_run, read_text
from ..data.pieces import PieceVocab
from ..data.vocab import Vocab, describe_chars
from ..errors import CheckpointError, ConfigError, DataError
from ..evaluate import evaluate_tokens, summary
from ..io import atomic_write_bytes
from ..models import CharRNN, grow_vocabulary
from ..sample import sample_text

LANGUAGE_MODEL = True  # fine-tuning (--init-from) and the NumPy reference backend exist for language models
NAME = "lm"
CONFIGS = TASK_CONFIGS[NAME]  # (ModelConfig, DataConfig); TrainConfig is the trainer's
TOKENIZER = "tokenizer.json"  # a word or bpe run's tokenizer, beside config.json


@dataclass
class RunConfig:
    """What a language-model run directory's config.json holds."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    vocab: Vocab


def read_run(run_dir: str | Path) -> RunConfig:
    """The configs and vocabulary of a language-model run directory (one-line errors if damaged)."""
    def parse(raw: dict) -> RunConfig:
        if isinstance(raw.get("data"), dict):  # runs from before keep_crlf existed read text as it was
            raw["data"].setdefault("keep_crlf", True)
        vocab = raw["vocab"]  # word and bpe runs: where their tokenizer is, read below
        vocab = vocab if vocab.get("kind") == "pieces" else Vocab.from_json(vocab)
        return RunConfig(build(ModelConfig, raw["model"]), build(DataConfig, raw["data"]),
                         build(TrainConfig, raw["train"]), vocab)
    run = ckpt.parse_config(run_dir, parse)
    if isinstance(run.vocab, dict):
        run.vocab = _read_tokenizer(run_dir, run.vocab)
    if run.model.vocab_size != len(run.vocab):
        raise CheckpointError(f"{Path(run_dir) / ckpt.CONFIG} is inconsistent: vocab_size {run.model.vocab_size} "
                              f"but {len(run.vocab)} symbols in the vocabulary")
    return run


def _read_tokenizer(run_dir, vocab_json: dict) -> PieceVocab:
    """A word or bpe run's vocabulary: its run directory's tokenizer.json, checked against config.json."""
    path = Path(run_dir) / TOKENIZER
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: this run's {vocab_json.get('scheme')} tokenizer, without which "
                              "its token ids mean nothing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        vocab = PieceVocab.from_tokenizer_json(vocab_json.get("scheme"), text)
    except DataError as exc:
        raise CheckpointError(f"{path} is corrupted: {exc}") from None
    if len(vocab) != vocab_json.get("size"):
        raise CheckpointError(f"{path} has {len(vocab)} tokens, but the run was trained with {vocab_json.get('size')}")
    return vocab


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> CharRNN:
    """The trained CharRNN of a run directory, in eval mode, with its vocabulary attached."""
    run = read_run(run_dir)
    model = CharRNN(run.model, vocab=run.vocab, keep_crlf=run.data.keep_crlf)
    ckpt.load_weights_into(model, ckpt.weights_path(run_dir, checkpoint))
    return model.to(device).eval()


class Task:
    """A language-model training run's data and model, built by `setup`."""

    name = NAME
    unit = "char"  # what the progress bar counts per second
    loss_unit = "nats/char"
    carries_state = True  # truncated BPTT: the state of chunk i starts chunk i + 1
    # --precision auto stays fp32 on CPUs: bf16 autocast ran the default step faster on a Zen 4 (53
    # against 80 ms) but learned no more there, and was slower and worse on an Intel Xeon and a Zen 5
    # (benchmarks/README.md, train_budget.py). On a GPU with TF32 it is fp32 too: on an H200, bf16
    # autocast was more than 5% slower than fp32 (cuDNN's TF32) in 31 of 36 configurations at batch
    # 50 x 50 and 16 of 36 at 256 x 100, faster in 1 and 8 (benchmarks/gpu_grid.py). Older GPUs: fp16.
    cpu_bf16 = False
    cuda_mixed = False

    def __init__(self, model_cfg: ModelConfig, data_cfg: DataConfig, train_cfg: TrainConfig, corpus: Corpus,
                 model):
        self.model_cfg, self.data_cfg, self.train_cfg, self.corpus = model_cfg, data_cfg, train_cfg, corpus
        self.vocab = corpus.vocab
        self.model = model
        if isinstance(self.vocab, PieceVocab):  # the trainer reports per token; eval adds nats per character
            self.unit, self.loss_unit = "token", "nats/token"
        val = corpus.split("val")
        self.val_tokens = val[:train_cfg.eval_max_chars] if train_cfg.eval_max_chars else val
        self.has_val = len(self.val_tokens) >= 2

    def train_batches(self, rank: int = 0, world: int = 1) -> StreamBatches:
        """Process `rank`'s B of the B x world training streams."""
        cfg = self.train_cfg
        return StreamBatches(self.corpus.split("train"), cfg.batch_size, cfg.seq_len, "train", rank=rank, world=world)

    def items_per_step(self, world: int = 1) -> int:
        return self.train_cfg.batch_size * self.train_cfg.seq_len * world

    def loss(self, net, batch, state, device, amp):
        """Mean cross-entropy of one chunk of every stream, continuing from `state`."""
        x, y = batch
        if device.type == "cuda":  # page-locked batches copy to the GPU asynchronously
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits, state = net(x, state)  # (B, T, V); state continues the streams
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1)), state

    def validate(self, model) -> float:
        """Loss on the validation split (at most --eval-max-chars of it), as streams with the state carried."""
        return evaluate_tokens(model, self.val_tokens)[0]

    def preview(self, model, step: int) -> str:
        text = sample_text(model, length=self.train_cfg.sample_length, temperature=0.8, seed=self.train_cfg.seed + step)
        return f"--- sample at step {step} (temperature 0.8) ---\n{text}\n---"

    def write_config(self, run_dir: Path, train_cfg: TrainConfig) -> None:
        vocab = self.vocab.to_json()
        if isinstance(self.vocab, PieceVocab):  # the tokenizer in a file of its own, as its library writes it
            atomic_write_bytes(run_dir / TOKENIZER, self.vocab.tokenizer_json().encode("utf-8"))
            vocab = {"kind": "pieces", "scheme": self.vocab.kind, "size": len(self.vocab), "file": TOKENIZER}
        ckpt.write_config(run_dir, NAME, {"model": self.model_cfg, "data": self.data_cfg, "train": train_cfg},
                          {"vocab": vocab})

    def describe(self) -> str:
        c = self.model_cfg
        return (f"{c.cell} {c.num_layers}x{c.hidden_size}, {sum(p.numel() for p in self.model.parameters()):,} "
                f"parameters, vocabulary {len(self.vocab)}, {len(self.corpus.split('train')):,} training "
                f"{'characters' if self.unit == 'char' else 'tokens'}")


def setup(model_o: dict, data_o: dict, train_cfg: TrainConfig, device, d, log, resumed: RunConfig | None = None,
          init_from=None, extend_vocab: bool = False) -> Task:
    """Prepare the text and build the model for a new run (model_o, data_o: the options given), a
    resumed one (`resumed`: its stored configs), or a fine-tuning one (`init_from`, `extend_vocab`)."""
    init = read_run(init_from) if init_from is not None else None
    if resumed is not None:
        model_cfg, data_cfg = resumed.model, resumed.data
    else:
        if init is not None:
            if model_o:
                raise ConfigError(f"--init-from keeps the architecture of {init_from}; "
                                  f"don't pass {', '.join(sorted(model_o))}")
            data_o = {**data_o, "byte_level": init.vocab.kind == "byte", "tokens": init.data.tokens}
        data_cfg = build(DataConfig, data_o)
    # Process 0 encodes the text (or finds it cached) first, so the others only read the cache.
    corpus = _corpus(data_cfg, init, extend_vocab, resumed) if d.is_main else None
    d.barrier()
    corpus = corpus or _corpus(data_cfg, init, extend_vocab, resumed)
    if corpus is None:
        raise DataError("the training text changed since this run started; it cannot be resumed exactly")
    vocab = corpus.vocab
    if init is not None:
        model_cfg = build(ModelConfig, {"vocab_size": len(vocab)}, base=init.model)
        if len(vocab) != len(init.vocab):
            log(f"--extend-vocab: {len(vocab) - len(init.vocab)} new character(s) "
                f"{describe_chars(sorted(set(vocab.chars) - set(init.vocab.chars)))}")
    elif resumed is None:
        model_cfg = build(ModelConfig, {**model_o, "vocab_size": len(vocab)})
    model = build_model(model_cfg, train_cfg, vocab, device)
    if init is not None:
        path = ckpt.weights_path(init_from, "best")
        if vocab == init.vocab:
            ckpt.load_weights_into(model, path)
        else:  # the new characters get rows of their own; the old ones keep theirs
            ckpt.load_weights_into(model, path, lambda weights: grow_vocabulary(weights, init.vocab, vocab))
    return Task(model_cfg, data_cfg, train_cfg, corpus, model)


def build_model(model_cfg: ModelConfig, train_cfg: TrainConfig, vocab, device):
    torch.manual_seed(train_cfg.seed)  # the same seed gives the same initial weights
    if train_cfg.backend == "numpy":
        if device.type != "cpu":
            raise ConfigError("--backend numpy runs on the CPU only")
        from ..reference import NumpyCharRNN
        return NumpyCharRNN(model_cfg, seed=train_cfg.seed, vocab=vocab)
    return CharRNN(model_cfg, vocab=vocab).to(device)


def _corpus(data_cfg: DataConfig, init: RunConfig | None, extend_vocab: bool, resumed: RunConfig | None):
    """The training text: with the run's own vocabulary when resuming (None if it no longer fits),
    else with the base run's (--init-from, optionally extended) or its own."""
    if resumed is not None:
        return prepare_for_run(data_cfg, resumed.vocab)
    return prepare(data_cfg, vocab=init.vocab if init is not None else None, extend=extend_vocab)


def evaluate_run(run_dir, file: str | None = None, checkpoint: str = "best", unknown: str = "error") -> dict:
    """`rnnkit eval` on a language model: loss on the run's test split, or on `file` if given."""
    model = load(run_dir, checkpoint)
    if file is not None:
        path = Path(file)
        if model.vocab.kind == "byte":
            if not path.is_file():
                raise DataError(f"no such file: {path}")
            tokens = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        else:
            tokens = model.vocab.encode(model.normalize_text(read_text(path)), unknown=unknown)
        chars = len(model.vocab.decode(tokens)) if isinstance(model.vocab, PieceVocab) else None
        if len(tokens) < 2:
            raise DataError(f"{path} is too short to evaluate ({len(tokens)} {'tokens' if chars else 'characters'}; "
                            "need at least 2)")
        return {**summary(*evaluate_tokens(model, tokens), chars=chars, tokens=len(tokens)), "split": str(path)}
    run = read_run(run_dir)
    corpus = prepare_for_run(run.data, run.vocab)
    if corpus is None:
        raise DataError("the training text changed since this run was trained; pass a FILE to evaluate on")
    test = corpus.split("test")
    if len(test) < 2:
        raise DataError("this run has no test split (see --split); pass a FILE to evaluate on")
    chars = corpus.chars[2] if corpus.chars is not None else None
    return {**summary(*evaluate_tokens(model, test), chars=chars, tokens=len(test)), "split": "test"}
