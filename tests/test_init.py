"""``zsync init``: the first-run walk writes a profile that works, proposes what the
directory says of itself, keeps secrets out of the profile and never overwrites one."""

from __future__ import annotations

import asyncio
import stat

import pytest
from textual.widgets import Input, OptionList, Select, Static

from tests.conftest import API_KEY
from tests.servers import BASE_DN, SERVICE_DN, SERVICE_PASSWORD
from tests.tui import wait_for
from zsync_core.config import load_config
from zsync_tui.cli import main
from zsync_tui.init import InitApp
from zsync_tui.screens.profile import FormScreen, TypeScreen
from zsync_tui.widgets.table import VirtualTable


def fill(screen, **values: str) -> None:
    for name, value in values.items():
        screen.query_one(f"#f-{name}", Input).value = value


def said(screen) -> str:
    rendered = screen.query_one("#said", Static).render()
    return str(getattr(rendered, "plain", rendered))


def heading(screen) -> str:
    return str(screen.query_one("#heading", Static).render())


@pytest.mark.asyncio
async def test_a_new_admin_walks_to_a_working_profile(directory, zivver, tmp_path):
    directory.user("ann")
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "zsync.toml"
    app = InitApp(path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), "step 1")
        assert "1 of 4: Zivver" in heading(app.screen)
        fill(app.screen, url=zivver.url)
        await pilot.press("ctrl+s")  # no API key yet: not on
        await pilot.pause()
        assert "1 of 4" in heading(app.screen) and "Give the API key" in said(app.screen)
        app.screen.query_one("#secret-api_key", Input).value = API_KEY
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "API key" in said(app.screen), "the target test")
        assert "API key accepted" in said(app.screen), said(app.screen)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, TypeScreen), "step 2: its type")
        app.screen.query_one(OptionList).highlighted = app.screen.types.index("ldap")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), "step 2")

        step = app.screen
        assert "2 of 4" in heading(step)
        fill(step, url=directory.slapd.url, bind_dn=SERVICE_DN)
        step.query_one("#secret-password", Input).value = SERVICE_PASSWORD
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "preset openldap" in said(step), "the root DSE")
        assert step.query_one("#f-base_dn", Input).value == BASE_DN
        assert step.query_one("#f-directory", Select).value == "openldap"
        # the test directory is OpenLDAP with Active Directory's schema: the admin says so
        step.query_one("#f-directory", Select).value = "active-directory"
        await pilot.press("ctrl+t")
        await wait_for(
            pilot, lambda: "read" in said(step) and "Testing" not in said(step), "the source test"
        )
        assert "read: 1 accounts" in said(step), said(step)
        assert not list(etc.iterdir()), "the pasted password was tried, not written"
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: "3 of 4" in str(app.screen.query("#heading").first().render()), "step 3"
        )
        fill(app.screen, domains="example.org")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is app.profile, "step 4")
        assert [line.what for line in app.profile.query_one(VirtualTable).rows][:2] == [
            "target",
            "Directory",
        ]
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: path.exists(), "the profile written")

    text = path.read_text()
    assert API_KEY not in text and SERVICE_PASSWORD not in text, "no secret in it"
    secret = etc / "zivver-api-key"
    assert secret.read_text() == API_KEY + "\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o640
    config = load_config(str(path))
    assert config.sources[0].base_dn == BASE_DN and config.sync.domains == ["example.org"]
    assert config.sources[0].password_file.name == "directory-password"
    checked = await asyncio.to_thread(main, ["check", "--config", str(path)])
    assert checked == 0, "the profile works as written"


def test_init_never_overwrites_a_profile(tmp_path, capsys):
    path = tmp_path / "zsync.toml"
    path.write_text("# mine\n")

    code = main(["init", "--config", str(path)])

    assert code == 3
    assert "already exists, and zsync init never overwrites a profile" in capsys.readouterr().err
    assert path.read_text() == "# mine\n"


@pytest.mark.asyncio
async def test_escape_leaves_the_walk_keeping_what_was_typed(zivver, tmp_path):
    path = tmp_path / "zsync.toml"
    app = InitApp(path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), "step 1")
        fill(app.screen, url=zivver.url, api_key_env="ZIVVER_API_KEY", timeout_seconds="x")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert "timeout_seconds" in said(app.screen) and "Escape again leaves" in said(app.screen)
        fill(app.screen, timeout_seconds="20")
        await pilot.pause()
        await pilot.press("escape")  # valid now: kept on the way out
        await wait_for(pilot, lambda: app.screen is app.profile, "the profile to write")
        (target,) = [
            line for line in app.profile.query_one(VirtualTable).rows if line.what == "target"
        ]
        assert target.said == zivver.url, "kept, not dropped"

        await pilot.press("enter")  # Zivver's form again, as the profile area has it
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), "the form")
        fill(app.screen, timeout_seconds="not a number")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FormScreen), "what was typed is not dropped at once"
        assert "Escape again drops what you typed here" in said(app.screen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.profile, "left without it")
        assert app.draft.document.table("target")["url"] == zivver.url
    assert not path.exists()
