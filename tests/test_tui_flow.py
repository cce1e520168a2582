"""The four steps driven with the keyboard (Pilot), against the emulator and a real directory."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ldap_source, m365_source
from tests.servers import SERVICE_PASSWORD, Directory
from tests.tui import app_for, notifications, text, wait_for
from zsync_core.session import SyncSession
from zsync_core.store import Store
from zsync_core.zivver.client import ZivverClient
from zsync_emulator import EmulatorServer
from zsync_tui.app import ZsyncApp
from zsync_tui.demo import API_KEY, API_KEY_ENV, Demo, start_demo
from zsync_tui.screens.confirm import ConfirmScreen
from zsync_tui.screens.detail import DetailScreen
from zsync_tui.screens.events import EventsScreen
from zsync_tui.screens.history import HistoryScreen
from zsync_tui.screens.load import LoadScreen
from zsync_tui.screens.options import OptionsScreen
from zsync_tui.screens.preview import PreviewScreen
from zsync_tui.screens.review import ReviewScreen
from zsync_tui.screens.summary import SummaryScreen
from zsync_tui.screens.update import UpdateScreen
from zsync_tui.widgets.table import VirtualTable

SIZE = (80, 24)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    running = start_demo(tmp_path)
    yield running
    running.close()


def demo_app(demo: Demo) -> ZsyncApp:
    return ZsyncApp(SyncSession(demo.config, mode="tui"), where="demo")


def is_on(app: ZsyncApp, screen: type) -> bool:
    return isinstance(app.screen, screen)


async def load(pilot) -> None:
    await pilot.press("s")
    await wait_for(pilot, lambda: is_on(pilot.app, SummaryScreen), "the summary")


async def without_suspensions(pilot) -> None:
    """Change sync options: suspend_users off, for this run only."""
    await pilot.press("o")
    await wait_for(pilot, lambda: is_on(pilot.app, OptionsScreen), "the options")
    await pilot.click("#suspend_users")
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: is_on(pilot.app, SummaryScreen), "the summary")


async def test_demo_through_all_four_steps(demo: Demo) -> None:
    """A newcomer's run of `zsync demo`: what the screens say is what happens in Zivver."""
    org = demo.org
    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        assert is_on(app, LoadScreen)
        assert org.requests == [], "nothing is read before Start"
        await load(pilot)
        summary = app.screen
        lines = [str(o.prompt) for o in summary.query_one("OptionList").options]
        assert lines[0].startswith("There will be 8 users added to your Zivver organization.")
        assert any(line.startswith("There will be 4 users suspended.") for line in lines)
        assert "Suspend 4 of 57 users (7.0 %)" in text(app, "#notes-text")

        await pilot.press("u")
        await wait_for(pilot, lambda: is_on(app, ConfirmScreen), "the confirmation")
        await pilot.press("u")  # not ticked yet: nothing starts
        await pilot.pause()
        assert is_on(app, ConfirmScreen)
        assert [r for r in org.requests if r[0] != "GET"] == []
        await pilot.press("space", "u")
        await wait_for(pilot, lambda: is_on(app, UpdateScreen) and app.screen.done, "the update")
        assert "1 of 19 change(s) failed." in text(app, "#outcome")

        await pilot.press("v")
        await wait_for(pilot, lambda: is_on(app, ReviewScreen), "the review")
        rows = app.screen.query_one(VirtualTable).rows
        assert rows[0].state == "failed", "failures come first"
        assert rows[0].email == "erik.martens@example.org"
        assert "guest account" in rows[0].error
        await pilot.press("enter")
        await wait_for(pilot, lambda: is_on(app, DetailScreen), "the change's details")
        sections = [str(s.content) for s in app.screen.query(".section")]
        assert any("Alias is a guest" in s for s in sections), "Zivver's own answer is shown"
        assert any('"userName": "erik.martens@example.org"' in s for s in sections), "the request"
        await pilot.press("escape")
        await wait_for(pilot, lambda: is_on(app, ReviewScreen), "the review again")
        await pilot.press("w")  # why: after the update, its history says what was sent
        await wait_for(pilot, lambda: is_on(app, DetailScreen), "erik explained")
        assert dict(app.screen.facts)["Next run"].startswith("Not known yet: the sources and")
        sections = [str(s.content) for s in app.screen.query(".section")]
        assert any("create-user failed" in s and "TUI" in s for s in sections), sections
        await pilot.press("escape")

    # what the screens said happened in Zivver
    assert org.user_by_email("dirk.vandenbrink@example.org")["active"] is True
    assert org.user_by_email("erik.martens@example.org") is None
    assert org.user_by_email("fleur.bos@example.org") is not None, "renamed, not re-created"
    assert org.user_by_email("fleur.dejong@example.org") is None
    assert org.user_by_email("kees.vandijk@example.org")["active"] is False
    assert org.user_by_email("sophie.koster@example.org")["active"] is False
    assert org.user_by_email("pieter.huisman@example.org")["active"] is True
    assert org.user_by_email("it-admin@example.org")["active"] is True, "never managed: untouched"
    assert org.user_by_email("contractor@partner.com")["active"] is True, "outside the domains"
    assert org.delegates_of("finance@example.org") == {
        "emma.meijer@example.org",
        "lucas.deboer@example.org",
    }
    assert "noor.visser@example.org" in org.delegates_of("servicedesk@example.org")
    store = Store.open(demo.directory / "zsync-state")
    run = store.runs()[0]
    assert (run.mode, run.status, run.summary["succeeded"], run.summary["failed"]) == (
        "tui",
        "failed-changes",
        18,
        1,
    )
    store.close()


