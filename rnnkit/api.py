"""What the commands do to a run directory, as functions: `rnnkit.sample`, `rnnkit.samples` and
`rnnkit.evaluate` mirror `rnnkit sample` and `rnnkit eval`. Each reads the run's task from its
config.json and hands the work to that task's model (rnnkit.tasks)."""

from __future__ import annotations

from typing import Callable

from . import checkpoint as ckpt
from .config import SampleConfig, build
from .errors import UsageError
from .tasks import load, module_for


def samples(run_dir, checkpoint: str = "best", fast: bool = True, label: str | None = None, **options) -> list[str]:
    """`rnnkit sample --num-samples N`: N samples from a run directory, generated together as one
    batch of streams; always a list (of one when num_samples is 1). A generator's run takes
    `label=` (`--class`): the class to write."""
    from .sample import generate
    opts = build(SampleConfig, options)
    return generate(_generator(run_dir, checkpoint), opts.num_samples, fast=fast, label=label, **options)


def sample(run_dir, checkpoint: str = "best", on_text: Callable[[str], None] | None = None, fast: bool = True,
           label: str | None = None, **options) -> str:
    """`rnnkit sample`: one sample from a run directory, always a string (prime included), streamed
    through `on_text` piece by piece as it is generated. For several, use `samples`."""
    from .sample import sample_text
    return sample_text(_generator(run_dir, checkpoint), fast=fast, on_text=on_text, label=label, **options)


def evaluate(run_dir, file: str | None = None, checkpoint: str = "best", unknown: str = "error",
             horizon: int = 1, judge: str | None = None, num_samples: int | None = None, beam: int = 0,
             ignore_stress: bool = False, glimpses_png: str | None = None) -> dict:
    """`rnnkit eval`: the task's metrics on the run's test split, or on `file` if given. `horizon`:
    for a forecaster, how many steps ahead each prediction is made. For a generator, `num_samples`
    samples per class are drawn and described, and `judge` (a classifier run) classifies them. For an
    encoder-decoder, `beam` decodes with beam search (0: greedy) and `ignore_stress` scores ARPAbet
    phonemes without their stress digits. For a glimpse run, `glimpses_png` draws the glimpse paths."""
    task = ckpt.task_of(run_dir)
    if horizon != 1 and task != "series":
        raise UsageError(f"--horizon is for forecasters; {run_dir} was trained for the {task} task")
    if (judge is not None or num_samples is not None) and task != "generate":
        raise UsageError(f"--judge and --samples are for generators; {run_dir} was trained for the {task} task")
    if ignore_stress and task != "seq2seq":
        raise UsageError(f"--ignore-stress is for seq2seq runs; {run_dir} was trained for the {task} task")
    if beam and task not in ("seq2seq", "caption"):
        raise UsageError(f"--beam is for seq2seq and caption runs; {run_dir} was trained for the {task} task")
    if beam < 0:
        raise UsageError(f"--beam must be >= 0, got {beam}")
    if glimpses_png and task != "glimpse":
        raise UsageError(f"--glimpses is for glimpse runs; {run_dir} was trained for the {task} task")
    if task == "glimpse":
        return module_for(task).evaluate_run(run_dir, file, checkpoint=checkpoint, glimpses_png=glimpses_png)
    if task == "caption":
        return module_for(task).evaluate_run(run_dir, file, checkpoint=checkpoint, beam=beam)
    if task == "vqa":
        return module_for(task).evaluate_run(run_dir, file, checkpoint=checkpoint)
    if task == "seq2seq":
        return module_for(task).evaluate_run(run_dir, file, checkpoint=checkpoint, unknown=unknown, beam=beam,
                                             ignore_stress=ignore_stress)
    if task == "series":
        return module_for(task).evaluate_run(run_dir, file, checkpoint=checkpoint, horizon=horizon)
    if task == "generate":
        extra = {"num_samples": num_samples} if num_samples is not None else {}
        return module_for(task).evaluate_run(run_dir, file, checkpoint=checkpoint, unknown=unknown, judge=judge,
                                             **extra)
    return module_for(task).evaluate_run(run_dir, file, checkpoint=checkpoint, unknown=unknown)


def _generator(run_dir, checkpoint: str):
    task = ckpt.task_of(run_dir)
    if task not in ("lm", "generate"):
        raise UsageError(f"{run_dir} was trained for the {task} task; sample needs a language model or a generator")
    return load(run_dir, checkpoint)
