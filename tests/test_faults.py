"""Fault injection: what an unattended run does when things go wrong.

Every scenario runs against the real servers (slapd, the emulator over HTTP) with the
fault injected in between, and ends with: no unintended suspension or deletion, no
duplicate, the run history intact, and the exit code and message an admin needs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import API_KEY, ldap_source
from tests.servers import SERVICE_PASSWORD, CuttingProxy, Directory
from zsync_core.store import Store
from zsync_emulator import Fault

ZSYNC = str(Path(sys.executable).parent / "zsync")


def staff(directory: Directory, count: int) -> None:
    for number in range(count):
        directory.user(f"user{number:03}")


def active_users(zivver) -> int:
    return sum(1 for user in zivver.org.users.values() if user["active"])


def no_duplicates(zivver) -> bool:
    names = [u["userName"] for u in zivver.org.users.values()] + [
        g["externalId"] for g in zivver.org.groups.values()
    ]
    return len(names) == len(set(names))


def test_ldap_server_dies_mid_paged_search(directory, zivver, make_profile, capsys):
    staff(directory, 60)
    profile = make_profile([ldap_source(directory.slapd, page_size=10)])
    assert profile.run(capsys=capsys)[0] == 0
    proxy = CuttingProxy(directory.slapd.port, cut_after=6000)
    profile.data["sources"][0]["url"] = f"ldap://127.0.0.1:{proxy.port}"
    profile.write()

    code, err, report = profile.run(capsys=capsys)

    assert proxy.cuts >= 1
    assert code == 3
    assert "broke off" in err and "the read is incomplete, so nothing is synced from it" in err
    assert "nothing was changed" in err
    assert active_users(zivver) == 60
    assert profile.store().runs()[0].status == "aborted"


def test_a_source_that_returns_nothing_changes_nothing(directory, zivver, make_profile, capsys):
    staff(directory, 20)
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    directory.conn.add("ou=Empty,dc=example,dc=org", ["organizationalUnit"], {"ou": "Empty"})
    profile.data["sources"][0]["base_dn"] = "ou=Empty,dc=example,dc=org"
    profile.write()

    code, err, _ = profile.run(capsys=capsys)

    assert code == 3
    assert "returned 0 accounts, against 20 at the last good run" in err
    assert active_users(zivver) == 20


def test_a_source_that_shrank_by_more_than_half_changes_nothing(
    directory, zivver, make_profile, capsys
):
    staff(directory, 40)
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    for number in range(21):
        directory.delete(directory.user_dn(f"user{number:03}"))

    code, err, _ = profile.run("--confirm", "suspend-users", capsys=capsys)

    assert code == 3, "a confirmation does not override an unhealthy read"
    assert "returned 19 accounts, against 40" in err
    assert active_users(zivver) == 40


def test_a_429_storm_is_waited_out_without_failures(directory, zivver, make_profile, capsys):
    staff(directory, 30)
    zivver.org.rate_limit, zivver.org.rate_window = 8, 1.0
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["target"].update(max_retries=6)
    profile.write()

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert len(zivver.org.users) == 30 and no_duplicates(zivver)
    assert any(status == 429 for _m, _p, status in zivver.org.requests), "the storm happened"


def test_a_429_storm_without_retry_after_while_another_client_spends_the_budget(
    directory, zivver, make_profile, capsys
):
    """Zivver's budget is the organization's: another tool with the same key spends it too, and
    Zivver's 429 carries RateLimit-Reset but no Retry-After."""
    import threading

    import httpx

    staff(directory, 40)
    zivver.org.rate_limit, zivver.org.rate_window = 10, 1.0
    assert not zivver.org.retry_after
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["target"].update(
        max_retries=12, rate_limit_requests=10, rate_limit_window_seconds=1.0
    )
    profile.write()
    done = threading.Event()

    def other_tool() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            while not done.is_set():
                answer = http.get(f"{zivver.url}/Users", params={"filter": 'userName eq "x@y.z"'})
                if answer.status_code == 429:
                    assert "Retry-After" not in answer.headers
                    assert int(answer.headers["RateLimit-Reset"]) >= 1
                time.sleep(0.15)

    other = threading.Thread(target=other_tool, daemon=True)
    other.start()
    try:
        code, err, report = profile.run(capsys=capsys)
    finally:
        done.set()
        other.join(5)

    assert code == 0, err
    assert report["result"] == {"succeeded": 40, "failed": 0, "cancelled": 0}
    assert len(zivver.org.users) == 40 and no_duplicates(zivver)
    assert [s for m, _p, s in zivver.org.requests if m == "POST"].count(201) == 40
    assert any(status == 429 for _m, _p, status in zivver.org.requests), "the storm happened"