async def test_escape_on_the_confirmation_sends_nothing(demo: Demo) -> None:
    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        await pilot.press("u")
        await wait_for(pilot, lambda: is_on(app, ConfirmScreen), "the confirmation")
        await pilot.press("escape")
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "back on the summary")
    assert [r for r in demo.org.requests if r[0] != "GET"] == []


async def test_preview_filters_searches_and_excludes_a_change_from_the_run(demo: Demo) -> None:
    org = demo.org
    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: is_on(app, PreviewScreen), "the preview")
        table = app.screen.query_one(VirtualTable)
        assert len(table.rows) == 19
        await pilot.press("f")  # first action kind: create-user
        assert {c.action.value for c in table.rows} == {"create-user"}
        await pilot.press("f", "f", "f", "f", "f", "f")  # back to all actions
        assert len(table.rows) == 19
        await pilot.press("slash", *"kees", "enter")
        assert [c.email for c in table.rows] == ["kees.vandijk@example.org"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: is_on(app, DetailScreen), "the diff")
        assert [r[0] for r in app.screen.rows] == ["Active"]
        assert app.screen.rows[0][1:] == ("yes", "no")
        await pilot.press("escape", "x", "escape")  # exclude kees; back to the summary
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "the summary")
        lines = [str(o.prompt) for o in app.screen.query_one("OptionList").options]
        assert any("(1 excluded from this run)" in line for line in lines)
        # 3 of 57 suspensions is 5.3 %: still guarded
        await pilot.press("u")
        await wait_for(pilot, lambda: is_on(app, ConfirmScreen), "the confirmation")
        await pilot.press("space", "u")
        await wait_for(pilot, lambda: is_on(app, UpdateScreen) and app.screen.done, "the update")
    assert org.user_by_email("kees.vandijk@example.org")["active"] is True, "excluded: not sent"
    assert org.user_by_email("marieke.bosman@example.org")["active"] is False
    store = Store.open(demo.directory / "zsync-state")
    states = {(r.email, r.state) for r in store.changes(store.runs()[0].id)}
    assert ("kees.vandijk@example.org", "excluded") in states
    store.close()


