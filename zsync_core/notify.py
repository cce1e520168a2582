"""After a headless run: a mail, a webhook and a Prometheus textfile, so somebody hears of it.

What is sent says what happened in one subject line, then the held and failed changes; it
never carries a secret (the messages are the run's own, which name variables and files,
never their contents). What came from outside in it (names, addresses, Zivver's error texts)
is made inert (``output.inert``): a mail client, a chat or a terminal showing it sees
escapes, not control sequences. A notification that cannot be delivered is reported as a
warning and changes nothing else: the run's exit code stays the run's.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import stat
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from . import __version__
from .conclusion import PROBLEM_KINDS, RunOutcome
from .config import Config, EmailConfig, WebhookConfig, read_secret
from .errors import ZsyncError
from .model import not_sent_lines
from .outcome import ChangeOutcome, ChangeState, ExitCode
from .output import ADMIN_FILE_MODE, inert

SHOWN = 50
"""Held and failed changes listed in a message (all are in the report and the history)."""


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    body: str
    data: dict[str, Any]
    """The same as data, for the JSON webhook."""


def message(config: Config, outcome: RunOutcome, changes: list[ChangeOutcome]) -> Message:
    host = inert(socket.gethostname())
    failed = [c for c in changes if c.state is ChangeState.FAILED]
    held = [c for c in changes if c.state is ChangeState.HELD]
    what = {
        ExitCode.OK: "done",
        ExitCode.FAILED: "some changes failed",
        ExitCode.HELD: "changes held"
        if outcome.held or (outcome.plan and outcome.plan.not_sent)
        else "needs you",
        ExitCode.CANNOT_RUN: "could not run",
    }[outcome.exit_code]
    said = inert(outcome.message, lines=True)  # a bad profile's message has a line per key
    subject = inert(f"zsync on {host}: {what} — {said.splitlines()[0] if said else ''}")
    lines = [
        f"zsync {__version__} on {host}, profile {inert(str(config.path))}",
        f"Exit code {int(outcome.exit_code)} ({outcome.status.value}): {said}",
        "",
    ]
    for error in outcome.errors:
        lines.append(f"Error: {inert(error, lines=True)}")
    if failed:
        lines += ["", f"Failed ({len(failed)}):"]
        lines += [
            f"  {c.action.value} {inert(c.email)}: {inert(c.error or '')}" for c in failed[:SHOWN]
        ]
    if held:
        names = sorted({c.guard.value for c in held if c.guard})
        lines += [
            "",
            f"Held for confirmation ({len(held)}; run again with "
            f"{' '.join('--confirm ' + n for n in names)} once reviewed):",
        ]
        lines += [f"  {c.action.value} {inert(c.email)}" for c in held[:SHOWN]]
    plan = outcome.plan
    if plan is not None and plan.not_sent:
        lines.append("")  # grouped by why they were not sent (a key zsync does not know, …)
        lines += [inert(line) for line in not_sent_lines(plan.not_sent, shown=SHOWN)]
    if plan is not None and plan.unusable:
        lines += ["", f"Source entries skipped as unusable ({len(plan.unusable)}):"]
        lines += [f"  {inert(u.text())}" for u in plan.unusable[:SHOWN]]
    if plan is not None and plan.removals_blocked:
        blocked = plan.blocked_removals
        lines += ["", f"No suspension or deletion planned: {inert(plan.removals_blocked)}"]
        if blocked:
            more = f" and {len(blocked) - SHOWN} more" if len(blocked) > SHOWN else ""
            lines.append(f"  not suspended or deleted: {inert(', '.join(blocked[:SHOWN]))}{more}")
    if len(failed) > SHOWN or len(held) > SHOWN:
        lines += ["", "All of them: zsync history --run N (or the --report file)."]
    data = {
        "zsync": __version__,
        "host": host,
        "profile": inert(str(config.path)),
        "exit_code": int(outcome.exit_code),
        "status": outcome.status.value,
        "message": said,
        "errors": [inert(e, lines=True) for e in outcome.errors],
        "failed": [
            {"action": c.action.value, "email": inert(c.email), "error": inert(c.error or "")}
            for c in failed
        ],
        "held": [{"action": c.action.value, "email": inert(c.email)} for c in held],
        "problems": outcome.problems,
        "unusable": [  # the first SHOWN; all are in the report and the history
            {k: inert(v) if v else v for k, v in u.as_dict().items()}
            for u in (plan.unusable[:SHOWN] if plan else [])
        ],
        "removals_not_planned": [inert(a) for a in (plan.blocked_removals[:SHOWN] if plan else [])],
    }
    return Message(subject, "\n".join(lines).rstrip() + "\n", data)


def wanted(config: Config, outcome: RunOutcome) -> bool:
    return config.notify.when == "always" or outcome.exit_code is not ExitCode.OK


def deliver(config: Config, outcome: RunOutcome, changes: list[ChangeOutcome]) -> list[str]:
    """Send what the profile asks for; returns a warning per notification that failed."""
    if not wanted(config, outcome):
        return []
    return send(config, message(config, outcome, changes))


def send(config: Config, note: Message) -> list[str]:
    """Send ``note`` by every way the profile names; a warning per way that failed."""
    problems = []
    if config.notify.email is not None:
        try:
            send_email(config, config.notify.email, note)
        except (OSError, smtplib.SMTPException, ZsyncError) as error:
            problems.append(
                f"notify.email: the mail to {', '.join(config.notify.email.to)} via "
                f"{config.notify.email.smtp_host}:{config.notify.email.smtp_port} was not sent "
                f"({error}). Check the server, the port, starttls and the account."
            )
    if config.notify.webhook is not None:
        try:
            send_webhook(config, config.notify.webhook, note)
        except (httpx.HTTPError, ZsyncError) as error:
            problems.append(
                f"notify.webhook: the {config.notify.webhook.format} webhook was not called "
                f"({type(error).__name__}: {_without_url(error)}). Check the URL and the network."
            )
    return problems


def trial_message(config: Config) -> Message:
    """A message that says only that it is a test (the profile area's Test)."""
    host = inert(socket.gethostname())
    said = (
        f"A test notification from zsync {__version__} on {host}, profile "
        f"{inert(str(config.path))}: this is how a run's notification reaches you."
    )
    data = {"zsync": __version__, "host": host, "profile": inert(str(config.path)), "test": True}
    return Message(f"zsync on {host}: a test notification", said + "\n", data | {"message": said})


def send_email(config: Config, email: EmailConfig, note: Message) -> None:
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = note.subject, email.sender, ", ".join(email.to)
    mail.set_content(note.body)
    password = read_secret(email.password_env, email.password_file, "notify.email.password", config)
    with smtplib.SMTP(email.smtp_host, email.smtp_port, timeout=email.timeout_seconds) as smtp:
        if email.starttls:
            cafile = str(config.resolve(email.ca_file)) if email.ca_file else None
            smtp.starttls(context=ssl.create_default_context(cafile=cafile))
        if email.username:
            smtp.login(email.username, password or "")
        smtp.send_message(mail)


def send_webhook(config: Config, webhook: WebhookConfig, note: Message) -> None:
    url = read_secret(webhook.url_env, webhook.url_file, "notify.webhook.url", config)
    assert url is not None  # exactly one of url_env / url_file is set (the model checks)
    body: dict[str, Any]
    if webhook.format == "slack":
        body = {"text": f"*{_slack(note.subject)}*\n```{_slack(note.body)}```"}
    elif webhook.format == "teams":
        body = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        # RichTextBlock, not TextBlock: a TextRun's text is never read as
                        # Markdown, so a name from a source cannot add a link or a heading
                        "body": [
                            {
                                "type": "RichTextBlock",
                                "inlines": [
                                    {"type": "TextRun", "text": note.subject, "weight": "Bolder"}
                                ],
                            },
                            {
                                "type": "RichTextBlock",
                                "inlines": [
                                    {"type": "TextRun", "text": note.body, "fontType": "Monospace"}
                                ],
                            },
                        ],
                    },
                }
            ],
        }
    else:
        body = note.data | {"subject": note.subject, "text": note.body}
    response = httpx.post(url, json=body, timeout=webhook.timeout_seconds)
    response.raise_for_status()


