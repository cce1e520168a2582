"""Reading a source in a process of its own, so that it has a core of its own.

Parsing a large directory is seconds of CPU (100,000 AD entries: about 1.8 s), and so is
decoding Zivver's list of accounts. In one process the two take turns under the GIL; in
two they run side by side. The child gets the source's settings and its secret on stdin
(never on its command line), and sends back each progress event as it happens, then the
result, pickled: a pipe between two processes of the same installation.

    child = start("zsync_core.sources.ldap:read", source, profile, secret)
    try:
        result = collect(child, emit, source.name)  # blocking: run it in a worker thread
    finally:
        child.stop()
"""

from __future__ import annotations

import gc
import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

from ..errors import SourceError, ZsyncError
from ..model import SourceAccount
from . import Emit, SourceResult

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
CHUNK = 10_000
"""Accounts per message: the child pickles the next chunk while the parent unpickles one."""
PARENT_ENV = "ZSYNC_READER_PARENT"
"""The pid of the zsync that started the child (the child ends when it has gone)."""


class Child:
    """A started reader process and the file that collects what it writes to stderr."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
        self.process = process
        self.stderr = stderr
        self.collecting = False
        """collect() reads the child's files (and closes them when it is done)."""

    def stop(self) -> None:
        """End the child if it still runs (the load was cancelled). A collect() that is
        still reading then sees the end of the answer and raises SourceError."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if not self.collecting:
            self.close()

    def close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            if stream:
                stream.close()

    def said(self) -> str:
        """The last line the child wrote to stderr, if any."""
        try:
            self.stderr.seek(0)
            lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        except ValueError:  # closed
            return ""
        return lines[-1] if lines else ""


def start(reader: str, *arguments: Any) -> Child:
    """Start ``python -m zsync_core.sources.process`` and hand it ``reader`` and its arguments.

    ``reader`` names a function ``(*arguments, emit) -> SourceResult`` as ``module:function``.

    Raises:
        OSError: the child could not be started (the caller reads in-process instead).
    """
    env = dict(os.environ)
    env[PARENT_ENV] = str(os.getpid())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    stderr = tempfile.TemporaryFile()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "zsync_core.sources.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    except OSError:
        stderr.close()
        raise
    assert process.stdin is not None
    try:
        pickle.dump((reader, arguments), process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        process.stdin.close()
    except OSError:  # it died at once; collect() says why
        pass
    return Child(process, stderr)


def collect(child: Child, emit: Emit, name: str) -> SourceResult:
    """Pass the child's events to ``emit`` until its result is complete; raise what it raised.

    Raises:
        SourceError: the source could not be read, or the child ended without an answer.
    """
    assert child.process.stdout is not None
    child.collecting = True
    try:
        return _collect(child, child.process.stdout, emit, name)
    finally:
        child.close()


def _collect(child: Child, answer: IO[bytes], emit: Emit, name: str) -> SourceResult:
    result: SourceResult | None = None
    while True:
        try:
            kind, value = pickle.load(answer)
        except (EOFError, pickle.UnpicklingError, OSError, ValueError):
            code = child.process.wait()
            said = child.said()
            why = f": {said}" if said else ""
            raise SourceError(
                f"Source {name!r}: the process reading it ended without an answer "
                f"(exit code {code}{why}); the read is incomplete, so nothing is synced from it."
            ) from None
        if kind == "event":
            emit(value)
        elif kind == "result":  # without its accounts; they follow in chunks
            result = value
        elif kind == "accounts" and result is not None:
            result.accounts += map(SourceAccount._make, value)
        elif kind == "end" and result is not None:
            return result
        elif kind == "error":
            raise SourceError(value)
        else:  # "crash": an unexpected exception, raised here as it was there
            raise value


def _end_with_parent(parent: int) -> None:
    """End this process as soon as the zsync that started it has ended (a SIGTERM from
    systemd, a kill from cron's time-out: the parent ends without stopping its child, and a
    reader left behind holds the directory's connection, or waits on a stalled server, for
    ever). Polled by a daemon thread: an orphan is adopted by another process."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _child() -> int:
    _end_with_parent(int(os.environ.get(PARENT_ENV, os.getppid())))
    gc.disable()  # a short life building 100,000 acyclic records: reference counting frees
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the answer

    def send(kind: str, value: Any) -> None:
        data = pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)  # whole, or not at all
        out.write(data)
        out.flush()

    reader, arguments = pickle.load(sys.stdin.buffer)
    module, _, function = reader.partition(":")
    read = getattr(importlib.import_module(module), function)
    try:
        result = read(*arguments, lambda event: send("event", event))
    except ZsyncError as error:
        send("error", str(error))
    except Exception as error:  # noqa: BLE001 (sent to the parent, which reports it)
        try:
            send("crash", error)
        except Exception:  # noqa: BLE001 (an exception that does not pickle)
            send("crash", RuntimeError(traceback.format_exc(limit=3)))
    else:
        accounts, result.accounts = result.accounts, []
        send("result", result)
        for start in range(0, len(accounts), CHUNK):  # as plain tuples: half the pickling
            send("accounts", [tuple(account) for account in accounts[start : start + CHUNK]])
        send("end", None)
    return 0


if __name__ == "__main__":
    raise SystemExit(_child())
