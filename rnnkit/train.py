"""The training loop: teacher forcing, truncated BPTT with carried state, clipping, schedules,
validation, checkpoints and exact resume.

Each step takes chunk i of the B training streams (rnnkit.data.batching), runs the model from the
state left by chunk i-1, and backpropagates through those T steps only: the state is detached
after the step, so gradients stop at the chunk boundary while the values carry on. The state is
reset to zeros at every epoch boundary (the streams start over) and for evaluation.

Failures are handled where they happen: a diverged step is caught before its update (stop, or roll
back to the last checkpoint with the learning rate halved); SIGINT/SIGTERM checkpoint between steps;
the run directory is locked for the run's lifetime. Mixed precision (`--precision`) wraps the
forward pass in autocast, with loss scaling for fp16.

The loop itself is `_loop`, read top to bottom; the helpers it calls take their inputs as arguments.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint as ckpt
from . import distributed
from .config import DataConfig, ModelConfig, TrainConfig, build, parse_duration, split_overrides
from .data.batching import StreamBatches
from .data.corpus import Corpus, prepare, prepare_for_run
from .data.vocab import describe_chars
from .errors import ConfigError, DataError, Interrupted, TrainingDiverged
from .evaluate import evaluate_tokens
from .io import atomic_write_bytes, remove_stale_temporaries
from .models import CharRNN, grow_vocabulary
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
    model: CharRNN
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


def resolve_precision(name: str, device: torch.device, cell: str) -> torch.dtype | None:
    """The autocast dtype for --precision on `device` (None: plain fp32)."""
    if name == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_bf16() else None
        if device.type != "cuda":
            return None
        name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp32":
        return None
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16: this GPU does not support bf16; use fp16")
    if name == "fp16" and device.type == "cpu" and cell == "lstm":
        raise ConfigError("--precision fp16: PyTorch's CPU LSTM kernel has no fp16 version; use bf16 on the CPU")
    return torch.bfloat16 if name == "bf16" else torch.float16


def build_model(model_cfg: ModelConfig, train_cfg: TrainConfig, vocab, device):
    torch.manual_seed(train_cfg.seed)  # the same seed gives the same initial weights
    if train_cfg.backend == "numpy":
        if device.type != "cpu":
            raise ConfigError("--backend numpy runs on the CPU only")
        from .reference import NumpyCharRNN
        return NumpyCharRNN(model_cfg, seed=train_cfg.seed, vocab=vocab)
    return CharRNN(model_cfg, vocab=vocab).to(device)


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


def train(data=None, out: str | Path | None = None, *, resume: str | Path | None = None,
          init_from: str | Path | None = None, extend_vocab: bool = False, force: bool = False,
          progress: bool = True, log=None, **options) -> Run:
    """Train a model; the Python twin of `rnnkit train` (same option names, underscored).

    data: a path or list of paths (files or directories); None uses the bundled tiny Shakespeare.
    out: the run directory (default runs/<date-time>). resume: continue a run exactly; limits given
    with it replace the stored ones, and a budget is more time (see `resume_limits`).
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
    model_o, data_o, train_o = split_overrides(options, ModelConfig, DataConfig, TrainConfig)
    if data is not None:
        data_o["paths"] = [str(data)] if isinstance(data, (str, Path)) else [str(p) for p in data]

    init_vocab = vocab = None
    limits = {}  # stop conditions given at resume (applied once the run's position is known)
    if resume is not None:
        run_dir = Path(resume)
        model_cfg, data_cfg, train_cfg, vocab = ckpt.read_config(run_dir)
        fixed = sorted(set(model_o) | set(data_o) | (set(train_o) - RESUMABLE))
        if fixed:
            raise ConfigError(f"cannot change {', '.join(fixed)} when resuming; "
                              f"only {', '.join(sorted(RESUMABLE))} may change")
        limits = {k: train_o.pop(k) for k in LIMITS if k in train_o}
        train_cfg = build(TrainConfig, train_o, base=train_cfg)
    else:
        if init_from is not None:
            if model_o:
                raise ConfigError(f"--init-from keeps the architecture of {init_from}; "
                                  f"don't pass {', '.join(sorted(model_o))}")
            model_cfg, _, _, init_vocab = ckpt.read_config(init_from)
            data_o["byte_level"] = init_vocab.kind == "byte"
        data_cfg = build(DataConfig, data_o)
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
        # Process 0 encodes the text (or finds it cached) first, so the others only read the cache.
        corpus = _corpus(data_cfg, init_vocab, extend_vocab, vocab) if d.is_main else None
        d.barrier()
        corpus = corpus or _corpus(data_cfg, init_vocab, extend_vocab, vocab)
        if corpus is None:
            raise DataError("the training text changed since this run started; it cannot be resumed exactly")
        vocab = corpus.vocab
        if resume is None and init_from is None:
            model_cfg = build(ModelConfig, {**model_o, "vocab_size": len(vocab)})
        elif init_from is not None and len(vocab) != len(init_vocab):
            model_cfg = build(ModelConfig, {"vocab_size": len(vocab)}, base=model_cfg)
            log(f"--extend-vocab: {len(vocab) - len(init_vocab)} new character(s) "
                f"{describe_chars(sorted(set(vocab.chars) - set(init_vocab.chars)))}")
        if train_cfg.threads:
            torch.set_num_threads(train_cfg.threads)
        model = build_model(model_cfg, train_cfg, vocab, device)
        if train_cfg.backend == "numpy" and train_cfg.precision not in ("auto", "fp32"):
            raise ConfigError("--backend numpy computes in float64; --precision does not apply")
        amp = None if train_cfg.backend == "numpy" else resolve_precision(train_cfg.precision, device, model_cfg.cell)
        if init_from is not None:
            best = Path(init_from) / ckpt.BEST
            path = best if best.exists() else Path(init_from) / ckpt.LAST
            if vocab == init_vocab:
                ckpt.load_weights_into(model, path)
            else:  # the new characters get rows of their own; the old ones keep theirs
                ckpt.load_weights_into(model, path, lambda weights: grow_vocabulary(weights, init_vocab, vocab))
        batches = StreamBatches(corpus.split("train"), train_cfg.batch_size, train_cfg.seq_len, "train",
                                rank=d.rank, world=d.world)
        if resume is None:
            # Everything that can fail on bad input has been checked before the run directory appears.
            if d.is_main:
                run_dir = ckpt.create_run_dir(out, force=force)
                lock = ckpt.RunLock(run_dir).acquire()
                ckpt.write_config(run_dir, model_cfg, data_cfg, train_cfg, vocab)
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
            reached = stop_reason(train_cfg, start["step"], epochs, start["elapsed"])
            if reached:  # nothing new was asked for, and the stored limit is behind it: nothing to train
                where = describe_limit(train_cfg, reached, start["step"], epochs, start["elapsed"])
                log(f"{run_dir} already reached {where}; to train further give --max-steps or --max-epochs "
                    "(higher; both count from the start) or --budget (more time)")
                if d.is_main and not (run_dir / ckpt.LOSS_PNG).exists():  # a process killed before drawing it
                    plot_losses(run_dir / ckpt.METRICS, run_dir / ckpt.LOSS_PNG)
                return Run(run_dir, ckpt.load(run_dir, "best", device=str(device)), start["step"],
                           start["best_val"], None, reached)
            if d.is_main:  # the limits and options now in force, so that a later plain --resume keeps them
                ckpt.write_config(run_dir, model_cfg, data_cfg, train_cfg, vocab)
        log(f"{model_cfg.cell} {model_cfg.num_layers}x{model_cfg.hidden_size}, {_count(model):,} parameters, "
            f"vocabulary {len(vocab)}, {len(corpus.split('train')):,} training characters"
            + (f", {d.world} processes" if d.active else "") + f" -> {run_dir}")
        return _loop(run_dir, model, optimizer, corpus, batches, train_cfg, device, amp, start, state, progress,
                     log, d)
    finally:
        if lock is not None:
            lock.release()
        d.close()


