"""``zsync status`` and ``zsync history``: what the store says of past runs, read only.

Nothing here writes: the store is opened read only (see :meth:`Store.open_read_only`) and
the lock is looked at, never taken.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .config import Config
from .outcome import ChangeOutcome, ChangeState, ExitCode, RunRecord, RunStatus
from .store import Store

TIMER = "zsync.timer"


@dataclass(frozen=True, slots=True)
class Status:
    """Is the daily sync still running, and did its last run work?"""

    profile: str
    state_dir: str
    runs: list[RunRecord]
    """The latest runs, newest first (empty before the first run)."""
    held: list[ChangeOutcome]
    """Changes of the last finished run held for a confirmation."""
    lock_holder: int | None
    next_timer_run: str | None
    """When systemd starts the next run (``zsync.timer``), if systemd knows."""

    @property
    def last(self) -> RunRecord | None:
        return _last_finished(self.runs)

    @property
    def last_success(self) -> RunRecord | None:
        """The newest run that synced with nothing skipped, held or failed (a dry run syncs
        nothing, whatever it found)."""
        return next(
            (r for r in self.runs if not r.dry_run and r.status.exit_code is ExitCode.OK), None
        )

    @property
    def exit_code(self) -> ExitCode:
        """The last finished run's exit code; CANNOT_RUN when there is none yet."""
        last = self.last
        if last is None:
            return ExitCode.CANNOT_RUN
        if last.dry_run and isinstance(last.summary.get("exit"), int):
            return ExitCode(last.summary["exit"])  # a dry run that would have held
        return last.status.exit_code


@contextmanager
def _reading(config: Config) -> Iterator[Store | None]:
    store = Store.open_read_only(config.state_path)
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def status(config: Config, runs: int = 10) -> Status:
    """Raises StoreError when the store exists but cannot be read."""
    found: list[RunRecord] = []
    held: list[ChangeOutcome] = []
    holder = None
    with _reading(config) as store:
        if store is not None:
            holder = store.lock_holder()
            found = [_ended(run, holder) for run in store.runs(runs)]
            last = _last_finished(found)
            if last is not None:
                held = [o for o in store.changes(last.id) if o.state is ChangeState.HELD]
    return Status(str(config.path), str(config.state_path), found, held, holder, next_timer_run())


def history(config: Config, limit: int = 50) -> list[RunRecord]:
    with _reading(config) as store:
        return store.runs(limit) if store is not None else []


def run_changes(config: Config, run_id: int) -> tuple[RunRecord, list[ChangeOutcome]] | None:
    with _reading(config) as store:
        run = store.run(run_id) if store is not None else None
        return (run, store.changes(run_id)) if store is not None and run else None


def _ended(run: RunRecord, holder: int | None) -> RunRecord:
    """A run that never finished while no run is going: its process ended (killed, the
    machine stopped) while it loaded or applied. The next run records it so; until then it
    is shown as such, never passed over for the run before it."""
    if run.finished_at is not None or holder is not None:
        return run
    return dataclasses.replace(run, status=RunStatus.INTERRUPTED, finished_at=run.started_at)


def _last_finished(runs: list[RunRecord]) -> RunRecord | None:
    """The newest finished run that was meant to sync: a dry run or a look in the TUI that
    was left without updating says nothing of whether the sync works (the newest finished
    run of any kind when there is no other)."""
    finished = [r for r in runs if r.finished_at is not None]
    real = (r for r in finished if not r.dry_run and r.status is not RunStatus.NOT_APPLIED)
    return next(real, finished[0] if finished else None)


def next_timer_run() -> str | None:
    """When systemd runs ``zsync.timer`` next, in its own words, or None (no systemd, no
    such timer, not enabled)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    try:
        shown = subprocess.run(
            [systemctl, "show", TIMER, "--property=NextElapseUSecRealtime", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = shown.stdout.strip()
    return value if shown.returncode == 0 and value and value != "n/a" else None


def ago(timestamp: float, now: float | None = None) -> str:
    """'3 h ago', '2 days ago'."""
    seconds = max(0.0, (now or time.time()) - timestamp)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"
