"""Every screen state of the TUI as an 80×24 snapshot (pytest-textual-snapshot).

The demo runs in a fixed directory and clock times are pinned, so the pictures only change
when what an admin would see changes. Update them with ``pytest --snapshot-update`` and
look at every changed picture before committing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui import wait_for
from zsync_core.session import SyncSession
from zsync_tui import fmt
from zsync_tui.app import ZsyncApp
from zsync_tui.demo import API_KEY, API_KEY_ENV, Demo, start_demo
from zsync_tui.screens.accounts import AccountsScreen
from zsync_tui.screens.confirm import ConfirmScreen
from zsync_tui.screens.detail import DetailScreen
from zsync_tui.screens.events import EventsScreen
from zsync_tui.screens.history import HistoryScreen
from zsync_tui.screens.options import OptionsScreen
from zsync_tui.screens.preview import PreviewScreen
from zsync_tui.screens.review import ReviewScreen
from zsync_tui.screens.summary import SummaryScreen
from zsync_tui.screens.update import UpdateScreen

FIXED = Path(tempfile.gettempdir()) / "zsync-snapshot-demo"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZsyncApp]:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    monkeypatch.setattr(fmt, "clock", lambda timestamp: "12:00:00")
    shutil.rmtree(FIXED, ignore_errors=True)
    FIXED.mkdir()
    demo: Demo = start_demo(FIXED)
    # one request at a time, so the update's live log has the same order in every picture
    target = demo.config.target.model_copy(update={"concurrency": 1})
    session = SyncSession(demo.config.model_copy(update={"target": target}), mode="tui")
    yield ZsyncApp(session, where="demo")
    session.close()
    demo.close()
    shutil.rmtree(FIXED, ignore_errors=True)


def on(pilot, screen: type) -> bool:
    return isinstance(pilot.app.screen, screen)


async def loaded(pilot) -> None:
    await pilot.press("s")
    await wait_for(pilot, lambda: on(pilot, SummaryScreen), "the summary")


async def updated(pilot) -> None:
    await loaded(pilot)
    await pilot.press("u")
    await wait_for(pilot, lambda: on(pilot, ConfirmScreen), "the confirmation")
    await pilot.press("space", "u")
    await wait_for(pilot, lambda: on(pilot, UpdateScreen) and pilot.app.screen.done, "the update")


async def reviewed(pilot) -> None:
    await updated(pilot)
    await pilot.press("v")
    await wait_for(pilot, lambda: on(pilot, ReviewScreen), "the review")


def test_step1_before_start(app, snap_compare):
    """Step 1: the sources and Zivver listed as waiting; s starts."""
    assert snap_compare(app)


def test_step1_failed_load(app, snap_compare):
    """A source that cannot be read: the step is FAILED, the reason in words, nothing changed."""

    async def run_before(pilot):
        (FIXED / "staff.csv").unlink()
        await pilot.press("s")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#errors").display, "the error")

    assert snap_compare(app, run_before=run_before)


def test_recent_events_after_a_failed_load(app, snap_compare):
    async def run_before(pilot):
        (FIXED / "staff.csv").unlink()
        await pilot.press("s")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#errors").display, "the error")
        await pilot.press("e")
        await wait_for(pilot, lambda: on(pilot, EventsScreen), "Recent events")

    assert snap_compare(app, run_before=run_before)


def test_step2_summary(app, snap_compare):
    """One line per kind of action with Open details; the guarded suspension is called out."""
    assert snap_compare(app, run_before=loaded)


def test_step2_options(app, snap_compare):
    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("o")
        await wait_for(pilot, lambda: on(pilot, OptionsScreen), "the options")
        await wait_for(
            pilot,
            lambda: "With these options" in str(pilot.app.screen.query_one("#effect").render()),
            "the plan with these options",
        )

    assert snap_compare(app, run_before=run_before)


def test_step2_options_after_a_toggle(app, snap_compare):
    """The ticked box keeps its one-line look when focused, and the figures follow the toggle."""

    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("o")
        await wait_for(pilot, lambda: on(pilot, OptionsScreen), "the options")
        await pilot.click("#create_users")
        await wait_for(
            pilot,
            lambda: "11 change(s)" in str(pilot.app.screen.query_one("#effect").render()),
            "the plan without creations",
        )

    assert snap_compare(app, run_before=run_before)


def test_step2_preview(app, snap_compare):
    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: on(pilot, PreviewScreen), "the preview")

    assert snap_compare(app, run_before=run_before)


def test_step2_preview_search_and_exclusion(app, snap_compare):
    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: on(pilot, PreviewScreen), "the preview")
        await pilot.press("slash", *"bos", "enter", "down", "x")
        await pilot.pause(0.1)
        pilot.app.clear_notifications()

    assert snap_compare(app, run_before=run_before)


def test_step2_change_diff(app, snap_compare):
    """A rename: the address before and after, field by field."""

    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: on(pilot, PreviewScreen), "the preview")
        await pilot.press("slash", *"fleur", "enter", "enter")
        await wait_for(pilot, lambda: on(pilot, DetailScreen), "the diff")

    assert snap_compare(app, run_before=run_before)


def test_step3_confirmation(app, snap_compare):
    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("u")
        await wait_for(pilot, lambda: on(pilot, ConfirmScreen), "the confirmation")

    assert snap_compare(app, run_before=run_before)


def test_step3_confirmation_after_a_change_detail(app, snap_compare):
    """Screens reached in sequence look as when fresh: the detail view's styles stay its own
    (both dialogs are #dialog), so the confirmation keeps its red border and its width."""

    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: on(pilot, PreviewScreen), "the preview")
        await pilot.press("enter")
        await wait_for(pilot, lambda: on(pilot, DetailScreen), "the diff")
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: on(pilot, SummaryScreen), "the summary")
        await pilot.press("u")
        await wait_for(pilot, lambda: on(pilot, ConfirmScreen), "the confirmation")

    assert snap_compare(app, run_before=run_before)


