"""Nothing silent (issue 23): every problem in the data reaches the admin, named where it is,
and a run that skipped, blocked or held anything never looks green.

Tried as a new admin would: a real slapd beside a small CSV file, the Zivver emulator over
HTTP, a webhook receiver on loopback; what is asserted is what they would notice: the exit
code, stderr, the report, `zsync status`, `zsync check`, the monitoring file, Recent events
and what Zivver holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Profile, ProfileFactory, ldap_source
from zsync_emulator import EmulatorServer
from zsync_tui.cli import main

HEADER = "email,name,kind,active,aliases,delegates"


def two_sources(
    make_profile: ProfileFactory, directory: Any, tmp_path: Path, rows: list[str], **sync: Any
) -> Profile:
    (tmp_path / "extern.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return make_profile(
        [ldap_source(directory.slapd), {"name": "Extern", "type": "csv", "path": "extern.csv"}],
        **sync,
    )


def active(zivver: EmulatorServer, email: str) -> bool:
    user = zivver.org.user_by_email(email)
    assert user is not None, email
    return bool(user["active"])


def a_leaver(directory: Any, make_profile: ProfileFactory, tmp_path: Path, capsys: Any) -> Profile:
    """Three people in the directory and one external in the CSV, synced; then bob leaves."""
    for uid in ("ann", "bob", "cat"):
        directory.user(uid)
    profile = two_sources(
        make_profile, directory, tmp_path, ["extern.one@example.org,Extern One,personal,true,,"]
    )
    code, err, _ = profile.run(capsys=capsys)
    assert code == 0, err
    directory.delete(directory.user_dn("bob"))
    return profile


def test_a_row_whose_address_cannot_be_read_blocks_every_removal_and_is_heard(
    directory,
    zivver,
    make_profile,
    tmp_path,
    capsys,
    monkeypatch,
    hook,  # noqa: F811
):
    """The run blocked a leaver's suspension, exited 0, said "completed" and notified nobody."""
    profile = a_leaver(directory, make_profile, tmp_path, capsys)
    (tmp_path / "extern.csv").write_text(
        f"{HEADER}\nextern.one@example.org,Extern One,personal,true,,\nnot-an-email,Nobody,personal,true,,\n"
    )
    monkeypatch.setenv("HOOK_URL", hook[0])
    profile.data["notify"] = {"when": "problems", "webhook": {"url_env": "HOOK_URL"}}
    profile.data["monitoring"] = {"textfile": "zsync.prom"}
    profile.write()

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert active(zivver, "bob@example.org"), "nobody is suspended while a row may be anyone"
    assert (
        "ERROR Source 'Extern', extern.csv:3: 'not-an-email' is not a valid e-mail address" in err
    )
    assert report is not None and report["status"] == "attention"
    assert report["unusable"] == [
        {
            "source": "Extern",
            "where": "extern.csv:3",
            "address": None,
            "id": None,
            "reason": "'not-an-email' is not a valid e-mail address",
            "value": None,
        }
    ]
    assert report["removals_not_planned"] == ["bob@example.org"]
    assert "Task completed successfully" not in err
    [(_path, sent)] = hook[1]
    assert sent["exit_code"] == 2
    assert sent["problems"] == {"unusable": 1, "removals_blocked": 1}
    assert "extern.csv:3" in sent["text"] and "bob@example.org" in sent["text"]
    prom = (tmp_path / "zsync.prom").read_text()
    assert 'kind="unusable"} 1' in prom and 'kind="removals_blocked"} 1' in prom
    assert 'kind="failed"} 0' in prom

    code = main(["status", "--config", str(profile.path)])
    said = capsys.readouterr().out
    assert code == 2, said
    assert "1 source entry skipped as unusable" in said
    assert "no suspension or deletion was planned" in said


