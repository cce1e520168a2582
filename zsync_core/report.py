"""The JSON report of a run (``--report FILE``): a monitoring contract, built here from the
session and how the run ended; a front end only writes it (product.md: the plan and every
change's outcome)."""

from __future__ import annotations

import time
from typing import Any

from . import __version__
from .conclusion import RunOutcome
from .model import Takeover
from .outcome import ChangeState
from .output import inert
from .session import SyncSession
from .wording import masked


def run_report(
    session: SyncSession | None,
    outcome: RunOutcome,
    dry_run: bool,
    started: float,
    profile: str | None = None,
) -> dict[str, Any]:
    """The report's data: exact values (addresses, fields before and after), and every
    message inert as zsync prints it. ``session`` is None when the run could not start (a
    bad profile, a missing secret): the report still says so."""
    plan, result, confirmed = outcome.plan, outcome.result, outcome.confirmed
    journaled = {o.change_id: o for o in session.outcomes()} if session else {}
    changes: list[dict[str, Any]] = []
    for change in plan.changes if plan else []:
        done = journaled.get(change.id)
        changes.append(
            {
                "id": change.id,
                "action": change.action.value,
                "email": change.email,
                "zivver_id": change.zivver_id,
                "source": change.source,
                "before": change.before,
                "after": masked(change.after),
                "guard": change.guard.value if change.guard else None,
                "state": (done.state if done else ChangeState.PLANNED).value,
                "http_status": done.http_status if done else None,
                "error": _human(done.error) if done else None,
            }
        )
    loaded = session.loaded if session else None
    data = {
        "zsync": __version__,
        "run_id": session.run_id if session else None,
        "profile": str(session.config.path) if session else profile,
        "started": _iso(started),
        "finished": _iso(time.time()),
        "dry_run": dry_run,
        "exit_code": int(outcome.exit_code),
        "status": outcome.status.value,
        "message": _human(outcome.message),
        "errors": [_human(e) for e in outcome.errors],
        "sources": {r.name: len(r.accounts) for r in loaded.sources} if loaded else {},
        "zivver_accounts": len(loaded.zivver) if loaded else None,
        "summary": {a.value: n for a, n in plan.by_action().items() if n} if plan else {},
        "guards": [
            {
                "action": g.action.value,
                "count": g.count,
                "total": g.total,
                "text": _human(g.text),
                "confirmed": g.action in confirmed,
            }
            for g in (plan.guards if plan else [])
        ],
        "removals_blocked": _human(plan.removals_blocked) if plan else None,
        "attention": [_human(a) for a in (plan.attention if plan else [])],
        "unusable": [u.as_dict() for u in (plan.unusable if plan else [])],
        "removals_not_planned": list(plan.blocked_removals) if plan else [],
        "left_alone": list(plan.left_alone) if plan else [],
        "takeover": _takeover(plan.takeover) if plan and plan.takeover else None,
        "not_sent": [
            {"email": h.email, "fields": list(h.fields), "reason": _human(h.reason)}
            for h in (plan.not_sent if plan else [])
        ],
        "notices": [
            {"level": n.level, "message": _human(n.message)} for n in (plan.notices if plan else [])
        ],
        "result": {
            "succeeded": len(result.succeeded),
            "failed": len(result.failed),
            "cancelled": result.cancelled,
        }
        if result
        else None,
        "changes": changes,
    }
    return data


def _human(text: str | None) -> str | None:
    """A message in the report, inert as zsync prints it, for whoever prints it next."""
    return None if text is None else inert(text, lines=True)


def _takeover(takeover: Takeover) -> dict[str, Any]:
    return {
        "first_run": takeover.first_run,
        "matched_by_address": takeover.matched_by_address,
        "untouched": list(takeover.untouched),
        "outside_domain_filter": takeover.outside_filter,
        "sso_key_unknown": list(takeover.sso_unknown),
        "members_kept": list(takeover.foreign_members),
        "phone_numbers_changed": takeover.numbers_differ,
        "phone_numbers_replaced": list(takeover.numbers_replaced),
        "text": [inert(line) for line in takeover.lines()],
    }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(timestamp))
