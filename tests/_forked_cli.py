"""Run `python -m rnnkit ARGS` (or `python -m torch.distributed.run ARGS`) in a process forked from one
that has already imported torch.

Importing torch takes 3-4 s on a slow 2-core machine, and the suite runs the CLI a few hundred times.
`run` starts each command as its own process, forked from a multiprocessing fork server that imported
torch and rnnkit once (and ran no torch operation, so no thread pool is copied into the children):
the command gets its own argv, environment, working directory, stdin from /dev/null, stdout and
stderr in files, and its exit status is the process's. What it skips is the interpreter's start and
the imports. (torchrun's launcher is forked the same way; the worker processes it starts are fresh
interpreters, as under a real torchrun.) Setting RNNKIT_TESTS_SPAWN=1 runs every command in a fresh
interpreter instead.
"""

import atexit
import io
import locale
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile

PRELOAD = ["torch", "torch.distributed.run", "numpy", "safetensors.torch", "rnnkit", "rnnkit.cli", "rnnkit.train",
           "rnnkit.sample", "rnnkit.evaluate", "rnnkit.export", "rnnkit.inspect", "rnnkit.tasks", "rnnkit.fastsample",
           __name__]
_context = None


def _server():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _child(module, argv, env, cwd, out, err):
    """In the forked process: become `python -m MODULE ARGV` and run to its exit status."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), write_through=True, errors="backslashreplace")
    sys.argv = [sys.argv[0], *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        atexit._run_exitfuncs()  # what the interpreter does at exit; multiprocessing ends with os._exit


def _read(path):
    """As text=True reads a pipe: the locale's encoding, universal newlines."""
    with open(path, encoding=locale.getpreferredencoding(False)) as fh:
        return fh.read()


class Started:
    """`subprocess.Popen([python, -m, module, *argv], ...)`, forked: pid, poll, wait, send_signal,
    returncode, and communicate (stdout and stderr as text, read once the process has ended)."""

    def __init__(self, argv, env, cwd=None, module="rnnkit"):
        self.args = [module, *argv]
        self._tmp = tempfile.TemporaryDirectory(prefix="rnnkit-cli-")
        self._out, self._err = os.path.join(self._tmp.name, "stdout"), os.path.join(self._tmp.name, "stderr")
        self._proc = _server().Process(target=_child, args=(module, list(argv), dict(env), str(cwd or os.getcwd()),
                                                             self._out, self._err))
        self._proc.start()
        self.pid = self._proc.pid

    @property
    def returncode(self):
        return self._proc.exitcode

    def poll(self):
        return self._proc.exitcode

    def wait(self, timeout=None):
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._proc.exitcode

    def send_signal(self, sig):
        if self._proc.exitcode is None:
            os.kill(self.pid, sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout=None):
        self.wait(timeout)
        try:
            return _read(self._out), _read(self._err)
        finally:
            self._tmp.cleanup()


def start(argv, env, cwd=None, module="rnnkit"):
    """Start `python -m MODULE ARGV` (forked, or a fresh interpreter under RNNKIT_TESTS_SPAWN=1)."""
    if os.environ.get("RNNKIT_TESTS_SPAWN") == "1":
        return subprocess.Popen([sys.executable, "-m", module, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    return Started(argv, env, cwd, module)


def run(argv, env, cwd=None, timeout=300, module="rnnkit") -> subprocess.CompletedProcess:
    """`subprocess.run([python, -m, module, *argv], capture_output=True, text=True, ...)`, forked."""
    if os.environ.get("RNNKIT_TESTS_SPAWN") == "1":
        return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, env=env,
                              cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
    proc = Started(argv, env, cwd, module)
    try:
        out, err = proc.communicate(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