def test_a_row_whose_address_can_be_read_protects_that_account_only(
    directory, zivver, make_profile, tmp_path, capsys
):
    profile = a_leaver(directory, make_profile, tmp_path, capsys)
    (tmp_path / "extern.csv").write_text(
        f"{HEADER}\nextern.one@example.org,Extern One,personal,maybe,,\n"
    )

    code, err, report = profile.run("--confirm", "suspend-users", capsys=capsys)

    assert code == 2, err
    assert not active(zivver, "bob@example.org"), "the leaver is suspended"
    assert active(zivver, "extern.one@example.org"), "the unusable row's account is left alone"
    assert report is not None
    assert [u["address"] for u in report["unusable"]] == ["extern.one@example.org"]
    assert report["left_alone"] == ["extern.one@example.org"]
    assert report["removals_not_planned"] == []
    assert "extern.csv:2 (extern.one@example.org): active 'maybe' must be true or false" in err


def test_an_unclosed_quote_loses_no_row_and_sends_no_line_break(
    directory, zivver, make_profile, tmp_path, capsys
):
    directory.user("ann")
    profile = two_sources(
        make_profile,
        directory,
        tmp_path,
        [
            "extern.one@example.org,Extern One,personal,true,,",
            'extern.two@example.org,"Extern Two,personal,true,,',
            "extern.three@example.org,Extern Three,personal,true,,",
        ],
    )

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert zivver.org.user_by_email("extern.three@example.org") is not None, "the row after it"
    assert zivver.org.user_by_email("extern.two@example.org") is None
    names = [u["name"]["formatted"] for u in zivver.org.users.values()]
    assert not any("\n" in name for name in names)
    assert report is not None and report["unusable"][0]["where"] == "extern.csv:3"
    assert "a quoted field is not closed on its line" in err


def test_a_directory_name_with_controls_is_cleaned_and_said(
    directory, zivver, make_profile, tmp_path, capsys
):
    directory.user("ann", name="Ann\nSmith\x1b[31m")
    profile = two_sources(make_profile, directory, tmp_path, [])

    code, err, report = profile.run(capsys=capsys)

    assert zivver.org.user_by_email("ann@example.org")["name"]["formatted"] == "Ann Smith [31m"
    assert report is not None
    [notice] = [n for n in report["notices"] if "control character" in n["message"]]
    assert "cn=ann," in notice["message"] and "\\n" in notice["message"]
    assert code == 0, err


def test_check_names_each_bad_row_and_does_not_pass(
    directory, zivver, make_profile, tmp_path, capsys
):
    directory.user("ann")
    profile = two_sources(
        make_profile,
        directory,
        tmp_path,
        ["not-an-email,X,personal,true,,", "extern.two@example.org,Two,personal,true,,,extra"],
    )

    code = main(["check", "--config", str(profile.path)])
    out = capsys.readouterr().out

    assert code == 2, out
    assert "All checks passed" not in out
    assert "2 entries unusable" in out
    assert "extern.csv:2: 'not-an-email' is not a valid e-mail address" in out
    assert (
        "extern.csv:3 (extern.two@example.org): the row has 7 fields where the header has 6" in out
    )


def test_dry_run_v_lists_every_planned_change(directory, zivver, make_profile, tmp_path, capsys):
    directory.user("ann", aliases=["a.smith@example.org"])
    directory.user("bob")
    profile = two_sources(make_profile, directory, tmp_path, [])

    code, err, _ = profile.run("--dry-run", "-v", capsys=capsys)

    assert code == 0, err
    [ann] = [line for line in err.splitlines() if line.startswith("PLAN create-user ann@")]
    assert "aliases +a.smith@example.org" in ann and 'display_name "Ann"' in ann
    assert "PLAN create-user bob@example.org:" in err
    assert zivver.org.users == {}, "a dry run sends nothing"

    code, err, _ = profile.run("--dry-run", capsys=capsys)
    assert "PLAN " not in err, "without -v, the counts only"


