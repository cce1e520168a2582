"""The planner, pure: no servers, no event loop."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from zsync_core.config import GuardedAction, SyncConfig
from zsync_core.merge import MappingEntry, merge_sources
from zsync_core.model import Action, Kind, Plan, SourceAccount, ZivverAccount
from zsync_core.plan import plan


def src(
    email: str,
    sid: str | None = None,
    *,
    kind=Kind.PERSONAL,
    active=True,
    name=None,
    aliases=(),
    delegates=(),
    source="AD",
) -> SourceAccount:
    return SourceAccount(
        kind,
        sid or f"id-{email}",
        email,
        name or email.split("@")[0],
        active,
        source,
        f"cn={email}",
        frozenset(aliases),
        frozenset(delegates),
    )


def ziv(
    email: str,
    zid: str | None = None,
    *,
    kind=Kind.PERSONAL,
    active=True,
    name=None,
    aliases=(),
    delegates=(),
) -> ZivverAccount:
    return ZivverAccount(
        kind,
        zid or f"z-{email}",
        email,
        name or email.split("@")[0],
        active,
        frozenset(aliases),
        frozenset(delegates),
    )


OPTIONS = SyncConfig(domains=["example.org"])


def actions(result: Plan) -> list[tuple[str, str]]:
    return [(c.action.value, c.email) for c in result.changes]


def test_a_changed_address_on_the_same_id_is_a_rename():
    result = plan(
        [src("new@example.org", "guid-1")],
        [ziv("old@example.org", "z1")],
        {"guid-1": MappingEntry("z1")},
        OPTIONS,
    )
    assert actions(result) == [("update-user", "new@example.org")]
    assert result.changes[0].before["email"] == "old@example.org"
    assert result.changes[0].zivver_id == "z1"


def test_first_time_matching_falls_back_to_the_address():
    result = plan([src("ann@example.org", "guid-1")], [ziv("ann@example.org", "z1")], {}, OPTIONS)
    assert result.changes == []
    assert [(m.source_id, m.zivver_id) for m in result.matches] == [("guid-1", "z1")]


def test_an_address_taken_by_another_mapped_entry_is_skipped_not_stolen():
    sources = [src("ann@example.org", "guid-new"), src("ann.old@example.org", "guid-old")]
    zivver = [ziv("ann@example.org", "z1")]
    result = plan(sources, zivver, {"guid-old": MappingEntry("z1")}, OPTIONS)
    assert ("create-user", "ann@example.org") not in actions(result)
    assert actions(result) == [("update-user", "ann.old@example.org")]
    assert any("belongs to another directory entry" in n.message for n in result.notices)


def test_an_address_zivver_holds_as_another_accounts_alias_is_not_created():
    """Zivver refuses such a create with a bare 409; the admin is told which account has it."""
    sources = [src("ann@example.org"), src("info@example.org")]
    zivver = [ziv("ann@example.org", aliases=["info@example.org"])]
    result = plan(sources, zivver, {}, OPTIONS)
    assert actions(result) == []
    assert result.skipped == ["info@example.org"], "the run needs the admin (exit 2)"
    (said,) = [n.message for n in result.notices if "info@example.org (" in n.message]
    assert "Zivver holds it as an alias of ann@example.org" in said


def test_personal_on_one_side_and_functional_on_the_other_is_skipped():
    result = plan(
        [
            src("desk@example.org", kind=Kind.FUNCTIONAL, delegates=["ann@example.org"]),
            src("ann@example.org"),
        ],
        [ziv("desk@example.org"), ziv("ann@example.org")],
        {},
        OPTIONS,
    )
    assert actions(result) == []
    assert any(
        "Skipping desk@example.org: it is a functional account" in n.message for n in result.notices
    )


def test_nothing_outside_the_domain_filter_is_touched():
    sources = [src("ann@other.com"), src("bob@example.org", aliases=["bob@other.com"])]
    zivver = [ziv("eve@other.com")]
    result = plan(
        sources,
        zivver,
        {"id-eve@other.com": MappingEntry("z-eve@other.com")},
        OPTIONS.model_copy(update={"delete_users": True}),
    )
    assert actions(result) == [("create-user", "bob@example.org")]
    assert "aliases" not in result.changes[0].after


def test_unowned_zivver_accounts_are_never_suspended():
    result = plan(
        [], [ziv("ceo@example.org")], {}, OPTIONS.model_copy(update={"delete_users": True})
    )
    assert result.changes == []


def test_owned_accounts_missing_from_the_sources_are_suspended_or_deleted():
    mapping = {"g1": MappingEntry("z1"), "g2": MappingEntry("z2")}
    zivver = [
        ziv("a@example.org", "z1"),
        ziv("desk@example.org", "z2", kind=Kind.FUNCTIONAL, delegates=["a@example.org"]),
    ]
    assert actions(plan([], zivver, mapping, OPTIONS)) == [
        ("suspend-user", "a@example.org"),
        ("suspend-functional", "desk@example.org"),
    ]
    both = OPTIONS.model_copy(update={"delete_users": True, "delete_functional_accounts": True})
    assert actions(plan([], zivver, mapping, both)) == [
        ("delete-user", "a@example.org"),
        ("delete-functional", "desk@example.org"),
    ]


def test_an_unhealthy_read_plans_no_suspension_or_deletion():
    mapping = {"g1": MappingEntry("z1"), "g2": MappingEntry("z2")}
    zivver = [ziv("a@example.org", "z1"), ziv("b@example.org", "z2")]
    result = plan(
        [src("b@example.org", "g2", active=False), src("c@example.org")],
        zivver,
        mapping,
        OPTIONS,
        removals_blocked="source AD failed",
    )
    assert actions(result) == [("create-user", "c@example.org")]
    assert any(
        "2 suspension(s) or deletion(s) were not planned (a@example.org, b@example.org): "
        "source AD failed" in n.message
        for n in result.notices
    )


def test_entries_a_source_could_not_parse_are_not_leavers():
    mapping = {"g1": MappingEntry("z1")}
    result = plan(
        [], [ziv("a@example.org", "z1")], mapping, OPTIONS, protected_ids=frozenset({"g1"})
    )
    assert result.changes == []


def users(count: int) -> list[ZivverAccount]:
    return [ziv(f"u{n}@example.org", f"z{n}") for n in range(count)]


def suspend_plan(total: int, disabled: int, threshold: float = 5) -> Plan:
    zivver = users(total)
    mapping = {f"g{n}": MappingEntry(f"z{n}") for n in range(total)}
    sources = [src(f"u{n}@example.org", f"g{n}", active=n >= disabled) for n in range(total)]
    return plan(
        sources,
        zivver,
        mapping,
        OPTIONS.model_copy(update={"suspend_threshold_percent": threshold}),
    )


def test_the_suspension_guard_is_exact_at_the_threshold():
    at = suspend_plan(100, 5)
    assert at.guards == [] and all(c.guard is None for c in at.changes)
    over = suspend_plan(100, 6)
    assert [(g.action, g.count, g.total) for g in over.guards] == [
        (GuardedAction.SUSPEND_USERS, 6, 100)
    ]
    assert over.guards[0].text == "Suspend 6 of 100 users (6.0 %)"
    assert all(c.guard is GuardedAction.SUSPEND_USERS for c in over.changes)
    assert suspend_plan(100, 6, threshold=10).guards == []
    assert suspend_plan(40, 2).guards == [] and len(suspend_plan(40, 3).guards) == 1


def test_deletions_and_sso_key_updates_are_always_guarded():
    mapping = {"g1": MappingEntry("z1"), "g2": MappingEntry("z2", sso_key_sent="old")}
    zivver = [ziv("a@example.org", "z1"), ziv("b@example.org", "z2")]
    sources = [src("b@example.org", "g2")._replace(sso_key="new")]
    options = OPTIONS.model_copy(update={"delete_users": True, "update_sso_keys": True})
    result = plan(sources, zivver, mapping, options)
    assert {g.action for g in result.guards} == {
        GuardedAction.DELETE_USERS,
        GuardedAction.UPDATE_SSO_KEYS,
    }
    assert {c.action: c.guard for c in result.changes} == {
        Action.DELETE_USER: GuardedAction.DELETE_USERS,
        Action.UPDATE_USER: GuardedAction.UPDATE_SSO_KEYS,
    }


def test_an_alias_that_is_another_accounts_address_is_dropped():
    result = plan(
        [src("ann@example.org", aliases=["bob@example.org", "a@example.org"])],
        [ziv("bob@example.org")],
        {},
        OPTIONS,
    )
    assert result.changes[0].after["aliases"] == ["a@example.org"]
    assert any("merge the two accounts irreversibly" in n.message for n in result.notices)


def test_delegates_that_are_not_synced_accounts_are_dropped():
    sources = [
        src(
            "desk@example.org",
            kind=Kind.FUNCTIONAL,
            delegates=["ann@example.org", "ext@example.org", "off@example.org"],
        ),
        src("ann@example.org"),
        src("off@example.org", active=False),
    ]
    result = plan(sources, [], {}, OPTIONS)
    desk = next(c for c in result.changes if c.email == "desk@example.org")
    assert desk.after["delegates"] == ["ann@example.org"]
    said = {n.message: n.level for n in result.notices}
    assert (
        said["Delegate off@example.org of desk@example.org is not an active person; dropped."]
        == "info"
    )
    [(outside, level)] = [(m, v) for m, v in said.items() if "ext@example.org of desk" in m]
    assert "is in no source (or outside the domain filter)" in outside and level == "warning"


def test_users_come_before_functional_accounts():
    sources = [
        src("desk@example.org", kind=Kind.FUNCTIONAL, delegates=["zed@example.org"]),
        src("zed@example.org"),
    ]
    assert [c.action for c in plan(sources, [], {}, OPTIONS).changes] == [
        Action.CREATE_USER,
        Action.CREATE_FUNCTIONAL,
    ]


def test_merge_keeps_the_first_source_and_reports_the_conflict():
    merged, notices, unusable, ignored = merge_sources(
        [
            ("AD", [src("a@example.org", "1")]),
            (
                "CSV",
                [src("a@example.org", "2", source="CSV"), src("b@example.org", "3", source="CSV")],
            ),
        ]
    )
    assert [(a.email, a.source) for a in merged] == [
        ("a@example.org", "AD"),
        ("b@example.org", "CSV"),
    ]
    assert "a@example.org appears twice" in notices[0].message
    assert ignored == 1 and unusable == []


def test_an_id_another_entry_has_makes_the_later_entry_unusable_and_protects_it():
    """u2's row got u1's id: ignoring it left u2's Zivver account unclaimed, and suspended."""
    merged, _notices, unusable, _ignored = merge_sources(
        [("CSV", [src("u1@example.org", "E1"), src("u2@example.org", "E1")])]
    )
    assert [a.email for a in merged] == ["u1@example.org"]
    [clash] = unusable
    assert clash.address == "u2@example.org" and "also the id of" in clash.reason


