"""One account explained (``zsync explain`` in the TUI): why the next run does what it does
to it, the source entries that hold it, the mapping, Zivver's account and its history."""

from __future__ import annotations

import dataclasses

from zsync_core.views import Explanation
from zsync_core.wording import field_names, history_line

from .. import fmt
from .detail import DetailScreen, diff_rows

BEFORE_UPDATE = (
    "Not known yet: the sources and Zivver were read before the update just sent (its "
    "outcome is in the history below). Start a new synchronization (n) to see the next run."
)


def explanation_screen(e: Explanation, before_update: bool = False) -> DetailScreen:
    """The explanation as a detail screen (Escape closes it); ``before_update``: read before
    an update that has been sent since (the next run is not known)."""
    if before_update:
        e = dataclasses.replace(e, verdict=BEFORE_UPDATE, changes=[], not_sent=[])
    facts = [("Next run", e.verdict)]
    if e.standing is not None:
        facts.append(
            ("In Zivver", e.standing.value + (" (before the update)" if before_update else ""))
        )
    zivver = e.zivver
    if zivver is not None:
        alias = {"alias": ", as an alias", "renamed": ", to be renamed"}.get(e.zivver_as or "", "")
        state = "active" if zivver.active else "not active"
        read = " — as read before the update" if before_update else ""
        facts.append(
            (
                "Zivver account",
                f"{zivver.email} ({zivver.kind.value}, {state}{alias}), id {zivver.zivver_id}{read}",
            )
        )
    for record in e.mapping:
        facts.append(
            (
                "Mapping",
                f"source id {record.source_id} → Zivver {record.zivver_id}, recorded "
                f"{fmt.clock(record.updated_at)}",
            )
        )
    rows = diff_rows(e.changes[0].before, e.changes[0].after) if e.changes else []
    sources = [
        f"{h.account.source} {h.account.entry} ({h.account.kind.value}, "
        f"{'active' if h.account.active else 'disabled'}): {h.why}"
        for h in e.holdings
    ] + [f"{u.source} {u.where}: unusable, {u.reason}" for u in e.unusable]
    history = [history_line(t, fmt.clock(t.at)) for t in e.applied]
    dry = len(e.timeline) - len(e.applied)
    if dry:
        history.append(f"({dry} change(s) planned in dry runs are not listed)")
    for n in e.not_sent:
        facts.append(("Not sent", f"{', '.join(field_names(n.fields))}: {n.reason}"))
    sections = [
        ("Sources", "\n".join(sources) or "No source holds this address."),
        ("History", "\n".join(history) or "No change to it was recorded."),
    ]
    return DetailScreen(e.address, facts, rows, sections)
