"""Words every view of a change or a run shares — the command line's text, the TUI, the
reports — so one thing reads the same everywhere: a field's name, a value, a run's mode.

An SsoAccountKey is shown as the source holds it only where the source's own data is shown
(``zsync show source``, the source entries in an explanation: Zivver's SSO troubleshooting
sends admins there). Wherever zsync shows what it sends or sent (a change's values, the
mapping, the history, a report, a notification) it is ``(set)``: those are copied into
tickets and chats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outcome import TimelineEntry

FIELD_NAMES = {
    "email": "Address",
    "display_name": "Name",
    "active": "Active",
    "aliases": "Aliases",
    "delegates": "Delegates",
    "division": "Division",
    "phone": "Phone",
    "sso_key": "SsoAccountKey",
}
SET = "(set)"
"""An SsoAccountKey in what zsync sends or sent."""


def field_names(fields: Iterable[str]) -> list[str]:
    """Fields as every view names them, sorted."""
    return sorted(FIELD_NAMES.get(f, f) for f in fields)


def mode_name(mode: str, dry_run: bool = False) -> str:
    """A run's mode as every view names it, as the command line does: ``TUI`` (``zsync``)
    or ``headless`` (``zsync --headless``, the daily run); JSON says ``tui``/``headless``."""
    name = {"tui": "TUI"}.get(mode, mode)
    return f"{name}, dry run" if dry_run else name


def history_line(entry: TimelineEntry, when: str) -> str:
    """One journaled change: ``run 12 (headless) <when>: suspend-user failed: …``."""
    change = entry.change
    failed = f": {change.error}" if change.error else ""
    return (
        f"run {entry.run_id} ({mode_name(entry.mode, entry.dry_run)}) {when}: "
        f"{change.action.value} {change.state.value}{failed}"
    )


def masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """A change's values with its SsoAccountKey as ``(set)`` (None and "" stay as they are)."""
    shown = dict(values)
    if shown.get("sso_key"):
        shown["sso_key"] = SET
    return shown


def field_value(value: Any) -> str:
    """A field's value in a diff: lists as sorted comma-separated text, nothing as a dash."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(sorted(str(v) for v in value))
    return str(value)


def diff_rows(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(field, before, after) for every field a change touches, its SsoAccountKey masked."""
    before, after = masked(before), masked(after)
    rows = [
        (FIELD_NAMES.get(key, key), field_value(before.get(key)), field_value(value))
        for key, value in after.items()
    ]
    rows += [
        (FIELD_NAMES.get(key, key), field_value(value), "(removed)")
        for key, value in before.items()
        if key not in after
    ]
    return rows
