"""Tasks: what a model learns from what data. One module per task, named in a plain dict so that
`--task classify` leads to its file in one jump; the trainer (rnnkit.train) knows none of them.

A task module provides
    NAME, CONFIGS               its name and its (model config, data config) dataclasses
    LANGUAGE_MODEL              True where --init-from and --backend numpy apply
    read_run(run_dir)           the configs (and vocabulary, labels ...) stored in a run directory
    load(run_dir, checkpoint)   the trained model, ready to use (sample / predict / evaluate)
    setup(...) -> Task          a training run's data and model (new, resumed or fine-tuned)
and its Task object gives the trainer, for any shape of model:
    model, has_val, unit        the module to train; whether there is a validation split; "char" ...
    loss_unit                   what the loss measures ("nats/char", "nats/example", "MSE ...")
    train_batches(rank, world)  batches of one epoch: len() and get(i)
    items_per_step(world)       how many characters / examples one step consumes (for the speed)
    loss(net, batch, state, device, amp) -> (loss, state)
    carries_state               True if the state of batch i starts batch i + 1 (truncated BPTT)
    cpu_bf16                    whether --precision auto may pick bf16 on a CPU that has it
    validate(model) -> float    the validation loss; preview(model, step) -> text or None
    write_config(run_dir, train_cfg), describe()
"""

from __future__ import annotations

from pathlib import Path

from .. import checkpoint as ckpt
from ..errors import CheckpointError
from . import classify, lm, series

TASKS = {"lm": lm, "classify": classify, "series": series}


def module_for(name: str):
    if name not in TASKS:
        raise CheckpointError(f"unknown task {name!r}; this rnnkit knows {', '.join(TASKS)}")
    return TASKS[name]


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu"):
    """The trained model of a run directory, of whatever task (a CharRNN for a language model), in
    eval mode. `checkpoint`: "best" (lowest validation loss, model.safetensors) or "last"."""
    return module_for(ckpt.task_of(run_dir)).load(run_dir, checkpoint, device)
