"""Hostile text from the directory and from Zivver reaches no terminal, log or message raw.

A display name, a DN, an address and Zivver's error text that carry OSC 52 (write the
clipboard), OSC 0 (set the window title), CSI sequences and a right-to-left override go
through a real slapd and the Zivver emulator; what the admin sees (headless stderr, the log,
the stored events, ``zsync history``, a webhook, the TUI's screens) shows them as escapes.
"""

from __future__ import annotations

import html
import json
import os
import re
import stat
from pathlib import Path

import pytest

from tests.conftest import ldap_source
from tests.servers import Directory
from tests.tui import app_for, wait_for
from zsync_core.addresses import normalize_address
from zsync_core.output import inert, inert_json, without_controls
from zsync_emulator import EmulatorServer
from zsync_tui.cli import main

OSC52 = "\x1b]52;c;cm0gLXJmIH4vKgo=\x07"  # puts "rm -rf ~/*" in the admin's clipboard
OSC0 = "\x1b]0;all good\x07"  # sets the window title
CSI = "\x1b[2J\x1b[31m"  # clears the screen, then red
RLO = "\u202e"  # right-to-left override: "gpj.exe" reads "exe.jpg"
EVIL = f"{OSC52}{OSC0}{CSI}{RLO}"
RAW = ("\x1b", "\x07", RLO)


def raw_in(text: str) -> list[str]:
    return [repr(char) for char in RAW if char in text]


def screen_text(svg: str) -> str:
    """What a screenshot shows, as text (SVG escapes undone; lines as wrapped on screen)."""
    shown = "".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg))
    return html.unescape(shown).replace("\xa0", " ")


def hostile_directory(directory: Directory) -> None:
    """Mallory's name and division carry the sequences; Eve's uid, so her DN and address."""
    directory.user("ann")
    directory.user("mallory", name=f"Mallory {EVIL}[/] [bold red]x")
    directory.modify(directory.user_dn("mallory"), ou=f"Sales{EVIL}")
    directory.user(f"eve{EVIL}", mail="ev\x1be@example.org")  # mail is ASCII (IA5) in LDAP


def test_inert_escapes_controls_and_bidi_and_keeps_the_rest():
    assert inert(f"Zoë 山田 🙂{EVIL}x") == (
        "Zoë 山田 🙂\\x1b]52;c;cm0gLXJmIH4vKgo=\\x07\\x1b]0;all good\\x07\\x1b[2J\\x1b[31m\\u202ex"
    )
    assert inert("a\nb\tc\r\x00\x7f\x9b\u2066\u2069") == "a\\nb\\tc\\r\\x00\\x7f\\x9b\\u2066\\u2069"
    assert inert("a\nb\tc\x1b", lines=True) == "a\nb\tc\\x1b"
    data = {"name": f"x{EVIL}\x85\u2028"}
    text = inert_json(json.dumps(data, ensure_ascii=False))
    assert not raw_in(text) and "\x85" not in text and json.loads(text) == data


@pytest.mark.parametrize(
    "address",
    [
        "ev\x1bil@example.org",
        "evil\x00@example.org",
        f"{RLO}gro.elpmaxe@example.org",
        "a\x7fb@example.org",
        "a\x9bb@example.org",
        "a\u200fb@example.org",
        "a\u2066b@example.org",
        "a\ufeffb@example.org",
    ],
)
def test_an_address_with_a_control_or_bidi_character_is_no_address(address):
    assert normalize_address(address) is None


def test_an_ordinary_address_is_still_one():
    assert normalize_address(" Zoë.Ångström@Example.org ") == "zoë.ångström@example.org"


