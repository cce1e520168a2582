"""The installed `zsync` command, run as a separate process as cron or systemd would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import ldap_source
from tests.servers import free_port, require_binary, wait_for_port

ZSYNC = str(Path(sys.executable).parent / "zsync")


def test_check_reports_each_connection(directory, zivver, make_profile, capsys, monkeypatch):
    from zsync_tui.cli import main

    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    assert main(["check", "--config", str(profile.path)]) == 0
    out = capsys.readouterr().out
    assert "ok    source 'Active Directory' (ldap): 1 accounts read" in out
    assert f"ok    Zivver at {zivver.url}: reachable, API key accepted" in out
    assert "All checks passed." in out

    monkeypatch.setenv("LDAP_PASSWORD", "wrong")
    assert main(["check", "--config", str(profile.path)]) == 3
    out = capsys.readouterr().out
    assert (
        "FAIL  source 'Active Directory' (ldap): LDAP bind to" in out
        and "invalid credentials" in out
    )
    assert "1 check(s) failed" in out
    assert zivver.org.users == {}


def files_under(path):
    return {
        p.relative_to(path): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_check_writes_nothing_before_or_after_the_first_run(
    directory, zivver, make_profile, capsys
):
    from zsync_tui.cli import main

    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    state = profile.path.parent / "zsync-state"
    assert main(["check", "--config", str(profile.path)]) == 0
    out = capsys.readouterr().out
    assert f"ok    state directory {state}: not created yet: the first run creates it" in out
    assert not state.exists(), "a check creates no state directory"

    assert profile.run(capsys=capsys)[0] == 0
    before = files_under(state)
    assert main(["check", "--config", str(profile.path)]) == 0
    out = capsys.readouterr().out
    assert f"ok    state directory {state}: usable: 1 accounts mapped, 1 runs in the history" in out
    assert files_under(state) == before, "not a byte of the store changed"


def test_check_says_what_to_do_when_zivver_does_not_answer(directory, make_profile, capsys):
    from tests.servers import free_port
    from zsync_tui.cli import main

    unused_port = free_port()
    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    profile.data["target"].update(url=f"http://127.0.0.1:{unused_port}/api/scim/v2", max_retries=0)
    profile.write()
    assert main(["check", "--config", str(profile.path)]) == 3
    out = capsys.readouterr().out
    assert "No answer from Zivver" in out
    assert "run 'zsync check' again" in out and "next run" not in out


def test_a_target_url_that_is_no_scim_base_is_named_as_such(
    directory, zivver, make_profile, capsys
):
    from zsync_tui.cli import main

    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    server_root = zivver.url.removesuffix("/api/scim/v2")
    profile.data["target"]["url"] = server_root  # the server, not its SCIM base
    profile.write()

    assert main(["check", "--config", str(profile.path)]) == 3
    out = capsys.readouterr().out
    assert f"FAIL  Zivver at {server_root}: " in out, out
    assert f"{server_root} has no /Users (HTTP 404)" in out
    assert "target.url must be Zivver's SCIM base URL, which ends in /api/scim/v2" in out
    assert "deleted elsewhere" not in out, "no account is unknown: the URL is wrong"

    code, err, _report = profile.run(capsys=capsys)
    assert code == 3
    assert "has no /Users (HTTP 404): target.url must be Zivver's SCIM base URL" in err
    assert zivver.org.users == {}


def test_the_command_runs_headless_against_the_emulator_command(tmp_path):
    port = free_port()
    emulator = subprocess.Popen(
        [ZSYNC, "emulator", "--port", str(port), "--api-key", "k-123"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, emulator, timeout=20)
        (tmp_path / "people.csv").write_text("email,name\nann@example.org,Ann\n")
        (tmp_path / "zsync.toml").write_text(
            tomli_w.dumps(
                {
                    "target": {
                        "url": f"http://127.0.0.1:{port}/api/scim/v2",
                        "api_key_env": "ZIVVER_API_KEY",
                    },
                    "sources": [{"name": "People", "type": "csv", "path": "people.csv"}],
                }
            )
        )
        env = {
            **os.environ,
            "ZIVVER_API_KEY": "k-123",
            "ZSYNC_CONFIG": str(tmp_path / "zsync.toml"),
        }
        first = subprocess.run(
            [ZSYNC, "--headless"], capture_output=True, text=True, env=env, timeout=60
        )
        assert first.returncode == 0, first.stderr
        assert "There will be 1 user added to your Zivver organization." in first.stderr
        assert first.stdout == "", "progress goes to stderr"
        again = subprocess.run(
            [ZSYNC, "--headless"], capture_output=True, text=True, env=env, timeout=60
        )
        assert again.returncode == 0 and "Summary: no changes." in again.stderr
        bad = subprocess.run(
            [ZSYNC, "--headless", "--confirm", "delete-everything"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert bad.returncode == 3 and "invalid choice: 'delete-everything'" in bad.stderr
    finally:
        emulator.terminate()
        emulator.wait(10)


def test_a_microsoft_365_trial_against_both_emulator_commands(tmp_path):
    zivver_port, microsoft_port = free_port(), free_port()
    servers = [
        subprocess.Popen(
            [ZSYNC, "emulator", "--port", str(zivver_port), "--api-key", "k-1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [ZSYNC, "emulator", "--microsoft", "--client-secret", "s3cret", "--users", "30"]
            + ["--groups", "2", "--shared", "1", "--port", str(microsoft_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    try:
        wait_for_port(zivver_port, servers[0], timeout=20)
        wait_for_port(microsoft_port, servers[1], timeout=20)
        # the source the command prints, pasted into a profile as an admin would
        assert servers[1].stderr is not None
        printed = []
        for line in servers[1].stderr:
            if line.startswith("[[sources]]"):
                printed.append(line)
            elif printed:
                if not line.strip():
                    break
                printed.append(line)
        (tmp_path / "zsync.toml").write_text(
            f'[target]\nurl = "http://127.0.0.1:{zivver_port}/api/scim/v2"\n'
            'api_key_env = "ZIVVER_API_KEY"\n\n' + "".join(printed)
        )
        env = {
            **os.environ,
            "ZIVVER_API_KEY": "k-1",
            "M365_SECRET": "s3cret",
            "ZSYNC_CONFIG": str(tmp_path / "zsync.toml"),
        }
        first = subprocess.run(
            [ZSYNC, "--headless"], capture_output=True, text=True, env=env, timeout=60
        )
        assert first.returncode == 0, first.stderr
        assert "There will be 30 users added" in first.stderr
        assert "There will be 3 functional accounts added." in first.stderr, "2 groups, 1 shared"
        again = subprocess.run(
            [ZSYNC, "--headless"], capture_output=True, text=True, env=env, timeout=60
        )
        assert again.returncode == 0 and "Summary: no changes." in again.stderr
        wrong = subprocess.run(
            [ZSYNC, "--headless"],
            capture_output=True,
            text=True,
            env={**env, "M365_SECRET": "not-it"},
            timeout=60,
        )
        assert wrong.returncode == 3 and "client secret is wrong" in wrong.stderr
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)


def test_zsync_demo_in_a_real_terminal(tmp_path):
    """`zsync demo` in tmux at 80×24, keys typed as a person would, to the end of step 4."""
    require_binary("/usr/bin/tmux")
    session = f"zsync-demo-{os.getpid()}"
    done = tmp_path / "exit-code"

    def screen() -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout

    def wait_for(text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{screen()}")

    def keys(*names: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", session, *names], check=True)

    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "80",
            "-y",
            "24",
            f"{ZSYNC} demo; echo $? > {done}",
        ],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    try:
        wait_for("Step 1 — Load and parse.")
        keys("s")
        summary = wait_for("There will be 4 users suspended.")
        assert "There will be 8 users added to your Zivver organization." in summary
        keys("u")
        wait_for("Confirm before updating")
        keys("Space")
        wait_for("All confirmed")
        keys("u")
        wait_for("1 of 19 change(s) failed.")
        keys("v")
        # the row under the cursor whole, below the table: Zivver's answer is not cut
        review = wait_for("erik.martens@example.org: The alias j.smit-extern@example.org has a")
        assert "failed    create-user        erik.martens@" in review, review
        keys("q")
        deadline = time.monotonic() + 15
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert done.read_text().strip() == "1", (
            "the TUI exits like the headless run: 1 = some changes failed"
        )
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_under_systemd_each_line_carries_its_journal_priority(
    tmp_path, zivver, monkeypatch, capsys
):
    from zsync_tui.cli import main

    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    monkeypatch.setenv("ZIVVER_API_KEY", "wrong")
    (tmp_path / "people.csv").write_text("email\nann@example.org\n")
    (tmp_path / "zsync.toml").write_text(
        tomli_w.dumps(
            {
                "target": {"url": zivver.url, "api_key_env": "ZIVVER_API_KEY", "max_retries": 0},
                "sources": [{"name": "People", "type": "csv", "path": "people.csv"}],
            }
        )
    )
    assert main(["--headless", "--config", str(tmp_path / "zsync.toml")]) == 3
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("<6>zsync ")
    assert any(line.startswith("<3>ERR Zivver: read") for line in lines)


@pytest.mark.parametrize("command", [[], ["demo"]], ids=["zsync", "zsync demo"])
def test_without_a_terminal_the_tui_refuses_and_points_at_headless(tmp_path, command):
    """A cron line that forgot --headless must not hang waiting for keys."""
    result = subprocess.run(
        [ZSYNC, *command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 3
    assert "there is no terminal here" in result.stderr
    assert "zsync --headless --config PATH" in result.stderr
    assert not (tmp_path / "zsync-state").exists(), "nothing was written"


def test_a_run_that_cannot_start_still_writes_its_report(tmp_path, monkeypatch, capsys):
    """Monitoring that reads the last report must not see yesterday's success."""
    import json

    from zsync_tui.cli import main

    report = tmp_path / "report.json"
    report.write_text('{"exit_code": 0}')  # yesterday's
    profile = tmp_path / "zsync.toml"
    profile.write_text(
        '[target]\nurl = "https://app.zivver.com/api/scim/v2"\napi_key_env = "NO_SUCH_KEY"\n'
        '[[sources]]\nname = "Staff"\ntype = "csv"\npath = "staff.csv"\n'
    )
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)

    code = main(["--headless", "--config", str(profile), "--report", str(report)])

    assert code == 3
    data = json.loads(report.read_text())
    assert data["exit_code"] == 3 and data["status"] == "aborted"
    assert data["profile"] == str(profile)
    assert "NO_SUCH_KEY" in data["errors"][0]
    assert data["changes"] == [] and data["result"] is None
    assert not (tmp_path / "zsync-state").exists()