async def test_options_recompute_at_once_and_save_to_the_profile_keeping_comments(
    demo: Demo,
) -> None:
    profile = demo.config.path
    original = profile.read_text()
    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        requests = len(demo.org.requests)
        await pilot.press("o")
        await wait_for(pilot, lambda: is_on(app, OptionsScreen), "the options")
        await pilot.click("#suspend_users")
        await wait_for(
            pilot,
            lambda: (
                "With these options: 15 change(s), none needing confirmation"
                in text(app, "#effect")
            ),
            "the plan recomputed in the background",
        )
        await pilot.press("ctrl+r")  # for this run only
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "the summary")
        lines = [str(o.prompt) for o in app.screen.query_one("OptionList").options]
        assert not any("suspended." in line for line in lines)
        assert app.plan is not None and not app.plan.guards
        assert len(demo.org.requests) == requests, "recomputed without reading again"
        assert profile.read_text() == original

        await pilot.press("o")
        await wait_for(pilot, lambda: is_on(app, OptionsScreen), "the options")
        await pilot.click("#delete_users")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "the summary")
    saved = profile.read_text()
    assert saved.startswith("# The zsync demo profile"), "comments are kept"
    assert "suspend_users = false" in saved and "delete_users = true" in saved
    assert (
        saved.replace("suspend_users = false\n", "").replace("delete_users = true\n", "")
        == original
    )


async def test_a_failed_load_says_why_in_words_and_changes_nothing(
    directory: Directory, zivver: EmulatorServer, make_profile, monkeypatch
) -> None:
    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    monkeypatch.setenv("LDAP_PASSWORD", "wrong-password")
    app = app_for(profile.path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await wait_for(
            pilot, lambda: not app.screen.loading and app.busy is None, "the load to end"
        )
        assert is_on(app, LoadScreen)
        errors = text(app, "#errors")
        assert "Loading failed, so nothing can be changed." in errors
        assert f"LDAP bind to {directory.slapd.url} failed" in errors
        steps = app.screen.rows
        assert any(r.state == "failed" and "bind" in r.label for r in steps)
        await pilot.press("e")
        await wait_for(pilot, lambda: is_on(app, EventsScreen), "Recent events")
        assert any("invalid credentials" in m.lower() for _, _, m in app.screen.events)
        await pilot.press("escape")
        # once fixed, Start reads everything again and moves on
        monkeypatch.setenv("LDAP_PASSWORD", SERVICE_PASSWORD)
        await load(pilot)
    assert [r for r in zivver.org.requests if r[0] != "GET"] == []


async def test_a_real_directory_through_the_four_steps_and_the_history(
    directory: Directory, zivver: EmulatorServer, make_profile
) -> None:
    directory.user("ann", aliases=["a.smith@example.org"])
    directory.user("bob")
    directory.user("helpdesk", "helpdesk@example.org", "Help Desk", shared=True, delegates=["ann"])
    profile = make_profile([ldap_source(directory.slapd)])
    app = app_for(profile.path)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        first = [str(o.prompt) for o in app.screen.query_one("OptionList").options]
        assert first[0].startswith("There will be 2 users added")
        directory.user("cat")  # the directory changed meanwhile: Reload all data sees it
        before = app.screen
        await pilot.press("r")
        await wait_for(
            pilot, lambda: is_on(app, SummaryScreen) and app.screen is not before, "a new summary"
        )
        again = [str(o.prompt) for o in app.screen.query_one("OptionList").options]
        assert again[0].startswith("There will be 3 users added")
        await pilot.press("u")  # nothing guarded: starts at once
        await wait_for(pilot, lambda: is_on(app, UpdateScreen) and app.screen.done, "the update")
        assert "Task completed successfully." in text(app, "#outcome")
        await pilot.press("v")
        await wait_for(pilot, lambda: is_on(app, ReviewScreen), "the review")
        assert {r.state for r in app.screen.query_one(VirtualTable).rows} == {"succeeded"}
        # a second synchronization from the review: nothing left to do
        await pilot.press("n")
        await wait_for(pilot, lambda: is_on(app, LoadScreen), "step 1 again")
        await load(pilot)
        assert "nothing to do" in str(app.screen.query_one("OptionList").options[0].prompt)
        await pilot.press("H")
        await wait_for(pilot, lambda: is_on(app, HistoryScreen), "the history")
        runs = app.screen.query_one(VirtualTable).rows
        assert [r.status for r in runs[:3]] == ["running", "completed", "not-applied"]
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: is_on(app, ReviewScreen), "the earlier run")
        assert len(app.screen.query_one(VirtualTable).rows) == 4
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "back on the summary")
    assert zivver.org.user_by_email("ann@example.org")[
        "urn:ietf:params:scim:schemas:zivver:0.1:User"
    ]["aliases"] == ["a.smith@example.org"]
    assert zivver.org.delegates_of("helpdesk@example.org") == {"ann@example.org"}


