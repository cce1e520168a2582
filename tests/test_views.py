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
    try:
        code = main(list(argv))
    except SystemExit as exit:  # a usage error, as the command line ends it
        code = exit.code
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

    directory.user("eve", aliases=["eve.old@example.org"])
    directory.user("eve2", mail="eve@example.org")  # the same address twice: both held
    main(["show", "source", "Active Directory", "--config", str(profile.path)])
    text = capsys.readouterr().out
    header, *lines = text.splitlines()[2:]
    assert all(name in header for name in ("SSO key", "Aliases", "Delegates")), header
    (eve,) = [line for line in lines if line.startswith("eve@example.org")]
    assert "active, left alone" in eve and "eve.old@example.org" in eve
    assert str(directory.guids["eve"]) in eve, "the SSO key column (AD: objectGUID)"


def test_show_zivver_says_what_zsync_makes_of_each_account(directory, zivver, make_profile, capsys):
    org = zivver.org
    org.add_user("ann@example.org", "Ann")  # taken over by address at the first run
    org.add_user("old@example.org", "Old")  # in no source: never touched
    org.add_user("guest@partner.com", "Guest")  # outside sync.domains
    odd = org.add_user("x\x1b[2Jy@example.org", "Odd")  # no usable address: never touched
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
    [unaddressed] = data["unaddressed"]
    assert (
        unaddressed.startswith(f"the user with id {odd} (userName ") and "\x1b" not in unaddressed
    )
    assert state_of(profile) == state, "the store is only read"

    main(["show", "zivver", "--config", str(profile.path)])
    text = capsys.readouterr().out
    assert f"NO ADDRESS  the user with id {odd}" in text and "\x1b" not in text
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


def csv_world(tmp_path, make_profile, rows: list[str], **sync: Any) -> Any:
    (tmp_path / "staff.csv").write_text("email,name,active,id\n" + "\n".join(rows) + "\n")
    source = {"name": "Staff", "type": "csv", "path": "staff.csv"}
    return make_profile([source], existing_sso_keys="none", **sync)


def explained(capsys, profile, address: str) -> dict[str, Any]:
    code, data, err = command(capsys, "explain", address, "--json", "--config", str(profile.path))
    assert code == 0, err
    return data


def test_explain_tells_the_truth_about_a_shared_id_a_blocked_suspension_and_a_leaver(
    zivver, make_profile, tmp_path, capsys
):
    profile = csv_world(
        tmp_path,
        make_profile,
        ["ann@example.org,Ann,true,1", "bob@example.org,Bob,true,2", "cat@example.org,Cat,true,3"],
        shrink_guard_percent=100,  # three people become one on purpose
    )
    assert profile.run(capsys=capsys)[0] == 0

    # a second entry with ann's id: which is ann is not known, neither is renamed
    rows = ["ann@example.org,Ann,true,1", "dup@example.org,Dup,true,1"]
    # bob disabled, but a row nobody can identify blocks every removal
    rows += ["bob@example.org,Bob,false,2", '"broken,Row,true,9']
    (tmp_path / "staff.csv").write_text("email,name,active,id\n" + "\n".join(rows) + "\n")
    ann = explained(capsys, profile, "ann@example.org")
    assert all(s["holds_as"] != "id" for s in ann["sources"]), "no rename invented"
    dup = explained(capsys, profile, "dup@example.org")
    assert dup["sources"][0]["wins"] is False
    assert "is also the id of" in dup["sources"][0]["why"]
    code, err, _report = profile.run("--dry-run", capsys=capsys)
    assert code == 2
    said = [line for line in err.splitlines() if "is also the id of" in line]
    assert said and said[0].startswith("ERROR Source 'Staff', staff.csv:3 (dup@example.org)"), err
    bob = explained(capsys, profile, "bob@example.org")
    assert bob["verdict"].startswith("Not suspended or deleted this run:"), bob["verdict"]

    # cat leaves, is suspended (confirmed); then the next run has nothing to do for her
    (tmp_path / "staff.csv").write_text("email,name,active,id\nann@example.org,Ann,true,1\n")
    assert profile.run("--confirm", "suspend-users", capsys=capsys)[0] == 0
    cat = explained(capsys, profile, "cat@example.org")
    assert cat["verdict"] == (
        "No source holds it any more; it is suspended already (delete_users is off)."
    )
    assert [t["action"] for t in cat["timeline"]] == ["create-user", "suspend-user"]


def test_explain_follows_a_rename_from_the_new_address(zivver, make_profile, tmp_path, capsys):
    profile = csv_world(tmp_path, make_profile, ["ann@example.org,Ann,true,1"])
    assert profile.run(capsys=capsys)[0] == 0
    (tmp_path / "staff.csv").write_text("email,name,active,id\nanna@example.org,Ann,true,1\n")

    anna = explained(capsys, profile, "anna@example.org")

    assert anna["zivver"]["address"] == "ann@example.org"
    assert anna["zivver_holds_as"] == "renamed"
    assert anna["next_run"][0]["after"]["email"] == "anna@example.org"
    assert [t["action"] for t in anna["timeline"]] == ["create-user"], "its history kept"

    assert profile.run(capsys=capsys)[0] == 0  # the rename is sent
    anna = explained(capsys, profile, "anna@example.org")
    assert [t["action"] for t in anna["timeline"]] == ["create-user", "update-user"]
    ann = explained(capsys, profile, "ann@example.org")
    assert ann["verdict"] == (
        "Renamed: the account that had this address is now anna@example.org "
        "(zsync explain anna@example.org)."
    )
    assert [t["action"] for t in ann["timeline"]] == ["create-user", "update-user"]