def _slack(text: str) -> str:
    """Slack reads ``<!channel>`` and ``<url|label>`` in a message: the three characters it
    asks to escape are escaped, so a name cannot call everyone or hide a link."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("```", "`\u200b``")  # three backticks would end the code block


def _without_url(error: Exception) -> str:
    """httpx names the URL in its errors; a webhook URL carries its token."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return str(error).split(" for url ")[0].split("'http")[0].strip() or type(error).__name__


def write_textfile(
    path: Path, config: Config, outcome: RunOutcome, changes: list[ChangeOutcome], started: float
) -> None:
    """The Prometheus textfile-collector metrics of this run, replaced atomically.

    Raises:
        OSError: the file cannot be written.
    """
    finished = time.time()
    profile = _label(str(config.path))
    previous_success = _previous(path, "zsync_last_success_timestamp_seconds")
    success = finished if outcome.exit_code is ExitCode.OK else previous_success
    counts = Counter((c.action.value, c.state.value) for c in changes)
    lines = [
        "# HELP zsync_last_run_timestamp_seconds When the last headless run ended.",
        "# TYPE zsync_last_run_timestamp_seconds gauge",
        f'zsync_last_run_timestamp_seconds{{profile="{profile}"}} {finished:.3f}',
        "# HELP zsync_last_success_timestamp_seconds When the last run that exited 0 ended.",
        "# TYPE zsync_last_success_timestamp_seconds gauge",
    ]
    # 0 before the first success: an alert on its age fires then too (a profile that has
    # never synced cleanly is as much a problem as one that stopped)
    lines.append(f'zsync_last_success_timestamp_seconds{{profile="{profile}"}} {success or 0:.3f}')
    lines += [
        "# HELP zsync_last_run_exit_code The last run's exit code (0 done, 1 failed, 2 held, 3 could not run).",
        "# TYPE zsync_last_run_exit_code gauge",
        f'zsync_last_run_exit_code{{profile="{profile}"}} {int(outcome.exit_code)}',
        "# HELP zsync_last_run_status The last run's status (1 for the one it ended with).",
        "# TYPE zsync_last_run_status gauge",
        f'zsync_last_run_status{{profile="{profile}",status="{outcome.status.value}"}} 1',
        "# HELP zsync_last_run_duration_seconds How long the last run took.",
        "# TYPE zsync_last_run_duration_seconds gauge",
        f'zsync_last_run_duration_seconds{{profile="{profile}"}} {finished - started:.3f}',
        "# HELP zsync_last_run_changes Changes of the last run by action and result.",
        "# TYPE zsync_last_run_changes gauge",
    ]
    for (action, state), count in sorted(counts.items()):
        lines.append(
            f'zsync_last_run_changes{{profile="{profile}",action="{action}",result="{state}"}} {count}'
        )
    lines += [
        "# HELP zsync_last_run_problems What kept the last run from a clean success, by kind "
        "(failed, held, not_sent, unusable, removals_blocked, left_alone; 0 when none).",
        "# TYPE zsync_last_run_problems gauge",
    ]
    problems = outcome.problems
    for kind in PROBLEM_KINDS:
        lines.append(
            f'zsync_last_run_problems{{profile="{profile}",kind="{kind}"}} {problems.get(kind, 0)}'
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the file it replaces keeps its mode, no wider than 0640
        mode = stat.S_IMODE(path.stat().st_mode) & ADMIN_FILE_MODE
    except FileNotFoundError:
        mode = ADMIN_FILE_MODE
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _label(value: str) -> str:
    return inert(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _previous(path: Path, metric: str) -> float | None:
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(metric + "{"):
                return float(line.rsplit(" ", 1)[1])
    except (OSError, ValueError):
        return None
    return None
