"""``zsync init``: the first-run walk writes a profile that works, proposes what the
directory says of itself, keeps secrets out of the profile and never overwrites one."""

from __future__ import annotations

import asyncio
import stat

import pytest
from textual.widgets import Input, Select, Static

from tests.conftest import API_KEY
from tests.servers import BASE_DN, SERVICE_DN, SERVICE_PASSWORD
from tests.tui import wait_for
from zsync_core.config import load_config
from zsync_tui.cli import main
from zsync_tui.init import InitApp, SourceStep, SyncStep, TargetStep, WriteStep


def fill(screen, **values: str) -> None:
    for name, value in values.items():
        screen.query_one(f"#f-{name}", Input).value = value


def said(screen) -> str:
    rendered = screen.query_one("#said", Static).render()
    return str(getattr(rendered, "plain", rendered))


@pytest.mark.asyncio
async def test_a_new_admin_walks_to_a_working_profile(directory, zivver, tmp_path):
    directory.user("ann")
    path = tmp_path / "zsync.toml"
    app = InitApp(path)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TargetStep), "step 1")
        fill(app.screen, url=zivver.url)
        await pilot.press("ctrl+n")  # no API key yet: not on
        await pilot.pause()
        assert isinstance(app.screen, TargetStep) and "Give the API key" in said(app.screen)
        app.screen.query_one("#secret-api_key", Input).value = API_KEY
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "API key" in said(app.screen), "the target test")
        assert "API key accepted" in said(app.screen), said(app.screen)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, SourceStep), "step 2")

        step = app.screen
        fill(step, name="Directory", url=directory.slapd.url, bind_dn=SERVICE_DN)
        step.query_one("#secret-password", Input).value = SERVICE_PASSWORD
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "preset openldap" in said(step), "the root DSE")
        assert step.query_one("#f-base_dn", Input).value == BASE_DN
        assert step.query_one("#f-directory", Select).value == "openldap"
        # the test directory is OpenLDAP with Active Directory's schema: the admin says so
        step.query_one("#f-directory", Select).value = "active-directory"
        await pilot.press("ctrl+t")
        await wait_for(
            pilot, lambda: "read" in said(step) and "Reading" not in said(step), "the source test"
        )
        assert "read: 1 accounts" in said(step), said(step)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, SyncStep), "step 3")
        fill(app.screen, domains="example.org")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, WriteStep), "step 4")
        await pilot.press("ctrl+s")
        await pilot.pause()

    text = path.read_text()
    assert API_KEY not in text and SERVICE_PASSWORD not in text, "no secret in it"
    secret = tmp_path / "zivver-api-key"
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
