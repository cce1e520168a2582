"""The TUI's profile area (P): sources edited, added, moved and removed in forms made from
their models, every change checked and tested before the profile is saved in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Select, TextArea

from tests.conftest import SMTP_PASSWORD, ldap_source
from tests.tui import app_for, wait_for
from zsync_core.config import load_config
from zsync_tui.screens.profile import FormScreen, ProfileScreen

TABLES = ["sync", "notify", "store", "monitoring"]


def lines(screen) -> list[str]:
    from zsync_tui.widgets.table import VirtualTable

    return [line.what for line in screen.query_one(VirtualTable).rows]


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
        assert lines(profile_screen) == ["target", "HR", *TABLES]

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
        assert lines(profile_screen) == ["target", "HR", "Extra", *TABLES]
        await pilot.press("ctrl+up")  # Extra first: it wins a conflict
        assert lines(profile_screen) == ["target", "Extra", "HR", *TABLES]

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


async def open_line(pilot, app, what: str):
    """The profile area's form of the line ``what``."""
    await pilot.press("P")
    await wait_for(pilot, lambda: isinstance(app.screen, ProfileScreen), "the profile")
    screen = app.screen
    await pilot.press("home", *["down"] * lines(screen).index(what), "enter")
    await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), f"the form of {what}")
    return screen, app.screen


def said(screen) -> str:
    return str(screen.query_one("#said").render())


@pytest.mark.asyncio
async def test_a_mail_with_a_pasted_password_is_tested_before_anything_is_written(
    zivver, make_profile, tmp_path, smtp
):
    controller, box, cert = smtp
    (tmp_path / "hr.csv").write_text("email,name\nann@example.org,Ann\n")
    profile = make_profile([{"name": "HR", "type": "csv", "path": "hr.csv"}])
    app = app_for(profile.path)
    async with app.run_test(size=(100, 40)) as pilot:
        screen, form = await open_line(pilot, app, "notify")
        for key, value in {
            "email__smtp_host": "127.0.0.1",
            "email__smtp_port": str(controller.port),
            "email__ca_file": str(cert),
            "email__username": "zsync",
            "email__from": "zsync@example.org",
            "email__to": "it@example.org",
            "email__timeout_seconds": "3",  # aiosmtpd answers smtplib's second AUTH with silence
        }.items():
            form.query_one(f"#f-{key}", Input).value = value
        form.query_one("#secret-email__password", Input).value = "not the password"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "Testing" not in said(form) and said(form), "the test")
        assert "was not sent" in said(form) and not box.mails, said(form)

        form.query_one("#secret-email__password", Input).value = SMTP_PASSWORD
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "test message was sent" in said(form), "the mail")
        assert box.mails[-1]["subject"].endswith("a test notification")
        assert box.mails[-1]["to"] == ["it@example.org"] and box.mails[-1]["tls"]
        assert not (tmp_path / "notify-email-password").exists(), "tried, not written yet"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "back to the profile")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is not screen, "the save")

    text = profile.path.read_text()
    assert SMTP_PASSWORD not in text
    config = load_config(str(profile.path))
    email = config.notify.email
    assert (
        email is not None and email.sender == "zsync@example.org" and email.to == ["it@example.org"]
    )
    secret = tmp_path / "notify-email-password"
    assert email.password_file == Path("notify-email-password")
    assert secret.read_text() == SMTP_PASSWORD + "\n" and secret.stat().st_mode & 0o777 == 0o640
    assert len(box.mails) == 2, "the save tested the mail once more"


@pytest.mark.asyncio
async def test_an_ldap_sources_attributes_and_ou_map_are_edited_in_its_form(
    directory, zivver, make_profile, tmp_path
):
    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    app = app_for(profile.path)
    async with app.run_test(size=(100, 40)) as pilot:
        screen, form = await open_line(pilot, app, "Active Directory")
        form.query_one("#f-attributes__division", Input).value = "department"
        form.query_one("#f-ou_mapping", Select).value = "dn"
        area = form.query_one("#f-ou_map", TextArea)
        area.text = "OU=Finance,DC=example,DC=org\n"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "f-ou_map" not in said(form) and "ou_map, line 1" in said(form), said(form)
        area.text = 'OU=Finance,DC=example,DC=org = Finance\n"OU=Staff,DC=example,DC=org" = "/"\n'
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "back to the profile")
        await pilot.press("ctrl+s")  # tested against the directory, then saved
        await wait_for(pilot, lambda: app.screen is not screen, "the save")

    source = load_config(str(profile.path)).sources[0]
    assert source.attributes.division == "department"
    assert source.ou_mapping == "dn"
    assert source.ou_map == {
        "OU=Finance,DC=example,DC=org": "Finance",
        "OU=Staff,DC=example,DC=org": "/",
    }
    assert source.password_env == "LDAP_PASSWORD", "a key the form did not change stays"