def test_bursts_of_server_errors_are_retried(directory, zivver, make_profile, capsys):
    staff(directory, 5)
    zivver.org.faults = [
        Fault("500", "POST"),
        Fault("502", "POST"),
        Fault("503", "POST"),
        Fault("503", "GET"),
    ]
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["target"].update(max_retries=4)
    profile.write()

    code, err, _ = profile.run(capsys=capsys)

    assert code == 0, err
    assert len(zivver.org.users) == 5 and no_duplicates(zivver)


def test_a_server_error_that_does_not_pass_is_a_failed_change_not_a_crash(
    directory, zivver, make_profile, capsys
):
    staff(directory, 3)
    zivver.org.faults = [Fault("503", "POST")] * 3
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["target"]["concurrency"] = 1  # so that one change meets all three faults
    profile.write()

    code, err, report = profile.run(capsys=capsys)

    assert code == 1
    failed = [c for c in report["changes"] if c["state"] == "failed"]
    assert (
        len(failed) == 1
        and "Zivver had a server error (HTTP 503) after 3 attempts" in failed[0]["error"]
    )
    assert len(zivver.org.users) == 2
    assert "1 of 3 change(s) failed" in err
    code, _, _ = profile.run(capsys=capsys)
    assert code == 0 and len(zivver.org.users) == 3, "the next run converges"


def test_a_time_out_after_zivver_accepted_a_create_does_not_duplicate(
    directory, zivver, make_profile, capsys
):
    staff(directory, 3)
    zivver.org.faults = [Fault("slow-after", "POST", seconds=2.5)]
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["target"].update(timeout_seconds=1)
    profile.write()

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert len(zivver.org.users) == 3 and no_duplicates(zivver)
    posts = [r for r in zivver.org.requests if r[0] == "POST"]
    assert len(posts) == 3, "the lost create was looked up, not sent again"


def test_a_connection_dropped_mid_response_does_not_duplicate(
    directory, zivver, make_profile, capsys
):
    staff(directory, 3)
    directory.group("team", "team@example.org", [directory.user_dn("user000")])
    zivver.org.faults = [Fault("drop-after", "POST"), Fault("drop-after", "POST")]
    profile = make_profile([ldap_source(directory.slapd)])

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert len(zivver.org.users) == 3 and len(zivver.org.groups) == 1 and no_duplicates(zivver)
    assert zivver.org.delegates_of("team@example.org") == {"user000@example.org"}


