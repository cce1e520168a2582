"""How a run ended (:class:`RunOutcome`), counted and said in one sentence, for both front
ends, the report, notifications and monitoring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .health import UNREADABLE_NOT_SENT
from .model import Change, Plan, not_sent_lines
from .outcome import ExitCode, RunStatus
from .section import GuardedAction

if TYPE_CHECKING:
    from .apply import ApplyResult


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, for both front ends (and the report, notifications, monitoring)."""

    exit_code: ExitCode
    status: RunStatus
    message: str
    """"Task completed successfully." or what happened, in one sentence."""
    errors: tuple[str, ...] = ()
    """What stopped the run from starting or going on, each naming where."""
    plan: Plan | None = None
    result: ApplyResult | None = None
    held: tuple[Change, ...] = ()
    """Guarded changes not sent for want of a confirmation."""
    confirmed: frozenset[GuardedAction] = frozenset()
    """The guarded actions this run was allowed (command line, TUI and profile)."""

    @property
    def problems(self) -> dict[str, int]:
        """What kept this run from being a clean success, counted by kind (none are 0):
        ``failed`` changes, changes ``held`` for a confirmation, writes ``not_sent``,
        ``unusable`` source entries, removals not planned (``removals_blocked``) and
        accounts ``left_alone`` because an entry with their address is unusable."""
        return problems_of(self.plan, self.result, len(self.held))

    def __repr__(self) -> str:
        # short: asyncio.run on Python 3.11 reprs the main task's result (see SourceResult)
        changes = len(self.plan.changes) if self.plan else 0
        return f"RunOutcome({self.exit_code!r}, {self.status!r}, {changes} changes planned)"


def problems_of(plan: Plan | None, result: ApplyResult | None, held: int) -> dict[str, int]:
    """See :attr:`RunOutcome.problems`."""
    counts = (
        len(result.failed) if result else 0,
        held,
        len(plan.not_sent) if plan else 0,
        len(plan.unusable) if plan else 0,
        len(plan.blocked_removals) if plan else 0,
        len(plan.left_alone) if plan else 0,
    )
    return {kind: count for kind, count in zip(PROBLEM_KINDS, counts, strict=True) if count}


NAMED = 20
"""Accounts and entries a run's record names for each problem (the report has them all)."""


def named(plan: Plan) -> dict[str, list[str]]:
    """What the run's record names for ``zsync status`` and ``zsync history``: the first
    unusable entries, removals not planned and accounts left alone."""
    named = {
        "unusable": [u.text() for u in plan.unusable[:NAMED]],
        "removals_blocked": plan.blocked_removals[:NAMED],
        "left_alone": plan.left_alone[:NAMED],
    }
    return {kind: items for kind, items in named.items() if items}


PROBLEM_KINDS = ("failed", "held", "not_sent", "unusable", "removals_blocked", "left_alone")
"""Every kind :func:`problems_of` counts (the monitoring textfile writes each, 0 included,
so that an alert on one has a series to look at)."""


def stopped_message(result: ApplyResult, state_dir: Path) -> str:
    """What a run that the local store stopped did, in Zivver and in the journal, and how to
    go on: never "nothing was changed" once a change was sent."""
    if not result.done:
        return f"Stopped before sending anything: {result.stopped}. Nothing was changed."
    text = (
        f"Stopped after sending {result.done} change(s) to Zivver ({len(result.succeeded)} "
        f"succeeded, {len(result.failed)} failed), because the local store failed: "
        f"{result.stopped}."
    )
    if result.unrecorded:
        shown = ", ".join(f"{c.action.value} {c.email}" for c in result.unrecorded[:5])
        more = f" and {len(result.unrecorded) - 5} more" if len(result.unrecorded) > 5 else ""
        text += (
            f" Zivver answered {len(result.unrecorded)} of them that the store could not record "
            f"whole ({shown}{more}): the journal may still show them as sending; it holds the "
            "outcome of the others."
        )
    else:
        text += " The journal holds the outcome of each."
    if result.never_sent:
        text += f" {result.never_sent} change(s) were not sent."
    return (
        f"{text} Free space on the disk of the state directory {state_dir} (or fix its "
        "permissions), then run zsync again: it reads Zivver anew, takes over what was created "
        "by its address and sends only what is still to do."
    )