def test_switched_off_options_plan_nothing_of_their_kind():
    mapping = {"g1": MappingEntry("z1")}
    zivver = [ziv("a@example.org", "z1", name="Old")]
    sources = [src("a@example.org", "g1", name="New", active=False), src("b@example.org")]
    off = OPTIONS.model_copy(
        update={"create_users": False, "suspend_users": False, "update_users": False}
    )
    assert plan(sources, zivver, mapping, off).changes == []


# --- properties -------------------------------------------------------------------------

NAMES = [f"p{n}@example.org" for n in range(8)]
DESKS = [f"f{n}@example.org" for n in range(3)]


@st.composite
def worlds(draw):
    people = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=8))
    accounts = [
        src(
            e,
            f"g-{e}",
            active=draw(st.booleans()),
            name=draw(st.sampled_from(["A", "B"])),
            aliases=draw(
                st.sets(st.sampled_from([f"x{n}@example.org" for n in range(3)]), max_size=2)
            )
            - {e},
            delegates=draw(st.sets(st.sampled_from(NAMES), max_size=3)),
        )
        for e in people
    ]
    for desk in draw(st.lists(st.sampled_from(DESKS), unique=True, max_size=3)):
        accounts.append(
            src(
                desk,
                f"g-{desk}",
                kind=Kind.FUNCTIONAL,
                active=draw(st.booleans()),
                delegates=draw(st.sets(st.sampled_from(NAMES), max_size=4)),
            )
        )
    existing = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=8))
    zivver = [ziv(e, f"z-{e}", active=draw(st.booleans()), name="A") for e in existing]
    owned = {f"g-{e}": MappingEntry(f"z-{e}") for e in existing if draw(st.booleans())}
    return accounts, zivver, owned


