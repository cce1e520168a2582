"""Test connections one by one (the TUI's t): Zivver and each source, each on its own, as
``zsync check`` tests them, with what is wrong named; only reads."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ldap_source
from tests.servers import SERVICE_PASSWORD
from tests.tui import app_for, wait_for
from zsync_core.config import load_config
from zsync_core.connections import check_source, check_target
from zsync_core.errors import SourceError
from zsync_tui.screens.connections import ConnectionsScreen


def test_zivver_and_each_source_are_tested_on_their_own(
    directory, zivver, make_profile, tmp_path, monkeypatch
):
    directory.user("ann")
    (tmp_path / "extra.csv").write_text("email,name\nbob@example.org,Bob\nnot an address,X\n")
    csv = {"name": "Extra", "type": "csv", "path": "extra.csv"}
    profile = make_profile([ldap_source(directory.slapd), csv])
    config = load_config(str(profile.path))

    (target,) = asyncio.run(check_target(config))
    assert target.ok and "API key accepted" in target.message
    ldap = asyncio.run(check_source(config, "active directory"))
    assert all(r.ok for r in ldap), ldap
    assert ldap[-1].message == "read: 1 accounts"
    (extra,) = asyncio.run(check_source(config, "Extra"))
    assert extra.ok and extra.warning
    assert extra.message == "read: 1 accounts, 1 unusable entry"
    assert [r for r in zivver.org.requests if r[0] != "GET"] == [], "only reads"

    monkeypatch.setenv("ZIVVER_API_KEY", "wrong")
    (refused,) = asyncio.run(check_target(config))
    assert not refused.ok and "API key" in refused.message
    profile.data["sources"][0]["url"] = "ldap://127.0.0.1:9"
    profile.write()
    (unreachable, *_) = asyncio.run(
        check_source(load_config(str(profile.path)), "Active Directory")
    )
    assert not unreachable.ok and "127.0.0.1:9" in unreachable.message


@pytest.mark.asyncio
async def test_the_tui_tests_each_connection_and_says_what_is_wrong(
    directory, zivver, make_profile, tmp_path
):
    directory.user("ann")
    csv = {"name": "Missing", "type": "csv", "path": "missing.csv"}
    profile = make_profile([ldap_source(directory.slapd), csv])
    app = app_for(profile.path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectionsScreen), "the tests")
        screen = app.screen
        await pilot.press("a")
        await wait_for(
            pilot, lambda: all(line.state != "testing…" for line in screen.lines), "the results"
        )
        states = [line.state for line in screen.lines]
        assert states == ["ok", "ok", "FAILED"]
        assert "missing.csv does not exist" in screen.lines[2].said
        assert [r for r in zivver.org.requests if r[0] != "GET"] == []


def test_an_openldap_directorys_root_dse_gives_the_preset_and_the_base_dn(directory, tmp_path):
    from tests.servers import BASE_DN, SERVICE_DN
    from zsync_core.sources.ldap_discover import discover

    found = discover(
        {"url": directory.slapd.url, "bind_dn": SERVICE_DN, "password_env": "X"},
        SERVICE_PASSWORD,
        tmp_path / "zsync.toml",
    )

    assert (found.directory, found.base_dns[0]) == ("openldap", BASE_DN)
    with pytest.raises(SourceError, match="invalid credentials"):
        discover(
            {"url": directory.slapd.url, "bind_dn": SERVICE_DN, "password_env": "X"},
            "wrong",
            tmp_path / "zsync.toml",
        )
