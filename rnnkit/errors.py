"""User-facing errors.

Anything the user can cause (a missing file, a bad option, a corrupted checkpoint) raises
`RnnkitError` with a one-line message. The CLI prints that line and exits non-zero; a traceback
means a bug in rnnkit, never bad input.
"""


class RnnkitError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""


class ConfigError(RnnkitError, ValueError):
    """An invalid option value or an unknown option name."""


class UsageError(ConfigError):
    """A request this run cannot serve: a task it was not trained for, a class it never saw. Like a bad
    command line, the CLI exits with status 2."""


class DataError(RnnkitError):
    """Input text that cannot be read, decoded or batched."""


class CheckpointError(RnnkitError):
    """A run directory or checkpoint that is missing, truncated or corrupted."""


class Interrupted(RnnkitError):
    """Ctrl-C or SIGTERM: a checkpoint was written, training can resume."""


class TrainingDiverged(RnnkitError):
    """The training loss became NaN or infinite, or exploded."""


class StorageError(RnnkitError):
    """The disk failed us: full, read-only, or the file could not be written for another reason."""


class RunDirLocked(RnnkitError):
    """Another rnnkit process is training in this run directory."""
