"""End-to-end: `zsync --headless` against a real slapd and the emulator over HTTP."""

from __future__ import annotations

from tests.conftest import API_KEY, ldap_source
from tests.servers import Directory
from zsync_emulator import EmulatorServer

ZIVVER_USER = "urn:ietf:params:scim:schemas:zivver:0.1:User"


def staff(directory: Directory, count: int) -> None:
    for number in range(count):
        directory.user(f"user{number:03}")


def test_first_run_creates_users_and_functional_accounts_with_delegates(
    directory, zivver, make_profile, capsys
):
    directory.user("ann", aliases=["a.smith@example.org"], delegates=["bob"])
    directory.user("bob")
    directory.user("cat", disabled=True)
    directory.user(
        "helpdesk", "helpdesk@example.org", "Help Desk", shared=True, delegates=["ann", "cat"]
    )
    directory.group(
        "sales",
        "sales@example.org",
        [directory.user_dn("ann"), directory.user_dn("bob")],
        name="Sales Team",
    )
    profile = make_profile([ldap_source(directory.slapd)])

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert "Task completed successfully." in err
    org = zivver.org
    ann = org.user_by_email("ann@example.org")
    assert ann["active"] is True
    assert ann[ZIVVER_USER]["aliases"] == ["a.smith@example.org"]
    assert ann[ZIVVER_USER]["delegates"] == ["bob@example.org"]
    assert org.sso_keys[ann["id"]] == str(directory.guids["ann"])
    assert org.user_by_email("cat@example.org") is None, "a disabled directory user is not created"
    assert org.group_by_email("sales@example.org")["displayName"] == "Sales Team"
    assert org.delegates_of("sales@example.org") == {"ann@example.org", "bob@example.org"}
    # the shared mailbox is a functional account; its disabled delegate is dropped
    assert org.user_by_email("helpdesk@example.org") is None
    assert org.delegates_of("helpdesk@example.org") == {"ann@example.org"}
    assert report["summary"] == {"create-user": 2, "create-functional": 2}
    assert all(change["state"] == "succeeded" for change in report["changes"])


def test_second_run_plans_zero_changes(directory, zivver, make_profile, capsys):
    staff(directory, 20)
    directory.user("ann", aliases=["ann.alias@example.org"], delegates=["user001"])
    directory.group(
        "team", "team@example.org", [directory.user_dn("user000"), directory.user_dn("ann")]
    )
    directory.user("box", shared=True, delegates=["user002"])
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    requests_after_first = len(zivver.org.requests)

    code, err, report = profile.run(capsys=capsys)

    assert code == 0
    assert report["changes"] == []
    assert "Summary: no changes." in err
    writes = [r for r in zivver.org.requests[requests_after_first:] if r[0] != "GET"]
    assert writes == []


def test_a_changed_address_is_a_rename_that_keeps_the_account(
    directory, zivver, make_profile, capsys
):
    directory.user("ann", "ann@example.org", "Ann Smith")
    directory.group("team", "team@example.org", [directory.user_dn("ann")])
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    before = zivver.org.user_by_email("ann@example.org")["id"]

    directory.modify(
        directory.user_dn("ann"), mail="ann.jones@example.org", displayName="Ann Jones"
    )
    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert [c["action"] for c in report["changes"]] == ["update-user"]
    assert report["changes"][0]["before"]["email"] == "ann@example.org"
    renamed = zivver.org.user_by_email("ann.jones@example.org")
    assert renamed["id"] == before and renamed["name"]["formatted"] == "Ann Jones"
    assert zivver.org.user_by_email("ann@example.org") is None
    assert zivver.org.delegates_of("team@example.org") == {"ann.jones@example.org"}
    assert profile.run(capsys=capsys)[2]["changes"] == []


def test_disabling_one_of_a_hundred_users_suspends_it(directory, zivver, make_profile, capsys):
    staff(directory, 100)
    profile = make_profile([ldap_source(directory.slapd, page_size=30)])
    assert profile.run(capsys=capsys)[0] == 0

    directory.disable("user042")
    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert [(c["action"], c["email"]) for c in report["changes"]] == [
        ("suspend-user", "user042@example.org")
    ]
    assert zivver.org.user_by_email("user042@example.org")["active"] is False
    assert sum(u["active"] for u in zivver.org.users.values()) == 99