def _restore(run_dir: Path, model, optimizer, cfg: TrainConfig, device, d: distributed.Dist) -> tuple[dict, tuple]:
    """Load trainer.safetensors into model and optimizer; returns (progress, this process's state)."""
    progress, state = ckpt.load_trainer(run_dir / ckpt.TRAINER, model, optimizer, rank=d.rank)
    if progress.get("world", 1) != d.world:
        raise ckpt.CheckpointError(f"{run_dir} was trained by {progress.get('world', 1)} process(es); "
                                   f"resume it with the same number (now {d.world})")
    B = cfg.batch_size  # this process's streams of the saved B x N carried state
    state = None if state is None else tuple(s[:, d.rank * B:(d.rank + 1) * B].contiguous().to(device) for s in state)
    return progress, state


def _corpus(data_cfg: DataConfig, init_vocab, extend_vocab: bool, run_vocab) -> Corpus | None:
    """The training text: with the run's own vocabulary when resuming (None if it no longer fits),
    else with the base run's (--init-from, optionally extended) or its own."""
    if run_vocab is not None:
        return prepare_for_run(data_cfg, run_vocab)
    return prepare(data_cfg, vocab=init_vocab, extend=extend_vocab)


def _default_run_dir() -> Path:
    base = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _loop(run_dir: Path, model, optimizer, corpus: Corpus, batches: StreamBatches, cfg: TrainConfig, device,
          amp: torch.dtype | None, start: dict, state, show_progress: bool, log, d: distributed.Dist) -> Run:
    # With several processes, DDP averages the gradients in backward(); `model` stays the plain module
    # that is saved, validated and sampled.
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if d.active else model
    val_tokens = corpus.split("val")
    if cfg.eval_max_chars:
        val_tokens = val_tokens[:cfg.eval_max_chars]
    has_val = len(val_tokens) >= 2
    step, chunk, epoch = start["step"], start["chunk"], start["epoch"]
    best_val, first_loss = start["best_val"], start["first_loss"]
    lr_scale, rollbacks = start.get("lr_scale", 1.0), start.get("rollbacks", 0)  # from --on-divergence rollback
    # Mixed precision: the forward pass under autocast; fp16 also scales the loss so that small
    # gradients survive, and skips the update when the scaled gradients overflow.
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    if scaler.is_enabled() and start.get("grad_scaler"):
        scaler.load_state_dict(start["grad_scaler"])
    pin = device.type == "cuda"  # page-locked batches copy to the GPU asynchronously
    last_val, last_ckpt_step = None, step
    metrics = _Metrics(run_dir / ckpt.METRICS, enabled=d.is_main)
    metrics.truncate(step)  # a resumed run (or one restarted from step 0) continues its own rows
    t0 = time.perf_counter() - start["elapsed"]  # elapsed training time carries over a resume
    chars_per_step = cfg.batch_size * cfg.seq_len * d.world

    def elapsed() -> float:
        return time.perf_counter() - t0

    def progress_fraction() -> float:
        done = [step / cfg.max_steps if cfg.max_steps else 0.0,
                (epoch + chunk / len(batches)) / cfg.max_epochs if cfg.max_epochs else 0.0,
                elapsed() / cfg.budget if cfg.budget else 0.0]
        return max(done)

    def save_checkpoint():
        # Every process takes part (its carried state and RNG are gathered); process 0 writes.
        nonlocal last_ckpt_step
        full_state = None if state is None else tuple(d.gather(s, dim=1) for s in state)  # (L, B x N, H)
        rng = d.gather(torch.get_rng_state()[None], dim=0)  # (N, bytes): each process's dropout RNG
        if d.is_main:
            ckpt.save_weights(run_dir / ckpt.LAST, model, step=step)
            if not has_val:  # without validation the latest weights are the best we know of
                ckpt.save_weights(run_dir / ckpt.BEST, model, step=step)
            ckpt.save_trainer(run_dir / ckpt.TRAINER, model, optimizer, full_state,
                              {"step": step, "chunk": chunk, "epoch": epoch, "elapsed": elapsed(),
                               "best_val": best_val, "first_loss": first_loss, "world": d.world,
                               "lr_scale": lr_scale, "rollbacks": rollbacks,
                               "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None}, rng)
        last_ckpt_step = step

    def validate():
        nonlocal best_val, last_val
        last_val = evaluate_tokens(model, val_tokens)[0]
        metrics.write(step=step, val_loss=last_val, elapsed=round(elapsed(), 3))
        if best_val is None or last_val < best_val:
            best_val = last_val
            ckpt.save_weights(run_dir / ckpt.BEST, model, step=step, val_loss=last_val)
        return last_val

    def roll_back_or_stop(what: str) -> None:
        """A step diverged: raise TrainingDiverged, or (--on-divergence rollback) restore the last
        checkpoint with the learning rate halved, for the loop to go on from there."""
        nonlocal step, chunk, epoch, state, lr_scale, rollbacks, last_ckpt_step
        where = f"{what} at step {step + 1}"
        if cfg.on_divergence != "rollback" or rollbacks >= cfg.max_rollbacks:
            tried = f" after {rollbacks} rollback(s)" if cfg.on_divergence == "rollback" else ""
            raise TrainingDiverged(f"{where}{tried}; the last good checkpoint is step {last_ckpt_step} in {run_dir}; "
                                   f"try a lower learning rate (--lr, now {cfg.lr * lr_scale:g})"
                                   + ("" if tried else " or --on-divergence rollback"))
        d.barrier()
        progress, state = _restore(run_dir, model, optimizer, cfg, device, d)
        step, chunk, epoch = progress["step"], progress["chunk"], progress["epoch"]
        if scaler.is_enabled() and progress.get("grad_scaler"):
            scaler.load_state_dict(progress["grad_scaler"])
        last_ckpt_step = step
        rollbacks, lr_scale = rollbacks + 1, lr_scale / 2
        metrics.truncate(step)
        metrics.write(step=step, rollback=rollbacks, lr_scale=lr_scale, reason=where, elapsed=round(elapsed(), 3))
        log(f"{where}: rolled back to the checkpoint of step {step} with the learning rate halved "
            f"(x{lr_scale:g}); rollback {rollbacks} of at most {cfg.max_rollbacks}")

    bar_total = cfg.budget if cfg.budget else (cfg.max_steps or int(cfg.max_epochs * len(batches)))
    bar = tqdm(total=round(bar_total), initial=round(elapsed()) if cfg.budget else step, disable=not show_progress,
               file=sys.stderr, dynamic_ncols=True, unit="s" if cfg.budget else "step",
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
    model.train()
    stopped_by = None
    speed_t, speed_steps = elapsed(), step  # characters per second since this session started
    try:
        if step == 0:
            save_checkpoint()  # a fresh run is resumable, and can roll back, from its first step
        with _StopSignals() as signals:
            while True:
                stopped_by = stop_reason(cfg, step, epoch + chunk / len(batches), elapsed())
                if d.any(stopped_by is not None):  # every process stops at the same step
                    stopped_by = stopped_by or "budget"
                    break
                # One optimizer step on chunk `chunk` of every stream.
                lr = lr_at(step, progress_fraction(), cfg) * lr_scale
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x, y = batches.get(chunk)
                if pin:
                    x, y = x.pin_memory(), y.pin_memory()
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    logits, state = net(x, state)  # (B, T, V); state continues the streams
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
                loss_value = d.mean(loss.item())  # over all processes' streams
                if first_loss is None:
                    first_loss = loss_value
                if not math.isfinite(loss_value) or loss_value > EXPLODE_FACTOR * first_loss:
                    what = ("NaN" if math.isnan(loss_value) else "infinite" if math.isinf(loss_value)
                            else f"exploding ({loss_value:.4g})")
                    roll_back_or_stop(f"loss is {what}")
                    continue
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # (each of these three is a no-op without fp16)
                grad_norm = clip_gradients(model.parameters(), cfg)
                if not math.isfinite(grad_norm) and not scaler.is_enabled():  # caught before the update
                    roll_back_or_stop(f"gradient norm is {'NaN' if math.isnan(grad_norm) else 'infinite'}")
                    continue
                scaler.step(optimizer)  # with fp16: skipped if the gradients overflowed
                scaler.update()
                state = model.detach_state(state)  # keep the values, cut the graph (truncated BPTT)
                if amp is not None:  # the carried state stays fp32 between steps (and in checkpoints)
                    state = tuple(s.float() for s in state)
                step += 1
                chunk += 1
                if chunk == len(batches):  # end of epoch: the streams start over, so does the state
                    chunk, epoch, state = 0, epoch + 1, None

                now = elapsed()
                speed = (step - speed_steps) * chars_per_step / max(now - speed_t, 1e-9)
                metrics.write(step=step, epoch=round(epoch + chunk / len(batches), 5), loss=loss_value, lr=lr,
                              grad_norm=grad_norm, elapsed=round(now, 3))
                if cfg.eval_every and step % cfg.eval_every == 0 and has_val and d.is_main:
                    validate()
                if cfg.sample_every and cfg.sample_length and step % cfg.sample_every == 0 and d.is_main:
                    log(_preview(model, cfg, step))
                    model.train()
                if step % cfg.checkpoint_every == 0:
                    save_checkpoint()
                bar.set_postfix_str(f"step {step} loss {loss_value:.3f}"
                                    + (f" val {last_val:.3f}" if last_val is not None else "")
                                    + f" {speed:,.0f} char/s", refresh=False)
                bar.update(round(now) - bar.n if cfg.budget else 1)
                if d.any(signals.received is not None):
                    save_checkpoint()
                    raise Interrupted(f"stopped by {signals.received or 'a signal to another process'} at step "
                                      f"{step}; checkpoint saved, "
                                      f"continue with: rnnkit train --resume {run_dir}")
            # Validate the final weights unless that just happened at this very step, and show that
            # figure in the bar, so the bar's last `val` is the one the closing line reports.
            if has_val and d.is_main and (last_val is None or not cfg.eval_every or step % cfg.eval_every):
                validate()
            if last_val is not None:
                bar.set_postfix_str(f"step {step} val {last_val:.3f} (final)", refresh=True)
            bar.close()
            save_checkpoint()
    finally:
        bar.close()
        metrics.close()
    if d.is_main:
        plot_losses(run_dir / ckpt.METRICS, run_dir / ckpt.LOSS_PNG)
    d.barrier()
    log(f"stopped by {stopped_by} after {step} steps ({elapsed():.0f}s)"
        + (f"; validation loss {last_val:.4f} nats/char, best {best_val:.4f}" if last_val is not None else ""))
    # Both backends save CharRNN's parameter names, so the result is always a CharRNN.
    best = ckpt.load(run_dir, "best", device=str(device))
    return Run(run_dir, best, step, best_val, last_val, stopped_by)


def _preview(model, cfg: TrainConfig, step: int) -> str:
    from .sample import sample_text
    text = sample_text(model, length=cfg.sample_length, temperature=0.8, seed=cfg.seed + step)
    return f"--- sample at step {step} (temperature 0.8) ---\n{text}\n---"