def cannot_run(error: str, plan: Plan | None = None) -> RunOutcome:
    """A run that could not start or go on: nothing was changed."""
    return RunOutcome(
        ExitCode.CANNOT_RUN, RunStatus.ABORTED, f"{error} Nothing was changed.", (error,), plan
    )


def applied(
    plan: Plan,
    result: ApplyResult,
    held: tuple[Change, ...],
    confirmed: frozenset[GuardedAction],
    state_dir: Path,
) -> RunOutcome:
    """How an applied run ended: its exit code, status and sentence."""
    if result.stopped:
        code = ExitCode.FAILED if result.done else ExitCode.CANNOT_RUN
        return RunOutcome(
            code,
            RunStatus.STOPPED,
            stopped_message(result, state_dir),
            (result.stopped,),
            plan,
            result,
            held,
            confirmed,
        )
    not_sent = plan.not_sent
    attention = plan.attention
    if result.failed:
        code, status = ExitCode.FAILED, RunStatus.FAILED_CHANGES
    elif held or not_sent or attention:
        code = ExitCode.HELD
        status = RunStatus.HELD if held or not_sent else RunStatus.ATTENTION
    else:
        code, status = ExitCode.OK, RunStatus.COMPLETED
    if result.cancelled:
        status = RunStatus.CANCELLED
    parts = [f"{len(held)} held for confirmation"] if held else []
    unreadable = sum(1 for h in not_sent if h.reason == UNREADABLE_NOT_SENT)
    if len(not_sent) > unreadable:
        parts.append(
            f"{len(not_sent) - unreadable} not sent (an SsoAccountKey zsync does not know)"
        )
    if unreadable:
        parts.append(f"{unreadable} not sent (Zivver's answer for the account was unreadable)")
    also = "".join(f"; {part}" for part in parts + attention)
    if result.cancelled:
        failed = f" ({len(result.failed)} failed)" if result.failed else ""
        message = (
            f"Cancelled: {result.done} change(s) sent{failed}, {result.cancelled} not sent{also}."
        )
    elif result.failed:
        message = f"{len(result.failed)} of {result.done} change(s) failed{also}."
    elif parts or attention:
        message = f"Applied {result.done} change(s){also}."
    elif result.done:
        message = "Task completed successfully."
    else:
        message = "Nothing to do: Zivver is in step with the sources."
    return RunOutcome(
        code,
        status,
        message,
        plan=plan,
        result=result,
        held=held,
        confirmed=confirmed,
    )


def dry(plan: Plan, held: tuple[Change, ...], confirmed: frozenset[GuardedAction]) -> RunOutcome:
    """How a dry run ended: its plan kept, nothing sent."""
    attention = plan.attention
    code = ExitCode.HELD if held or plan.not_sent or attention else ExitCode.OK
    message = f"Dry run: {len(plan.changes)} change(s) planned, nothing was sent to Zivver."
    if attention:
        said = "; ".join(attention)
        message += f" {said[:1].upper()}{said[1:]}."
    return RunOutcome(code, RunStatus.DRY_RUN, message, plan=plan, held=held, confirmed=confirmed)


def told(plan: Plan, held: tuple[Change, ...], read: set[str]) -> list[tuple[str, str]]:
    """(level, message) a run keeps in Recent events of what its plan wanted to tell: the
    data's notices (not those in ``read``: a source's own, kept as they were read), what a
    takeover meets, writes not sent, removals not planned, changes held for a confirmation."""
    kept: list[tuple[str, str]] = [
        (notice.level, notice.message)
        for notice in plan.notices
        if notice.level != "info" and notice.message not in read
    ]
    if plan.takeover is not None and plan.takeover.worth_showing:
        kept += [("warning", f"Taking over: {line}") for line in plan.takeover.lines()]
    if plan.not_sent:
        kept.append(("warning", "\n".join(not_sent_lines(plan.not_sent, shown=10))))
    kept += [("warning", f"{phrase[:1].upper()}{phrase[1:]}.") for phrase in plan.attention]
    if held:
        guards = sorted({c.guard.value for c in held if c.guard})
        shown = ", ".join(c.email for c in held[:10])
        more = f" and {len(held) - 10} more" if len(held) > 10 else ""
        kept.append(
            (
                "warning",
                f"{len(held)} change(s) held for confirmation ({', '.join(guards)}): "
                f"{shown}{more}. Review them, then run with "
                f"{' '.join('--confirm ' + g for g in guards)}.",
            )
        )
    return kept
