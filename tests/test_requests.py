"""The request builder on plain data: every kind of change, byte for byte.

What goes into a body follows zivver-wire.md: a PUT carries the core attributes and only
the blocks that change; a block that is sent is rebuilt from what Zivver returned plus the
change; the user block carries the SsoAccountKey Zivver has, or is not sent at all.
"""

from __future__ import annotations

import json

import pytest

from zsync_core.model import SSO_KEY, AccountState, Action, Change, Kind, ZivverAccount
from zsync_core.zivver import scim
from zsync_core.zivver.requests import Ids, NotSendable, build

ANN_ID = "u-ann"
BOB_ID = "u-bob"
DESK_ID = "g-desk"
OTHER_GROUP = "g-other"
IDS = Ids({"ann@example.org": ANN_ID, "bob@example.org": BOB_ID}, frozenset({DESK_ID, OTHER_GROUP}))

# a user as another tool left it: nickname, phone number, ExternalAccountId, an enterprise key
ANN_RESOURCE = {
    "id": ANN_ID,
    "userName": "ann@example.org",
    "name": {"formatted": "Ann", "givenName": "Ann"},
    "nickName": "annie",
    "active": True,
    "phoneNumbers": [{"value": "+31600000001"}],
    "meta": {"created": "2024-05-01", "location": "/scim/v2/Users/u-ann", "resourceType": "User"},
    "schemas": [scim.CORE_USER, scim.ENTERPRISE_USER, scim.ZIVVER_USER],
    scim.ENTERPRISE_USER: {"division": "/"},
    scim.ZIVVER_USER: {"aliases": ["a@example.org"], "delegates": [], "ExternalAccountId": "X-1"},
}
ANN = scim.parse_user(ANN_RESOURCE)
DESK_RESOURCE = {
    "id": DESK_ID,
    "externalId": "desk@example.org",
    "displayName": "Desk",
    "members": [{"value": ANN_ID}, {"value": OTHER_GROUP}, {"value": DESK_ID}, {"value": "gone"}],
    "schemas": [scim.CORE_GROUP, scim.ZIVVER_GROUP, scim.ENTERPRISE_USER],
    scim.ENTERPRISE_USER: {"division": "Sales"},
    scim.ZIVVER_GROUP: {"aliases": [], "ExternalAccountId": "G-1"},
}
DESK = scim.parse_group(DESK_RESOURCE, {ANN_ID: "ann@example.org"})


def change(
    action: Action,
    current: ZivverAccount | None,
    desired: AccountState,
    fields: set[str],
    sso_key: str | None = "",
) -> Change:
    return Change(
        1,
        action,
        desired.email,
        current.zivver_id if current else None,
        "S1",
        "AD",
        desired,
        frozenset(fields),
        {},
        {},
        sso_key=sso_key,
    )


def wire(change_: Change, current: ZivverAccount | None = None) -> list[tuple[str, str, str]]:
    """(method, path, body as JSON text) of each request, the headers of a PATCH checked."""
    built = build(change_, current, IDS)
    result = []
    for request in built.requests:
        if request.method == "PATCH":
            assert dict(request.headers) == {
                "Content-Type": "application/scim+json",
                "Accept": "application/scim+json",
            }
        result.append((request.method, request.path, json.dumps(request.body, sort_keys=True)))
    return result


def body(data: dict) -> str:
    return json.dumps(data, sort_keys=True)


def test_what_zivver_returned_that_zsync_does_not_manage_is_kept():
    assert ANN is not None and DESK is not None
    assert ANN.kept == {
        "name": {"givenName": "Ann"},
        "nickName": "annie",
        "phoneNumbers": [{"value": "+31600000001"}],
        scim.ZIVVER_USER: {"ExternalAccountId": "X-1"},
    }
    assert DESK.delegates == {"ann@example.org"}
    assert DESK.other_members == (OTHER_GROUP, DESK_ID, "gone")
    assert DESK.kept == {scim.ZIVVER_GROUP: {"ExternalAccountId": "G-1"}}


def test_create_user_sends_the_whole_account_with_its_key():
    desired = AccountState(
        "new@example.org", "New", True, frozenset({"n@example.org"}), frozenset(), "Sales"
    )
    created = change(Action.CREATE_USER, None, desired, {"email", "display_name"}, "KEY-1")
    assert wire(created) == [
        (
            "POST",
            "/Users",
            body(
                {
                    "schemas": [scim.CORE_USER, scim.ENTERPRISE_USER, scim.ZIVVER_USER],
                    "userName": "new@example.org",
                    "name": {"formatted": "New"},
                    "active": True,
                    scim.ENTERPRISE_USER: {"division": "Sales"},
                    scim.ZIVVER_USER: {
                        "aliases": ["n@example.org"],
                        "delegates": [],
                        "SsoAccountKey": "KEY-1",
                    },
                }
            ),
        )
    ]


