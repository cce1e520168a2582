"""``zsync --headless``: the daily run with nobody watching.

Human-readable progress on stderr (one plain line per event, so journald and cron mail
read well), an optional JSON report, and the exit codes of product.md:

0 everything done (or nothing to do) · 1 finished, some changes failed ·
2 finished, guarded actions held for confirmation · 3 could not run, nothing changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import TextIO

from zsync_core import __version__, notify
from zsync_core.conclusion import RunOutcome
from zsync_core.config import (
    Config,
    GuardedAction,
    check_secrets,
    default_config_path,
    load_config,
)
from zsync_core.errors import ZsyncError
from zsync_core.model import (
    Change,
    ChangeEvent,
    Event,
    LogEvent,
    Plan,
    StepEvent,
    not_sent_lines,
    summary_line,
)
from zsync_core.outcome import ChangeOutcome, ExitCode, RunStatus
from zsync_core.output import inert, inert_json, open_for_admin
from zsync_core.report import run_report
from zsync_core.session import Mode, SyncSession

SHOWN_HELD = 20


class Printer:
    """Turns progress events into plain lines on stderr, and into the log file.

    Every line is made inert (``zsync_core.output``) here, where it leaves: names, DNs and
    servers' error texts in it cannot drive the terminal, and a line break from outside
    cannot forge a line of its own.

    ``verbosity`` 0 (``-q``): only warnings, errors and a run's bad outcome, so cron mails
    only when something needs the admin; 1: progress too; 2 (``-v``): every change and
    every note about the data. The log file gets the lines of ``max(verbosity, 1)``, each
    with its time.
    """

    def __init__(self, out: TextIO, verbosity: int = 1, log: TextIO | None = None) -> None:
        self.out = out
        self.verbosity = verbosity
        self.log = log
        self.running: set[str] = set()
        self.last_percent = -1
        # under systemd, a <N> prefix gives each line its priority in the journal
        self.journald = bool(os.environ.get("JOURNAL_STREAM"))

    def line(
        self, text: str, priority: int | None = None, level: int = 1, *, lines: bool = False
    ) -> None:
        """One line; ``level`` is the least verbosity that shows it (2: only with -v).
        ``lines`` keeps the line breaks of a message written in several (a bad profile's)."""
        text = inert(text, lines=lines)
        priority = _priority(text) if priority is None else priority
        if self.log is not None and level <= max(self.verbosity, 1):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            print(f"{stamp} {text}", file=self.log, flush=True)
        if self.verbosity == 0 and priority > 4:
            return
        if level > max(self.verbosity, 1):
            return
        if self.journald:
            text = f"<{priority}>{text}"
        print(text, file=self.out, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            if event.state == "running" and event.step not in self.running:
                self.running.add(event.step)
                self.line(f"... {event.label}")
            elif event.state == "done":
                count = f": {event.done}" if event.total is not None else ""
                self.line(f"ok  {event.label}{count}")
            elif event.state == "failed":
                self.line(f"ERR {event.label}: {event.detail}")
        elif isinstance(event, LogEvent):
            if event.level != "info":
                self.line(f"{event.level.upper()} {event.message}")
            else:
                self.line(f"NOTE {event.message}", level=2)
        elif isinstance(event, ChangeEvent):
            if not event.ok:
                self.line(f"FAILED {event.change.action.value} {event.change.email}: {event.error}")
            else:
                self.line(f"ok  {event.change.action.value} {event.change.email}", level=2)
            percent = event.done * 100 // max(event.total, 1)
            if percent // 10 > self.last_percent // 10 or event.done == event.total:
                self.last_percent = percent
                self.line(f"... applied {event.done}/{event.total} changes ({event.failed} failed)")


def _priority(text: str) -> int:
    if text.startswith(("ERR", "FAILED", "zsync:")):
        return 3
    if text.startswith(("WARN", "HELD")):
        return 4
    return 6


def run_headless(
    config_path: str | None,
    dry_run: bool,
    confirm: list[str],
    report: str | None,
    err: TextIO | None = None,
    verbosity: int = 1,
    log_file: str | None = None,
    full_read: bool = False,
) -> int:
    log = None
    if log_file:
        try:
            log = open_for_admin(log_file, "a")  # closed below
        except OSError as error:
            print(
                f"zsync: --log-file {inert(log_file)}: cannot be written ({error.strerror}). Create its "
                "directory for this user (e.g. install -d -o zsync /var/log/zsync). Nothing was "
                "changed.",
                file=err or sys.stderr,
            )
            return ExitCode.CANNOT_RUN
    try:
        return _run_headless(
            config_path,
            dry_run,
            confirm,
            report,
            Printer(err or sys.stderr, verbosity, log),
            full_read,
        )
    finally:
        if log is not None:
            log.close()


def _run_headless(
    config_path: str | None,
    dry_run: bool,
    confirm: list[str],
    report: str | None,
    printer: Printer,
    full_read: bool = False,
) -> int:
    started = time.time()
    config: Config | None = None
    try:
        config = load_config(config_path)
        check_secrets(config)
        session = SyncSession(config, emit=printer, mode=Mode.HEADLESS, full_read=full_read)
    except ZsyncError as error:
        printer.line(f"zsync: {error}", lines=True)  # a bad profile: a line per key
        printer.line("Nothing was changed.")
        outcome = RunOutcome(
            ExitCode.CANNOT_RUN, RunStatus.ABORTED, f"{error} Nothing was changed.", (str(error),)
        )
        _write_report(
            report, None, outcome, dry_run, started, config_path or str(default_config_path())
        )
        if config is not None:  # the profile could be read: its notifications can be sent
            _tell(printer, config, outcome, [], started)
        return ExitCode.CANNOT_RUN
    printer.line(f"zsync {__version__}: {'dry run of ' if dry_run else ''}profile {config.path}")
    confirmed = {GuardedAction(c) for c in confirm}
    try:
        outcome = asyncio.run(
            session.run_once(
                dry_run, confirmed, lambda plan, ok: _print_summary(printer, plan, ok, dry_run)
            )
        )
        _print_outcome(printer, outcome)
        _write_report(report, session, outcome, dry_run, started)
        changes = session.outcomes()
    finally:
        session.close()
    _tell(printer, config, outcome, changes, started)
    return outcome.exit_code


def _tell(
    printer: Printer,
    config: Config,
    outcome: RunOutcome,
    changes: list[ChangeOutcome],
    started: float,
) -> None:
    """Notifications and the monitoring file; a failure of either is a warning, never the
    run's outcome."""
    for problem in notify.deliver(config, outcome, changes):
        printer.line(f"WARN {problem}")
    textfile = config.monitoring.textfile
    if textfile is not None:
        try:
            notify.write_textfile(config.resolve(textfile), config, outcome, changes, started)
        except OSError as error:
            printer.line(
                f"WARN monitoring.textfile {textfile}: not written ({error.strerror}). Check "
                "that the directory exists and this user may write it."
            )


def _print_outcome(printer: Printer, outcome: RunOutcome) -> None:
    if outcome.exit_code is ExitCode.CANNOT_RUN or outcome.status is RunStatus.STOPPED:
        printer.line(f"zsync: {outcome.message}" + (" (exit 3)" if outcome.exit_code == 3 else ""))
        return
    # a run that needs the admin says so even with -q
    printer.line(outcome.message, priority=6 if outcome.exit_code is ExitCode.OK else 4)
    held = outcome.held
    if held:
        names = sorted({c.guard.value for c in held if c.guard})
        printer.line(
            f"HELD {len(held)} change(s) need confirmation: {', '.join(names)}. "
            f"Review them, then run again with {' '.join('--confirm ' + n for n in names)}."
        )
        for change in held[:SHOWN_HELD]:
            printer.line(f"HELD   {change.action.value} {change.email}")
        if len(held) > SHOWN_HELD:
            printer.line(
                f"HELD   ... and {len(held) - SHOWN_HELD} more (all are in the --report file)"
            )


def _print_summary(
    printer: Printer, plan: Plan, confirmed: frozenset[GuardedAction], dry_run: bool = False
) -> None:
    if plan.takeover is not None and plan.takeover.worth_showing:
        printer.line("Taking over:")
        for line in plan.takeover.lines():
            printer.line(f"  {line}")
    counts = plan.by_action()
    if not plan.changes:
        printer.line("Summary: no changes.")
    else:
        printer.line("Summary:")
        for action, count in counts.items():
            if count:
                printer.line(f"  {summary_line(action, count)}")
    for guard in plan.guards:
        state = "confirmed" if guard.action in confirmed else "NEEDS CONFIRMATION"
        printer.line(f"  [{state}] {guard.text} (--confirm {guard.action.value})")
        if guard.accounts:
            printer.line(f"      {guard.named()}")
    if dry_run:  # with -v, the plan itself: a dry run is read for it (a run prints each change)
        for change in plan.changes:
            held = (
                " (held: --confirm " + change.guard.value + ")"
                if (change.guard and change.guard not in confirmed)
                else ""
            )
            printer.line(
                f"PLAN {change.action.value} {change.email}: {_fields(change)}{held}", level=2
            )
    if plan.removals_blocked:
        printer.line(f"WARN no suspension or deletion planned: {plan.removals_blocked}")
    for line in not_sent_lines(plan.not_sent):
        printer.line("HELD " + line)


def _fields(change: Change) -> str:
    """'display_name "Ann" -> "Ann Smith", aliases +a@x -b@x' for one change."""
    said = []
    for name in sorted(change.fields):
        before, after = change.before.get(name), change.after.get(name)
        if isinstance(after, list | tuple) or isinstance(before, list | tuple):
            old, new = set(before or ()), set(after or ())
            moves = [f"+{a}" for a in sorted(new - old)] + [f"-{a}" for a in sorted(old - new)]
            said.append(f"{name} {' '.join(moves) or '(same)'}")
        elif name == "sso_key":
            said.append("sso_key (set)")
        elif before is None:
            said.append(f"{name} {json.dumps(after, ensure_ascii=False)}")
        else:
            said.append(
                f"{name} {json.dumps(before, ensure_ascii=False)} -> "
                f"{json.dumps(after, ensure_ascii=False)}"
            )
    return ", ".join(said) or "(no field)"


def _write_report(
    path: str | None,
    session: SyncSession | None,
    outcome: RunOutcome,
    dry_run: bool,
    started: float,
    profile: str | None = None,
) -> None:
    """The JSON report, also when the run could not start (no session: a bad profile or a
    missing secret), so monitoring that reads it never sees yesterday's success."""
    if not path:
        return
    data = run_report(session, outcome, dry_run, started, profile)
    # the data (addresses, fields before and after) stays exact; inert_json escapes what
    # JSON leaves raw, so that printing the file is safe too
    try:
        with open_for_admin(path) as out:
            out.write(inert_json(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")
    except OSError as error:
        print(f"zsync: cannot write the report {inert(path)}: {error}", file=sys.stderr)
