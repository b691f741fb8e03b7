"""Atomic file writes: write a temporary file in the same directory, fsync, then rename.

A reader (or a crash) sees either the old file or the new one, never a half-written one. A write
that fails (full disk, read-only file system) removes its temporary file, leaves the old file as it
was and raises `StorageError` with one line naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import StorageError

TMP_SUFFIX = ".tmp"


def atomic_write(path: str | Path, write) -> None:
    """Call `write(tmp_path)` to produce the new file, then move it over `path` atomically."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise _storage_error(path, exc) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _storage_error(path, exc) from None
        raise
    _fsync_dir(path.parent)


def _storage_error(path: Path, exc: OSError) -> StorageError:
    kept = " (the previous version is unchanged)" if path.exists() else ""
    return StorageError(f"cannot write {path}: {exc.strerror or exc}{kept}")


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files that `atomic_write` leaves behind when its process is killed
    mid-write (only call this while no other process writes to `directory`)."""
    stale = [p for p in Path(directory).glob(".*" + TMP_SUFFIX) if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)
    atomic_write(path, write)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