async def test_each_step_of_a_load_is_on_screen_while_it_runs(
    microsoft, zivver: EmulatorServer, make_profile
) -> None:
    from zsync_emulator.microsoft import seed_tenant

    seed_tenant(microsoft.tenant, 300, 3, 1)
    microsoft.tenant.latency = 0.3  # each page takes a while, as on a real tenant
    profile = make_profile([m365_source(microsoft, shared_mailboxes=True)])
    app = app_for(profile.path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")

        def reading_users() -> bool:
            rows = app.screen.query_one(VirtualTable).rows if is_on(app, LoadScreen) else []
            return any(
                r.label == "Microsoft 365: read users" and r.state == "running" for r in rows
            )

        await wait_for(pilot, reading_users, "the users being read")
        shown = app.export_screenshot()  # what the terminal shows, not only what the rows hold
        assert "read&#160;users" in shown or "read users" in shown, "nothing covers the steps"
        labels = [r.label for r in app.screen.query_one(VirtualTable).rows]
        assert labels[0].startswith("Microsoft 365: sign in to ")
        assert "Zivver: read users and functional accounts" in labels
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "the summary")
        options = [str(o.prompt) for o in app.screen.query_one("OptionList").options]
        assert options[0].startswith("There will be 300 users added")


async def test_cancel_stops_cleanly_between_changes(demo: Demo) -> None:
    demo.org.latency = 0.3
    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        await without_suspensions(pilot)
        await pilot.press("u")
        await wait_for(
            pilot,
            lambda: is_on(app, UpdateScreen) and len(app.screen.rows) >= 2,
            "two changes",
        )
        await pilot.press("q")  # quitting mid-update is refused with a hint
        assert app.is_running
        await pilot.press("c")
        await wait_for(pilot, lambda: app.screen.done, "the cancel")
        assert "Cancelled:" in text(app, "#outcome")
        sent = len(app.screen.rows)
    store = Store.open(demo.directory / "zsync-state")
    run = store.runs()[0]
    states = [r.state for r in store.changes(run.id)]
    assert run.status == "cancelled"
    assert states.count("succeeded") + states.count("failed") == sent < 15
    assert states.count("cancelled") == 15 - sent
    store.close()


async def test_update_is_refused_when_another_run_changed_zivver_since_loading(
    demo: Demo, capsys
) -> None:
    from zsync_tui.cli import main

    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        code = await asyncio.to_thread(
            main, ["--headless", "--config", str(demo.config.path), "--confirm", "suspend-users"]
        )
        assert code == 1  # the guest alias fails there too
        await pilot.press("u")
        await pilot.pause()
        assert is_on(app, SummaryScreen)
        requests = len(demo.org.requests)
        await pilot.press("u")
        await pilot.pause()
        assert len(demo.org.requests) == requests, "nothing sent from the stale plan"


