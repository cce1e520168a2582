"""The TUI's profile area (P): sources edited, added, moved and removed in forms made from
their models, every change checked and tested before the profile is saved in place."""

from __future__ import annotations

import pytest
from textual.widgets import Input, OptionList

from tests.tui import app_for, wait_for
from zsync_core.config import load_config
from zsync_tui.screens.profile import FormScreen, ProfileScreen


def lines(screen) -> list[str]:
    from zsync_tui.widgets.table import VirtualTable

    return [line.name for line in screen.query_one(VirtualTable).rows]


@pytest.mark.asyncio
async def test_sources_are_edited_added_moved_and_saved_keeping_the_comments(
    zivver, make_profile, tmp_path
):
    (tmp_path / "hr.csv").write_text("email,name\nann@example.org,Ann\n")
    (tmp_path / "extra.csv").write_text("email,name\nbob@example.org,Bob\n")
    profile = make_profile([{"name": "HR", "type": "csv", "path": "hr.csv"}])
    profile.path.write_text("# the finance team's profile\n" + profile.path.read_text())
    app = app_for(profile.path)
    async with app.run_test(size=(100, 34)) as pilot:
        await pilot.press("P")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileScreen), "the profile")
        profile_screen = app.screen
        assert lines(profile_screen) == [zivver.url, "HR", "options"]

        await pilot.press("down", "enter")  # the source HR
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), "its form")
        app.screen.query_one("#f-description", Input).value = "weekly HR export"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is profile_screen, "back to the profile")

        await pilot.press("a")
        await wait_for(pilot, lambda: bool(app.screen.query(OptionList)), "the types")
        app.screen.query_one(OptionList).highlighted = list(app.screen.types).index("csv")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), "the new source")
        app.screen.query_one("#f-name", Input).value = "Extra"
        app.screen.query_one("#f-path", Input).value = "extra.csv"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is profile_screen, "back to the profile")
        assert lines(profile_screen) == [zivver.url, "HR", "Extra", "options"]
        await pilot.press("ctrl+up")  # Extra first: it wins a conflict
        assert lines(profile_screen) == [zivver.url, "Extra", "HR", "options"]

        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is not profile_screen, "the save")
        assert [s.name for s in app.session.config.sources] == ["Extra", "HR"]

    text = profile.path.read_text()
    assert text.startswith("# the finance team's profile")
    config = load_config(str(profile.path))
    assert [s.name for s in config.sources] == ["Extra", "HR"]
    assert config.sources[1].description == "weekly HR export"


@pytest.mark.asyncio
async def test_a_change_that_fails_its_test_is_not_saved_unless_asked(
    zivver, make_profile, tmp_path
):
    (tmp_path / "hr.csv").write_text("email,name\nann@example.org,Ann\n")
    profile = make_profile([{"name": "HR", "type": "csv", "path": "hr.csv"}])
    before = profile.path.read_text()
    app = app_for(profile.path)
    async with app.run_test(size=(100, 34)) as pilot:
        await pilot.press("P")
        await wait_for(pilot, lambda: isinstance(app.screen, ProfileScreen), "the profile")
        screen = app.screen
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), "its form")
        app.screen.query_one("#f-path", Input).value = "missing.csv"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "back")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.untested_ok, "the failed test")
        assert profile.path.read_text() == before, "not saved"
        said = str(screen.query_one("#said").render())
        assert "missing.csv does not exist" in said and "Ctrl+S again to save anyway" in said
