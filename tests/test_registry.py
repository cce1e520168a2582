"""Source types are plug-ins: a package of its own with one module (a config model and a
SourceType) and an entry point of the group ``zsync.sources`` is read by the run, validated
in the profile and named in its errors. The package is installed for real (a dist-info on
the path of a zsync process of its own), as pip would install it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parent.parent


def installed_plugin(tmp_path: Path) -> Path:
    """A site directory holding the dist-info of a package that registers tests.plugin.roster."""
    site = tmp_path / "site"
    info = site / "zsync_roster-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zsync-roster\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zsync.sources]\nroster = tests.plugin.roster:ROSTER\n")
    return site


def zsync(site: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    path = [str(ROOT)] + ([str(site)] if site else [])
    return subprocess.run(
        [sys.executable, "-m", "zsync_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ":".join(path)},
    )


def roster_profile(make_profile, **source) -> Path:
    profile = make_profile(
        [
            {
                "name": "Roster",
                "type": "roster",
                "people": ["ann@example.org", "bob@example.org"],
                **source,
            }
        ]
    )
    return profile.path


def test_a_source_type_of_its_own_is_read_by_the_run(zivver, make_profile, tmp_path):
    path = roster_profile(make_profile)
    report = tmp_path / "report.json"

    done = zsync(
        installed_plugin(tmp_path), "--headless", "--config", str(path), "--report", str(report)
    )

    assert done.returncode == 0, done.stderr
    assert zivver.org.user_by_email("bob@example.org")["name"]["formatted"] == "Bob"
    assert json.loads(report.read_text())["sources"] == {"Roster": 2}


def test_its_keys_are_checked_and_its_tag_is_named(zivver, make_profile, tmp_path):
    site = installed_plugin(tmp_path)
    path = roster_profile(make_profile, peeple=[])

    done = zsync(site, "check", "--config", str(path))
    assert done.returncode == 3
    assert "sources[0] (Roster).peeple: unknown key. Did you mean 'people'?" in done.stdout

    data = {"target": {"api_key_env": "K"}, "sources": [{"name": "X", "type": "rooster"}]}
    path.write_text(tomli_w.dumps(data))
    done = zsync(site, "check", "--config", str(path))
    assert 'must be "ldap", "csv", "excel", "microsoft365" or "roster"' in done.stdout


def test_without_the_plug_in_the_tag_is_unknown(zivver, make_profile):
    done = zsync(None, "check", "--config", str(roster_profile(make_profile)))
    assert done.returncode == 3
    assert (
        'sources[0] (Roster).type: must be "ldap", "csv", "excel" or "microsoft365"' in done.stdout
    )


def test_a_broken_plug_in_breaks_only_its_own_type(zivver, make_profile, tmp_path):
    """A package whose entry point raises on import made every command a traceback."""
    site = installed_plugin(tmp_path)
    (site / "zsync_broken-0.1.dist-info").mkdir()
    (site / "zsync_broken-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: zsync-broken\nVersion: 0.1\n"
    )
    (site / "zsync_broken-0.1.dist-info" / "entry_points.txt").write_text(
        "[zsync.sources]\nbroken = no_such_module:TYPE\n"
    )
    report = tmp_path / "report.json"

    done = zsync(
        site, "--headless", "--config", str(roster_profile(make_profile)), "--report", str(report)
    )

    assert done.returncode == 0, done.stderr
    path = roster_profile(make_profile)
    data = {"target": {"api_key_env": "K"}, "sources": [{"name": "X", "type": "broken"}]}
    path.write_text(tomli_w.dumps(data))
    done = zsync(site, "check", "--config", str(path))
    assert done.returncode == 3 and "Traceback" not in done.stdout + done.stderr
    assert (
        "the source type package 'broken' was left out: no_such_module:TYPE could not be loaded"
        in done.stdout
    )
