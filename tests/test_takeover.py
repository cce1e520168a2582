"""Taking over an organization that another tool built, against real slapd and the emulator
that behaves as Zivver does on the wire (a PUT replaces a block it carries, and a key left
out of the user block is erased).

The organization is seeded as Zivver's Synctool would have left it: every user's
SsoAccountKey is its objectGUID, users have phone numbers, nicknames and ExternalAccountIds,
functional accounts have divisions, ExternalAccountIds, other functional accounts and a
dangling id among their members. After each ordinary directory change, everything zsync
does not manage is exactly as before, and the next run writes nothing. (A dangling member id
is left out of a write of the members, since Zivver refuses it, and the change says so.)
"""

from __future__ import annotations

import csv
from typing import Any

import pytest

from tests.conftest import ldap_source
from zsync_emulator.organization import ENTERPRISE_USER, ZIVVER_GROUP, ZIVVER_USER, Organization

PEOPLE = ("ann", "bob", "cat", "dan")


def seed(org: Organization, guids: dict[str, Any]) -> dict[str, str]:
    """Zivver as another tool left it; returns the Zivver ids by name."""
    org.divisions |= {"Sales", "Support"}
    ids = {}
    for number, uid in enumerate(PEOPLE):
        ids[uid] = org.add_user(
            f"{uid}@example.org",
            uid.title(),
            sso_key=str(guids[uid]),
            nick_name=f"{uid}-nick",
            phone_numbers=[f"+3160000000{number}"],
            external_account_id=f"EXT-{uid}",
            enterprise={"division": "Sales"} if uid == "dan" else {},
        )
    ids["ceo"] = org.add_user("ceo@example.org", "The CEO", sso_key="CEO-KEY")
    ids["board"] = org.add_group("board@example.org", "Board", [ids["ceo"]])
    ids["team"] = org.add_group(
        "team@example.org",
        "team",
        [ids["ann"], ids["board"], "3f6c0000-dead-4000-8000-000000000000"],
        division="Sales",
        external_account_id="EXT-team",
    )
    return ids


def unmanaged(org: Organization) -> dict[str, Any]:
    """Everything zsync does not manage, by account."""
    found: dict[str, Any] = {}
    for user_id, user in org.users.items():
        found[user_id] = {
            "key": org.sso_keys.get(user_id),
            "nickName": user.get("nickName"),
            "phoneNumbers": user.get("phoneNumbers"),
            "ExternalAccountId": user[ZIVVER_USER].get("ExternalAccountId"),
        }
    for group_id, group in org.groups.items():
        found[group_id] = {
            "ExternalAccountId": group[ZIVVER_GROUP].get("ExternalAccountId"),
            "member groups": [m["value"] for m in group["members"] if m["value"] in org.groups],
        }
    return found


def writes(org: Organization, since: int) -> list[tuple[str, str, int]]:
    return [r for r in org.requests[since:] if r[0] != "GET"]


@pytest.fixture
def organization(directory, zivver):
    for uid in PEOPLE:
        directory.user(uid, name=uid.title())
    team = directory.group("team", "team@example.org", [directory.user_dn("ann")])
    directory.modify(team, description="Sales")
    ids = seed(zivver.org, directory.guids)
    return ids, team


def test_a_week_of_ordinary_changes_keeps_every_key_and_field_zsync_does_not_manage(
    organization, directory, zivver, make_profile, capsys
):
    ids, team = organization
    org = zivver.org
    profile = make_profile(
        [ldap_source(directory.slapd, attributes={"division": "description"})],
        existing_sso_keys="from-source",
    )
    kept = unmanaged(org)

    # day 1: the first run takes over and writes nothing, since Zivver is in step
    code, err, report = profile.run(capsys=capsys)
    assert code == 0, err
    assert writes(org, 0) == []
    assert "Taking over:" in err and "5 existing Zivver account(s) matched by address." in err
    takeover = report["takeover"]
    assert takeover["first_run"] and takeover["matched_by_address"] == 5
    assert takeover["untouched"] == ["board@example.org", "ceo@example.org"]
    assert takeover["members_kept"] == ["team@example.org"]
    assert takeover["sso_key_unknown"] == [], "the profile says where the keys came from"

    def day(expected_actions: list[str], *confirm: str) -> None:
        start = len(org.requests)
        code, err, report = profile.run(*confirm, capsys=capsys)
        assert code == 0, err
        assert sorted(c["action"] for c in report["changes"]) == expected_actions
        assert all(c["state"] == "succeeded" for c in report["changes"]), report["changes"]
        assert writes(org, start), "something was sent"
        assert unmanaged(org) == kept, "nothing zsync does not manage was lost"
        start = len(org.requests)
        code, err, _ = profile.run(capsys=capsys)
        assert code == 0 and "Summary: no changes." in err, err
        assert writes(org, start) == [], "the next run writes nothing"

    # day 2: a leaver (1 of 5 users is above 5 %: confirmed)
    directory.disable("bob")
    day(["suspend-user"], "--confirm", "suspend-users")
    assert org.users[ids["bob"]]["active"] is False

    # day 3: a rename
    directory.modify(directory.user_dn("ann"), mail="ann.b@example.org", displayName="Ann B")
    day(["update-user"])
    assert org.users[ids["ann"]]["userName"] == "ann.b@example.org"

    # day 4: an added alias: the user block goes with the key the source says Zivver has
    directory.modify(
        directory.user_dn("cat"), proxyAddresses=["SMTP:cat@example.org", "smtp:c@example.org"]
    )
    day(["update-user"])
    assert org.users[ids["cat"]][ZIVVER_USER]["aliases"] == ["c@example.org"]
    assert org.sso_keys[ids["cat"]] == str(directory.guids["cat"])

    # day 5: a delegate added to the functional account; its member group stays
    directory.modify(team, member=[directory.user_dn("ann"), directory.user_dn("cat")])
    day(["update-functional"])
    assert org.delegates_of("team@example.org") == {"ann.b@example.org", "cat@example.org"}
    assert ids["board"] in {m["value"] for m in org.groups[ids["team"]]["members"]}
    store = profile.store()
    run = next(r for r in store.runs() if r.summary.get("succeeded"))
    [row] = store.changes(run.id)
    store.close()
    assert "left out (Zivver refuses them): 3f6c0000-dead" in row.response["note"]

    # day 6: the functional account moves to another division
    directory.modify(team, description="Support")
    day(["update-functional"])
    assert org.groups[ids["team"]][ENTERPRISE_USER] == {"division": "Support"}