def test_suspending_a_user_sends_no_block_so_nothing_is_erased():
    suspended = change(
        Action.SUSPEND_USER, ANN, ANN.state._replace(active=False), {"active"}, sso_key=None
    )
    assert wire(suspended, ANN) == [
        (
            "PUT",
            f"/Users/{ANN_ID}",
            body(
                {
                    "schemas": [scim.CORE_USER],
                    "userName": "ann@example.org",
                    "name": {"formatted": "Ann", "givenName": "Ann"},
                    "active": False,
                }
            ),
        )
    ]


def test_a_rename_keeps_the_names_other_parts_and_sends_no_block():
    renamed = change(
        Action.UPDATE_USER,
        ANN,
        ANN.state._replace(email="ann.b@example.org", display_name="Ann B"),
        {"email", "display_name"},
        sso_key=None,
    )
    assert wire(renamed, ANN) == [
        (
            "PUT",
            f"/Users/{ANN_ID}",
            body(
                {
                    "schemas": [scim.CORE_USER],
                    "userName": "ann.b@example.org",
                    "name": {"formatted": "Ann B", "givenName": "Ann"},
                    "active": True,
                }
            ),
        )
    ]


def test_an_alias_rebuilds_the_user_block_with_its_key_and_external_account_id():
    added = change(
        Action.UPDATE_USER,
        ANN,
        ANN.state._replace(aliases=frozenset({"a@example.org", "b@example.org"})),
        {"aliases"},
        sso_key="KEY-ANN",
    )
    [(method, path, text)] = wire(added, ANN)
    assert (method, path) == ("PUT", f"/Users/{ANN_ID}")
    assert text == body(
        {
            "schemas": [scim.CORE_USER, scim.ZIVVER_USER],
            "userName": "ann@example.org",
            "name": {"formatted": "Ann", "givenName": "Ann"},
            "active": True,
            scim.ZIVVER_USER: {
                "ExternalAccountId": "X-1",
                "aliases": ["a@example.org", "b@example.org"],
                "delegates": [],
                "SsoAccountKey": "KEY-ANN",
            },
        }
    )
    assert "nickName" not in text and "phoneNumbers" not in text, "left out, so Zivver keeps them"


def test_a_user_block_whose_key_is_unknown_is_never_built():
    added = change(
        Action.UPDATE_USER,
        ANN,
        ANN.state._replace(aliases=frozenset({"b@example.org"})),
        {"aliases"},
        sso_key=None,
    )
    with pytest.raises(NotSendable, match="SsoAccountKey"):
        build(added, ANN, IDS)


def test_known_to_have_no_key_sends_the_block_without_one():
    added = change(
        Action.UPDATE_USER,
        ANN,
        ANN.state._replace(delegates=frozenset({"bob@example.org"})),
        {"delegates"},
        sso_key="",
    )
    [(_m, _p, text)] = wire(added, ANN)
    block = json.loads(text)[scim.ZIVVER_USER]
    assert block == {
        "ExternalAccountId": "X-1",
        "aliases": ["a@example.org"],
        "delegates": ["bob@example.org"],
    }


def test_a_key_update_sends_the_new_key_and_the_block_as_zivver_has_it():
    updated = change(Action.UPDATE_USER, ANN, ANN.state, {SSO_KEY}, sso_key="NEW-KEY")
    [(_m, _p, text)] = wire(updated, ANN)
    assert json.loads(text)[scim.ZIVVER_USER] == {
        "ExternalAccountId": "X-1",
        "aliases": ["a@example.org"],
        "delegates": [],
        "SsoAccountKey": "NEW-KEY",
    }


def test_a_users_division_rebuilds_only_the_enterprise_block():
    moved = change(
        Action.UPDATE_USER, ANN, ANN.state._replace(division="Sales"), {"division"}, None
    )
    [(_m, _p, text)] = wire(moved, ANN)
    data = json.loads(text)
    assert data["schemas"] == [scim.CORE_USER, scim.ENTERPRISE_USER]
    assert data[scim.ENTERPRISE_USER] == {"division": "Sales"}
    assert scim.ZIVVER_USER not in data


def test_create_functional_sends_its_division_and_members_by_id():
    desired = AccountState(
        "team@example.org",
        "Team",
        True,
        frozenset(),
        frozenset({"bob@example.org", "ann@example.org"}),
        "Sales",
    )
    created = change(Action.CREATE_FUNCTIONAL, None, desired, {"email"}, None)
    assert wire(created) == [
        (
            "POST",
            "/Groups",
            body(
                {
                    "schemas": [scim.CORE_GROUP, scim.ZIVVER_GROUP, scim.ENTERPRISE_USER],
                    "externalId": "team@example.org",
                    "displayName": "Team",
                    scim.ZIVVER_GROUP: {"aliases": []},
                    scim.ENTERPRISE_USER: {"division": "Sales"},
                    "members": [{"value": ANN_ID}, {"value": BOB_ID}],
                }
            ),
        )
    ]


