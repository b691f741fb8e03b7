"""Run directories: self-describing, atomically written, loaded without pickle.

    RUN_DIR/
      config.json          model, data and training configs, vocabulary, rnnkit version
      model.safetensors    weights with the best validation loss (what `sample` and `eval` use)
      last.safetensors     weights at the latest checkpoint
      trainer.safetensors  everything `--resume` needs: weights, optimizer tensors, RNG state, the
                           carried hidden state; scalars (step, data position, ...) as JSON metadata
      metrics.jsonl        one JSON object per training step and per validation
      loss.png             the loss curves, drawn at the end
      .lock                held (flock) by the process training in the directory

Every file is replaced atomically (rnnkit.io), so a crash leaves the previous version intact, and
a run directory has one writer at a time (`RunLock`).
Weights are saved from CPU copies: a model trained on a GPU samples on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import __version__
from .errors import CheckpointError, RunDirLocked
from .io import atomic_write_bytes, atomic_write_json

CONFIG = "config.json"
BEST = "model.safetensors"
LAST = "last.safetensors"
TRAINER = "trainer.safetensors"
METRICS = "metrics.jsonl"
LOSS_PNG = "loss.png"
LOCK = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one writer per run directory is then up to the user
    fcntl = None


class RunLock:
    """An exclusive advisory lock (flock) on a run directory, held while a process trains in it.

    The operating system releases it when the process ends, however it ends (SIGKILL included), so
    a stale lock cannot outlive its owner. A second process gets `RunDirLocked` at once."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self.fd = None

    def acquire(self) -> "RunLock":
        if fcntl is None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CheckpointError(f"cannot lock run directory {self.path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise RunDirLocked(f"run directory {self.path.parent} is in use by another rnnkit process"
                               + (f" (pid {owner})" if owner else "") + "; wait for it to finish or stop it") from None
        try:  # the owner's pid, for the message above (best effort: a full disk must not stop training)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# -- run directories ------------------------------------------------------------------------------


def check_new_run_dir(path: str | Path, force: bool = False) -> bool:
    """Raise if `path` may not become a new run directory; True if it holds a run to replace.

    An existing non-empty directory is an error unless `force`, and even then only a directory that
    is an rnnkit run (it has config.json) may be replaced."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} exists and is not a directory")
    if not (path.exists() and any(path.iterdir())):
        return False
    if not force:
        raise CheckpointError(f"run directory {path} already exists; pass --force to replace it "
                              f"or --resume {path} to continue it")
    if not (path / CONFIG).is_file():
        raise CheckpointError(f"{path} is not an rnnkit run directory (no {CONFIG}); refusing to replace it")
    return True


def create_run_dir(path: str | Path, force: bool = False) -> Path:
    """Make a fresh run directory (see `check_new_run_dir` for when an existing one is replaced)."""
    path = Path(path)
    if check_new_run_dir(path, force):
        with RunLock(path):  # refuses if a run is training there right now
            pass
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create run directory {path}: {exc.strerror or exc}") from None
    return path


def write_config(run_dir: Path, task: str, configs: dict, extra: dict) -> None:
    """config.json: the task's name, its configs (dataclasses, by section name: model, data, train)
    and whatever else the task needs to rebuild its model (`extra`: vocabulary, labels ...)."""
    from dataclasses import asdict
    atomic_write_json(run_dir / CONFIG, {"rnnkit_version": __version__, "task": task,
                                         **{name: asdict(cfg) for name, cfg in configs.items()}, **extra})


def read_config_json(run_dir: str | Path) -> dict:
    """The parsed config.json of a run directory; one-line errors for a missing or damaged one.
    The task that wrote it turns the sections back into its configs (rnnkit.tasks)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"no such run directory: {run_dir}")
    path = run_dir / CONFIG
    try:
        raw = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} is not an rnnkit run directory (no {CONFIG})") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is unreadable or corrupted: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} is unreadable or corrupted: not a JSON object")
    return raw


def parse_config(run_dir: str | Path, parse):
    """`parse(raw config.json)` -> a task's run config; whatever it cannot parse (a missing section, a
    bad value) becomes one line naming the file."""
    from .errors import RnnkitError
    raw = read_config_json(run_dir)
    try:
        return parse(raw)
    except (ValueError, KeyError, TypeError, AttributeError, RnnkitError) as exc:
        raise CheckpointError(f"{Path(run_dir) / CONFIG} is unreadable or corrupted: {exc}") from None


