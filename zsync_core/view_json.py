"""The read-only views as JSON (``zsync show source|zivver --json``, ``zsync explain
--json``): a contract, as the run's report is. Every value is plain JSON; the front end
writes it through :func:`~.output.inert_json`."""

from __future__ import annotations

from .model import Change, SourceAccount, Unusable, ZivverAccount
from .views import Explanation, SourceView, Standing, ZivverRow
from .wording import masked, mode_name


def _has(text: str, *values: object) -> bool:
    """Whether ``text`` (folded) is in any of ``values`` (strings, or sets of them)."""
    for value in values:
        if isinstance(value, str) and text in value.casefold():
            return True
        if isinstance(value, frozenset) and any(text in v.casefold() for v in value):
            return True
    return False


def source_account_json(account: SourceAccount) -> dict[str, object]:
    return {
        "address": account.email,
        "name": account.display_name,
        "kind": account.kind.value,
        "active": account.active,
        "state": "active" if account.active else "disabled",
        "aliases": sorted(account.aliases),
        "delegates": sorted(account.delegates),
        "immutable_id": account.source_id,
        "sso_key": account.sso_key,
        "division": account.division,
        "phone": account.phone,
        "entry": account.entry,
    }


def unusable_json(unusable: Unusable) -> dict[str, object]:
    return {
        "entry": unusable.where,
        "reason": unusable.reason,
        "address": unusable.address,
        "immutable_id": unusable.source_id,
        "value": unusable.value,
        "account_left_alone": unusable.protects,
    }


def source_json(view: SourceView, text: str = "") -> dict[str, object]:
    """``zsync show source NAME --json``: every account and unusable entry (``text``: only
    those holding it, whatever its case)."""
    wanted = text.casefold()
    accounts = [
        a
        for a in view.accounts
        if not wanted or _has(wanted, a.email, a.display_name, a.aliases, a.entry, a.division or "")
    ]
    unusable = [
        u for u in view.unusable if not wanted or _has(wanted, u.where, u.reason, u.address or "")
    ]
    active = sum(1 for a in view.accounts if a.active)
    held = {u.address for u in view.unusable if u.protects and u.address}
    return {
        "source": view.source.name,
        "type": view.source.type,
        "description": view.source.description,
        "phone_numbers_synced": view.phones_synced,
        "filter": text or None,
        "counts": {
            "accounts": len(view.accounts),
            "active": active,
            "disabled": len(view.accounts) - active,
            "unusable": len(view.unusable),
        },
        "accounts": [source_account_json(a) | {"left_alone": a.email in held} for a in accounts],
        "unusable": [unusable_json(u) for u in unusable],
        "notices": [{"level": n.level, "message": n.message} for n in view.notices],
    }


def zivver_account_json(account: ZivverAccount) -> dict[str, object]:
    return {
        "address": account.email,
        "id": account.zivver_id,
        "kind": account.kind.value,
        "name": account.display_name,
        "active": account.active,
        "aliases": sorted(account.aliases),
        "delegates": sorted(account.delegates),
        "division": account.division,
        "phones": list(account.phones),
    }


def _change_json(change: Change) -> dict[str, object]:
    return {
        "action": change.action.value,
        "fields": sorted(change.fields),
        "before": masked(change.before),
        "after": masked(change.after),
        "guard": change.guard.value if change.guard else None,
    }


def zivver_json(
    rows: list[ZivverRow], text: str = "", unaddressed: list[str] | None = None
) -> dict[str, object]:
    """``zsync show zivver --json``: each account Zivver holds and what zsync makes of it;
    ``unaddressed``: those whose address zsync cannot use (described; never touched)."""
    wanted = text.casefold()
    counts: dict[str, int] = {standing.value: 0 for standing in Standing}
    for row in rows:
        counts[row.standing.value] += 1
    shown = [
        r
        for r in rows
        if not wanted
        or _has(wanted, r.account.email, r.account.display_name, r.account.aliases, r.source or "")
    ]
    return {
        "filter": text or None,
        "counts": {"accounts": len(rows), **counts},
        "accounts": [
            zivver_account_json(r.account)
            | {
                "standing": r.standing.value,
                "source": r.source,
                "matched_by": r.matched_by,
                "sso_key": r.sso_key.value or None,
                "unreadable": r.unreadable,
                "next_change": _change_json(r.change) if r.change else None,
            }
            for r in shown
        ],
        "unaddressed": list(unaddressed or []),
    }


def explanation_json(e: Explanation) -> dict[str, object]:
    """``zsync explain ADDRESS --json``."""
    return {
        "address": e.address,
        "verdict": e.verdict,
        "standing": e.standing.value if e.standing else None,
        "sources": [
            {
                "source": h.account.source,
                "entry": h.account.entry,
                "holds_as": h.holds_as,
                "wins": h.wins,
                "why": h.why,
                "account": source_account_json(h.account),
            }
            for h in e.holdings
        ],
        "unusable": [unusable_json(u) | {"source": u.source} for u in e.unusable],
        "mapping": [
            {
                "immutable_id": m.source_id,
                "zivver_id": m.zivver_id,
                "address": m.email,
                "source": m.source,
                "kind": m.kind,
                "sso_key_sent": None
                if m.sso_key_sent is None
                else ("known" if m.sso_key_sent else "none"),
                "recorded_at": m.updated_at,
            }
            for m in e.mapping
        ],
        "zivver": zivver_account_json(e.zivver) if e.zivver else None,
        "zivver_holds_as": e.zivver_as,
        "zivver_unreadable": e.unreadable,
        "next_run": [_change_json(c) for c in e.changes],
        "not_sent": [{"fields": list(n.fields), "reason": n.reason} for n in e.not_sent],
        "timeline": [
            {
                "run": t.run_id,
                "at": t.at,
                "mode": t.mode,
                "mode_name": mode_name(t.mode),
                "dry_run": t.dry_run,
                "action": t.change.action.value,
                "state": t.change.state.value,
                "error": t.change.error,
                "http_status": t.change.http_status,
                "before": masked(t.change.before),
                "after": masked(t.change.after),
            }
            for t in e.timeline
        ],
    }
