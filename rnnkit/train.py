"""The trainer, one for every task: the loop, clipping, schedules, validation, checkpoints, exact
resume, limits, divergence handling, mixed precision and torchrun.

A task (rnnkit.tasks) supplies the batches, the model, the loss of a batch and the validation loss.
For the language model each step takes chunk i of the B training streams (rnnkit.data.batching),
runs the model from the state left by chunk i-1, and backpropagates through those T steps only: the
state is detached after the step, so gradients stop at the chunk boundary while the values carry
on, and it is reset to zeros at every epoch boundary (the streams start over). A classifier's
batches are independent examples and carry no state.

Failures are handled where they happen: a diverged step is caught before its update (stop, or roll
back to the last checkpoint with the learning rate halved); SIGINT/SIGTERM checkpoint between steps;
the run directory is locked for the run's lifetime. Mixed precision (`--precision`) wraps the
forward pass in autocast, with loss scaling for fp16.

The loop is `_Trainer.run`, read top to bottom, and one step is `_Trainer.train_step`; what a step
computes comes from the task (rnnkit.tasks), so the loop serves every shape of model.
"""

from __future__ import annotations

import functools
import json
import math
import signal
import sys
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from . import distributed, tasks
from .config import TASK_CONFIGS, TrainConfig, build, parse_duration, split_overrides
from .errors import ConfigError, Interrupted, TrainingDiverged, UsageError
from .io import atomic_write_bytes, remove_stale_temporaries
from .plotting import pyplot, save_png

EXPLODE_FACTOR = 3.0  # char-rnn's rule: a loss over 3x the first one has exploded
DEFAULT_EPOCHS = 10.0  # used only when no stop condition is given
LIMITS = ("max_steps", "max_epochs", "budget")  # the stop conditions; the first one reached stops the run
# Options that may change when resuming: they decide when to stop and what to report, not what is learned.
RESUMABLE = {*LIMITS, "eval_every", "eval_max_chars", "checkpoint_every",
             "sample_every", "sample_length", "threads", "device", "precision", "on_divergence", "max_rollbacks"}


@dataclass
class Run:
    """What `train` returns: the run directory and the trained model (best weights loaded)."""

    dir: Path
    model: torch.nn.Module  # the task's model: a CharRNN for a language model
    step: int
    best_val_loss: float | None
    final_val_loss: float | None
    stopped_by: str

    def sample(self, **options) -> str:
        return self.model.sample(**options)

    def evaluate(self, text: str, unknown: str = "error") -> dict:
        return self.model.evaluate(text, unknown=unknown)


# -- small pieces the loop uses -----------------------------------------------------------------


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based); `progress` in [0, 1] is how far the run is."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "step":  # char-rnn: multiply by a decay factor at fixed intervals
        return cfg.lr * cfg.lr_decay ** (step // cfg.lr_decay_every)
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * warm * (cfg.min_lr + (1 - cfg.min_lr) * cosine)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    wd = cfg.weight_decay
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, cfg.beta2), weight_decay=wd)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, cfg.beta2), weight_decay=wd)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.95, weight_decay=wd)  # char-rnn's decay rate
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)


def clip_gradients(params, cfg: TrainConfig) -> float:
    """Clip in place; returns the global gradient norm before clipping."""
    params = [p for p in params if p.grad is not None]
    if cfg.grad_clip and cfg.clip_mode == "value":
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        torch.nn.utils.clip_grad_value_(params, cfg.grad_clip)
        return float(norm)
    return float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip else float("inf")))


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA GPU")
    if name == "mps" and not _mps_available():
        raise ConfigError("--device mps was asked for but PyTorch sees no Apple GPU (MPS)")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), which makes bf16 autocast
    faster than fp32 (on the 2-core AMD EPYC of benchmarks/: 53 against 80 ms per default step)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@functools.cache
def cpu_lstm_has_bf16() -> bool:
    """Whether PyTorch's CPU LSTM kernel (oneDNN) runs in bf16 here: it does not on CPUs without
    AVX-512 (an AVX2-only EPYC says "could not create a primitive descriptor"), so a tiny one is tried."""
    lstm = torch.nn.LSTM(2, 2)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(2, 1, 2))
    except RuntimeError:
        return False
    return True