def test_disabling_ten_of_a_hundred_holds_suspensions_until_confirmed(
    directory, zivver, make_profile, capsys
):
    staff(directory, 100)
    profile = make_profile([ldap_source(directory.slapd, page_size=30)])
    assert profile.run(capsys=capsys)[0] == 0

    for number in range(10):
        directory.disable(f"user{number:03}")
    directory.user("newbie")
    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "Suspend 10 of 100 users (10.0 %)" in err
    assert "--confirm suspend-users" in err
    assert zivver.org.user_by_email("newbie@example.org") is not None, "other changes still apply"
    assert all(zivver.org.user_by_email(f"user{n:03}@example.org")["active"] for n in range(10))
    held = [c for c in report["changes"] if c["state"] == "held"]
    assert len(held) == 10 and {c["guard"] for c in held} == {"suspend-users"}

    code, err, report = profile.run("--confirm", "suspend-users", capsys=capsys)

    assert code == 0, err
    assert not any(zivver.org.user_by_email(f"user{n:03}@example.org")["active"] for n in range(10))
    assert sum(u["active"] for u in zivver.org.users.values()) == 91


def test_wrong_api_key_exits_3_and_changes_nothing(
    directory, zivver, make_profile, capsys, monkeypatch
):
    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    monkeypatch.setenv("ZIVVER_API_KEY", "not-the-key")

    code, err, report = profile.run(capsys=capsys)

    assert code == 3
    assert "Zivver refused the API key (HTTP 401" in err
    assert "nothing was changed" in err
    assert "not-the-key" not in err and API_KEY not in err
    assert zivver.org.users == {}
    assert report["exit_code"] == 3 and report["changes"] == []


def test_stopped_ldap_server_exits_3_and_suspends_nobody(directory, zivver, make_profile, capsys):
    staff(directory, 10)
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    directory.slapd.stop()

    code, err, _report = profile.run(capsys=capsys)

    assert code == 3
    assert f"cannot connect to {directory.slapd.url}" in err
    assert all(user["active"] for user in zivver.org.users.values())
    assert [r for r in zivver.org.requests if r[0] != "GET" and r[2] != 201] == []


def test_bind_with_a_wrong_password_names_the_account(
    directory, zivver, make_profile, capsys, monkeypatch
):
    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    monkeypatch.setenv("LDAP_PASSWORD", "wrong")

    code, err, _ = profile.run(capsys=capsys)

    assert code == 3
    assert (
        f"LDAP bind to {directory.slapd.url} failed: invalid credentials for cn=svc-zivver" in err
    )
    assert zivver.org.users == {}


def test_dry_run_sends_nothing_and_reports_the_plan(directory, zivver, make_profile, capsys):
    staff(directory, 3)
    profile = make_profile([ldap_source(directory.slapd)])

    code, err, report = profile.run("--dry-run", capsys=capsys)

    assert code == 0
    assert "There will be 3 users added to your Zivver organization." in err
    assert report["summary"] == {"create-user": 3}
    assert zivver.org.users == {}
    assert [r[0] for r in zivver.org.requests] == ["GET", "GET"]


def test_accounts_the_tool_did_not_create_or_match_are_never_touched(
    directory, zivver, make_profile, capsys
):
    directory.user("ann")
    outsider = zivver.org.add_user("ceo@example.org", "The CEO")
    foreign = zivver.org.add_user("guest@partner.com", "Partner")
    profile = make_profile([ldap_source(directory.slapd)], delete_users=True)

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert [c["email"] for c in report["changes"]] == ["ann@example.org"]
    assert zivver.org.users[outsider]["active"] and zivver.org.users[foreign]["active"]


def test_a_leaver_removed_from_the_directory_is_suspended_not_deleted(
    directory, zivver, make_profile, capsys
):
    staff(directory, 30)
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0

    directory.delete(directory.user_dn("user007"))
    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert [(c["action"], c["email"]) for c in report["changes"]] == [
        ("suspend-user", "user007@example.org")
    ]
    assert zivver.org.user_by_email("user007@example.org")["active"] is False


def test_deleting_users_is_always_held_without_confirmation(
    directory, zivver, make_profile, capsys
):
    staff(directory, 30)
    profile = make_profile([ldap_source(directory.slapd)], delete_users=True)
    assert profile.run(capsys=capsys)[0] == 0
    directory.delete(directory.user_dn("user007"))

    code, err, _ = profile.run(capsys=capsys)
    assert code == 2 and "Delete 1 users" in err
    assert zivver.org.user_by_email("user007@example.org") is not None

    code, err, _ = profile.run("--confirm", "delete-users", capsys=capsys)
    assert code == 0, err
    assert zivver.org.user_by_email("user007@example.org") is None