def test_headless_stderr_log_events_history_and_webhook_show_no_raw_sequence(
    directory: Directory,
    zivver: EmulatorServer,
    make_profile,
    hook,  # noqa: F811 - the fixture imported above
    monkeypatch,
    capsys,
    tmp_path,
):
    hostile_directory(directory)
    zivver.org.add_user("tom@example.org", f"Tom {EVIL}")  # a leaver zsync took over
    profile = make_profile(
        [ldap_source(directory.slapd, attributes={"division": "ou"})],
        suspend_users=False,
    )
    monkeypatch.setenv("HOOK_URL", hook[0])
    profile.data["notify"] = {"when": "always", "webhook": {"url_env": "HOOK_URL"}}
    profile.write()
    log = tmp_path / "zsync.log"

    code, err, report = profile.run("-v", "--log-file", str(log), capsys=capsys)

    assert code == 1, err  # Mallory's create failed: Zivver knows no such division
    assert report is not None
    failed = [c for c in report["changes"] if c["state"] == "failed"]
    assert [c["email"] for c in failed] == ["mallory@example.org"]
    # the division reaches Zivver with its controls made spaces (nothing sent may hold one)
    assert "Invalid division: Sales ]52;c;" in failed[0]["error"], "Zivver's text"
    assert "FAILED create-user mallory@example.org: division Sales ]52" in err
    assert "does not exist in Zivver: create it in the Zivver WebApp" in err
    assert "the division holds \\x1b, a control character; it is sent as 'Sales ]52" in err
    assert "\\u202e" in err and "cn=eve\\x1b]52" in err, "Eve's DN is named, inert"
    assert zivver.org.user_by_email("ev\x1be@example.org") is None, "no such address"
    assert raw_in(err) == [], "stderr"
    assert raw_in(log.read_text()) == [], "the log file"
    store = profile.store()
    try:
        events = "\n".join(message for _at, _level, message in store.events())
    finally:
        store.close()
    assert "cn=eve\\x1b]52" in events and raw_in(events) == [], "the stored events"
    [(_path, sent)] = hook[1]
    body = json.dumps(sent, ensure_ascii=False)
    assert "Invalid division: Sales ]52" in body and raw_in(body) == [], "the webhook"
    # the report is exact JSON: the names are there as they are, escaped by JSON
    text = (profile.path.parent / "report.json").read_text()
    assert raw_in(text) == []
    created = next(c for c in report["changes"] if c["email"] == "mallory@example.org")
    assert created["after"]["display_name"] == without_controls(f"Mallory {EVIL}[/] [bold red]x")

    code = main(["history", "--config", str(profile.path), "--run", "1"])
    shown = capsys.readouterr().out
    assert code == 0 and "Invalid division: Sales ]52" in shown and raw_in(shown) == []
    code = main(["history", "--config", str(profile.path), "--run", "1", "--json"])
    shown = capsys.readouterr().out
    assert code == 0 and raw_in(shown) == [] and json.loads(shown)["changes"]