_ids = itertools.count()


def simulate(
    result: Plan, zivver: list[ZivverAccount], mapping: dict[str, MappingEntry]
) -> tuple[list[ZivverAccount], dict[str, MappingEntry]]:
    """What Zivver and the store look like after the plan was applied."""
    state = {z.zivver_id: z for z in zivver}
    mapping = dict(mapping)
    for match in result.matches:
        mapping[match.source_id] = MappingEntry(match.zivver_id)
    for change in result.changes:
        after = change.after
        if change.action in (Action.CREATE_USER, Action.CREATE_FUNCTIONAL):
            new_id = f"new-{next(_ids)}"
            kind = change.action.kind
            state[new_id] = ZivverAccount(
                kind,
                new_id,
                after["email"],
                after["display_name"],
                kind is Kind.PERSONAL or bool(after.get("delegates")),
                frozenset(after.get("aliases", [])),
                frozenset(after.get("delegates", [])),
            )
            mapping[change.source_id] = MappingEntry(new_id, change.sso_key)
        elif change.action in (Action.DELETE_USER, Action.DELETE_FUNCTIONAL):
            del state[change.zivver_id]
        else:
            old = state[change.zivver_id]
            fields = {
                "email": old.email,
                "display_name": old.display_name,
                "active": old.active,
                "aliases": old.aliases,
                "delegates": old.delegates,
            }
            fields.update(
                {
                    k: (frozenset(v) if isinstance(v, list) else v)
                    for k, v in after.items()
                    if k in fields
                }
            )
            if old.kind is Kind.FUNCTIONAL:
                fields["active"] = bool(fields["delegates"])
            state[change.zivver_id] = old._replace(**fields)
    return list(state.values()), mapping