@pytest.mark.asyncio
async def test_a_pasted_key_never_overwrites_another_profiles_secret(
    zivver, make_profile, tmp_path
):
    from tests.conftest import API_KEY

    (tmp_path / "hr.csv").write_text("email,name\nann@example.org,Ann\n")
    (tmp_path / "zivver-api-key").write_text("another profile's key\n")
    profile = make_profile([{"name": "HR", "type": "csv", "path": "hr.csv"}])
    app = app_for(profile.path)
    async with app.run_test(size=(100, 40)) as pilot:
        screen, form = await open_line(pilot, app, "target")
        form.query_one("#secret-api_key", Input).value = API_KEY
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "back to the profile")
        await pilot.press("ctrl+s")  # tested with the pasted key, then saved
        await wait_for(pilot, lambda: app.screen is not screen, "the save")

    assert (tmp_path / "zivver-api-key").read_text() == "another profile's key\n"
    config = load_config(str(profile.path))
    assert config.target.api_key_file == Path("zivver-api-key-2")
    assert config.target.api_key_env is None
    assert (tmp_path / "zivver-api-key-2").read_text() == API_KEY + "\n"


@pytest.mark.asyncio
async def test_the_forms_give_back_every_value_as_the_file_has_it(
    directory, zivver, make_profile, tmp_path
):
    """A form kept without typing changes nothing: "" is not "unset", a tab is no blank, a
    recipient may hold a comma, a division " = " and quotes."""
    directory.user("ann")
    source = ldap_source(
        directory.slapd,
        group_filter="",
        ou_mapping="dn",
        ou_map={"OU=Sales,DC=example,DC=org": "Sales = EMEA", "OU=Staff,DC=example,DC=org": "'x'"},
        attributes={"phone": ""},
    )
    (tmp_path / "hr.tsv").write_text("email\tname\nbob@example.org\tBob\n")
    tsv = {"name": "HR", "type": "csv", "path": "hr.tsv", "delimiter": "\t"}
    profile = make_profile([source, tsv])
    profile.data["notify"] = {
        "email": {
            "smtp_host": "127.0.0.1",
            "from": "zsync@example.org",
            "to": ['"Service Desk, IT" <it@example.org>', "ops@example.org"],
        }
    }
    profile.write()
    app = app_for(profile.path)
    async with app.run_test(size=(100, 40)) as pilot:
        _screen, form = await open_line(pilot, app, "Active Directory")
        ldap = form.gathered()
        await pilot.press("escape")
        _screen, form = await open_line(pilot, app, "notify")
        notify = form.gathered()
        await pilot.press("escape")
        _screen, form = await open_line(pilot, app, "HR")
        hr = form.gathered()
    assert ldap is not None and notify is not None and hr is not None
    assert hr.values["delimiter"] == "\t", "a tab is no blank"
    assert ldap.values["group_filter"] == ""
    assert ldap.values["attributes"] == {"phone": ""}
    assert ldap.values["ou_map"] == source["ou_map"]
    assert notify.values["email"]["to"] == profile.data["notify"]["email"]["to"]


@pytest.mark.asyncio
async def test_no_two_sources_share_a_name_and_a_dropped_paste_is_never_written(
    zivver, make_profile, tmp_path
):
    for name in ("hr.csv", "extra.csv"):
        (tmp_path / name).write_text("email,name\nann@example.org,Ann\n")
    profile = make_profile(
        [
            {"name": "HR", "type": "csv", "path": "hr.csv"},
            {"name": "Extra", "type": "csv", "path": "extra.csv"},
        ]
    )
    app = app_for(profile.path)
    async with app.run_test(size=(100, 40)) as pilot:
        screen, form = await open_line(pilot, app, "Extra")
        form.query_one("#f-name", Input).value = "HR"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form and "a source named 'HR' is there already" in said(form)
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: app.screen is screen, "back to the profile")

        _screen, form = await open_line(pilot, app, "target")
        form.query_one("#secret-api_key", Input).value = "a key pasted, then not wanted"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "back to the profile")
        _screen, form = await open_line(pilot, app, "target")
        form.query_one("#f-api_key_file", Input).value = ""
        form.query_one("#f-api_key_env", Input).value = "ZIVVER_API_KEY"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is screen, "back to the profile")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is not screen, "the save")

    assert not (tmp_path / "zivver-api-key").exists(), "a paste the profile no longer names"
    config = load_config(str(profile.path))
    assert [s.name for s in config.sources] == ["HR", "Extra"]
    assert config.target.api_key_env == "ZIVVER_API_KEY" and config.target.api_key_file is None