def resolve_precision(name: str, device: torch.device, cell: str, cpu_bf16: bool = True,
                      cuda_mixed: bool = True) -> torch.dtype | None:
    """The autocast dtype for --precision on `device` (None: plain fp32). `cpu_bf16`: whether "auto"
    may choose bf16 on a CPU that has it (the task says; packed sequences are slower in it).
    `cuda_mixed`: whether "auto" picks bf16 (or fp16) on a GPU with TF32 (compute capability 8.0 and
    later), where cuDNN already runs fp32 recurrences on the tensor cores; older GPUs get mixed
    precision whatever the task says."""
    if name == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_bf16 and cpu_has_bf16() else None
        if device.type != "cuda":
            return None
        if not cuda_mixed and torch.backends.cudnn.allow_tf32 and torch.cuda.get_device_capability(device)[0] >= 8:
            return None
        name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp32":
        return None
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16: this GPU does not support bf16; use fp16")
    if name == "fp16" and device.type == "cpu" and cell == "lstm":
        raise ConfigError("--precision fp16: PyTorch's CPU LSTM kernel has no fp16 version; use bf16 on the CPU")
    if name == "bf16" and device.type == "cpu" and cell == "lstm" and not cpu_lstm_has_bf16():
        raise ConfigError("--precision bf16: PyTorch's CPU LSTM kernel has no bf16 version on this CPU (it needs "
                          "AVX-512); use fp32")
    return torch.bfloat16 if name == "bf16" else torch.float16


class _Metrics:
    """metrics.jsonl: one JSON object per line, appended and flushed as training goes."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.fh, self.enabled = path, None, enabled  # under torchrun only process 0 writes
        if enabled:
            self.fh = open(path, "a", encoding="utf-8")

    def truncate(self, step: int) -> None:
        """Drop the rows written after `step` (resuming or rolling back to a checkpoint of that step),
        so that each step appears once."""
        if not self.enabled:
            return
        self.fh.close()
        rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))
        self.fh = open(self.path, "a", encoding="utf-8")

    def write(self, **row) -> None:
        if self.fh:
            self.fh.write(json.dumps(row) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl. It is a log, not state: a line that is not a JSON object (cut
    short by a kill, or garbage) is skipped, never executed or trusted."""
    try:
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step", 0), int):
            rows.append(row)
    return rows


