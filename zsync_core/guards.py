"""What waits for a confirmation: the five guarded categories on a plan's changes, and the
delegate removals that follow a departure (sent with it, or not at all).

The planner hands over its changes in any order; :func:`numbered` puts them in plan order,
numbers them and marks each with the guard it waits for.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from .model import ACTION_ORDER, SSO_KEY, Action, Change, Guard, Kind, ZivverAccount
from .section import GuardedAction


class Departing(NamedTuple):
    """A change that removes delegates because those people leave (missing or disabled in
    the sources, active in Zivver)."""

    change: Change
    current: ZivverAccount
    """The account as Zivver has it now."""
    leavers: frozenset[str]
    """The delegates it removes because they leave."""


def leavers(
    removed: frozenset[str],
    staying: set[str],
    renamed: dict[str, str],
    by_email: dict[str, ZivverAccount],
) -> frozenset[str]:
    """The removed delegates who are removed because they leave: active users in Zivver
    whom the sources no longer hold as active people (a renamed one is no removal)."""
    return frozenset(
        address
        for address in removed
        if renamed.get(address, address) not in staying
        and (user := by_email.get(address)) is not None
        and user.kind is Kind.PERSONAL
        and user.active
    )


class Followed(NamedTuple):
    """The changes once each delegate removal follows its departure."""

    pending: list[Change]
    departing: list[Departing]
    kept: list[str]
    """Delegates kept because their departure is not planned: "address (of account)"."""


def follow_departures(pending: list[Change], departing: list[Departing]) -> Followed:
    """Make each delegate removal follow the departure that causes it (nothing unintended is
    destroyed): when the departure is not planned (removals blocked by the read, an
    unreadable entry), the delegate stays. A change left with nothing to do is dropped."""
    departures = _departures(pending)
    kept: list[str] = []
    position = {id(item): number for number, item in enumerate(pending)}
    pending = list(pending)
    dropped: set[int] = set()
    followed = []
    for change, current, leaving in departing:
        staying = leaving - departures.keys()
        if not staying:
            followed.append(Departing(change, current, leaving))
            continue
        kept += sorted(f"{address} (of {current.email})" for address in staying)
        delegates = change.desired.delegates | staying
        fields = set(change.fields)
        if delegates == current.delegates:
            fields.discard("delegates")
        number = position[id(change)]
        if not fields:
            dropped.add(number)
            continue
        action = change.action
        if action is Action.SUSPEND_FUNCTIONAL:
            action = Action.UPDATE_FUNCTIONAL  # some of its delegates stay
        change = pending[number] = Change.planned(
            action,
            change.email,
            current,
            change.source_id,
            change.source,
            change.desired._replace(delegates=delegates),
            fields,
            change.sso_key,
        )
        followed.append(Departing(change, current, leaving - staying))
    if dropped:
        pending = [item for n, item in enumerate(pending) if n not in dropped]
    return Followed(pending, followed, kept)


def numbered(
    pending: list[Change],
    departing: list[Departing],
    threshold_percent: float,
    users: int,
    functional: int,
) -> tuple[list[Change], list[Guard]]:
    """The changes in plan order, numbered from 1 and each marked with the guard it waits
    for, and those guards (a suspension share at or under ``threshold_percent`` needs none)."""
    rank = {action: index for index, action in enumerate(ACTION_ORDER)}
    pending = sorted(pending, key=lambda item: (rank[item.action], item.email))
    guards = _guards(pending, threshold_percent, users, functional)
    guarded = {guard.action for guard in guards}
    linked = _held_with_departures(pending, departing, guarded)
    if linked:
        guards = _with_followers(guards, list(linked.values()))
    changes = []
    for number, item in enumerate(pending, 1):
        guard = guard_of(item.action, item.fields)
        if guard not in guarded:
            guard = linked.get(id(item))
        changes.append(dataclasses.replace(item, id=number, guard=guard))
    return changes, guards


def guard_of(action: Action, fields: frozenset[str]) -> GuardedAction | None:
    """The guarded category of a change, if it has one."""
    if action is Action.SUSPEND_USER:
        return GuardedAction.SUSPEND_USERS
    if action is Action.SUSPEND_FUNCTIONAL:
        return GuardedAction.SUSPEND_FUNCTIONAL
    if action is Action.DELETE_USER:
        return GuardedAction.DELETE_USERS
    if action is Action.DELETE_FUNCTIONAL:
        return GuardedAction.DELETE_FUNCTIONAL
    if action is Action.UPDATE_USER and SSO_KEY in fields:
        return GuardedAction.UPDATE_SSO_KEYS
    return None


def _departures(pending: list[Change]) -> dict[str, Change]:
    """The planned suspensions and deletions of users, by address."""
    return {
        item.email: item
        for item in pending
        if item.action in (Action.SUSPEND_USER, Action.DELETE_USER)
    }


def _held_with_departures(
    pending: list[Change], departing: list[Departing], guarded: set[GuardedAction]
) -> dict[int, GuardedAction]:
    """The guard each change that removes leaving delegates shares with their departure,
    when that departure waits for a confirmation (by ``id()`` of the change)."""
    departures = _departures(pending)
    linked: dict[int, GuardedAction] = {}
    for change, _current, leaving in departing:
        held = {
            guard
            for address in leaving
            if (guard := guard_of(departures[address].action, frozenset())) in guarded
        }
        if held:
            linked[id(change)] = min(held)
    return linked


def _guards(
    pending: list[Change], threshold_percent: float, users: int, functional: int
) -> list[Guard]:
    """One guard per guarded category with changes (a small share of suspensions has none)."""
    counts = {action: 0 for action in GuardedAction}
    named: dict[GuardedAction, list[str]] = {action: [] for action in GuardedAction}
    for item in pending:
        guard = guard_of(item.action, item.fields)
        if guard is not None:
            counts[guard] += 1
            named[guard].append(item.email)
    guards = []
    for guarded, count in counts.items():
        if not count:
            continue
        total = (
            functional
            if guarded in (GuardedAction.SUSPEND_FUNCTIONAL, GuardedAction.DELETE_FUNCTIONAL)
            else users
        )
        if (
            guarded in (GuardedAction.SUSPEND_USERS, GuardedAction.SUSPEND_FUNCTIONAL)
            and count * 100 <= threshold_percent * total
        ):
            continue
        label = guard_label(guarded, count, total)
        detail = guard_detail(guarded, count, total)
        guards.append(Guard(guarded, count, total, label, detail, tuple(sorted(named[guarded]))))
    return guards


def _with_followers(guards: list[Guard], followers: list[GuardedAction]) -> list[Guard]:
    """The guards, each saying how many changes of other accounts wait with it (a functional
    account's update that removes the leavers as delegates): the checklist names all it sends."""
    result = []
    for guard in guards:
        count = followers.count(guard.action)
        if count:
            guard = dataclasses.replace(
                guard,
                detail=f"{guard.detail}, and the update of {count} account(s) that have them as "
                "delegates",
            )
        result.append(guard)
    return result


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f} %" if total else "100 %"


def guard_label(action: GuardedAction, count: int, total: int) -> str:
    """What a guarded action does, in a few words: "Suspend 12 of 140 users"."""
    if action is GuardedAction.SUSPEND_USERS:
        return f"Suspend {count} of {total} users"
    if action is GuardedAction.SUSPEND_FUNCTIONAL:
        return f"Disable {count} of {total} functional accounts"
    if action is GuardedAction.DELETE_USERS:
        return f"Delete {count} users"
    if action is GuardedAction.DELETE_FUNCTIONAL:
        return f"Delete {count} functional accounts"
    return f"Update the SsoAccountKey of {count} existing users"


def guard_detail(action: GuardedAction, count: int, total: int) -> str:
    """What the checklist line says after the label: the share, or why it is guarded."""
    if action in (GuardedAction.SUSPEND_USERS, GuardedAction.SUSPEND_FUNCTIONAL):
        return f" ({_percent(count, total)})"
    if action is GuardedAction.DELETE_USERS:
        return " — irreversible, their messages are lost"
    if action is GuardedAction.DELETE_FUNCTIONAL:
        return " — irreversible"
    return " — can break single sign-on"