@pytest.mark.parametrize(
    ("where", "name"),
    [(ZivverClient, "read_organization"), (SyncSession, "plan")],
    ids=["while reading Zivver", "while planning"],
)
async def test_an_unexpected_error_mid_load_is_shown_and_the_app_stays_up(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, where: type, name: str
) -> None:
    app = demo_app(demo)
    real = getattr(where, name)

    async def broken_read(self, *args, **kwargs):  # fault injection: a bug in the core
        raise RuntimeError("boom in the core")

    def broken_plan(self, options=None):
        raise RuntimeError("boom in the core")

    broken = broken_plan if name == "plan" else broken_read
    monkeypatch.setattr(where, name, broken)
    shown = notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await wait_for(pilot, lambda: app.screen.query_one("#errors").display, "the error")
        assert is_on(app, LoadScreen) and app.is_running
        errors = text(app, "#errors")
        assert "Unexpected error during loading: RuntimeError('boom in the core')" in errors
        assert "please report it" in errors
        assert any("boom in the core" in message for message in shown)
        await pilot.press("e")
        await wait_for(pilot, lambda: is_on(app, EventsScreen), "Recent events")
        assert any("boom in the core" in m for _, _, m in app.screen.events)
        await pilot.press("escape")
        monkeypatch.setattr(where, name, real)
        await load(pilot)  # the admin starts again, and it works
        assert app.plan is not None and app.plan.changes
    store = Store.open(demo.config.state_path)
    statuses = [r.status for r in store.runs()]
    store.close()
    assert statuses[-1] == "aborted", "the broken run is closed, not left running"
    assert [r for r in demo.org.requests if r[0] != "GET"] == []


async def test_options_answer_every_key_while_the_plan_is_recomputed(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        real_plan = app.session.plan
        release = threading.Event()
        planned: list[bool] = []

        def slow_plan(options=None):  # fault injection: a plan that takes as long as we like
            assert threading.current_thread() is not threading.main_thread(), "not on the UI"
            release.wait(10)
            planned.append(options.suspend_users)
            return real_plan(options)

        await pilot.press("o")
        await wait_for(pilot, lambda: is_on(app, OptionsScreen), "the options")
        await wait_for(pilot, lambda: "With these options" in text(app, "#effect"), "the plan")
        app.screen.recompute = slow_plan
        await pilot.click("#suspend_users")
        await pilot.click("#suspend_users")
        await pilot.click("#suspend_users")
        # every click was answered while no plan could finish
        assert app.screen.query_one("#suspend_users").value is False
        assert "Recomputing the plan" in text(app, "#effect")
        release.set()
        await wait_for(
            pilot,
            lambda: (
                "With these options: 15 change(s), none needing confirmation"
                in text(app, "#effect")
            ),
            "the plan for the last state of the options",
        )
        assert planned[-1] is False
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "the summary")
        assert app.plan is not None and not app.plan.guards

        # used before its plan is in: the summary keeps its plan until the new one is
        release.clear()
        app.plan_quietly = slow_plan  # the app's own replan, held the same way
        await pilot.press("o")
        await wait_for(pilot, lambda: is_on(app, OptionsScreen), "the options")
        assert app.screen.recompute == slow_plan, "the options screen plans as the app does"
        await pilot.click("#suspend_users")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "the summary")
        assert not app.plan.guards, "the previous plan, until the new one is in"
        assert app.busy == "plan"
        await pilot.press("u")  # refused while the plan is recomputed
        assert is_on(app, SummaryScreen)
        release.set()
        await wait_for(pilot, lambda: app.plan.guards, "the plan with suspensions again")
        assert app.session.options.suspend_users is True


async def test_the_confirmation_keeps_its_own_look_after_a_detail_view(demo: Demo) -> None:
    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        await pilot.press("u")
        await wait_for(pilot, lambda: is_on(app, ConfirmScreen), "the confirmation")
        fresh = app.screen.query_one("#dialog")
        look = (fresh.styles.border_top, fresh.region.width)
        await pilot.press("escape")
        await pilot.press("p")
        await wait_for(pilot, lambda: is_on(app, PreviewScreen), "the preview")
        await pilot.press("enter")
        await wait_for(pilot, lambda: is_on(app, DetailScreen), "the details")
        detail = app.screen.query_one("#dialog")
        assert detail.styles.border_top != look[0], "the detail view has a border of its own"
        await pilot.press("escape", "escape", "u")
        await wait_for(pilot, lambda: is_on(app, ConfirmScreen), "the confirmation again")
        again = app.screen.query_one("#dialog")
        assert (again.styles.border_top, again.region.width) == look