def test_a_functional_accounts_division_is_sent():
    moved = change(
        Action.UPDATE_FUNCTIONAL, DESK, DESK.state._replace(division="Support"), {"division"}, None
    )
    assert wire(moved, DESK) == [
        (
            "PUT",
            f"/Groups/{DESK_ID}",
            body(
                {
                    "schemas": [scim.CORE_GROUP, scim.ENTERPRISE_USER],
                    "externalId": "desk@example.org",
                    "displayName": "Desk",
                    scim.ENTERPRISE_USER: {"division": "Support"},
                }
            ),
        )
    ]


def test_a_delegate_added_keeps_member_groups_and_leaves_out_ids_of_no_account():
    added = change(
        Action.UPDATE_FUNCTIONAL,
        DESK,
        DESK.state._replace(delegates=frozenset({"ann@example.org", "bob@example.org"})),
        {"delegates"},
        None,
    )
    built = build(added, DESK, IDS)
    assert wire(added, DESK) == [
        (
            "PATCH",
            f"/Groups/{DESK_ID}",
            body(
                {
                    "schemas": [scim.PATCH_OP],
                    "Operations": [
                        {
                            "op": "replace",
                            "path": "members",
                            "value": [
                                {"value": ANN_ID},
                                {"value": BOB_ID},
                                {"value": OTHER_GROUP},
                                {"value": DESK_ID},
                            ],
                        }
                    ],
                }
            ),
        )
    ]
    assert built.notes == (
        f"members that are no user were kept: {OTHER_GROUP}",
        "members that are no Zivver account were left out (Zivver refuses them): gone",
    )


def test_an_alias_and_delegates_of_a_group_go_in_one_put_with_its_external_account_id():
    changed = change(
        Action.UPDATE_FUNCTIONAL,
        DESK,
        DESK.state._replace(
            aliases=frozenset({"help@example.org"}), delegates=frozenset({"bob@example.org"})
        ),
        {"aliases", "delegates"},
        None,
    )
    [(method, _path, text)] = wire(changed, DESK)
    data = json.loads(text)
    assert method == "PUT"
    assert data[scim.ZIVVER_GROUP] == {"ExternalAccountId": "G-1", "aliases": ["help@example.org"]}
    assert data["members"] == [{"value": BOB_ID}, {"value": OTHER_GROUP}, {"value": DESK_ID}]


def test_disabling_a_functional_account_keeps_its_member_groups():
    disabled = change(
        Action.SUSPEND_FUNCTIONAL,
        DESK,
        DESK.state._replace(delegates=frozenset()),
        {"delegates"},
        None,
    )
    [(method, _path, text)] = wire(disabled, DESK)
    assert method == "PATCH"
    assert json.loads(text)["Operations"] == [
        {"op": "replace", "path": "members", "value": [{"value": OTHER_GROUP}, {"value": DESK_ID}]}
    ]


def test_disabling_a_group_of_only_users_clears_with_a_patch_remove():
    team = ZivverAccount(
        Kind.FUNCTIONAL,
        "g-team",
        "team@example.org",
        "Team",
        True,
        delegates=frozenset({"ann@example.org"}),
    )
    disabled = change(
        Action.SUSPEND_FUNCTIONAL,
        team,
        team.state._replace(delegates=frozenset()),
        {"delegates"},
        None,
    )
    renamed_and_disabled = change(
        Action.SUSPEND_FUNCTIONAL,
        team,
        team.state._replace(delegates=frozenset(), display_name="Old team"),
        {"delegates", "display_name"},
        None,
    )
    clear = (
        "PATCH",
        "/Groups/g-team",
        body({"schemas": [scim.PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]}),
    )
    assert wire(disabled, team) == [clear]
    assert wire(renamed_and_disabled, team) == [
        (
            "PUT",
            "/Groups/g-team",
            body(
                {
                    "schemas": [scim.CORE_GROUP],
                    "externalId": "team@example.org",
                    "displayName": "Old team",
                }
            ),
        ),
        clear,
    ], "Zivver ignores members: [] in a PUT"


def test_a_delegate_without_a_zivver_id_makes_the_change_unsendable():
    added = change(
        Action.UPDATE_FUNCTIONAL,
        DESK,
        DESK.state._replace(delegates=frozenset({"new@example.org"})),
        {"delegates"},
        None,
    )
    with pytest.raises(NotSendable, match="new@example.org have no Zivver account yet"):
        build(added, DESK, IDS)


def test_deletes():
    assert wire(change(Action.DELETE_USER, ANN, ANN.state, set(), None), ANN) == [
        ("DELETE", f"/Users/{ANN_ID}", "null")
    ]
    assert wire(change(Action.DELETE_FUNCTIONAL, DESK, DESK.state, set(), None), DESK) == [
        ("DELETE", f"/Groups/{DESK_ID}", "null")
    ]
