"""What a run and its changes came to, as types: exit codes, run statuses, change states.

The store keeps these as their string values; everything above the store sees the enums
and :class:`ChangeOutcome` (never a database row).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from .model import Action
from .section import GuardedAction
from .wording import mode_name


class ExitCode(IntEnum):
    """The exit codes of product.md (the contract); the TUI says the same outcomes in words."""

    OK = 0
    """Everything done, or nothing to do."""
    FAILED = 1
    """Finished, but some changes failed."""
    HELD = 2
    """Finished, but guarded actions were held for confirmation (or writes were not sent)."""
    CANNOT_RUN = 3
    """Could not run (bad profile, unreachable source or Zivver, unhealthy read, lock held):
    nothing was changed."""


class RunStatus(StrEnum):
    RUNNING = "running"
    """Loading and planning; nothing has been sent."""
    APPLYING = "applying"
    COMPLETED = "completed"
    FAILED_CHANGES = "failed-changes"
    HELD = "held"
    """Applied, but changes wait for a confirmation or were not sent (exit 2)."""
    ATTENTION = "attention"
    """Applied, but source entries were skipped or removals not planned (exit 2)."""
    STOPPED = "stopped"
    """The journal could not be written, so sending stopped."""
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    """The process ended while running or applying (found so by the next run)."""
    ABORTED = "aborted"
    """The run could not go on (an incomplete or unhealthy read, Zivver refused it): nothing sent."""
    DRY_RUN = "dry-run"
    NOT_APPLIED = "not-applied"
    """Loaded and reviewed in the TUI, then left or reloaded without updating."""

    @property
    def changed_zivver(self) -> bool:
        """Zivver may have changed during a run that ended so."""
        return self in _APPLIED

    @property
    def exit_code(self) -> ExitCode:
        """What a headless run that ended so exits with (``zsync status`` answers the same)."""
        if self in (RunStatus.COMPLETED, RunStatus.DRY_RUN):
            return ExitCode.OK
        if self in (RunStatus.FAILED_CHANGES, RunStatus.CANCELLED):
            return ExitCode.FAILED
        if self in (RunStatus.HELD, RunStatus.ATTENTION):
            return ExitCode.HELD
        return ExitCode.CANNOT_RUN

    @property
    def read_was_good(self) -> bool:
        """A run that ended so read its sources completely (its counts are the shrink baseline)."""
        return self in _GOOD


_APPLIED = frozenset(
    {
        RunStatus.APPLYING,
        RunStatus.COMPLETED,
        RunStatus.FAILED_CHANGES,
        RunStatus.HELD,
        RunStatus.ATTENTION,
        RunStatus.STOPPED,
        RunStatus.CANCELLED,
        RunStatus.INTERRUPTED,
    }
)
_GOOD = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED_CHANGES,
        RunStatus.HELD,
        RunStatus.ATTENTION,
        RunStatus.DRY_RUN,
    }
)


class ChangeState(StrEnum):
    PLANNED = "planned"
    """Not sent: a dry run, or a run that was not applied."""
    HELD = "held"
    """Needs a confirmation it did not get."""
    EXCLUDED = "excluded"
    """Left out of this run by the admin (the preview's x)."""
    SENDING = "sending"
    """Journaled before sending and never answered: the process ended."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Not sent: the update was cancelled or stopped first."""

    @property
    def was_sent(self) -> bool:
        return self in (ChangeState.SUCCEEDED, ChangeState.FAILED, ChangeState.SENDING)


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """One change of a run as the store journaled it: what was planned, sent and answered."""

    change_id: int
    action: Action
    email: str
    zivver_id: str | None
    source_id: str | None
    source: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    guard: GuardedAction | None
    state: ChangeState
    error: str | None
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    http_status: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One journaled change to an account, with the run it belongs to."""

    run_id: int
    at: float
    """When the change was last journaled (planned, sent or answered)."""
    mode: str
    dry_run: bool
    change: ChangeOutcome


@dataclass(frozen=True, slots=True)
class MappingRecord:
    """What the local account mapping holds of one source entry."""

    source_id: str
    kind: str
    zivver_id: str
    email: str
    source: str | None
    sso_key_sent: str | None
    """The SsoAccountKey zsync sent ("" none), None when it sent none."""
    updated_at: float
    """When it was last recorded (matched, created or renamed)."""


COUNTED = {
    "not_sent": "not sent",
    "unusable": "source entries unusable",
    "unusable_one": "source entry unusable",
    "removals_blocked": "removals not planned",
    "left_alone": "left alone",
}
"""How a run's counts read in a line (the rest read as they are named: succeeded, held…)."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run in the history."""

    id: int
    started_at: float
    finished_at: float | None
    mode: str
    dry_run: bool
    status: RunStatus
    summary: dict[str, Any]
    source_counts: dict[str, int]

    @property
    def counts(self) -> str:
        """'28 succeeded, 2 failed' from the run's summary ('' when it counted nothing)."""
        return ", ".join(
            f"{v} {COUNTED.get(k + '_one' if v == 1 else k, COUNTED.get(k, k))}"
            for k, v in self.summary.items()
            if isinstance(v, int) and not isinstance(v, bool) and v and k != "exit"
        )

    def describe(self, started: str, label: str = "Run") -> str:
        """'Run 12 · TUI · <started> · completed · 28 succeeded, 2 failed'."""
        mode = mode_name(self.mode, self.dry_run)
        line = f"{label} {self.id} · {mode} · {started} · {self.status.value}"
        return line + (f" · {self.counts}" if self.counts else "")