async def test_a_shrunk_source_is_refused_by_the_tui_as_by_headless(
    directory: Directory, zivver: EmulatorServer, make_profile, capsys
) -> None:
    for number in range(10):
        directory.user(f"user{number}")
    profile = make_profile([ldap_source(directory.slapd)])
    assert (await asyncio.to_thread(profile.run, capsys=capsys))[0] == 0
    for number in range(6):
        directory.delete(directory.user_dn(f"user{number}"))
    writes = len([r for r in zivver.org.requests if r[0] != "GET"])

    code, err, _ = await asyncio.to_thread(profile.run, capsys=capsys)
    assert code == 3 and "returned 4 accounts, against 10" in err

    app = app_for(profile.path)
    shown = notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        assert app.plan is not None and app.plan.refused
        assert not [c for c in app.plan.changes if c.action.value.startswith("suspend")]
        assert "returned 4 accounts, against 10" in text(app, "#notes-text")
        await pilot.press("u")
        await pilot.pause(0.2)
        assert is_on(app, SummaryScreen), "nothing was started"
        assert any("returned 4 accounts" in message for message in shown)
    assert len([r for r in zivver.org.requests if r[0] != "GET"]) == writes


async def test_a_read_with_an_unusable_entry_is_never_shown_as_in_step(
    directory: Directory, zivver: EmulatorServer, make_profile, capsys
) -> None:
    """An entry with no id and a broken address blocks suspensions: with nothing else to do,
    the summary says Zivver may not be in step and why, not "nothing to do"."""
    for number in range(5):
        directory.user(f"user{number}")
    profile = make_profile([ldap_source(directory.slapd)])
    assert (await asyncio.to_thread(profile.run, capsys=capsys))[0] == 0
    directory.delete(directory.user_dn("user4"))
    directory.conn.add(
        "cn=mystery,ou=Staff,dc=example,dc=org",
        ["top", "person", "organizationalPerson", "user"],
        {"cn": "mystery", "sn": "m", "mail": "user4 at example.org", "userAccountControl": 512},
    )

    app = app_for(profile.path)
    async with app.run_test(size=(120, 30)) as pilot:
        await load(pilot)
        first = str(app.screen.query_one("OptionList").options[0].prompt)
        assert first.startswith("No change is planned, but Zivver may not be in step")
        assert "1 source entry skipped as unusable" in first
        assert "nothing to do" not in first
        options = app.screen.query_one("OptionList")
        ids = [option.id for option in options.options]
        assert ids[1:] == ["unusable", "blocked"], "each problem is a line with its list"
        options.highlighted = 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "LinesScreen", "the list")
        listed = " ".join(line.text for line in app.screen.query_one("RichLog").lines)
        assert "cn=mystery,ou=staff,dc=example,dc=org: mail 'user4 at example.org'" in listed
        await pilot.press("escape", "e")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "EventsScreen", "events")
        events = "\n".join(line.text for line in app.screen.query_one("RichLog").lines)
        assert "cn=mystery" in events and "entry skipped" in events
    assert zivver.org.user_by_email("user4@example.org")["active"] is True