def task_of(run_dir: str | Path) -> str:
    """The task a run directory was trained for ("lm" for runs from before tasks existed)."""
    task = read_config_json(run_dir).get("task", "lm")
    if not isinstance(task, str):
        raise CheckpointError(f"{Path(run_dir) / CONFIG} is unreadable or corrupted: task {task!r}")
    return task


def weights_path(run_dir: str | Path, checkpoint: str = "best") -> Path:
    """model.safetensors ("best": lowest validation loss) or last.safetensors ("last"); a run without
    a validation split has no best weights, and its last ones stand in."""
    if checkpoint not in ("best", "last"):
        raise CheckpointError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    path = Path(run_dir) / (BEST if checkpoint == "best" else LAST)
    if not path.exists() and checkpoint == "best" and (Path(run_dir) / LAST).exists():
        path = Path(run_dir) / LAST
    return path


# -- safetensors files ----------------------------------------------------------------------------


def _data_section(data: bytes) -> bytes:
    """The tensor bytes of a safetensors file (after the 8-byte length and the JSON header)."""
    return data[8 + int.from_bytes(data[:8], "little"):]


def save_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    """Write tensors (+ JSON-able metadata) as one safetensors file, atomically, with the SHA-256 of
    the tensor bytes in the header so that `load_tensors` notices a changed byte."""
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {"format": "rnnkit", "json": json.dumps(metadata or {})}
    # The tensor bytes do not depend on the metadata, so hash a first rendering and store the digest.
    meta["sha256"] = hashlib.sha256(_data_section(st_save(cpu, metadata=meta))).hexdigest()
    atomic_write_bytes(path, st_save(cpu, metadata=meta))


def load_tensors(path: Path) -> tuple[dict, dict]:
    """Read a file written by `save_tensors`: (tensors, metadata). Never unpickles anything."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"missing checkpoint file {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        tensors = st_load(data)
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
        digest = meta.get("sha256")
        if digest is not None and hashlib.sha256(_data_section(data)).hexdigest() != digest:
            raise CheckpointError(f"{path} is corrupted or was modified: its tensor bytes do not match the "
                                  "checksum recorded when it was written")
        return tensors, json.loads(meta.get("json", "{}"))
    except (SafetensorError, ValueError, TypeError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupted ({str(exc).splitlines()[0][:120]})") from None


def save_weights(path: Path, model: torch.nn.Module, **metadata) -> None:
    save_tensors(path, model.state_dict(), metadata)


def load_weights_into(model: torch.nn.Module, path: Path, transform=None) -> dict:
    """Load weights into `model` (shapes must match its config), passed through `transform(tensors)`
    first if given (e.g. `rnnkit.models.grow_vocabulary`); returns the file's metadata."""
    tensors, meta = load_tensors(path)
    if transform is not None:
        tensors = transform(tensors)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{path} does not match the model in config.json: "
                              f"{first[1].strip() if len(first) > 1 else first[0]}") from None
    return meta


# -- trainer state (optimizer state dicts are nested; tensors go to safetensors, the rest to JSON) --


def _flatten(obj, prefix: str, tensors: dict):
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}.k{i}", tensors), _flatten(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _unflatten(obj, tensors: dict):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_unflatten(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
        raise ValueError("unknown node in trainer state")
    return obj


def save_trainer(path: Path, model, optimizer, state, progress: dict, rng: torch.Tensor | None = None) -> None:
    """Everything needed to continue training exactly: weights, optimizer, RNG, carried state.

    `rng`: (N, bytes) torch RNG states, one row per process (default: this process's)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors["rng.torch"] = rng if rng is not None else torch.get_rng_state()[None]
    optim_tree = _flatten(optimizer.state_dict(), "optim", tensors)
    for i, s in enumerate(state or ()):
        tensors[f"state.{i}"] = s
    save_tensors(path, tensors, {"progress": progress, "optimizer": optim_tree,
                                 "state_parts": len(state or ())})


def load_trainer(path: Path, model, optimizer, rank: int = 0) -> tuple[dict, tuple | None]:
    """Restore model, optimizer and process `rank`'s RNG from `save_trainer`'s file; returns
    (progress, carried state of all processes' streams)."""
    tensors, meta = load_tensors(path)
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
        optimizer.load_state_dict(_unflatten(meta["optimizer"], tensors))
        torch.set_rng_state(tensors["rng.torch"][rank].clone())  # a fresh tensor: a row view crashes it
        n = meta["state_parts"]
        state = tuple(tensors[f"state.{i}"] for i in range(n)) if n else None
        return meta["progress"], state
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is corrupted or from another model: {str(exc).splitlines()[0][:120]}") from None
