"""The README's deployment steps, performed as written (on a temporary prefix instead of /,
with a service user of its own), then ``zsync check`` and daily runs as that user against
slapd and the emulator, the second inside the unit's system call filter, socket families
and W^X rule (tests/sandbox.py: no systemd runs here); and the shipped systemd units,
checked by systemd-analyze.

Needs root (useradd, install -o, runuser) and Debian's /usr/bin/python3: the service user
cannot use an interpreter that lives under /root.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomlkit

from tests.conftest import API_KEY, ldap_source
from tests.servers import SERVICE_PASSWORD, require_binary
from tests.test_headless_ldap import staff

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
"""What a fresh Debian root shell has: the system python3, not this machine's pyenv."""


def run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], env=SYSTEM, capture_output=True, text=True, **kwargs
    )


@pytest.fixture(scope="module")
def prefix() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("the deployment steps need root")
    for tool in ("/usr/sbin/useradd", "/usr/sbin/runuser", "/usr/bin/python3"):
        require_binary(tool)
    if run("/usr/bin/python3", "-c", "import seccomp").returncode != 0:
        message = "python3-seccomp is not installed (scripts/test installs it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    # not under /tmp/pytest-of-root (0700): the service user must reach its files
    where = Path(tempfile.mkdtemp(prefix="zsync-deploy-", dir="/var/tmp"))
    where.chmod(0o755)
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="module")
def service_user(prefix: Path) -> Iterator[str]:
    name = f"zsyncsvc{os.getpid() % 100000}"
    home = prefix / "var/lib/zsync"
    done = run("useradd", "--system", "--home-dir", home, "--shell", "/usr/sbin/nologin", name)
    assert done.returncode == 0, done.stderr
    yield name
    run("userdel", name)


@pytest.fixture(scope="module")
def installed(prefix: Path, service_user: str) -> Path:
    """``git clone … /opt/zsync && /opt/zsync/scripts/setup``: this checkout, copied."""
    opt = prefix / "opt/zsync"
    shutil.copytree(
        ROOT,
        opt,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", "*.egg-info", "build", "zsync-state", "*.html"
        ),
    )
    done = run(opt / "scripts/setup", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return opt


def test_the_readme_deployment_runs_as_written_for_a_service_user(
    prefix: Path, service_user: str, installed: Path, directory, zivver, capsys
):
    staff(directory, 5)
    user, etc, state = service_user, prefix / "etc/zsync", prefix / "var/lib/zsync"
    steps = [
        ("install", "-d", "-m", "0750", "-o", "root", "-g", user, etc),
        (
            "install", "-m", "0640", "-o", "root", "-g", user,
            installed / "config.example.toml", etc / "zsync.toml",
        ),
        ("install", "-m", "0640", "-o", "root", "-g", user, "/dev/null", etc / "api-key"),
        ("install", "-m", "0640", "-o", "root", "-g", user, "/dev/null", etc / "ldap-password"),
        ("install", "-d", "-m", "0700", "-o", user, "-g", user, state),
    ]  # fmt: skip
    for step in steps:
        done = run(*step)
        assert done.returncode == 0, (step, done.stderr)
    (etc / "api-key").write_text(API_KEY + "\n")
    (etc / "ldap-password").write_text(SERVICE_PASSWORD + "\n")
    # "then edit it", as an admin would: the example's own keys, changed in place
    profile = tomlkit.parse((etc / "zsync.toml").read_text())
    profile["state_dir"] = str(state)
    target = profile["target"]
    target["url"] = zivver.url
    del target["api_key_env"]
    target["api_key_file"] = str(etc / "api-key")
    source = profile["sources"][0]
    for key, value in ldap_source(directory.slapd).items():
        if key != "password_env":
            source[key] = value
    del source["password_env"]
    source["password_file"] = str(etc / "ldap-password")
    (etc / "zsync.toml").write_text(tomlkit.dumps(profile))

    zsync = installed / ".venv/bin/zsync"
    check = run("runuser", "-u", user, "--", zsync, "check", "--config", etc / "zsync.toml")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All checks passed." in check.stdout
    assert not (state / "zsync.sqlite3").exists(), "a check writes nothing"

    daily = run(
        "runuser", "-u", user, "--", zsync, "--headless", "--config", etc / "zsync.toml",
        "--report", state / "last-report.json",
    )  # fmt: skip
    assert daily.returncode == 0, daily.stderr
    assert "Task completed successfully." in daily.stderr
    assert len(zivver.org.users) == 5
    store = state / "zsync.sqlite3"
    owner = store.stat()
    assert (owner.st_uid, stat.S_IMODE(owner.st_mode)) == (
        int(run("id", "-u", user).stdout),
        0o600,
    )
    secret = (etc / "api-key").stat()
    assert secret.st_uid == 0 and stat.S_IMODE(secret.st_mode) == 0o640, "root's: not changeable"

    status = run("runuser", "-u", user, "--", zsync, "status", "--config", etc / "zsync.toml")
    assert status.returncode == 0 and " · completed · 5 succeeded" in status.stdout

    # the next day, inside the unit's system call filter, socket families and W^X rule
    directory.user("newcomer")
    sandboxed = run(
        "runuser", "-u", user, "--", "/usr/bin/python3", installed / "tests/sandbox.py",
        installed / "deploy/zsync.service", "--",
        zsync, "--headless", "--config", etc / "zsync.toml",
    )  # fmt: skip
    assert sandboxed.returncode == 0, sandboxed.stderr
    assert "Task completed successfully." in sandboxed.stderr
    assert zivver.org.user_by_email("newcomer@example.org") is not None

    # the server runs the daily sync without the demo's web stack, and says what is missing
    emulator = run(zsync, "emulator", "--api-key", "k")
    assert emulator.returncode == 3
    assert "needs starlette and uvicorn (the demo extra)" in emulator.stderr


def test_systemd_accepts_the_units_and_rates_the_sandbox_at_most_2(
    prefix: Path, service_user: str, installed: Path, tmp_path: Path
):
    require_binary("/usr/bin/systemd-analyze")
    units = tmp_path / "units"
    units.mkdir()
    for name in ("zsync.service", "zsync-failed.service", "zsync.timer"):
        text = (ROOT / "deploy" / name).read_text()
        text = text.replace("/opt/zsync", str(installed)).replace(
            "User=zsync", f"User={service_user}"
        )
        (units / name).write_text(text)
    verify = run("systemd-analyze", "verify", *sorted(units.iterdir()), cwd=units)
    problems = [
        line
        for line in (verify.stdout + verify.stderr).splitlines()
        if line.strip() and "Failed to connect" not in line and "not running" not in line
    ]
    assert problems == [], problems
    security = run("systemd-analyze", "security", "--offline=true", units / "zsync.service")
    score = re.search(r"Overall exposure level for zsync.service: ([\d.]+)", security.stdout)
    assert score is not None, security.stdout + security.stderr
    assert float(score.group(1)) <= 2.0, security.stdout