def test_without_knowing_the_keys_alias_writes_are_held_and_everything_else_applies(
    organization, directory, zivver, make_profile, capsys
):
    ids, _team = organization
    org = zivver.org
    profile = make_profile([ldap_source(directory.slapd)])
    kept = unmanaged(org)
    from zsync_tui.cli import main

    assert main(["check", "--config", str(profile.path)]) == 0
    out = capsys.readouterr().out
    assert "WARN  takeover: 5 existing Zivver account(s) matched by address." in out
    assert "WARN  takeover: 4 matched user(s) have an SsoAccountKey zsync cannot read" in out
    assert "Set sync.existing_sso_keys in the profile" in out
    assert writes(org, 0) == [], "check sends nothing"
    assert profile.run(capsys=capsys)[0] == 0

    directory.modify(
        directory.user_dn("cat"),
        proxyAddresses=["SMTP:cat@example.org", "smtp:c@example.org"],
        displayName="Cat C",
    )
    code, err, report = profile.run(capsys=capsys)

    assert code == 2, "held: monitoring must notice"
    assert "HELD 1 change(s) not sent:" in err and "cat@example.org: aliases" in err
    assert 'sync.existing_sso_keys in the profile: "from-source"' in err
    assert org.users[ids["cat"]]["name"]["formatted"] == "Cat C", "the rest still applies"
    assert org.users[ids["cat"]][ZIVVER_USER]["aliases"] == []
    assert unmanaged(org) == kept, "no key was erased"
    assert report["not_sent"] == [
        {
            "email": "cat@example.org",
            "fields": ["aliases"],
            "reason": report["not_sent"][0]["reason"],
        }
    ]
    assert len(report["takeover"]["sso_key_unknown"]) == 4


def test_a_functional_accounts_division_from_csv_is_sent(zivver, make_profile, tmp_path, capsys):
    org = zivver.org
    org.divisions |= {"Sales", "Support"}
    ann = org.add_user("ann@example.org", "Ann")
    desk = org.add_group(
        "desk@example.org", "Desk", [ann], division="Sales", external_account_id="EXT-desk"
    )
    people = tmp_path / "people.csv"

    def write(division: str) -> None:
        with people.open("w", newline="") as handle:
            rows = csv.writer(handle)
            rows.writerow(["email", "name", "kind", "active", "delegates", "id", "division"])
            rows.writerow(["ann@example.org", "Ann", "personal", "true", "", "A", ""])
            rows.writerow(
                ["desk@example.org", "Desk", "functional", "true", "ann@example.org", "D", division]
            )

    write("Sales")
    profile = make_profile([{"name": "People", "type": "csv", "path": str(people)}])
    code, err, _ = profile.run(capsys=capsys)
    assert code == 0 and "Summary: no changes." in err, err

    write("Support")
    code, err, report = profile.run(capsys=capsys)
    assert code == 0, err
    assert [c["action"] for c in report["changes"]] == ["update-functional"]
    assert org.groups[desk][ENTERPRISE_USER] == {"division": "Support"}
    assert org.groups[desk][ZIVVER_GROUP]["ExternalAccountId"] == "EXT-desk"
    code, err, _ = profile.run(capsys=capsys)
    assert code == 0 and "Summary: no changes." in err, "it was sent, so it is not planned again"


async def test_the_tui_summary_says_what_it_takes_over(organization, directory, make_profile):
    from tests.tui import app_for, text, wait_for
    from zsync_tui.screens.summary import SummaryScreen

    profile = make_profile([ldap_source(directory.slapd)])
    directory.modify(
        directory.user_dn("cat"), proxyAddresses=["SMTP:cat@example.org", "smtp:c@example.org"]
    )
    app = app_for(profile.path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        notes = " ".join(text(app, "#notes-text").split())
    assert "Taking over this organization:" in notes
    assert "5 existing Zivver account(s) matched by address." in notes
    assert "2 Zivver account(s) are in no source and are never touched" in notes
    assert "Not sent, to keep what zsync cannot see:" in notes
    assert "cat@example.org: aliases" in notes
