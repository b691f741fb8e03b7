"""Forecasting a real-valued time series as a task: many-to-many on real values, the values at each
step -> the values at the next.

The series is one CSV (rnnkit.data.series) split in time order; values are normalised with the
training part's mean and standard deviation, kept in config.json with the column names. Training
reads random windows of --seq-len + 1 consecutive training steps with teacher forcing (MSE on the
normalised values); validation reads the series from its start and scores the one-step predictions
over the validation span. `rnnkit eval` scores the test span in the data's units: one step ahead
(every input a true value) or --horizon H steps ahead (the model's predictions fed back for H steps),
with persistence (the value H steps before) beside it, and can draw the forecast against the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import checkpoint as ckpt
from ..config import TASK_CONFIGS, ForecasterConfig, SeriesConfig, TrainConfig, build
from ..data.series import WindowBatches, read_series, split_bounds
from ..errors import CheckpointError, ConfigError, DataError
from ..models.forecaster import SeriesRNN

LANGUAGE_MODEL = False  # fine-tuning (--init-from) and the NumPy reference backend exist for language models
NAME = "series"
CONFIGS = TASK_CONFIGS[NAME]  # (ForecasterConfig, SeriesConfig)


@dataclass
class RunConfig:
    model: ForecasterConfig
    data: SeriesConfig
    train: TrainConfig
    columns: list
    mean: np.ndarray  # (F,) of the training part
    std: np.ndarray


def read_run(run_dir: str | Path) -> RunConfig:
    run = ckpt.parse_config(run_dir, lambda raw: RunConfig(
        build(ForecasterConfig, raw["model"]), build(SeriesConfig, raw["data"]), build(TrainConfig, raw["train"]),
        list(raw["columns"]), np.array(raw["mean"], dtype=np.float64), np.array(raw["std"], dtype=np.float64)))
    if not (run.model.num_features == len(run.columns) == len(run.mean) == len(run.std)):
        raise CheckpointError(f"{Path(run_dir) / ckpt.CONFIG} is inconsistent: the model's size does not match "
                              "its columns")
    return run


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> SeriesRNN:
    run = read_run(run_dir)
    model = SeriesRNN(run.model)
    ckpt.load_weights_into(model, ckpt.weights_path(run_dir, checkpoint))
    model.mean, model.std, model.columns = run.mean, run.std, run.columns
    return model.to(device).eval()


class Task:
    name = NAME
    unit = "window"
    loss_unit = "MSE (normalised values)"
    carries_state = False  # every window starts from zeros
    cpu_bf16 = False  # small regressions: fp32 keeps the error measurements honest
    cuda_mixed = False  # the same on a GPU with TF32

    def __init__(self, model_cfg: ForecasterConfig, data_cfg: SeriesConfig, train_cfg: TrainConfig, values: np.ndarray,
                 columns: list[str], mean: np.ndarray, std: np.ndarray, model: SeriesRNN):
        self.model_cfg, self.data_cfg, self.train_cfg, self.columns = model_cfg, data_cfg, train_cfg, columns
        self.mean, self.std, self.model = mean, std, model
        self.bounds = split_bounds(len(values), data_cfg.split)
        self.norm = ((values - mean) / std).astype(np.float32)  # (N, F)
        self.has_val = self.bounds[1] > self.bounds[0]

    def train_batches(self, rank: int = 0, world: int = 1) -> WindowBatches:
        return WindowBatches(self.norm[:self.bounds[0]], self.train_cfg.batch_size, self.train_cfg.seq_len,
                             self.train_cfg.seed, rank, world)

    def items_per_step(self, world: int = 1) -> int:
        return self.train_cfg.batch_size * world

    def loss(self, net, batch, state, device, amp):
        x, y = batch
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            pred, _ = net(x.to(device))  # (B, T, F)
        return F.mse_loss(pred.float(), y.to(device)), None

    def validate(self, model) -> float:
        """One-step MSE (normalised units) over the validation span, reading the series from its start."""
        a, b = self.bounds
        return float(((model.one_step(self.norm[:b]) - self.norm[:b])[a:] ** 2).mean())

    def preview(self, model, step: int) -> None:
        return None

    def write_config(self, run_dir: Path, train_cfg: TrainConfig) -> None:
        ckpt.write_config(run_dir, NAME, {"model": self.model_cfg, "data": self.data_cfg, "train": train_cfg},
                          {"columns": self.columns, "mean": self.mean.tolist(), "std": self.std.tolist()})

    def describe(self) -> str:
        c, (a, b) = self.model_cfg, self.bounds
        return (f"series: {c.cell} {c.num_layers}x{c.hidden_size}, {sum(p.numel() for p in self.model.parameters()):,} "
                f"parameters, {len(self.columns)} column(s), {a} training / {b - a} validation / "
                f"{len(self.norm) - b} test steps")


def setup(model_o: dict, data_o: dict, train_cfg: TrainConfig, device, d, log, resumed: RunConfig | None = None,
          init_from=None, extend_vocab: bool = False) -> Task:
    data_cfg = resumed.data if resumed is not None else build(SeriesConfig, data_o)
    if len(data_cfg.paths) != 1:
        raise DataError("a series task reads one CSV file")
    series = read_series(data_cfg.paths[0], data_cfg.time_column, data_cfg.columns)
    a, _ = split_bounds(len(series.values), data_cfg.split)
    if a < 3:
        raise DataError(f"the training part of {data_cfg.paths[0]} has {a} steps; it needs at least 3")
    if resumed is not None:
        model_cfg, mean, std = resumed.model, resumed.mean, resumed.std
        if series.columns != resumed.columns:
            raise DataError("the series' columns changed since this run started; it cannot be resumed exactly")
    else:
        mean = series.values[:a].mean(axis=0)
        std = np.where(series.values[:a].std(axis=0) > 0, series.values[:a].std(axis=0), 1.0)  # a constant column stays put
        model_cfg = build(ForecasterConfig, {**model_o, "num_features": len(series.columns)})
    torch.manual_seed(train_cfg.seed)  # the same seed gives the same initial weights
    model = SeriesRNN(model_cfg).to(device)
    return Task(model_cfg, data_cfg, train_cfg, series.values, series.columns, mean, std, model)


def evaluate_run(run_dir, file: str | None = None, checkpoint: str = "best", unknown: str = "error",
                 horizon: int = 1) -> dict:
    """`rnnkit eval` on a forecaster: MSE and MAE in the data's units over the test span (or over
    every step of FILE from step `horizon` on), with persistence (the value `horizon` steps before)."""
    if horizon < 1:
        raise ConfigError(f"--horizon must be >= 1, got {horizon}")
    run = read_run(run_dir)
    model = load(run_dir, checkpoint)
    series = read_series(file if file else run.data.paths[0], run.data.time_column, run.columns)
    values = series.values
    start = horizon if file else split_bounds(len(values), run.data.split)[1]
    start = max(start, horizon)
    if start >= len(values):
        raise DataError("no steps to score: this run has no test span (see --split); pass a FILE")
    return {"split": str(file) if file else "test", **model.evaluate(values, horizon, start),
            "times": series.times[start:]}


def plot_forecast(result: dict, path) -> None:
    """The scored span: the truth and the forecasts, one panel per column."""
    from ..plotting import pyplot, save_png
    plt = pyplot()
    truth, pred = np.array(result["truth"]), np.array(result["predictions"])
    x = np.arange(len(truth))
    cols = result["columns"]
    fig, axes = plt.subplots(len(cols), 1, figsize=(8, 2.6 * len(cols) + 0.6), dpi=110, squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[:, 0], cols)):
        ax.plot(x, truth[:, k], color="black", label="truth")
        ax.plot(x, pred[:, k], color="tab:orange", label=f"rnnkit, {result['horizon']} step(s) ahead")
        ticks = x[::max(1, len(x) // 8)]
        ax.set_xticks(ticks, [result["times"][i] for i in ticks], fontsize=8)
        ax.set(ylabel=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_title(f"{result['split']}: MSE {result['mse']:.4g} (persistence {result['persistence_mse']:.4g})")
    fig.tight_layout()
    save_png(fig, path)