@settings(max_examples=300, deadline=None)
@given(worlds(), st.booleans())
def test_applying_a_plan_then_planning_again_gives_zero_changes(world, deletes):
    sources, zivver, mapping = world
    options = OPTIONS.model_copy(
        update={"delete_users": deletes, "delete_functional_accounts": deletes}
    )
    first = plan(sources, zivver, mapping, options)
    after, new_mapping = simulate(first, zivver, mapping)
    second = plan(sources, after, new_mapping, options)
    assert actions(second) == []


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_an_account_active_in_the_sources_is_never_suspended_or_deleted(world):
    sources, zivver, mapping = world
    options = OPTIONS.model_copy(update={"delete_users": True, "delete_functional_accounts": True})
    result = plan(sources, zivver, mapping, options)
    active = {a.email for a in sources if a.active and (a.kind is Kind.PERSONAL)}
    removed = {
        c.email
        for c in result.changes
        if c.action in (Action.SUSPEND_USER, Action.DELETE_USER, Action.DELETE_FUNCTIONAL)
    }
    assert not active & removed


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=400), st.data(), st.sampled_from([5.0, 2.5, 10.0]))
def test_the_suspension_guard_is_exact_at_any_boundary(total, data, threshold):
    disabled = data.draw(st.integers(min_value=1, max_value=total))
    result = suspend_plan(total, disabled, threshold)
    assert len([c for c in result.changes if c.action is Action.SUSPEND_USER]) == disabled
    guarded = bool(result.guards)
    assert guarded == (disabled / total * 100 > threshold) == (disabled * 100 > threshold * total)