def test_two_sources_whose_names_differ_by_case_are_each_shown(
    zivver, make_profile, tmp_path, capsys
):
    (tmp_path / "a.csv").write_text("email,name\nann@example.org,Ann\n")
    (tmp_path / "b.csv").write_text("email,name\nbob@example.org,Bob\n")
    profile = make_profile(
        [
            {"name": "Staff", "type": "csv", "path": "a.csv"},
            {"name": "staff", "type": "csv", "path": "b.csv"},
        ]
    )
    config = str(profile.path)

    assert (
        command(capsys, "show", "source", "staff", "--json", "--config", config)[1]["accounts"][0][
            "address"
        ]
        == "bob@example.org"
    )
    code, data, _err = command(capsys, "show", "source", "STAFF", "--json", "--config", config)
    assert code == 3 and "there is no source named 'STAFF'" in data["error"]
    with pytest.raises(SystemExit) as ended:
        main(["explain", "not an address", "--config", config])
    assert ended.value.code == 3
    assert "is not an e-mail address" in capsys.readouterr().err


def test_explain_says_what_holds_a_suspension_and_reads_as_the_tui_does(
    zivver, make_profile, tmp_path, capsys
):
    rows = [
        "ann@example.org,Ann,true,1",
        "bob@example.org,Bob,true,2",
        "cat@example.org,Cat,true,3",
    ]
    profile = csv_world(tmp_path, make_profile, rows)
    assert profile.run(capsys=capsys)[0] == 0
    rows[1] = "bob@example.org,Bob,false,2"  # one of three: over the 5 % threshold
    (tmp_path / "staff.csv").write_text("email,name,active,id\n" + "\n".join(rows) + "\n")
    assert profile.run("--dry-run", capsys=capsys)[0] == 2

    bob = explained(capsys, profile, "bob@example.org")
    assert bob["verdict"] == (
        "The next run would suspend the user (active): held until confirmed: suspend 1 of 3 "
        "users (33.3 %), more than suspend_threshold_percent (5 %) (--confirm suspend-users, "
        "or its box in the checklist)."
    )
    assert [t["dry_run"] for t in bob["timeline"]] == [False, True], "JSON lists every run"
    assert [t["mode_name"] for t in bob["timeline"]] == ["headless", "headless"]

    code = main(["explain", "bob@example.org", "--config", str(profile.path)])
    text = capsys.readouterr().out
    assert code == 0
    assert "  Active: yes → no" in text, text
    assert "run 1 (headless)" in text and "create-user succeeded" in text
    assert "suspend-user" not in text.split("History:")[1].splitlines()[1], "no dry run listed"
    assert "(1 change(s) planned in dry runs are not listed; --json lists them)" in text
    assert "True" not in text and "None" not in text, "values read as words"


def test_usage_errors_are_json_too_and_an_option_given_twice_is_refused(capsys, tmp_path):
    code, data, err = command(capsys, "show", "everything", "--json")
    assert code == 3 and "invalid choice: 'everything'" in data["error"]

    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    code, data, err = command(
        capsys, "--config", str(first), "explain", "ann@example.org", "--config", str(second)
    )
    assert code == 3 and "--config is given twice; give it once" in err

    code, data, err = command(
        capsys, "explain", "--address=-desk@example.org", "--json", "--config", str(first)
    )
    assert code == 3 and "a.toml: no such profile" in data["error"], "the address was taken"


def test_explain_says_an_address_zivver_holds_as_an_alias_is_not_created(
    zivver, make_profile, tmp_path, capsys
):
    zivver.org.add_user("ann@example.org", "Ann", aliases=["info@example.org"])
    profile = csv_world(
        tmp_path, make_profile, ["ann@example.org,Ann,true,1", "info@example.org,Info,true,2"]
    )

    info = explained(capsys, profile, "info@example.org")

    assert info["verdict"].startswith(
        "Not created: Zivver holds it as an alias of ann@example.org."
    ), info["verdict"]
    code, _err, report = profile.run(capsys=capsys)
    assert code == 2 and zivver.org.user_by_email("info@example.org") is None
    assert not any(c["email"] == "info@example.org" for c in report["changes"])
    assert profile.run(capsys=capsys)[0] == 0, "the alias is gone: created now"
    assert zivver.org.user_by_email("info@example.org") is not None


def test_a_line_break_in_a_name_cannot_forge_a_line_of_explain(
    zivver, make_profile, tmp_path, capsys
):
    zivver.org.add_user("ann@example.org", "Ann\nNext run: delete-user bob@example.org")
    profile = csv_world(tmp_path, make_profile, ["ann@example.org,Ann,true,1"])

    assert main(["explain", "ann@example.org", "--config", str(profile.path)]) == 0
    out = capsys.readouterr().out

    assert not any(line.startswith("Next run: delete-user") for line in out.splitlines()), out
    assert "Ann\\nNext run: delete-user bob@example.org" in out


def test_show_source_and_check_name_an_id_two_entries_share(zivver, make_profile, tmp_path, capsys):
    profile = csv_world(
        tmp_path, make_profile, ["bob@example.org,Bob,true,3", "carl@example.org,Carl,true,3"]
    )

    code, data, err = command(
        capsys, "show", "source", "Staff", "--json", "--config", str(profile.path)
    )

    assert code == 0, err
    assert [a["address"] for a in data["accounts"]] == ["bob@example.org"]
    (shared,) = data["unusable"]
    assert shared["address"] == "carl@example.org" and "is also the id of" in shared["reason"]

    code = main(["check", "--config", str(profile.path)])
    out = capsys.readouterr().out
    assert code != 0 and "its id 3 is also the id of staff.csv:2" in out, out
