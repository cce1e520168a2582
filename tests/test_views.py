"""``zsync show source``, ``zsync show zivver`` and ``zsync explain``: what a source yields,
what Zivver holds and why one account (does not) change, end to end against a real slapd
and the Zivver emulator over HTTP. All three are read only: nothing is sent to Zivver and
the state directory does not change."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.conftest import ldap_source
from zsync_tui.cli import main


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Run ``zsync argv``: (exit code, the JSON on stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def state_of(profile: Any) -> str:
    """A digest of every file in the state directory (nothing may change)."""
    folder = profile.path.parent / "zsync-state"
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def writes(zivver: Any) -> list[tuple[str, str, int]]:
    return [r for r in zivver.org.requests if r[0] != "GET"]


def test_show_source_lists_every_account_after_mapping_and_every_unusable_entry(
    directory, zivver, make_profile, capsys
):
    finance = directory.ou("Finance")
    directory.user("ann", name="Ann Smit", mobile="06 1234 5678", under=finance)
    directory.user("bob", disabled=True)
    directory.user("cat", mobile="12345")  # not a number
    directory.user("dan", mail="not an address")
    source = ldap_source(
        directory.slapd,
        phone_region="NL",
        ou_mapping="dn",
        ou_map={finance: "finance"},
        description="HR's directory",
    )
    profile = make_profile([source])  # sync_phone_numbers off: numbers read all the same

    code, data, err = command(
        capsys, "show", "source", "active directory", "--json", "--config", str(profile.path)
    )

    assert code == 0, err
    assert (data["source"], data["type"], data["description"]) == (
        "Active Directory",
        "ldap",
        "HR's directory",
    )
    accounts = {a["address"]: a for a in data["accounts"]}
    ann = accounts["ann@example.org"]
    assert (ann["name"], ann["division"], ann["phone"], ann["state"]) == (
        "Ann Smit",
        "finance",
        "+31612345678",
        "active",
    )
    assert ann["immutable_id"] == str(directory.guids["ann"])
    assert accounts["bob@example.org"]["state"] == "disabled", "disabled entries are listed"
    assert data["phone_numbers_synced"] is False
    reasons = {u["entry"].lower(): u for u in data["unusable"]}
    assert "not a valid number in NL" in reasons[directory.user_dn("cat").lower()]["reason"]
    assert reasons[directory.user_dn("cat").lower()]["value"] == "phone number"
    assert any("dan" in u["entry"] for u in data["unusable"]), data["unusable"]
    assert data["counts"]["disabled"] == 1
    assert zivver.org.requests == [], "a source's data preview does not talk to Zivver"

    code, data, _err = command(
        capsys,
        "show",
        "source",
        "--config",
        str(profile.path),
        "Active Directory",
        "--json",
        "--filter",
        "SMIT",
    )
    assert code == 0
    assert [a["address"] for a in data["accounts"]] == ["ann@example.org"]


def test_show_zivver_says_what_zsync_makes_of_each_account(directory, zivver, make_profile, capsys):
    org = zivver.org
    org.add_user("ann@example.org", "Ann")  # taken over by address at the first run
    org.add_user("old@example.org", "Old")  # in no source: never touched
    org.add_user("guest@partner.com", "Guest")  # outside sync.domains
    directory.user("ann")
    directory.user("bob")
    profile = make_profile([ldap_source(directory.slapd)], existing_sso_keys="none")
    code, data, err = command(capsys, "show", "zivver", "--json", "--config", str(profile.path))
    assert code == 0, err
    before = {a["address"]: a for a in data["accounts"]}
    assert before["ann@example.org"]["standing"] == "managed"
    assert before["ann@example.org"]["matched_by"] == "address", "not matched before"
    assert "bob@example.org" not in before, "not in Zivver yet"
    assert writes(zivver) == [], "show zivver sends nothing"

    assert profile.run(capsys=capsys)[0] == 0  # creates bob, maps ann
    state = state_of(profile)
    directory.delete(directory.user_dn("bob"))

    code, data, err = command(capsys, "--config", str(profile.path), "show", "zivver", "--json")

    assert code == 0, err
    rows = {a["address"]: a for a in data["accounts"]}
    assert rows["ann@example.org"]["standing"] == "managed"
    assert rows["ann@example.org"]["matched_by"] == "id"
    assert rows["ann@example.org"]["source"] == "Active Directory"
    assert rows["ann@example.org"]["sso_key"] == "none"
    assert rows["old@example.org"]["standing"] == "untouched"
    assert rows["old@example.org"]["sso_key"] == "unknown"
    assert rows["guest@partner.com"]["standing"] == "outside-domains"
    assert rows["bob@example.org"]["standing"] == "leaving"
    assert rows["bob@example.org"]["next_change"]["action"] == "suspend-user"
    assert data["counts"]["untouched"] == 1
    assert state_of(profile) == state, "the store is only read"
    assert len(writes(zivver)) == 1, "only the first run's create of bob was sent"


def test_explain_names_the_source_the_next_change_and_the_timeline(
    directory, zivver, make_profile, capsys, tmp_path
):
    directory.user("ann", name="Ann")
    (tmp_path / "extra.csv").write_text("email,name\nann@example.org,Ann From CSV\n")
    csv_source = {"name": "Extra", "type": "csv", "path": "extra.csv"}
    profile = make_profile([ldap_source(directory.slapd), csv_source], existing_sso_keys="none")
    # exit 2: the CSV's ann is ignored (the directory comes first), and named
    assert profile.run(capsys=capsys)[0] == 2  # creates ann from the directory
    directory.modify(directory.user_dn("ann"), displayName="Ann Smit")
    assert profile.run(capsys=capsys)[0] == 2  # renames her display name
    directory.modify(directory.user_dn("ann"), displayName="Ann de Smit")
    state = state_of(profile)

    code, data, err = command(
        capsys, "explain", "ANN@example.org", "--json", "--config", str(profile.path)
    )

    assert code == 0, err
    assert data["address"] == "ann@example.org"
    assert data["standing"] == "managed"
    won, ignored = data["sources"]
    assert (won["source"], won["wins"]) == ("Active Directory", True)
    assert (ignored["source"], ignored["wins"]) == ("Extra", False)
    assert "holds the same address" in ignored["why"]
    assert data["mapping"][0]["immutable_id"] == str(directory.guids["ann"])
    (change,) = data["next_run"]
    assert change["action"] == "update-user"
    assert change["after"] == {"display_name": "Ann de Smit"}
    assert data["verdict"] == "The next run would update the user (name)."
    assert [(t["action"], t["state"]) for t in data["timeline"]] == [
        ("create-user", "succeeded"),
        ("update-user", "succeeded"),
    ]
    assert data["timeline"][1]["after"] == {"display_name": "Ann Smit"}
    assert state_of(profile) == state
    assert all(r[0] == "GET" for r in zivver.org.requests[-2:]), "explain reads only"

    code, text, err = (
        main(["explain", "nobody@example.org", "--config", str(profile.path)]),
        *(capsys.readouterr()),
    )
    assert code == 0
    assert "Neither Zivver nor any source holds this address." in text


def test_a_source_that_does_not_exist_or_a_broken_server_is_a_named_error(
    directory, zivver, make_profile, capsys
):
    profile = make_profile([ldap_source(directory.slapd)])

    code, data, err = command(
        capsys, "show", "source", "HR", "--json", "--config", str(profile.path)
    )

    assert code == 3
    assert "there is no source named 'HR' (its sources: 'Active Directory')" in data["error"]
    assert "there is no source named 'HR'" in err

    profile.data["sources"][0]["url"] = "ldap://127.0.0.1:9"  # nothing listens there
    profile.write()
    code, data, err = command(
        capsys, "explain", "ann@example.org", "--json", "--config", str(profile.path)
    )
    assert code == 3
    assert "127.0.0.1:9" in data["error"] and "Nothing was changed." in data["error"]