def test_a_suspension_names_its_accounts_and_why(directory, zivver, make_profile, tmp_path, capsys):
    for n in range(10):
        directory.user(f"user{n}")
    profile = two_sources(make_profile, directory, tmp_path, [])
    assert profile.run(capsys=capsys)[0] == 0
    for n in range(3):
        directory.delete(directory.user_dn(f"user{n}"))

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "Suspend 3 of 10 users" in err
    assert "user0@example.org, user1@example.org, user2@example.org" in err
    assert report is not None
    assert report["guards"][0]["text"].startswith("Suspend 3 of 10 users")


def test_a_division_slash_is_zivvers_none_and_written_once(
    directory, zivver, make_profile, tmp_path, capsys
):
    (tmp_path / "extern.csv").write_text("email,name,division\nextern.one@example.org,One,/\n")
    profile = make_profile([{"name": "Extern", "type": "csv", "path": "extern.csv"}])
    assert profile.run(capsys=capsys)[0] == 0

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert report is not None and report["changes"] == [], "nothing is written again"


def test_recent_events_hold_what_a_held_run_wanted_to_tell(
    directory, zivver, make_profile, tmp_path, capsys
):
    """Ten held runs left Recent events empty: held writes, blocked removals and takeover
    warnings never reached it."""
    profile = a_leaver(directory, make_profile, tmp_path, capsys)
    (tmp_path / "extern.csv").write_text(
        f"{HEADER}\nextern.one@example.org,Extern One,personal,true,,\nnot-an-email,X,personal,true,,\n"
    )
    zivver.org.add_user("stranger@example.org", "Made by hand")

    code, err, _ = profile.run(capsys=capsys)

    assert code == 2, err
    store = profile.store()
    try:
        said = "\n".join(message for _at, _level, message in store.events())
    finally:
        store.close()
    assert "extern.csv:3: 'not-an-email' is not a valid e-mail address" in said
    assert "No suspension or deletion was planned: 1 source entry could not be read" in said
    assert "bob@example.org" in said, "the removal not planned is named"


# --- convergence: a second run writes nothing ----------------------------------------------

NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)
PEOPLE = st.lists(
    st.tuples(
        st.sampled_from(["ann", "bob", "cat", "dan", "eve"]),
        NAMES,
        st.sampled_from(["", "/", "Sales", "sales", " Support "]),
        st.sampled_from(["true", "false"]),
        st.lists(st.sampled_from(["a1", "a2", "a3"]), max_size=2),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda person: person[0],
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=PEOPLE)
def test_any_source_data_converges_in_one_run(people, tmp_path_factory, monkeypatch):
    """Whatever the source holds (names with any character, divisions, aliases, disabled
    people), the run after a run that succeeded writes nothing."""
    from zsync_emulator.organization import Organization

    tmp = tmp_path_factory.mktemp("converge")
    rows = ["email,name,division,active,aliases"]
    for uid, name, division, is_active, aliases in people:
        quoted = '"' + name.replace('"', '""') + '"'
        alias_text = ";".join(f"{uid}.{a}@example.org" for a in aliases)
        rows.append(f"{uid}@example.org,{quoted},{division},{is_active},{alias_text}")
    (tmp / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    monkeypatch.setenv("ZIVVER_API_KEY", "converge-key")
    org = Organization("converge-key")
    org.divisions |= {"Sales", "sales", "Support"}
    with EmulatorServer(org) as server:
        data = {
            "target": {"url": server.url, "api_key_env": "ZIVVER_API_KEY", "max_retries": 1},
            "sources": [{"name": "People", "type": "csv", "path": "people.csv"}],
            "sync": {"domains": ["example.org"], "existing_sso_keys": "none"},
        }
        profile = Profile(tmp / "zsync.toml", data).write()
        first, _err, report = profile.run()
        assert report is not None and first in (0, 2), report["message"]
        second, _err, report = profile.run()
        assert report is not None
        assert report["changes"] == [], f"written again: {report['changes']}"
        assert second == first or (first == 2 and second == 0)


def test_an_address_twice_in_one_source_is_unusable_and_left_alone(
    directory, zivver, make_profile, tmp_path, capsys
):
    """kim is active on one row and disabled on the next: which holds is not known."""
    directory.user("ann")
    profile = two_sources(
        make_profile, directory, tmp_path, ["kim@example.org,Kim,personal,true,,"]
    )
    assert profile.run(capsys=capsys)[0] == 0
    (tmp_path / "extern.csv").write_text(
        f"{HEADER}\nkim@example.org,Kim,personal,true,,\nkim@example.org,Kim,personal,false,,\n"
    )

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert active(zivver, "kim@example.org"), "left as it is"
    assert report is not None
    [twice] = report["unusable"]
    assert twice["where"] == "extern.csv:3" and twice["address"] == "kim@example.org"
    assert "also held by extern.csv:2 in this source" in twice["reason"]
    assert report["left_alone"] == ["kim@example.org"]


def test_an_address_twice_in_one_source_is_not_created_from_either_row(
    directory, zivver, make_profile, tmp_path, capsys
):
    """The first row may be the stale one: neither is created until one of them goes."""
    directory.user("ann")
    profile = two_sources(
        make_profile,
        directory,
        tmp_path,
        ["kim@example.org,Kim,personal,true,,", "kim@example.org,Kim K,personal,false,,"],
    )

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert zivver.org.user_by_email("kim@example.org") is None
    assert report is not None and report["left_alone"] == ["kim@example.org"]
    assert "kim@example.org is not created this run" in err
    assert zivver.org.user_by_email("ann@example.org") is not None, "the rest is synced"


def test_values_a_directory_entry_loses_are_said_on_stderr(
    directory, zivver, make_profile, tmp_path, capsys
):
    directory.user("ann", aliases=["not an alias", "a.two@example.org"])
    directory.user("bob", delegates=["ann"])
    directory.modify(
        directory.user_dn("bob"),
        msExchDelegateListLink=[directory.user_dn("ann"), "cn=gone,ou=staff,dc=example,dc=org"],
    )
    profile = two_sources(
        make_profile,
        directory,
        tmp_path,
        ["desk@example.org,Desk,functional,true,,ghost@example.org"],
    )

    code, err, report = profile.run(capsys=capsys)

    assert "WARNING Source 'Active Directory': ann@example.org: the alias 'not an alias'" in err
    assert "1 delegate(s) named by msexchdelegatelistlink are no user this source read" in err
    assert "cn=gone,ou=staff,dc=example,dc=org" in err
    assert (
        "WARNING Delegate ghost@example.org of desk@example.org (extern.csv:2) is in no source"
        in err
    )
    assert code == 0, err


def test_status_names_what_needed_you_and_a_dry_run_is_no_success(
    directory, zivver, make_profile, tmp_path, capsys
):
    directory.user("ann")
    profile = two_sources(make_profile, directory, tmp_path, ["not-an-email,X,personal,true,,"])
    assert profile.run("--dry-run", capsys=capsys)[0] == 2
    zivver.org.divisions.discard("Sales")
    (tmp_path / "extern.csv").write_text(
        "email,name,division\nnot-an-email,X,\nquinn@example.org,Quinn,Sales\n"
    )

    code, err, _ = profile.run(capsys=capsys)
    assert code == 1, err
    assert "1 of 2 change(s) failed; 1 source entry skipped as unusable" in err

    assert main(["status", "--config", str(profile.path)]) == 1
    said = capsys.readouterr().out
    assert "No run has completed without problems yet." in said, "a dry run synced nothing"
    assert "Failed in run 2: 1 change(s)" in said
    assert "Source entries skipped as unusable in run 2:" in said
    assert "  Source 'Extern', extern.csv:2: 'not-an-email' is not a valid e-mail address" in said
    assert main(["history", "--config", str(profile.path), "--run", "2"]) == 0
    shown = capsys.readouterr().out
    assert "1 source entry unusable" in shown and "extern.csv:2" in shown