def test_recent_events_after_a_failed_change(app, snap_compare):
    """At 80 columns a long explanation wraps inside the dialog, word by word."""

    async def run_before(pilot):
        await reviewed(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: on(pilot, EventsScreen), "Recent events")

    assert snap_compare(app, run_before=run_before)


def test_step3_update_ended_with_a_failure(app, snap_compare):
    assert snap_compare(app, run_before=updated)


def test_step4_review_with_failures(app, snap_compare):
    assert snap_compare(app, run_before=reviewed)


def test_step4_failed_change_details(app, snap_compare):
    """Open details of a failure: the explanation, then the request and Zivver's response."""

    async def run_before(pilot):
        await reviewed(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: on(pilot, DetailScreen), "the details")

    assert snap_compare(app, run_before=run_before)


def test_earlier_runs(app, snap_compare):
    async def run_before(pilot):
        await reviewed(pilot)
        await pilot.press("H")
        await wait_for(pilot, lambda: on(pilot, HistoryScreen), "the history")

    assert snap_compare(app, run_before=run_before)


def test_zivvers_accounts(app, snap_compare):
    """z: every account Zivver holds, with what zsync makes of it."""

    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("z")
        await wait_for(pilot, lambda: on(pilot, AccountsScreen), "Zivver's accounts")

    assert snap_compare(app, run_before=run_before)


def test_the_sources_data(app, snap_compare):
    """d: what the sources yield after mapping, the disabled entries shown by f."""

    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: on(pilot, AccountsScreen), "the sources' data")
        await pilot.press("f", "f")

    assert snap_compare(app, run_before=run_before)


def test_one_account_explained(app, snap_compare):
    """Why is this account changing? Enter in Zivver's accounts."""

    async def run_before(pilot):
        await loaded(pilot)
        await pilot.press("z")
        await wait_for(pilot, lambda: on(pilot, AccountsScreen), "Zivver's accounts")
        await pilot.press("slash", *"fleur", "enter", "enter")
        await wait_for(pilot, lambda: on(pilot, DetailScreen), "the explanation")

    assert snap_compare(app, run_before=run_before)


def test_a_long_profile_name_leaves_the_target_in_the_header(app, snap_compare):
    app.where = "synchronisation-finance-department-weekly.toml → zivver.example.org"
    assert snap_compare(app)