# --- delegates who leave follow their departure ----------------------------------------------


def leavers_org(staff: int, leaving: int):
    """``staff`` users (the first ``leaving`` of them gone from the sources) who are all
    delegates of one functional account, team@, which the sources still hold with the rest."""
    people = [f"p{n:03}@example.org" for n in range(staff)]
    stay = people[leaving:]
    sources = [src(p) for p in stay] + [
        src("team@example.org", kind=Kind.FUNCTIONAL, delegates=stay)
    ]
    zivver = [ziv(p) for p in people] + [
        ziv("team@example.org", kind=Kind.FUNCTIONAL, delegates=people)
    ]
    mapping = {f"id-{a.email}": MappingEntry(a.zivver_id) for a in zivver}
    return sources, zivver, mapping, people[:leaving]


def test_delegate_removals_of_held_suspensions_are_held_with_them():
    """Ten leavers of 100 (above 5 %): their suspensions wait for confirmation, and so does the
    removal of those ten as delegates; confirmed, both go."""
    sources, zivver, mapping, gone = leavers_org(100, 10)

    result = plan(sources, zivver, mapping, OPTIONS)

    team = next(c for c in result.changes if c.email == "team@example.org")
    assert team.action is Action.UPDATE_FUNCTIONAL
    assert set(gone) <= set(team.before["delegates"]) - set(team.after["delegates"])
    assert team.guard is GuardedAction.SUSPEND_USERS
    assert team in result.held(set()), "held while the suspensions are"
    (guard,) = result.guards
    assert guard.text == (
        "Suspend 10 of 100 users (10.0 %), and the update of 1 account(s) that have them as "
        "delegates"
    )
    assert team not in result.held({GuardedAction.SUSPEND_USERS})


def test_delegate_removals_of_suspensions_below_the_threshold_go_with_them():
    sources, zivver, mapping, gone = leavers_org(100, 2)

    result = plan(sources, zivver, mapping, OPTIONS)

    team = next(c for c in result.changes if c.email == "team@example.org")
    assert team.guard is None and not result.held(set())
    assert set(team.after["delegates"]).isdisjoint(gone)


def test_delegates_whose_suspension_is_blocked_are_kept():
    """An unhealthy read blocks the suspensions: the leavers stay delegates as well."""
    sources, zivver, mapping, gone = leavers_org(20, 3)

    result = plan(sources, zivver, mapping, OPTIONS, removals_blocked="a source was unreadable")

    assert [c for c in result.changes if c.email == "team@example.org"] == []
    assert not any(c.action is Action.SUSPEND_USER for c in result.changes)
    assert any("3 delegate(s) kept" in n.message for n in result.notices)


def test_a_delegate_removed_from_the_group_but_staying_is_removed_unguarded():
    sources, zivver, mapping, gone = leavers_org(100, 10)
    sources = (
        [s for s in sources if s.kind is Kind.PERSONAL]
        + [src(p) for p in gone]
        + [src("team@example.org", kind=Kind.FUNCTIONAL, delegates=["p050@example.org"])]
    )

    result = plan(sources, zivver, mapping, OPTIONS)

    team = next(c for c in result.changes if c.email == "team@example.org")
    assert team.after["delegates"] == ["p050@example.org"] and team.guard is None
