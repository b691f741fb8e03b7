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
    cuda_mixed                  whether it picks bf16/fp16 on a GPU with TF32 (else fp32 there)
    validate(model) -> float    the validation loss; preview(model, step) -> text or None
    write_config(run_dir, train_cfg), describe()
"""

from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path

from .. import checkpoint as ckpt
from ..errors import CheckpointError, UsageError
from . import caption, classify, generate, glimpse, lm, seq2seq, series, vqa

TASKS = {"lm": lm, "classify": classify, "generate": generate, "series": series, "seq2seq": seq2seq,
         "caption": caption, "vqa": vqa, "glimpse": glimpse}
# --task names that are another task over data of one shape: a video is classified from its frames
# (an .npz of clips, x (N, T, H, W[, C])) by the classifier, whose runs they are.
ALIASES = {"video": "classify"}


def module_for(name: str):
    if name not in TASKS:
        raise CheckpointError(f"unknown task {name!r}; this rnnkit knows {', '.join(TASKS)}")
    return TASKS[name]


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu"):
    """The trained model of a run directory, of whatever task (a CharRNN for a language model), in
    eval mode. `checkpoint`: "best" (lowest validation loss, model.safetensors) or "last"."""
    return module_for(ckpt.task_of(run_dir)).load(run_dir, checkpoint, device)


EXAMPLES = (".tsv", ".jsonl")  # labelled examples or pairs: classify, generate or seq2seq
CHOICES = {"classify": "--task classify (text -> class)", "generate": "--task generate (class -> text)",
           "seq2seq": "--task seq2seq (text -> text)", "series": "--task series (the next values)",
           "caption": "--task caption (image -> text)", "vqa": "--task vqa (image and question -> answer)",
           "glimpse": "--task glimpse (image -> class, by glimpses)"}


def resolve_alias(task: str, paths: list) -> str:
    """The task that --task `task` trains: itself, or for an alias (--task video) the task it names,
    once the data are checked to have the alias's shape."""
    if task != "video":
        return task
    for path in map(Path, paths):
        ndim = _npz_ndim(path) if path.suffix.lower() == ".npz" and path.is_file() else None
        if ndim is None or ndim < 4:
            got = f"x has {ndim} dimensions" if ndim is not None else "it is not an .npz file"
            raise UsageError(f"--task video reads clips, an .npz whose x is (N, T, H, W) or (N, T, H, W, C) frames "
                             f"(rnnkit data clips writes them); {path}: {got}")
    return ALIASES[task]


def _npz_ndim(path: Path) -> int | None:
    """The number of dimensions of array x in an .npz file, read from its header alone (None if the
    file has no readable x)."""
    import zipfile

    import numpy as np
    try:
        with zipfile.ZipFile(path) as z, z.open("x.npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return len(read(f)[0])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def infer(paths: list, options) -> str:
    """The task that DATA (and the options given) imply when --task is not given.

    .npz files hold sequences of vectors (classify; images for glimpse, when one of its options is given), as
    does a .csv file with an "id,label,..." header;
    .tsv and .jsonl files labelled examples or pairs (classify, generate or seq2seq); a .csv file labelled examples (with
    a "text,label" header), a series (a "time" column, or rows of numbers) or either; anything else is text for the language model. An option that only one of
    the candidate tasks has (--bidirectional, --condition, --time-column ...) settles it; if two tasks
    remain, the user is asked to choose.
    """
    kinds = {_data_kind(Path(p)) for p in paths} if paths else {"text"}
    if len(kinds) > 1:
        return "lm"  # a mix: the chosen task's reader names what does not fit
    kind = kinds.pop()
    candidates = {"vectors": ["classify", "glimpse"], "examples": ["classify", "generate", "seq2seq"], "series": ["series"],
                  "csv": ["classify", "generate", "series"], "text": ["lm"], "images": ["caption", "vqa"]}[kind]
    for name in options:
        owners = [t for t in candidates if any(name in {f.name for f in fields(cls)} for cls in TASKS[t].CONFIGS)]
        candidates = owners or candidates
    if kind == "vectors" and len(candidates) > 1:
        return "classify"  # images are classified by glimpses only when asked (--task glimpse, or its options)
    if len(candidates) > 1:
        what = {"examples": "holds pairs of texts", "csv": "may hold labelled texts or a series",
                "images": "may describe images with captions or questions"}[kind]
        choices = [CHOICES[t] for t in candidates]
        raise UsageError(f"{paths[0]} {what}: give {', '.join(choices[:-1])} or {choices[-1]}")
    return candidates[0]


def _data_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "vectors"
    if suffix in EXAMPLES:
        return "examples"
    if suffix == ".json":
        return "images"  # a captions file (Karpathy, COCO) or VQA questions
    if suffix != ".csv" or not path.is_file():
        return "text"
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = [r for _, r in zip(range(3), csv.reader(fh))]
    except (OSError, UnicodeDecodeError, csv.Error):
        return "text"  # the task's own reader reports what is wrong
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if header[:2] == ["id", "label"]:
        return "vectors"  # sequences of vectors, one row per step (rnnkit.data.examples)
    if header == ["text", "label"]:
        return "examples"
    if "time" in header or (len(rows) > 1 and all(_is_number(v) for v in rows[1])):
        return "series"  # a series has a time column (--time-column if not "time") and numbers
    return "csv"  # a text and a label, or a series with its time column named otherwise: the options decide


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False