def test_nested_groups_are_flattened_and_cycles_cut(directory, zivver, make_profile, capsys):
    for uid in ("ann", "bob", "cat"):
        directory.user(uid)
    inner = directory.group("inner", None, [directory.user_dn("bob")])
    outer = directory.group("outer", "outer@example.org", [directory.user_dn("ann"), inner])
    directory.modify(inner, member=[directory.user_dn("bob"), outer, directory.user_dn("cat")])
    profile = make_profile([ldap_source(directory.slapd)])

    code, err, _ = profile.run(capsys=capsys)

    assert code == 0, err
    assert zivver.org.delegates_of("outer@example.org") == {
        "ann@example.org",
        "bob@example.org",
        "cat@example.org",
    }
    assert zivver.org.group_by_email("inner@example.org") is None


def test_a_functional_account_disabled_in_the_directory_loses_its_delegates(
    directory, zivver, make_profile, capsys
):
    for uid in ("ann", "bob"):
        directory.user(uid)
    group = directory.group(
        "team", "team@example.org", [directory.user_dn("ann"), directory.user_dn("bob")]
    )
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0

    directory.modify(group, member=[])
    code, err, report = profile.run("--confirm", "suspend-functional", capsys=capsys)

    assert code == 0, err
    assert [c["action"] for c in report["changes"]] == ["suspend-functional"]
    assert zivver.org.delegates_of("team@example.org") == set(), (
        "cleared with PATCH, not an (ignored) empty PUT"
    )
    assert (
        "PATCH",
        f"/api/scim/v2/Groups/{zivver.org.group_by_email('team@example.org')['id']}",
        200,
    ) in zivver.org.requests


def test_csv_source_merges_with_ldap_and_conflicts_are_reported(
    directory, zivver, make_profile, capsys, tmp_path
):
    directory.user("ann", name="Ann from AD")
    csv_file = tmp_path / "extra.csv"
    csv_file.write_text(
        "email,name,kind,delegates,id\n"
        "ann@example.org,Ann from CSV,personal,,C1\n"
        "contractor@example.org,Con Tractor,personal,,C2\n"
        "support@example.org,Support,functional,ann@example.org;contractor@example.org,C3\n"
    )
    profile = make_profile(
        [ldap_source(directory.slapd), {"name": "Extra", "type": "csv", "path": "extra.csv"}]
    )

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, "an entry another source overrides is skipped: the run says so"
    assert report["status"] == "attention"
    assert "1 source entry ignored because a source earlier in the order holds" in err
    assert zivver.org.user_by_email("ann@example.org")["name"]["formatted"] == "Ann from AD"
    assert zivver.org.user_by_email("contractor@example.org") is not None
    assert zivver.org.delegates_of("support@example.org") == {
        "ann@example.org",
        "contractor@example.org",
    }
    assert any(
        "ann@example.org appears twice" in n["message"] and "Active Directory" in n["message"]
        for n in report["notices"]
    )
    assert report["sources"] == {"Active Directory": 1, "Extra": 3}


def test_ldaps_with_the_servers_ca_reads_and_an_unknown_ca_is_refused(
    tls_slapd, certificate, zivver, make_profile, capsys
):
    directory = Directory(tls_slapd)
    directory.user("ann")
    source = ldap_source(tls_slapd, url=tls_slapd.ldaps_url)

    code, err, _ = make_profile([source]).run(capsys=capsys)
    assert code == 3
    assert "TLS certificate of " + tls_slapd.ldaps_url in err and "ca_file" in err

    code, err, _ = make_profile([{**source, "ca_file": str(certificate[0])}]).run(capsys=capsys)
    assert code == 0, err
    assert zivver.org.user_by_email("ann@example.org") is not None


def test_start_tls_upgrades_a_plain_connection(
    tls_slapd, certificate, zivver, make_profile, capsys
):
    Directory(tls_slapd).user("ann")
    source = ldap_source(tls_slapd, start_tls=True, ca_file=str(certificate[0]))

    code, err, _ = make_profile([source]).run(capsys=capsys)

    assert code == 0, err
    assert zivver.org.user_by_email("ann@example.org") is not None


