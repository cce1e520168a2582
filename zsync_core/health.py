"""Read health: what a load read, and what that lets a plan do (the same answer for both
front ends, see product.md's safety rules).

- a source or Zivver that could not be read completely: the load failed; nothing is planned
  or sent (``ExitCode.CANNOT_RUN``);
- a source far smaller than at the last good run (``sync.shrink_guard_percent``): the plan is
  *refused* (``Plan.refused``). The TUI shows it with no removals so the admin can look, but
  will not send it; headless sends nothing and exits 3. Raising the option (for this run in the
  TUI's options, or in the profile) is how an admin says the drop is real;
- entries a source could not identify: no suspension or deletion is planned from that source
  (``Plan.removals_blocked``); every other change applies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from .config import SyncConfig
from .loading import LoadResult
from .model import NotSent, Plan


def refused(loaded: LoadResult, baseline: Mapping[str, int], options: SyncConfig) -> str | None:
    """Why nothing from this read may be sent (see the module's read-health policy)."""
    if not loaded.ok:
        return f"the read was incomplete ({'; '.join(loaded.errors())})"
    return _shrunk(loaded, baseline, options)


def removals_blocked(loaded: LoadResult, refused: str | None) -> str | None:
    """Why no suspension or deletion may be planned from this read, or None."""
    if loaded.source_errors:
        return f"source(s) {', '.join(loaded.source_errors)} could not be read completely"
    unsure = [u for r in loaded.sources for u in r.unusable if u.unidentified]
    if unsure:
        named = ", ".join(f"{u.source} {u.where}" for u in unsure[:5])
        more = f" and {len(unsure) - 5} more" if len(unsure) > 5 else ""
        return (
            f"{len(unsure)} source entr{'y' if len(unsure) == 1 else 'ies'} could not be "
            f"read, neither address nor id ({named}{more}): any of them may be an account "
            "that would otherwise be suspended or deleted"
        )
    return refused


def _shrunk(loaded: LoadResult, baseline: Mapping[str, int], options: SyncConfig) -> str | None:
    """A source that returned nothing, or far fewer accounts than at the last good run."""
    previous = baseline
    share = options.shrink_guard_percent
    for source in loaded.sources:
        before = previous.get(source.name)
        now = source.size
        if before and (before - now) * 100 > share * before:
            return (
                f"source {source.name!r} returned {now} accounts, against {before} at the last good run "
                f"(a drop of more than sync.shrink_guard_percent = {share:g} %). Check the source (base_dn, "
                "filters, the service account's rights). If the drop is real, run once with a higher "
                "shrink_guard_percent"
            )
    return None


def needs_admin(plan: Plan) -> list[str]:
    """What else in this run needs the admin (product.md: a run that skipped or blocked
    anything never exits 0): source entries skipped as unusable, and suspensions or
    deletions not planned because the read was not healthy (:attr:`Plan.attention`)."""
    parts = []
    skipped = sum(1 for u in plan.unusable if u.protects)
    if skipped:
        parts.append(
            f"{skipped} source entr{'y' if skipped == 1 else 'ies'} skipped as unusable "
            "(each is named in an error)"
        )
    values = Counter(u.value for u in plan.unusable if u.value)
    for value, count in sorted(values.items()):
        parts.append(
            f"{count} {value}{'' if count == 1 else 's'} that cannot be read, not synced "
            "(each is named in an error; the accounts synced without it)"
        )
    if plan.ignored:
        parts.append(
            f"{plan.ignored} source entr{'y' if plan.ignored == 1 else 'ies'} ignored because "
            "a source earlier in the order holds the same address (each is named in a warning)"
        )
    if plan.skipped:
        parts.append(
            f"{len(plan.skipped)} account(s) not synced because they clash with Zivver "
            "(each is named in a warning)"
        )
    if plan.removals_blocked:
        parts.append(f"no suspension or deletion was planned: {plan.removals_blocked}")
    return parts


UNREADABLE_NOT_SENT = (
    "Zivver answered these accounts in a shape zsync cannot read whole (see the warnings), so "
    "it cannot tell what a write would remove and sends nothing to them"
)


def hold_unreadable(plan: Plan, unreadable: Mapping[str, str]) -> None:
    """Take every change to an account Zivver answered unreadably out of ``plan``, into its
    held writes (exit 2, named), with the accounts the sources hold that need none: what
    Zivver has of them is unknown, so "in step" is not known either."""
    if not unreadable:
        return
    held: dict[str, list[str]] = {}
    emails: dict[str, str] = {}
    kept = []
    for change in plan.changes:
        if change.zivver_id is not None and change.zivver_id in unreadable:
            held.setdefault(change.zivver_id, []).append(change.action.value)
            emails[change.zivver_id] = change.email
        else:
            kept.append(change)
    plan.changes[:] = kept
    # a confirmation is asked only for what will be sent
    plan.guards[:] = [g for g in plan.guards if any(c.guard is g.action for c in kept)]
    for match in plan.matches:
        if match.zivver_id in unreadable and match.zivver_id not in held:
            held[match.zivver_id] = ["(not compared)"]
            emails[match.zivver_id] = match.email
    plan.not_sent += [
        NotSent(emails[zivver_id], tuple(actions), UNREADABLE_NOT_SENT)
        for zivver_id, actions in held.items()
    ]
