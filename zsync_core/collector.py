"""Pausing Python's cycle collector while 100,000s of long-lived records are built.

Measured (bench/): at 100,000 accounts a plan spends a third of its time in the cycle
collector, and each full collection holds the interpreter for about 150 ms, so a TUI whose
plan runs in a thread stalls that long on a key. The records zsync builds are acyclic:
reference counting frees them without the collector.

This is process-wide, so only the owner of the process decides to use it: the headless
run (its own process, start to end) and the TUI around a load or a plan. Nested and
concurrent pauses (two plan threads) share one: the collector runs again when the last
one ends. Nothing is frozen unless asked (a headless run, which has no screens whose
garbage a freeze would keep); a freeze first thaws what the last one froze.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pausers = 0
_resume = False


@contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """No cyclic collection inside; with ``freeze``, what exists at the end is moved out of
    the collector's sight for good (the next collections do not scan it again)."""
    global _pausers, _resume
    with _lock:
        if freeze:
            gc.unfreeze()  # what an earlier run froze is looked at again (a process may run twice)
        if _pausers == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if freeze:
                gc.freeze()
            if _pausers == 0 and _resume:
                gc.enable()