async def test_zivvers_accounts_the_sources_data_and_why_an_account_changes(demo: Demo) -> None:
    """Beside the four steps: Zivver's accounts (z), the sources' data (d), and why one
    account changes (Enter there, w in the preview), without a read of Zivver."""
    from zsync_tui.screens.accounts import AccountsScreen

    app = demo_app(demo)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("z")
        await pilot.pause()
        assert is_on(app, LoadScreen), "nothing to show before a load"
        await load(pilot)
        reads = len(demo.org.requests)

        await pilot.press("z")
        await wait_for(pilot, lambda: is_on(app, AccountsScreen), "Zivver's accounts")
        assert "60 accounts (55 managed, 3 leaving, 1 untouched, 1 outside-domains)" in text(
            app, "#title"
        )
        await pilot.press("slash", *"pat.jansen", "enter")
        table = app.screen.query_one(VirtualTable)
        (row,) = table.rows
        assert (row.standing.value, row.change.action.value) == ("managed", "update-user")
        await pilot.press("enter")
        await wait_for(pilot, lambda: is_on(app, DetailScreen), "the explanation")
        facts = dict(app.screen.facts)
        assert facts["Next run"] == "The next run would update the user (aliases)."
        assert facts["In Zivver"] == "managed"
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: is_on(app, SummaryScreen), "the summary again")

        await pilot.press("d")
        await wait_for(pilot, lambda: is_on(app, AccountsScreen), "the sources' data")
        assert "Staff list: 64 accounts, 0 unusable" in text(app, "#title")
        await pilot.press("f", "f")  # disabled entries
        rows = app.screen.query_one(VirtualTable).rows
        assert rows and all(not r.active for r in rows)
        await pilot.press("escape", "p")
        await wait_for(pilot, lambda: is_on(app, PreviewScreen), "the preview")
        await pilot.press("w")
        await wait_for(pilot, lambda: is_on(app, DetailScreen), "why the first change")
        assert dict(app.screen.facts)["Next run"].startswith("The next run would create the user")
        assert len(demo.org.requests) == reads, "nothing more was read from Zivver"


async def test_a_source_named_like_markup_or_escapes_is_shown_as_written() -> None:
    """A source's name and description are the profile's text: never markup, never an
    escape sequence to the terminal (they once crashed the source data screen)."""
    from textual.app import App
    from textual.reactive import reactive

    from zsync_core.sources import SourceResult
    from zsync_tui.screens.accounts import source_screen
    from zsync_tui.widgets.progress import Progress

    class Host(App[None]):
        progress: reactive[Progress] = reactive(Progress)

    name = "Staff [/i] x"
    described = "HR \x1b]0;pwned\x07 [link=http://evil/]x[/link]"
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(source_screen("where", [SourceResult(name, [])], {name: described}))
        await pilot.pause()
        shown = text(app, "#title")
        assert "Staff [/i] x (HR" in shown and "[link=http://evil/]x[/link]" in shown
        assert "\x1b" not in shown


async def test_the_checklists_list_names_the_accounts_updated_with_the_leavers(
    zivver, make_profile, tmp_path
) -> None:
    """A leaver's suspension waits for a confirmation, and so does the update that takes
    them off a functional account: `l` lists both."""
    from zsync_tui.screens.lines import LinesScreen

    header = "email,name,kind,active,delegates"
    rows = [f"u{n}@example.org,U{n},personal,true," for n in range(4)]
    desk = "desk@example.org,Desk,functional,true,u0@example.org;u1@example.org"
    (tmp_path / "staff.csv").write_text("\n".join([header, *rows, desk]) + "\n")
    profile = make_profile([{"name": "Staff", "type": "csv", "path": "staff.csv"}])
    assert (await asyncio.to_thread(profile.run))[0] == 0
    rows[0] = "u0@example.org,U0,personal,false,"  # one of four leaves: over the threshold
    (tmp_path / "staff.csv").write_text("\n".join([header, *rows, desk]) + "\n")

    app = app_for(profile.path)
    async with app.run_test(size=SIZE) as pilot:
        await load(pilot)
        await pilot.press("u")
        await wait_for(pilot, lambda: is_on(app, ConfirmScreen), "the confirmation")
        await pilot.press("l")
        await wait_for(pilot, lambda: is_on(app, LinesScreen), "the list")
        shown = "\n".join(app.screen.lines)
    assert "u0@example.org" in shown
    assert "Updated with them (the leavers removed as delegates):\ndesk@example.org" in shown
