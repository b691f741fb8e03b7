"""Visual question answering as a task: (image, question) -> one of the answers seen in training
(rnnkit.models.vqa), on the shared engine. The data are VQA v2 questions and annotations files
(rnnkit.data.questions): the training file, and --val / --test files. `rnnkit eval RUN [FILE]`
reports the accuracy on the test questions (or FILE's), overall and per question type, beside the
majority answer of each question type in training, the simplest question-only baseline; train with
`--inputs question` and `--inputs image` for the learnt baselines.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import checkpoint as ckpt
from ..config import TASK_CONFIGS, TrainConfig, VQAConfig, VQADataConfig, build
from ..data.pairs import SideVocab, pad_ids
from ..data.questions import QuestionBatches, Questions, read_questions
from ..errors import CheckpointError, DataError
from ..models.vqa import VQAModel

LANGUAGE_MODEL = False
NAME = "vqa"
CONFIGS = TASK_CONFIGS[NAME]  # (VQAConfig, VQADataConfig)
EVAL_BATCH = 256


@dataclass
class RunConfig:
    model: VQAConfig
    data: VQADataConfig
    train: TrainConfig
    vocab: SideVocab
    answers: list[str]
    majority: dict  # question type -> the most common training answer (and "" -> overall)


def read_run(run_dir: str | Path) -> RunConfig:
    run = ckpt.parse_config(run_dir, lambda raw: RunConfig(
        build(VQAConfig, raw["model"]), build(VQADataConfig, raw["data"]), build(TrainConfig, raw["train"]),
        SideVocab.from_json(raw["vocab"]), list(raw["answers"]), dict(raw["majority"])))
    if (run.model.vocab_size, run.model.num_answers) != (len(run.vocab), len(run.answers)):
        raise CheckpointError(f"{Path(run_dir) / ckpt.CONFIG} is inconsistent: the model's sizes do not match its "
                              "vocabulary and answers")
    return run


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> VQAModel:
    run = read_run(run_dir)
    model = VQAModel(run.model, question_vocab=run.vocab, answers=run.answers)
    ckpt.load_weights_into(model, ckpt.weights_path(run_dir, checkpoint))
    return model.to(device).eval()


def _read(data: VQADataConfig, path: str) -> Questions:
    return read_questions(path, data.image_dir, data.image_pattern, data.image_size)


@torch.no_grad()
def predictions(model: VQAModel, q: Questions, vocab: SideVocab) -> tuple[np.ndarray, np.ndarray]:
    """(log-probabilities (N, A), the predicted answer ids) of every question, in batches."""
    was_training = model.training
    model.eval()
    device = model.out.weight.device
    tokens = [vocab.encode(t) for t in q.questions]
    out = []
    try:
        for i in range(0, len(q), EVAL_BATCH):
            t, lengths = pad_ids(tokens[i:i + EVAL_BATCH])
            x = torch.from_numpy(q.images[q.image_of[i:i + EVAL_BATCH]]).float().to(device) / 255.0
            out.append(F.log_softmax(model(x, t.to(device), lengths).float(), dim=-1).cpu())
    finally:
        model.train(was_training)
    logp = torch.cat(out).numpy()
    return logp, logp.argmax(axis=1)


class Task:
    name = NAME
    unit = "question"
    loss_unit = "nats/question"
    carries_state = False
    cpu_bf16 = False  # fp32 at --precision auto, as for the captioner (rnnkit.tasks.caption): bf16 is unmeasured
    cuda_mixed = True

    def __init__(self, model_cfg, data_cfg, train_cfg, vocab, answers, majority, train: Questions, val, model):
        self.model_cfg, self.data_cfg, self.train_cfg = model_cfg, data_cfg, train_cfg
        self.vocab, self.answers, self.majority, self.model = vocab, answers, majority, model
        index = {a: i for i, a in enumerate(answers)}
        self.train_q = train
        self.train_tokens = [vocab.encode(t) for t in train.questions]
        self.train_labels = np.array([index[a] for a in train.answers], dtype=np.int64)
        self.val_q = val
        self.has_val = val is not None
        if val is not None:
            self.val_labels = np.array([index.get(a, -1) for a in val.answers], dtype=np.int64)

    def train_batches(self, rank: int = 0, world: int = 1) -> QuestionBatches:
        return QuestionBatches(self.train_q.images, self.train_q.image_of, self.train_tokens, self.train_labels,
                               self.train_cfg.batch_size, self.train_cfg.seed, rank, world)

    def items_per_step(self, world: int = 1) -> int:
        return self.train_cfg.batch_size * world

    def loss(self, net, batch, state, device, amp):
        x, tokens, lengths, labels = batch
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = net(x.to(device), tokens.to(device), lengths)
        return F.cross_entropy(logits.float(), labels.to(device)), None

    def validate(self, model) -> float:
        """Mean cross-entropy of the validation questions whose answer training has."""
        logp, _ = predictions(model, self.val_q, self.vocab)
        known = self.val_labels >= 0
        return float(-logp[known, self.val_labels[known]].mean()) if known.any() else float("nan")

    def preview(self, model, step: int) -> None:
        return None  # `rnnkit eval` shows the metrics

    def write_config(self, run_dir: Path, train_cfg: TrainConfig) -> None:
        ckpt.write_config(run_dir, NAME, {"model": self.model_cfg, "data": self.data_cfg, "train": train_cfg},
                          {"vocab": self.vocab.to_json(), "answers": self.answers, "majority": self.majority})

    def describe(self) -> str:
        c = self.model_cfg
        H, W, C = c.image_shape
        return (f"vqa: {c.cell} {c.num_layers}x{c.hidden_size} over questions, CNN on {H} x {W} x {C} images"
                f"{', attended to by the question' if c.attention != 'none' else ''}, inputs {c.inputs}, {self.model.num_parameters():,} parameters, {len(self.answers)} answers, "
                f"{len(self.train_q):,} training questions about {len(self.train_q.images):,} images")


def setup(model_o: dict, data_o: dict, train_cfg: TrainConfig, device, d, log, resumed: RunConfig | None = None,
          init_from=None, extend_vocab: bool = False) -> Task:
    data_cfg = resumed.data if resumed is not None else build(VQADataConfig, data_o)
    if len(data_cfg.paths) != 1:
        raise DataError("vqa trains on one questions file (its annotations beside it); give others as --val/--test")
    train = _read(data_cfg, data_cfg.paths[0])
    val = _read(data_cfg, data_cfg.val[0]) if data_cfg.val else None
    if resumed is not None:
        model_cfg, vocab, answers, majority = resumed.model, resumed.vocab, resumed.answers, resumed.majority
    else:
        vocab = SideVocab.from_texts("word", train.questions)
        answers = sorted(set(train.answers))
        majority = {kind: Counter(a for k, a in zip(train.kinds, train.answers) if k == kind).most_common(1)[0][0]
                    for kind in set(train.kinds)}
        majority[""] = Counter(train.answers).most_common(1)[0][0]
        model_cfg = build(VQAConfig, {**model_o, "vocab_size": len(vocab), "num_answers": len(answers),
                                      "image_shape": list(train.images.shape[1:])})
    if list(train.images.shape[1:]) != list(model_cfg.image_shape):
        raise DataError(f"the images are {tuple(train.images.shape[1:])}; the run's model reads "
                        f"{tuple(model_cfg.image_shape)}")
    torch.manual_seed(train_cfg.seed)
    model = VQAModel(model_cfg, question_vocab=vocab, answers=answers).to(device)
    return Task(model_cfg, data_cfg, train_cfg, vocab, answers, majority, train, val, model)


def evaluate_run(run_dir, file: str | None = None, checkpoint: str = "best") -> dict:
    """`rnnkit eval` on a VQA run: accuracy on the --test questions (or FILE's), overall and per
    question type, beside the per-type majority answer of training."""
    run = read_run(run_dir)
    path = file or (run.data.test[0] if run.data.test else None)
    if path is None:
        raise DataError("this run has no test questions (see --test); pass a questions FILE to evaluate on")
    q = _read(run.data, path)
    if list(q.images.shape[1:]) != list(run.model.image_shape):
        raise DataError(f"the images are {tuple(q.images.shape[1:])}; this model reads {tuple(run.model.image_shape)}")
    model = load(run_dir, checkpoint)
    _, pred = predictions(model, q, run.vocab)
    right = np.array([run.answers[p] == a for p, a in zip(pred, q.answers)])
    blind = np.array([run.majority.get(k, run.majority[""]) == a for k, a in zip(q.kinds, q.answers)])
    per_type = {}
    for kind in sorted(set(q.kinds)):
        rows = np.array([k == kind for k in q.kinds])
        per_type[kind or "all"] = {"accuracy": float(right[rows].mean()), "majority": float(blind[rows].mean()),
                                   "questions": int(rows.sum())}
    return {"split": str(path), "inputs": run.model.inputs, "accuracy": float(right.mean()),
            "majority_accuracy": float(blind.mean()), "questions": len(q), "per_type": per_type,
            "examples": [{"image": int(i), "question": t, "answer": run.answers[p], "reference": a}
                         for i, t, p, a in list(zip(q.image_of, q.questions, pred, q.answers))[:10]]}



def plot_attention(panels: list, path) -> None:
    """A PNG of panels side by side, each (image (H, W, C) uint8, attention weights (h, w) or None,
    title): the image, under its weights drawn as a heat map stretched to the image's size."""
    from ..plotting import pyplot, save_png
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.5 * len(panels), 2.9), dpi=110, squeeze=False)
    for ax, (image, weights, title) in zip(axes[0], panels):
        H, W = image.shape[:2]
        ax.imshow(image if image.shape[-1] == 3 else image[..., 0], cmap=None if image.shape[-1] == 3 else "gray")
        if weights is not None:
            ax.imshow(weights, cmap="magma", alpha=0.6, extent=(-0.5, W - 0.5, H - 0.5, -0.5),
                      interpolation="nearest", vmin=0, vmax=float(weights.max()))
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)
