"""``zsync status`` and ``zsync history``: what an admin asks of the daily sync, read only."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.conftest import ldap_source
from tests.test_cli import files_under
from tests.test_headless_ldap import staff
from zsync_core.zivver.scim import ZIVVER_USER
from zsync_tui.cli import main


def test_status_before_the_first_run_says_so_and_creates_nothing(
    directory, zivver, make_profile, capsys
):
    profile = make_profile([ldap_source(directory.slapd)])

    code = main(["status", "--config", str(profile.path)])

    out = capsys.readouterr().out
    assert code == 3
    assert "No run has finished yet: run 'zsync check', then 'zsync --headless'." in out
    assert "No run is going now." in out
    assert not (profile.path.parent / "zsync-state").exists()


def test_status_and_history_after_a_held_run_read_the_store_and_change_nothing(
    directory, zivver, make_profile, capsys
):
    staff(directory, 10)
    profile = make_profile([ldap_source(directory.slapd)], delete_users=True)
    assert profile.run(capsys=capsys)[0] == 0
    directory.delete(directory.user_dn("user003"))
    assert profile.run(capsys=capsys)[0] == 2
    state = profile.path.parent / "zsync-state"
    before = files_under(state)

    code = main(["status", "--config", str(profile.path)])

    out = capsys.readouterr().out
    assert code == 2, "the last run's exit code: held"
    assert "Last run: run 2 · headless · " in out and " · held" in out
    assert "Last run without problems: run 1" in out
    assert "Held in run 2: 1 change(s) need confirmation (delete-users)" in out
    assert "zsync history --run 2" in out

    assert main(["history", "--config", str(profile.path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("run 2 · headless · ") and lines[0].endswith("held · 1 held")
    assert lines[1].startswith("run 1 · headless · ") and "completed · 10 succeeded" in lines[1]

    assert main(["history", "--config", str(profile.path), "--run", "2"]) == 0
    out = capsys.readouterr().out
    assert "held       delete-user          user003@example.org" in out

    assert main(["history", "--config", str(profile.path), "--run", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"]["status"] == "completed"
    assert len(data["changes"]) == 10
    assert all(c["state"] == "succeeded" and c["http_status"] == 201 for c in data["changes"])
    blocks = [c["request"]["body"][ZIVVER_USER] for c in data["changes"]]
    assert all(b["SsoAccountKey"] == "(set)" for b in blocks), "keys are never printed"

    assert main(["history", "--config", str(profile.path), "--run", "9"]) == 3
    assert "there is no run 9" in capsys.readouterr().err
    assert files_under(state) == before, "status and history write nothing"


def test_status_names_the_run_that_is_going(directory, zivver, make_profile, capsys):
    staff(directory, 2)
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    state = profile.path.parent / "zsync-state"
    holder = subprocess.Popen(  # a run holding the lock (its command line names zsync)
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from zsync_core.store import Store; "
            "s = Store.open(Path(sys.argv[1])); s.lock(); print('locked', flush=True); "
            "time.sleep(30)",
            str(state),
            "zsync --headless",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert main(["status", "--config", str(profile.path)]) == 0
        out = capsys.readouterr().out
        assert f"A run is going now: process {holder.pid}." in out
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.05)
    assert main(["status", "--config", str(profile.path)]) == 0
    assert "No run is going now." in capsys.readouterr().out


def test_quiet_runs_say_nothing_when_all_is_well_and_the_log_file_has_every_line_timed(
    directory, zivver, make_profile, capsys, tmp_path
):
    import re

    staff(directory, 10)
    profile = make_profile([ldap_source(directory.slapd)], delete_users=True)
    log = tmp_path / "zsync.log"

    code, err, _ = profile.run("-q", "--log-file", str(log), capsys=capsys)

    assert code == 0 and err == "", "cron mails nothing after a good run"
    lines = log.read_text().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ", line) for line in lines)
    assert lines[-1].endswith(" Task completed successfully.")

    directory.delete(directory.user_dn("user003"))
    code, err, _ = profile.run("-q", "--log-file", str(log), capsys=capsys)
    assert code == 2
    assert "Applied 0 change(s); 1 held for confirmation." in err
    assert "HELD   delete-user user003@example.org" in err
    assert "... " not in err, "no progress with -q"
    assert len(log.read_text().splitlines()) > len(lines), "appended"


def test_verbose_runs_name_every_change(directory, zivver, make_profile, capsys):
    staff(directory, 3)
    profile = make_profile([ldap_source(directory.slapd)])
    code, err, _ = profile.run("-v", capsys=capsys)
    assert code == 0
    assert "ok  create-user user001@example.org" in err


def test_a_log_file_that_cannot_be_written_stops_before_anything(
    directory, zivver, make_profile, capsys, tmp_path
):
    staff(directory, 2)
    profile = make_profile([ldap_source(directory.slapd)])
    code, err, _ = profile.run("--log-file", str(tmp_path / "missing" / "zsync.log"), capsys=capsys)
    assert code == 3 and "--log-file" in err and "cannot be written" in err
    assert zivver.org.users == {}


def test_status_history_and_check_take_a_profile_path_relative_to_where_they_run(
    directory, zivver, make_profile, capsys, monkeypatch
):
    staff(directory, 2)
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    monkeypatch.chdir(profile.path.parent)

    assert main(["status", "--config", profile.path.name]) == 0
    assert "Last run: run 1 · headless · " in capsys.readouterr().out
    assert main(["history", "--config", profile.path.name]) == 0
    assert main(["check", "--config", profile.path.name]) == 0
    assert "usable: 2 accounts mapped, 1 runs in the history" in capsys.readouterr().out