class _StopSignals:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step, so a checkpoint can be
    written between steps (never in the middle of one)."""

    def __init__(self):
        self.received = None
        self.previous = {}

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def plot_losses(metrics_path: Path, out_path: Path) -> None:
    """loss.png: training loss (raw and smoothed) and validation loss against the step."""
    plt = pyplot()
    rows = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float))]
    val = [(r["step"], r["val_loss"]) for r in rows if isinstance(r.get("val_loss"), (int, float))]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        steps, losses = zip(*train)
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        smooth, ema = [], losses[0]
        for v in losses:
            ema = 0.95 * ema + 0.05 * v
            smooth.append(ema)
        ax.plot(steps, smooth, color="tab:blue", label="train (smoothed)")
    if val:
        ax.plot(*zip(*val), color="tab:orange", marker="o", markersize=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / character)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, out_path)


def stop_reason(cfg: TrainConfig, step: int, epochs: float, elapsed: float) -> str | None:
    """Which limit (if any) a run at `step`, `epochs` passes and `elapsed` seconds of training has reached."""
    if cfg.max_steps and step >= cfg.max_steps:
        return "max_steps"
    if cfg.max_epochs and epochs >= cfg.max_epochs:
        return "max_epochs"
    if cfg.budget and elapsed >= cfg.budget:
        return "budget"
    return None


def describe_limit(cfg: TrainConfig, name: str, step: int, epochs: float, elapsed: float) -> str:
    """'--max-steps 4600 (at step 4482)', for messages about a limit and where the run stands."""
    if name == "max_steps":
        return f"--max-steps {cfg.max_steps} (at step {step})"
    if name == "max_epochs":
        return f"--max-epochs {cfg.max_epochs:g} (at epoch {epochs:.2f})"
    return f"--budget {cfg.budget:.0f}s ({elapsed:.0f}s trained)"


def resume_limits(cfg: TrainConfig, given: dict, step: int, epochs: float, elapsed: float) -> TrainConfig:
    """The stop conditions for continuing a run that stands at `step`, `epochs`, `elapsed` seconds.

    Limits given at resume replace the stored ones, all of them: a run stopped by its 2-minute budget
    and resumed with --max-steps 5000 trains to step 5000. --max-steps and --max-epochs count from
    the start of the run; --budget is more time for this invocation, added to the time trained so far
    (the run's config records the total, so a later plain --resume keeps to it). With none given, the
    stored limits apply. A limit given that the run has already reached is an error that says where
    the run stands."""
    if not given:
        return cfg
    values = {name: 0 for name in LIMITS} | given
    values["budget"] = elapsed + parse_duration(values["budget"]) if values["budget"] else 0.0
    if not any(values.values()):
        raise ConfigError("give a limit > 0 when resuming: --max-steps N, --max-epochs N or --budget TIME")
    new = build(TrainConfig, values, base=cfg)
    reached = stop_reason(new, step, epochs, elapsed)
    if reached:
        raise ConfigError(f"{describe_limit(new, reached, step, epochs, elapsed)} is already reached; "
                          f"give a higher {'--max-steps' if reached == 'max_steps' else '--max-epochs'} "
                          "(both count from the start of the run) or --budget for more time")
    return new


# -- the entry point --------------------------------------------------------------------------------


def train(data=None, out: str | Path | None = None, *, task: str | None = None, resume: str | Path | None = None,
          init_from: str | Path | None = None, extend_vocab: bool = False, force: bool = False,
          progress: bool = True, log=None, **options) -> Run:
    """Train a model; the Python twin of `rnnkit train` (same option names, underscored).

    data: a path or list of paths (files or directories); None uses the bundled tiny Shakespeare.
    task: what to learn (rnnkit.tasks; default "lm", the character language model); a resumed or
    fine-tuned run keeps its own. out: the run directory (default runs/<date-time>).
    resume: continue a run exactly; limits given with it replace the stored ones, and a budget is
    more time (see `resume_limits`).
    init_from: start from another run's weights (fine-tuning; same architecture and vocabulary, or
    with extend_vocab the vocabulary grown by the characters of the new text it lacks).
    Under torchrun, every process calls this; see rnnkit.distributed.
    """
    log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    if resume is not None and (data is not None or init_from is not None or out is not None or extend_vocab):
        raise ConfigError("--resume continues a run with its own data and directory; "
                          "don't combine it with data, --out, --init-from or --extend-vocab")
    if extend_vocab and init_from is None:
        raise ConfigError("--extend-vocab grows the vocabulary of the run given to --init-from; give --init-from")
    kind = _task_module(task, resume, init_from, data, options)
    if not kind.LANGUAGE_MODEL and init_from is not None:
        raise ConfigError(f"--init-from fine-tunes language models; train a {kind.NAME} model from scratch")
    if not kind.LANGUAGE_MODEL and options.get("backend") == "numpy":
        raise ConfigError("--backend numpy is the language model's reference; other tasks train with torch")
    foreign = sorted(set(options) - {f.name for cls in (*kind.CONFIGS, TrainConfig) for f in fields(cls)})
    if foreign and all(any(name in {f.name for f in fields(c)} for c in sum(TASK_CONFIGS.values(), ()))
                       for name in foreign):
        raise ConfigError(f"{', '.join('--' + n.replace('_', '-') for n in foreign)} does not apply to the "
                          f"{kind.NAME} task")
    model_o, data_o, train_o = split_overrides(options, *kind.CONFIGS, TrainConfig)
    if data is not None:
        data_o["paths"] = [str(data)] if isinstance(data, (str, Path)) else [str(p) for p in data]

    resumed = None
    limits = {}  # stop conditions given at resume (applied once the run's position is known)
    if resume is not None:
        run_dir = Path(resume)
        resumed = kind.read_run(run_dir)
        fixed = sorted(set(model_o) | set(data_o) | (set(train_o) - RESUMABLE))
        if fixed:
            raise ConfigError(f"cannot change {', '.join(fixed)} when resuming; "
                              f"only {', '.join(sorted(RESUMABLE))} may change")
        limits = {k: train_o.pop(k) for k in LIMITS if k in train_o}
        train_cfg = build(TrainConfig, train_o, base=resumed.train)
    else:
        train_cfg = build(TrainConfig, train_o)
        if not (train_cfg.max_steps or train_cfg.max_epochs or train_cfg.budget):
            train_cfg = replace(train_cfg, max_epochs=DEFAULT_EPOCHS)

    device = resolve_device(train_cfg.device)
    d = distributed.setup(device.type)
    lock = None
    try:
        if d.active:
            if train_cfg.backend != "torch":
                raise ConfigError("multi-process training (torchrun) needs --backend torch")
            if device.type == "cuda":
                device = torch.device(f"cuda:{distributed.local_rank()}")
            if not d.is_main:
                log = lambda msg: None  # noqa: E731  (process 0 speaks for all)
                progress = False
        if resume is None:
            # Process 0 names and checks the directory before any slow work; the others follow its word.
            out = Path(d.broadcast(str(out if out is not None else _default_run_dir()) if d.is_main else None))
            if d.is_main:
                ckpt.check_new_run_dir(out, force)
        elif d.is_main:
            lock = ckpt.RunLock(run_dir).acquire()  # before reading the checkpoint another run may be writing
            remove_stale_temporaries(run_dir)  # left by a process killed in the middle of a write
        if train_cfg.threads:
            torch.set_num_threads(train_cfg.threads)
        job = kind.setup(model_o, data_o, train_cfg, device, d, log, resumed=resumed, init_from=init_from,
                         extend_vocab=extend_vocab)
        model = job.model
        if train_cfg.backend == "numpy" and train_cfg.precision not in ("auto", "fp32"):
            raise ConfigError("--backend numpy computes in float64; --precision does not apply")
        amp = None if train_cfg.backend == "numpy" else resolve_precision(train_cfg.precision, device,
                                                                           model.config.cell, job.cpu_bf16,
                                                                           job.cuda_mixed)
        batches = job.train_batches(d.rank, d.world)
        if resume is None:
            # Everything that can fail on bad input has been checked before the run directory appears.
            if d.is_main:
                run_dir = ckpt.create_run_dir(out, force=force)
                lock = ckpt.RunLock(run_dir).acquire()
                job.write_config(run_dir, train_cfg)
            d.barrier()
            run_dir = out
        optimizer = make_optimizer(model.parameters(), train_cfg)
        start, state = {"step": 0, "chunk": 0, "epoch": 0, "elapsed": 0.0, "best_val": None,
                        "first_loss": None, "world": d.world, "lr_scale": 1.0, "rollbacks": 0}, None
        if resume is not None and (run_dir / ckpt.TRAINER).exists():
            start, state = _restore(run_dir, model, optimizer, train_cfg, device, d)
            log(f"resuming {run_dir} at step {start['step']}")
        elif resume is not None:  # stopped before its first checkpoint: the same seed redoes it exactly
            log(f"{run_dir} has no checkpoint yet; starting it from step 0")
        if resume is not None:
            epochs = start["epoch"] + start["chunk"] / len(batches)
            train_cfg = resume_limits(train_cfg, limits, start["step"], epochs, start["elapsed"])
            job.train_cfg = train_cfg
            reached = stop_reason(train_cfg, start["step"], epochs, start["elapsed"])
            if reached:  # nothing new was asked for, and the stored limit is behind it: nothing to train
                where = describe_limit(train_cfg, reached, start["step"], epochs, start["elapsed"])
                log(f"{run_dir} already reached {where}; to train further give --max-steps or --max-epochs "
                    "(higher; both count from the start) or --budget (more time)")
                if d.is_main and not (run_dir / ckpt.LOSS_PNG).exists():  # a process killed before drawing it
                    plot_losses(run_dir / ckpt.METRICS, run_dir / ckpt.LOSS_PNG)
                return Run(run_dir, tasks.load(run_dir, "best", device=str(device)), start["step"],
                           start["best_val"], None, reached)
            if d.is_main:  # the limits and options now in force, so that a later plain --resume keeps them
                job.write_config(run_dir, train_cfg)
        log(job.describe() + (f", {d.world} processes" if d.active else "") + f" -> {run_dir}")
        return _loop(run_dir, job, optimizer, batches, train_cfg, device, amp, start, state, progress, log, d)
    finally:
        if lock is not None:
            lock.release()
        d.close()


def _task_module(task: str | None, resume, init_from, data=None, options=()):
    """The task module for a run: a resumed or fine-tuned run's own, else `task`, else the task the
    data imply (tasks.infer: the language model unless the files say otherwise)."""
    if task is not None and task not in tasks.TASKS and task not in tasks.ALIASES:
        raise ConfigError(f"--task must be one of {', '.join([*tasks.TASKS, *tasks.ALIASES])}; got {task!r}")
    base = resume if resume is not None else init_from
    paths = [] if data is None else [data] if isinstance(data, (str, Path)) else list(data)
    if task in tasks.ALIASES:
        task = tasks.resolve_alias(task, paths if base is None else [])
    if base is None:
        if task is None:
            task = tasks.infer(paths, options)
        return tasks.TASKS[task]
    stored = ckpt.task_of(base)
    if task is not None and task != stored:
        raise UsageError(f"{base} was trained for the {stored} task; --task {task} does not match it")
    return tasks.module_for(stored)


def _restore(run_dir: Path, model, optimizer, cfg: TrainConfig, device, d: distributed.Dist) -> tuple[dict, tuple]:
    """Load trainer.safetensors into model and optimizer; returns (progress, this process's state)."""
    progress, state = ckpt.load_trainer(run_dir / ckpt.TRAINER, model, optimizer, rank=d.rank)
    if progress.get("world", 1) != d.world:
        raise ckpt.CheckpointError(f"{run_dir} was trained by {progress.get('world', 1)} process(es); "
                                   f"resume it with the same number (now {d.world})")
    B = cfg.batch_size  # this process's streams of the saved B x N carried state
    state = None if state is None else tuple(s[:, d.rank * B:(d.rank + 1) * B].contiguous().to(device) for s in state)
    return progress, state


def _default_run_dir() -> Path:
    base = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


class _Trainer:
    """One training session in a run directory: the loop (`run`) and the pieces each step uses. It
    knows no task: batches, loss, validation and previews come from the task (rnnkit.tasks); a
    carried state, if the task has one, is only passed back in, detached, and dropped at epoch ends."""

    def __init__(self, run_dir: Path, job, optimizer, batches, cfg: TrainConfig, device, amp: torch.dtype | None,
                 start: dict, state, log, d: distributed.Dist):
        self.run_dir, self.job, self.model, self.optimizer, self.batches = run_dir, job, job.model, optimizer, batches
        self.cfg, self.device, self.amp, self.log, self.d = cfg, device, amp, log, d
        # With several processes, DDP averages the gradients in backward(); `model` stays the plain
        # module that is saved, validated and sampled.
        self.net = torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[device] if device.type == "cuda" else None) if d.active else self.model
        self.step, self.chunk, self.epoch, self.state = start["step"], start["chunk"], start["epoch"], state
        self.best_val, self.first_loss = start["best_val"], start["first_loss"]
        self.lr_scale, self.rollbacks = start.get("lr_scale", 1.0), start.get("rollbacks", 0)  # from rollbacks
        # Mixed precision: the forward pass under autocast; fp16 also scales the loss so that small
        # gradients survive, and skips the update when the scaled gradients overflow.
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
        if self.scaler.is_enabled() and start.get("grad_scaler"):
            self.scaler.load_state_dict(start["grad_scaler"])
        self.last_val, self.last_ckpt_step = None, self.step
        self.metrics = _Metrics(run_dir / ckpt.METRICS, enabled=d.is_main)
        self.metrics.truncate(self.step)  # a resumed run (or one restarted from step 0) continues its own rows
        self.t0 = time.perf_counter() - start["elapsed"]  # elapsed training time carries over a resume

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def epochs(self) -> float:
        """Passes over the training data so far, fractional."""
        return self.epoch + self.chunk / len(self.batches)

    def progress_fraction(self) -> float:
        """How far the run is towards whichever limit stops it first (for the cosine schedule)."""
        cfg = self.cfg
        return max(self.step / cfg.max_steps if cfg.max_steps else 0.0,
                   self.epochs() / cfg.max_epochs if cfg.max_epochs else 0.0,
                   self.elapsed() / cfg.budget if cfg.budget else 0.0)

    def save_checkpoint(self) -> None:
        # Every process takes part (its carried state and RNG are gathered); process 0 writes.
        d, model = self.d, self.model
        full_state = None if self.state is None else tuple(d.gather(s, dim=1) for s in self.state)  # (L, B x N, H)
        rng = d.gather(torch.get_rng_state()[None], dim=0)  # (N, bytes): each process's dropout RNG
        if d.is_main:
            ckpt.save_weights(self.run_dir / ckpt.LAST, model, step=self.step)
            if not self.job.has_val:  # without validation the latest weights are the best we know of
                ckpt.save_weights(self.run_dir / ckpt.BEST, model, step=self.step)
            ckpt.save_trainer(self.run_dir / ckpt.TRAINER, model, self.optimizer, full_state,
                              {"step": self.step, "chunk": self.chunk, "epoch": self.epoch, "elapsed": self.elapsed(),
                               "best_val": self.best_val, "first_loss": self.first_loss, "world": d.world,
                               "lr_scale": self.lr_scale, "rollbacks": self.rollbacks,
                               "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None}, rng)
        self.last_ckpt_step = self.step

    def validate(self) -> float:
        self.last_val = self.job.validate(self.model)
        self.metrics.write(step=self.step, val_loss=self.last_val, elapsed=round(self.elapsed(), 3))
        if self.best_val is None or self.last_val < self.best_val:
            self.best_val = self.last_val
            ckpt.save_weights(self.run_dir / ckpt.BEST, self.model, step=self.step, val_loss=self.last_val)
        return self.last_val

    def roll_back_or_stop(self, what: str) -> None:
        """A step diverged: raise TrainingDiverged, or (--on-divergence rollback) restore the last
        checkpoint with the learning rate halved, for the loop to go on from there."""
        cfg, where = self.cfg, f"{what} at step {self.step + 1}"
        if cfg.on_divergence != "rollback" or self.rollbacks >= cfg.max_rollbacks:
            tried = f" after {self.rollbacks} rollback(s)" if cfg.on_divergence == "rollback" else ""
            raise TrainingDiverged(f"{where}{tried}; the last good checkpoint is step {self.last_ckpt_step} in "
                                   f"{self.run_dir}; try a lower learning rate (--lr, now {cfg.lr * self.lr_scale:g})"
                                   + ("" if tried else " or --on-divergence rollback"))
        self.d.barrier()
        progress, self.state = _restore(self.run_dir, self.model, self.optimizer, cfg, self.device, self.d)
        self.step, self.chunk, self.epoch = progress["step"], progress["chunk"], progress["epoch"]
        if self.scaler.is_enabled() and progress.get("grad_scaler"):
            self.scaler.load_state_dict(progress["grad_scaler"])
        self.last_ckpt_step = self.step
        self.rollbacks, self.lr_scale = self.rollbacks + 1, self.lr_scale / 2
        self.metrics.truncate(self.step)
        self.metrics.write(step=self.step, rollback=self.rollbacks, lr_scale=self.lr_scale, reason=where,
                           elapsed=round(self.elapsed(), 3))
        self.log(f"{where}: rolled back to the checkpoint of step {self.step} with the learning rate halved "
                 f"(x{self.lr_scale:g}); rollback {self.rollbacks} of at most {cfg.max_rollbacks}")

    def train_step(self) -> tuple[float, float, float] | None:
        """One optimizer step on batch `chunk`: (loss, learning rate, gradient norm), or None if the step
        diverged and was rolled back (a divergence that is not rolled back raises)."""
        lr = lr_at(self.step, self.progress_fraction(), self.cfg) * self.lr_scale
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, state = self.job.loss(self.net, self.batches.get(self.chunk, self.epoch), self.state, self.device,
                                   self.amp)
        loss_value = self.d.mean(loss.item())  # over all processes' batches
        if self.first_loss is None:
            self.first_loss = loss_value
        if not math.isfinite(loss_value) or loss_value > EXPLODE_FACTOR * self.first_loss:
            what = ("NaN" if math.isnan(loss_value) else "infinite" if math.isinf(loss_value)
                    else f"exploding ({loss_value:.4g})")
            self.roll_back_or_stop(f"loss is {what}")
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # (each of these three is a no-op without fp16)
        grad_norm = clip_gradients(self.model.parameters(), self.cfg)
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():  # caught before the update
            self.roll_back_or_stop(f"gradient norm is {'NaN' if math.isnan(grad_norm) else 'infinite'}")
            return None
        self.scaler.step(self.optimizer)  # with fp16: skipped if the gradients overflowed
        self.scaler.update()
        if state is not None:  # keep the values, cut the graph (truncated BPTT); the state stays fp32
            state = tuple(s.detach().float() for s in state)
        self.state = state if self.job.carries_state else None
        self.step += 1
        self.chunk += 1
        if self.chunk == len(self.batches):  # end of epoch: the batches start over, so does the state
            self.chunk, self.epoch, self.state = 0, self.epoch + 1, None
        return loss_value, lr, grad_norm

    def run(self, show_progress: bool) -> str:
        """Train until a limit stops the run; returns which one. The final weights are validated and
        checkpointed; Ctrl-C or SIGTERM checkpoints and raises Interrupted."""
        cfg, d, job = self.cfg, self.d, self.job
        bar_total = cfg.budget if cfg.budget else (cfg.max_steps or int(cfg.max_epochs * len(self.batches)))
        bar = tqdm(total=round(bar_total), initial=round(self.elapsed()) if cfg.budget else self.step,
                   disable=not show_progress, file=sys.stderr, dynamic_ncols=True, unit="s" if cfg.budget else "step",
                   bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
        self.model.train()
        speed_t, speed_steps = self.elapsed(), self.step  # items per second since this session started
        try:
            if self.step == 0:
                self.save_checkpoint()  # a fresh run is resumable, and can roll back, from its first step
            with _StopSignals() as signals:
                while True:
                    stopped_by = stop_reason(cfg, self.step, self.epochs(), self.elapsed())
                    if d.any(stopped_by is not None):  # every process stops at the same step
                        stopped_by = stopped_by or "budget"
                        break
                    done = self.train_step()
                    if done is None:  # rolled back: go on from the restored checkpoint
                        continue
                    loss, lr, grad_norm = done
                    now, step = self.elapsed(), self.step
                    speed = (step - speed_steps) * job.items_per_step(d.world) / max(now - speed_t, 1e-9)
                    self.metrics.write(step=step, epoch=round(self.epochs(), 5), loss=loss, lr=lr, grad_norm=grad_norm,
                                       elapsed=round(now, 3))
                    if cfg.eval_every and step % cfg.eval_every == 0 and job.has_val and d.is_main:
                        self.validate()
                    if cfg.sample_every and cfg.sample_length and step % cfg.sample_every == 0 and d.is_main:
                        preview = job.preview(self.model, step)
                        if preview:
                            self.log(preview)
                        self.model.train()
                    if step % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    bar.set_postfix_str(f"step {step} loss {loss:.3f}"
                                        + (f" val {self.last_val:.3f}" if self.last_val is not None else "")
                                        + f" {speed:,.0f} {job.unit}/s", refresh=False)
                    bar.update(round(now) - bar.n if cfg.budget else 1)
                    if d.any(signals.received is not None):
                        self.save_checkpoint()
                        raise Interrupted(f"stopped by {signals.received or 'a signal to another process'} at step "
                                          f"{step}; checkpoint saved, "
                                          f"continue with: rnnkit train --resume {self.run_dir}")
                # Validate the final weights unless that just happened at this very step, and show that
                # figure in the bar, so the bar's last `val` is the one the closing line reports.
                if job.has_val and d.is_main and (self.last_val is None or not cfg.eval_every
                                                  or self.step % cfg.eval_every):
                    self.validate()
                if self.last_val is not None:
                    bar.set_postfix_str(f"step {self.step} val {self.last_val:.3f} (final)", refresh=True)
                bar.close()
                self.save_checkpoint()
        finally:
            bar.close()
            self.metrics.close()
        return stopped_by


def _loop(run_dir: Path, job, optimizer, batches, cfg: TrainConfig, device, amp: torch.dtype | None, start: dict,
          state, show_progress: bool, log, d: distributed.Dist) -> Run:
    trainer = _Trainer(run_dir, job, optimizer, batches, cfg, device, amp, start, state, log, d)
    stopped_by = trainer.run(show_progress)
    if d.is_main:
        plot_losses(run_dir / ckpt.METRICS, run_dir / ckpt.LOSS_PNG)
    d.barrier()
    last_val, best_val = trainer.last_val, trainer.best_val
    log(f"stopped by {stopped_by} after {trainer.step} steps ({trainer.elapsed():.0f}s)"
        + (f"; validation loss {last_val:.4f} {job.loss_unit}, best {best_val:.4f}" if last_val is not None else ""))
    # Both backends save CharRNN's parameter names, so a language model is always a CharRNN.
    best = tasks.load(run_dir, "best", device=str(device))
    return Run(run_dir, best, trainer.step, best_val, last_val, stopped_by)