def test_the_run_history_keeps_every_run_and_change(directory, zivver, make_profile, capsys):
    staff(directory, 3)
    profile = make_profile([ldap_source(directory.slapd)])
    profile.run(capsys=capsys)
    profile.run("--dry-run", capsys=capsys)

    store = profile.store()
    runs = store.runs()
    assert [r.status for r in runs] == ["dry-run", "completed"]
    changes = store.changes(runs[1].id)
    assert [c.state for c in changes] == ["succeeded"] * 3
    assert (
        changes[0].http_status == 201
        and changes[0].response["body"]["userName"] == "user000@example.org"
    )
    assert any("Zivver: read" not in e[2] for e in store.events()) or store.events() == []


def test_emulator_fixture_is_real_http(zivver: EmulatorServer):
    import httpx

    response = httpx.get(zivver.url + "/Users", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200 and response.json()["totalResults"] == 0


def test_a_renamed_delegate_and_a_new_one_in_the_same_run_both_keep_access(
    directory, zivver, make_profile, capsys
):
    directory.user("ann")
    directory.user("bob")
    group = directory.group("team", "team@example.org", [directory.user_dn("ann")])
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0

    directory.modify(directory.user_dn("ann"), mail="ann.new@example.org")
    directory.modify(group, member=[directory.user_dn("ann"), directory.user_dn("bob")])
    code, err, _ = profile.run(capsys=capsys)

    assert code == 0, err
    assert zivver.org.delegates_of("team@example.org") == {"ann.new@example.org", "bob@example.org"}


def test_a_group_update_is_not_sent_when_a_delegates_own_creation_failed(
    directory, zivver, make_profile, capsys
):
    directory.user("ann")
    group = directory.group("team", "team@example.org", [directory.user_dn("ann")])
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0

    zivver.org.guests.add("zed.old@example.org")
    directory.user(
        "zed", "zed@example.org", aliases=["zed.old@example.org"]
    )  # Zivver refuses the alias
    directory.modify(group, member=[directory.user_dn("zed")])
    code, err, report = profile.run(capsys=capsys)

    assert code == 1
    states = {c["email"]: (c["state"], c["error"]) for c in report["changes"]}
    assert (
        states["zed@example.org"][0] == "failed"
        and "has a guest account in Zivver" in states["zed@example.org"][1]
    )
    assert (
        states["team@example.org"][0] == "failed"
        and "have no Zivver account yet" in states["team@example.org"][1]
    )
    assert zivver.org.delegates_of("team@example.org") == {"ann@example.org"}, (
        "access is not taken away"
    )


def test_an_entry_larger_than_one_read_arrives_whole(directory, zivver, make_profile, capsys):
    """Messages are cut out of 256 KiB reads; an entry can span several of them."""
    from zsync_core.sources.ldap_fast import RECEIVE_SIZE

    aliases = [f"alias{n:05}.of.ann@example.org" for n in range(12_000)]
    assert sum(len(a) + 8 for a in aliases) > RECEIVE_SIZE
    staff(directory, 9)  # with page_size 7, pages end inside and after the large entry
    directory.user("ann", aliases=aliases)
    profile = make_profile([ldap_source(directory.slapd)])

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    ann = zivver.org.user_by_email("ann@example.org")
    assert ann[ZIVVER_USER]["aliases"] == aliases
    assert zivver.org.user_by_email("user008@example.org") is not None
    assert report["summary"] == {"create-user": 10}


def test_leavers_held_for_confirmation_stay_delegates_until_confirmed(
    directory, zivver, make_profile, capsys
):
    """Four leavers of 40 (10 %, above the 5 % default): their suspensions are held, and the
    functional account keeps them as delegates until the suspensions are confirmed."""
    people = [f"user{n:03}" for n in range(40)]
    for uid in people:
        directory.user(uid)
    directory.group("team", "team@example.org", [directory.user_dn(uid) for uid in people])
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    everyone = {f"{uid}@example.org" for uid in people}
    assert zivver.org.delegates_of("team@example.org") == everyone
    for uid in people[:4]:
        directory.disable(uid)

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert zivver.org.delegates_of("team@example.org") == everyone
    assert sum(1 for u in zivver.org.users.values() if not u["active"]) == 0

    code, err, report = profile.run("--confirm", "suspend-users", capsys=capsys)

    assert code == 0, err
    assert zivver.org.delegates_of("team@example.org") == everyone - {
        f"{uid}@example.org" for uid in people[:4]
    }
    assert sum(1 for u in zivver.org.users.values() if not u["active"]) == 4