async def test_the_tui_shows_hostile_names_dns_and_zivver_errors_as_escapes(
    directory: Directory, zivver: EmulatorServer, make_profile
):
    from zsync_tui.screens.detail import DetailScreen
    from zsync_tui.screens.events import EventsScreen
    from zsync_tui.screens.preview import PreviewScreen
    from zsync_tui.screens.review import ReviewScreen
    from zsync_tui.screens.summary import SummaryScreen
    from zsync_tui.screens.update import UpdateScreen
    from zsync_tui.widgets.table import VirtualTable

    hostile_directory(directory)
    directory.user("tom")
    zivver.org.add_user("tom@example.org", f"Tom {EVIL}[/]")  # renamed in the directory
    profile = make_profile([ldap_source(directory.slapd, attributes={"division": "ou"})])
    app = app_for(profile.path)
    seen: dict[str, str] = {}

    def look(where: str) -> None:
        seen[where] = screen_text(app.export_screenshot())

    def on(kind: type) -> bool:
        return isinstance(app.screen, kind)

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        await wait_for(pilot, lambda: on(SummaryScreen), "the summary")
        look("summary")  # its notes name Eve's DN
        await pilot.press("p")
        await wait_for(pilot, lambda: on(PreviewScreen), "the preview")
        table = app.screen.query_one(VirtualTable)
        table.cursor = next(i for i, c in enumerate(table.rows) if c.email == "tom@example.org")
        await pilot.press("enter")
        await wait_for(pilot, lambda: on(DetailScreen), "Tom's change")
        look("detail of a change")  # Tom's name before, in Zivver
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: on(SummaryScreen), "the summary again")
        await pilot.press("e")
        await wait_for(pilot, lambda: on(EventsScreen), "Recent events")
        look("recent events")
        await pilot.press("escape", "u")
        await wait_for(pilot, lambda: on(UpdateScreen) and app.screen.done, "the update")
        look("update")  # Mallory's failure, in Zivver's words
        await pilot.press("v")
        await wait_for(pilot, lambda: on(ReviewScreen), "the review")
        look("review")
        await pilot.press("enter")  # failures first: Mallory's
        await wait_for(pilot, lambda: on(DetailScreen), "Mallory's change")
        look("detail of a failure")
    assert "tom@example.org" in seen["detail of a change"]
    detail = seen["detail of a change"]
    assert "\\x1b]52;c;cm0gLXJmIH4vKgo=" in detail, "Tom's name in Zivver, as escapes"
    assert "\\u202e[/]" in detail, "markup in a name is shown as written"

    def squeezed(where: str) -> str:  # a wrapped line loses its space, and a dialog has borders
        return re.sub(r"[\s█]", "", seen[where])

    assert "Invaliddivision:Sales]52;c;" in squeezed("detail of a failure")
    assert "cn=eve\\x1b]52" in seen["recent events"], "Eve's DN, named"
    for where in ("update", "review"):
        assert "divisionSales]52" in squeezed(where), f"Zivver's error in the {where}"
    assert {where: raw_in(shot) for where, shot in seen.items()} == {where: [] for where in seen}
    assert zivver.org.user_by_email("tom@example.org")["name"]["formatted"] == "Tom"


@pytest.fixture
def umask_022():
    """The usual umask, under which a plain open() creates files 0644 (world-readable)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_report_log_and_textfile_are_not_world_readable(
    zivver: EmulatorServer, make_profile, capsys, tmp_path, umask_022
):
    (tmp_path / "staff.csv").write_text("email,name\nann@example.org,Ann\n")
    profile = make_profile([{"name": "HR", "type": "csv", "path": "staff.csv"}])
    prom = tmp_path / "textfile" / "zsync.prom"
    profile.data["monitoring"] = {"textfile": str(prom)}
    profile.write()
    log, report = tmp_path / "zsync.log", tmp_path / "report.json"

    code, err, _ = profile.run("--log-file", str(log), capsys=capsys)

    assert code == 0, err
    assert {p.name: oct(mode(p)) for p in (log, report, prom)} == {
        "zsync.log": "0o640",
        "report.json": "0o640",
        "zsync.prom": "0o640",
    }
    # files an earlier version left world-readable are narrowed; a stricter mode is kept
    for path in (log, report, prom):
        path.chmod(0o644)
    prom.chmod(0o600)
    code, err, _ = profile.run("--log-file", str(log), capsys=capsys)
    assert code == 0, err
    assert (oct(mode(log)), oct(mode(report)), oct(mode(prom))) == ("0o640", "0o640", "0o600")
    assert len(log.read_text().splitlines()) > 10, "the log is appended to, not replaced"


def test_a_lone_surrogate_from_zivver_is_escaped_not_a_crash():
    """Half of a UTF-16 pair (JSON can carry one: "\\ud800") cannot be encoded: printed raw
    it ended show zivver, explain and the report with a UnicodeEncodeError."""
    import json as json_module

    from zsync_core.output import inert, inert_json

    assert inert("Ann \ud800 x") == "Ann \\ud800 x"
    written = inert_json(json_module.dumps({"name": "Ann \ud800 x"}, ensure_ascii=False))
    written.encode("utf-8")  # no UnicodeEncodeError
    assert json_module.loads(written) == {"name": "Ann \ud800 x"}, "the same JSON to a parser"
