"""Concurrent apply: changes that touch one address never race; the rest go side by side."""

from __future__ import annotations

from zsync_core.apply import _lanes
from zsync_core.model import AccountState, Action, Change, Kind, ZivverAccount, address_set


def change(number: int, email: str, before: dict, after: dict, action=Action.UPDATE_USER) -> Change:
    desired = AccountState(
        email, after.get("display_name", ""), True, address_set(after.get("aliases", ()))
    )
    current = None
    if before:  # the account as Zivver has it: its address and aliases before the change
        current = ZivverAccount(
            Kind.PERSONAL,
            f"z{number}",
            before.get("email", email),
            before.get("display_name", ""),
            True,
            address_set(before.get("aliases", ())),
        )
    return Change(
        number,
        action,
        email,
        f"z{number}" if before else None,
        f"s{number}",
        "AD",
        desired,
        frozenset(after),
        before,
        after,
        current=current,
    )


def test_a_moved_alias_and_a_freed_address_keep_their_plan_order_in_one_lane():
    give_up = change(1, "ann@example.org", {"aliases": ["sales@example.org"]}, {"aliases": []})
    unrelated = change(2, "bob@example.org", {"display_name": "B"}, {"display_name": "Bob"})
    take = change(3, "cat@example.org", {"aliases": []}, {"aliases": ["sales@example.org"]})
    rename_away = change(
        4, "dan.new@example.org", {"email": "dan@example.org"}, {"email": "dan.new@example.org"}
    )
    take_address = change(
        5, "dan@example.org", {}, {"email": "dan@example.org"}, Action.CREATE_USER
    )

    lanes = _lanes([give_up, unrelated, take, rename_away, take_address])

    assert [[c.id for c in lane] for lane in lanes] == [[1, 3], [2], [4, 5]]