def test_killed_mid_apply_then_run_again_converges(
    directory, zivver, make_profile, capsys, tmp_path
):
    staff(directory, 40)
    profile = make_profile([ldap_source(directory.slapd)])
    zivver.org.latency = 0.05
    env = {**os.environ, "ZIVVER_API_KEY": API_KEY, "LDAP_PASSWORD": SERVICE_PASSWORD}
    process = subprocess.Popen(
        [ZSYNC, "--headless", "--config", str(profile.path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(zivver.org.users) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    created_before_kill = len(zivver.org.users)
    assert 10 <= created_before_kill < 40
    zivver.org.latency = 0
    from zsync_tui.cli import main

    # the killed run's commits are in the write-ahead log: status sees them, and says so
    assert main(["status", "--config", str(profile.path)]) == 3
    said = capsys.readouterr().out
    assert "Last run: run 1 · headless" in said and "interrupted" in said, said

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    assert len(zivver.org.users) == 40 and no_duplicates(zivver)
    assert active_users(zivver) == 40
    runs = profile.store().runs()
    assert [r.status for r in runs] == ["completed", "interrupted"]
    journal = profile.store().changes(runs[1].id)
    in_flight = 4  # target.concurrency: answers that the kill kept from being journaled
    assert sum(c.state == "succeeded" for c in journal) >= created_before_kill - in_flight
    assert len(report["changes"]) == 40 - created_before_kill


def test_two_runs_at_the_same_time_the_second_waits_its_turn(
    directory, zivver, make_profile, capsys
):
    staff(directory, 3)
    profile = make_profile([ldap_source(directory.slapd)])
    holder = Store.open(profile.path.parent / "zsync-state")
    holder.lock()
    try:
        code, err, _ = profile.run(capsys=capsys)
    finally:
        holder.close()

    assert code == 3
    assert "Another zsync run is using" in err and f"process {os.getpid()}" in err
    assert zivver.org.users == {}
    assert profile.run(capsys=capsys)[0] == 0


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_state_disk_stops_the_run_before_it_changes_anything(
    directory, zivver, make_profile, capsys, small_disk
):
    staff(directory, 3)
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["state_dir"] = str(small_disk / "state")
    profile.write()
    Store.open(small_disk / "state").close()
    with open(small_disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass

    code, err, _ = profile.run(capsys=capsys)

    assert code == 3
    assert "cannot be used" in err and "0 KiB free on its disk" in err
    assert "Nothing was changed." in err
    assert zivver.org.users == {}


def test_a_read_only_state_directory_is_a_clear_error(
    directory, zivver, make_profile, capsys, small_disk
):
    staff(directory, 3)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["state_dir"] = str(small_disk / "state")
    profile.write()

    code, err, _ = profile.run(capsys=capsys)

    assert code == 3
    assert (
        f"State directory {small_disk / 'state'}: cannot be used" in err
        and "Read-only file system" in err
    )
    assert zivver.org.users == {}


def test_secrets_never_reach_logs_reports_or_the_store(
    directory, zivver, make_profile, capsys, monkeypatch
):
    staff(directory, 3)
    zivver.org.faults = [Fault("503", "POST")] * 3
    profile = make_profile([ldap_source(directory.slapd)])
    outputs = []
    for _ in range(2):
        code, err, report = profile.run(capsys=capsys)
        outputs += [err, (profile.path.parent / "report.json").read_text()]
    monkeypatch.setenv("LDAP_PASSWORD", "wrong-" + SERVICE_PASSWORD)
    outputs.append(profile.run(capsys=capsys)[1])
    monkeypatch.setenv("ZIVVER_API_KEY", "wrong-" + API_KEY)
    monkeypatch.setenv("LDAP_PASSWORD", SERVICE_PASSWORD)
    outputs.append(profile.run(capsys=capsys)[1])
    stored = b"".join(path.read_bytes() for path in (profile.path.parent / "zsync-state").iterdir())

    for secret in (API_KEY, SERVICE_PASSWORD):
        assert all(secret not in text for text in outputs)
        assert secret.encode() not in stored


def test_a_disk_that_fills_up_mid_run_stops_before_an_unjournaled_change(
    directory, zivver, make_profile, capsys, monkeypatch
):
    from zsync_core.errors import StoreError

    staff(directory, 6)
    profile = make_profile([ldap_source(directory.slapd)])
    original = Store.journal
    calls = []

    def journal(self, run_id, change, state, **kwargs):
        calls.append(state)
        if len(calls) > 6:  # three changes journaled before and after, then the disk is full
            raise StoreError("Local store: write failed (database or disk is full)")
        return original(self, run_id, change, state, **kwargs)

    monkeypatch.setattr(Store, "journal", journal)
    code, err, _ = profile.run(capsys=capsys)

    assert code == 1
    assert re.search(
        r"Stopped after sending \d change\(s\) to Zivver \(\d succeeded, 0 failed\), because the "
        r"local store failed: Local store: write failed \(database or disk is full\)",
        err,
    )
    assert "Nothing was changed" not in err
    journaled = calls[:6].count("sending")
    assert len(zivver.org.users) == journaled < 6, (
        "nothing is sent that the journal does not know of"
    )
    monkeypatch.setattr(Store, "journal", original)
    assert (
        profile.run(capsys=capsys)[0] == 0 and len(zivver.org.users) == 6 and no_duplicates(zivver)
    )


def test_reading_zivver_counts_against_its_rate_limit_too(directory, zivver, make_profile, capsys):
    """The load's GETs and the update's writes share one pace: not a single 429 at the seam."""
    staff(directory, 25)
    zivver.org.rate_limit, zivver.org.rate_window = 10, 1.0
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["target"].update(rate_limit_requests=10, rate_limit_window_seconds=1.0)
    profile.write()

    code, err, _ = profile.run(capsys=capsys)

    assert code == 0, err
    assert len(zivver.org.users) == 25
    assert [s for _m, _p, s in zivver.org.requests if s == 429] == []