def test_bash_completes_commands_options_and_guarded_actions(tmp_path):
    require_binary("/bin/bash")
    script = tmp_path / "complete.sh"
    script.write_text(
        f'eval "$({ZSYNC} completion bash)"\n'
        "complete_words() { COMP_WORDS=($@); COMP_CWORD=$(( $# - 1 )); _zsync; "
        'echo "${COMPREPLY[*]}"; }\n'
        "complete_words zsync st\n"
        "complete_words zsync --confirm del\n"
        "complete_words zsync history --j\n"
    )
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "status",
        "delete-users delete-functional",
        "--json",
    ]


def test_a_reader_that_stops_early_gets_no_traceback():
    """`zsync history | head -3`: the pipe closes while zsync still writes."""
    import subprocess
    import sys
    from pathlib import Path

    zsync = str(Path(sys.executable).parent / "zsync")
    child = subprocess.Popen(
        [zsync, "completion", "bash"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the child has started writing
    said = child.stderr.read().decode()
    child.wait(30)
    assert "Traceback" not in said and "BrokenPipeError" not in said, said


def test_check_refuses_what_the_run_would_refuse(directory, zivver, make_profile, capsys):
    """check is the run's own load and plan: a source that shrank past the guard fails the
    check as it would stop the run (check used to plan without the guard and pass)."""
    from zsync_tui.cli import main

    for number in range(10):
        directory.user(f"user{number}")
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    for number in range(8):
        directory.delete(directory.user_dn(f"user{number}"))

    assert main(["check", "--config", str(profile.path)]) == 3
    out = capsys.readouterr().out
    assert "FAIL  next run: would change nothing: source 'Active Directory' returned 2" in out
    assert "shrink_guard_percent" in out
    code, err, _ = profile.run(capsys=capsys)
    assert code == 3 and "shrink_guard_percent" in err, "the run agrees"


def test_check_reads_everything_even_when_the_state_directory_cannot_be_used(
    directory, zivver, make_profile, capsys, tmp_path
):
    """The sources and Zivver are still tried, and the state directory's line says why."""
    from zsync_tui.cli import main

    directory.user("ann")
    profile = make_profile([ldap_source(directory.slapd)])
    (tmp_path / "not-a-dir").write_text("a file where the state directory should be")
    profile.data["state_dir"] = str(tmp_path / "not-a-dir" / "state")
    profile.write()

    assert main(["check", "--config", str(profile.path)]) == 3
    out = capsys.readouterr().out
    assert "ok    source 'Active Directory' (ldap): 1 accounts read" in out
    assert f"ok    Zivver at {zivver.url}: reachable, API key accepted" in out
    assert f"FAIL  state directory {tmp_path / 'not-a-dir' / 'state'}" in out


def test_check_exits_2_when_the_run_would_hold_something(directory, zivver, make_profile, capsys):
    """check said "All checks passed." and 0 while the run would hold suspensions (exit 2)."""
    from zsync_tui.cli import main

    for number in range(10):
        directory.user(f"user{number}")
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    for number in range(3):
        directory.delete(directory.user_dn(f"user{number}"))

    assert main(["check", "--config", str(profile.path)]) == 2
    out = capsys.readouterr().out
    assert "WARN  next run: would hold for --confirm suspend-users: Suspend 3 of 10 users" in out
    assert "All checks passed" not in out
    assert profile.run("--dry-run", capsys=capsys)[0] == 2, "the run agrees"
