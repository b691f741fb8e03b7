"""Classifying an image by a few glimpses as a task (rnnkit.models.glimpse), on the shared engine: the
recurrent attention model of Mnih et al. 2014, or the whole-image CNN and MLP baselines it is
measured against (--network cnn / mlp).

The data are .npz files of labelled images (rnnkit.data.images; `rnnkit data digits` writes
cluttered translated digits): the training file, and --val / --test files. The loss of the
recurrent attention model is Mnih et al.'s hybrid: the cross-entropy of the class after the last
glimpse (for the glimpse network, the core and the classifier), plus REINFORCE for the location
network (the reward minus a learnt baseline, times the gradient of each sampled location's
log-density), plus the baseline's squared error to the reward. The reward (--reward) is by default
the log-probability of the true class after the last glimpse, which differs for every sample and so
tells apart locations that change the classifier's confidence without changing its answer; `hit` is
Mnih et al.'s 1 for a right class and 0 otherwise. Locations are sampled in training; evaluation
uses the policy's means.
`rnnkit eval RUN` reports accuracy, macro-F1 and the confusion matrix on the test images, and for a
recurrent attention model how many glimpses fell on the object when the data mark it (`where`);
`--glimpses PNG` draws the glimpse paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import checkpoint as ckpt
from ..config import TASK_CONFIGS, GlimpseConfig, GlimpseDataConfig, TrainConfig, build
from ..data.images import ImageBatches, LabelledImages, read_images
from ..errors import CheckpointError, DataError
from ..models.classifier import classification_metrics
from ..models.glimpse import GlimpseClassifier

LANGUAGE_MODEL = False
NAME = "glimpse"
CONFIGS = TASK_CONFIGS[NAME]  # (GlimpseConfig, GlimpseDataConfig)
EVAL_BATCH = 500


@dataclass
class RunConfig:
    model: GlimpseConfig
    data: GlimpseDataConfig
    train: TrainConfig
    classes: list[str]


def read_run(run_dir: str | Path) -> RunConfig:
    run = ckpt.parse_config(run_dir, lambda raw: RunConfig(
        build(GlimpseConfig, raw["model"]), build(GlimpseDataConfig, raw["data"]), build(TrainConfig, raw["train"]),
        list(raw["classes"])))
    if run.model.num_classes != len(run.classes):
        raise CheckpointError(f"{Path(run_dir) / ckpt.CONFIG} is inconsistent: the model's classes do not match its "
                              "class list")
    return run


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> GlimpseClassifier:
    run = read_run(run_dir)
    model = GlimpseClassifier(run.model, classes=run.classes)
    ckpt.load_weights_into(model, ckpt.weights_path(run_dir, checkpoint))
    return model.to(device).eval()


def _labels(data: LabelledImages, classes: list[str], what: str, known_only: bool = True) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(data.labels) - set(index))
    if unknown and known_only:
        raise DataError(f"the {what} images have classes that training has not: {', '.join(unknown[:5])}")
    return np.array([index.get(c, -1) for c in data.labels], dtype=np.int64)


def _check_shape(data: LabelledImages, shape: list, what: str) -> None:
    if list(data.images.shape[1:]) != list(shape):
        raise DataError(f"the {what} images are {' x '.join(map(str, data.images.shape[1:]))}; this model reads "
                        f"{' x '.join(map(str, shape))} (height x width x channels)")


@torch.no_grad()
def outputs(model: GlimpseClassifier, data: LabelledImages) -> tuple[np.ndarray, np.ndarray | None]:
    """(class probabilities (N, C), glimpse locations (N, G, 2) in [-1, 1] or None) of every image, in
    evaluation mode (the location policy's means)."""
    was_training = model.training
    model.eval()
    device = model.out.weight.device
    probs, locations = [], []
    try:
        for i in range(0, len(data), EVAL_BATCH):
            out = model(data.floats(np.arange(i, min(i + EVAL_BATCH, len(data)))).to(device))
            probs.append(F.softmax(out.logits.float(), dim=-1).cpu())
            if out.locations is not None:
                locations.append(out.locations.cpu())
    finally:
        model.train(was_training)
    return torch.cat(probs).numpy(), torch.cat(locations).numpy() if locations else None


def nats(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of the true classes under probabilities (N, C)."""
    return float(-np.log(np.maximum(probs[np.arange(len(probs)), labels], 1e-30)).mean())


def pixels(locations: np.ndarray, shape) -> np.ndarray:
    """Locations in [-1, 1] (x, y) -> pixel coordinates (x, y) of the glimpse centres, as the retina rounds them."""
    H, W = shape[:2]
    return np.round((locations + 1) / 2 * np.array([W, H]))


class Task:
    name = NAME
    unit = "image"
    loss_unit = "nats/image"
    carries_state = False
    cpu_bf16 = False  # fp32 at --precision auto: bf16 is unmeasured for this model
    cuda_mixed = True

    def __init__(self, model_cfg: GlimpseConfig, data_cfg, train_cfg, classes, train: LabelledImages, val, model):
        self.model_cfg, self.data_cfg, self.train_cfg, self.classes, self.model = model_cfg, data_cfg, train_cfg, classes, model
        self.train_data, self.train_labels = train, _labels(train, classes, "training")
        self.val_data = val
        self.has_val = val is not None
        if val is not None:
            self.val_labels = _labels(val, classes, "validation")

    def train_batches(self, rank: int = 0, world: int = 1) -> ImageBatches:
        return ImageBatches(self.train_data, self.train_labels, self.train_cfg.batch_size, self.train_cfg.seed, rank, world)

    def items_per_step(self, world: int = 1) -> int:
        return self.train_cfg.batch_size * world

    def loss(self, net, batch, state, device, amp):
        images, labels = batch
        labels = labels.to(device)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = net(images.to(device), sample=True)
        logits = out.logits.float()
        loss = F.cross_entropy(logits, labels)
        if out.log_pi is not None and out.log_pi.shape[1]:
            if self.model_cfg.reward == "hit":
                reward = (logits.argmax(-1) == labels).float()[:, None]  # (B, 1): 1 for a right class
            else:
                reward = -F.cross_entropy(logits.detach(), labels, reduction="none")[:, None]  # log p(true class)
            baselines = out.baselines.float()
            advantage = (reward - baselines).detach()
            reinforce = -(out.log_pi.float() * advantage).sum(1).mean()
            # The surrogate's value means nothing (its gradient is the policy gradient): it is added as
            # (r - r.detach()), worth 0, so the loss shown is the cross-entropy plus the baseline's error.
            surrogate = reinforce - reinforce.detach()
            loss = loss + self.model_cfg.reinforce_weight * surrogate + F.mse_loss(baselines, reward.expand_as(baselines))
        return loss, None

    def validate(self, model) -> float:
        """Mean cross-entropy per validation image, locations from the policy's means."""
        probs, _ = outputs(model, self.val_data)
        return nats(probs, self.val_labels)

    def preview(self, model, step: int) -> None:
        return None  # `rnnkit eval` shows the metrics

    def write_config(self, run_dir: Path, train_cfg: TrainConfig) -> None:
        ckpt.write_config(run_dir, NAME, {"model": self.model_cfg, "data": self.data_cfg, "train": train_cfg},
                          {"classes": self.classes})

    def describe(self) -> str:
        c = self.model_cfg
        H, W, C = c.image_shape
        what = (f"{c.glimpses} glimpses of {c.scales} scales from {c.glimpse_size} px, {c.cell} {c.num_layers}x"
                f"{c.hidden_size} core" if c.network == "ram" else f"{c.network} on the whole image")
        return (f"glimpse: {what}, {self.model.num_parameters():,} parameters, {len(self.classes)} classes, "
                f"{len(self.train_data):,} training images of {H} x {W} x {C}")


def setup(model_o: dict, data_o: dict, train_cfg: TrainConfig, device, d, log, resumed: RunConfig | None = None,
          init_from=None, extend_vocab: bool = False) -> Task:
    data_cfg = resumed.data if resumed is not None else build(GlimpseDataConfig, data_o)
    if len(data_cfg.paths) != 1:
        raise DataError("glimpse trains on one .npz file of images; give others as --val/--test")
    train = read_images(data_cfg.paths[0])
    val = read_images(data_cfg.val[0]) if data_cfg.val else None
    if resumed is not None:
        model_cfg, classes = resumed.model, resumed.classes
    else:
        classes = sorted(set(train.labels))
        if len(classes) < 2:
            raise DataError(f"classification needs at least 2 classes in the training images; found {len(classes)}")
        model_cfg = build(GlimpseConfig, {**model_o, "num_classes": len(classes),
                                          "image_shape": list(train.images.shape[1:])})
    _check_shape(train, model_cfg.image_shape, "training")
    if val is not None:
        _check_shape(val, model_cfg.image_shape, "validation")
    if model_cfg.network == "cnn" and min(model_cfg.image_shape[:2]) < 8:
        raise DataError(f"--network cnn pools three times by 2 and needs images of at least 8 x 8 pixels; these are "
                        f"{model_cfg.image_shape[0]} x {model_cfg.image_shape[1]}")
    torch.manual_seed(train_cfg.seed)
    model = GlimpseClassifier(model_cfg, classes=classes).to(device)
    return Task(model_cfg, data_cfg, train_cfg, classes, train, val, model)


def evaluate_run(run_dir, file: str | None = None, checkpoint: str = "best", glimpses_png: str | None = None) -> dict:
    """`rnnkit eval` on a glimpse run: accuracy, macro-F1 and the confusion matrix on the --test images
    (or FILE's); for a recurrent attention model the share of glimpses that fell on the marked object
    (within half the finest patch of `where`, both axes), glimpse by glimpse."""
    run = read_run(run_dir)
    path = file or (run.data.test[0] if run.data.test else None)
    if path is None:
        raise DataError("this run has no test images (see --test); pass an .npz FILE to evaluate on")
    data = read_images(path)
    _check_shape(data, run.model.image_shape, "test")
    labels = _labels(data, run.classes, "test")
    model = load(run_dir, checkpoint)
    probs, locations = outputs(model, data)
    result = {**classification_metrics(probs, labels, run.classes), "loss": nats(probs, labels), "split": str(path),
              "network": run.model.network}
    if locations is not None:
        result["glimpses"] = run.model.glimpses
        if data.where is not None:
            near = np.abs(pixels(locations, run.model.image_shape) - data.where[:, None]).max(-1) <= run.model.glimpse_size / 2
            result["on_object"] = [float(v) for v in near.mean(0)]  # per glimpse: the share of images
    if glimpses_png:
        if locations is None:
            raise DataError(f"--glimpses draws a recurrent attention model's glimpses; this run's network is "
                            f"{run.model.network}, which sees the whole image")
        plot_glimpses(data, locations, probs.argmax(1), run, glimpses_png)
    return result


def plot_glimpses(data: LabelledImages, locations: np.ndarray, predicted: np.ndarray, run: RunConfig, path,
                  count: int = 8) -> None:
    """The first `count` images with their glimpse paths as a PNG: the finest patch of every glimpse
    as a numbered square (the coarser ones of the first glimpse dashed), joined in order, and the
    predicted and true class above each image."""
    from ..plotting import pyplot, save_png
    plt = pyplot()
    c = run.model
    count = min(count, len(data))
    fig, axes = plt.subplots(1, count, figsize=(2.0 * count, 2.35), dpi=110, squeeze=False)
    centres = pixels(locations, c.image_shape) - 0.5  # pixel edges at integers, as imshow draws them
    colours = plt.cm.autumn(np.linspace(0, 1, c.glimpses))
    for n, ax in enumerate(axes[0]):
        img = data.floats([n])[0].numpy()
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.plot(centres[n, :, 0], centres[n, :, 1], "-", color="white", lw=0.8, alpha=0.7)
        for t, (x, y) in enumerate(centres[n]):
            for k in range(c.scales if t == 0 else 1):
                w = c.glimpse_size * 2 ** k
                ax.add_patch(plt.Rectangle((x - w / 2, y - w / 2), w, w, fill=False, lw=1.2 if k == 0 else 0.7,
                                           ls="-" if k == 0 else "--", color=colours[t]))
            ax.text(x, y, str(t + 1), color=colours[t], fontsize=7, ha="center", va="center", weight="bold")
        ax.set_xlim(-0.5, c.image_shape[1] - 0.5)
        ax.set_ylim(c.image_shape[0] - 0.5, -0.5)
        right = run.classes[predicted[n]] == data.labels[n]
        ax.set_title(f"{run.classes[predicted[n]]} (true {data.labels[n]})", fontsize=9,
                     color="black" if right else "red")
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)
