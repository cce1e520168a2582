"""What a release carries: an sdist with everything to deploy, try and test zsync, and a
wheel built from that sdist with every package and its data. Built offline (no isolation)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_sdist_carries_everything_and_builds_a_complete_wheel(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    [sdist] = tmp_path.glob("zsync-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        archive.extractall(tmp_path / "unpacked", filter="data")
    for wanted in (
        "LICENSE",
        "config.example.toml",
        "deploy/zsync.service",
        "deploy/zsync.timer",
        "examples/demo.toml",
        "tests/conftest.py",
        "tests/infra/slapd.conf.in",
        "scripts/test",
        "bench/run",
        "zsync_tui/demo/staff.csv",
    ):
        assert wanted in names, f"the sdist lacks {wanted}"

    # its tests run from the unpacked archive (those that need no test server, here)
    [unpacked] = (tmp_path / "unpacked").iterdir()
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_ldap_map.py", "tests/test_requests.py", "tests/test_plan.py"],
        cwd=unpacked,
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert (
        str(unpacked)
        in subprocess.run(
            [sys.executable, "-c", "import zsync_core; print(zsync_core.__file__)"],
            cwd=unpacked,
            env={**os.environ, "PYTHONPATH": str(unpacked)},
            capture_output=True,
            text=True,
        ).stdout
    ), "the unpacked sources were tested, not this checkout"

    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(sdist),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("zsync-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    for wanted in (
        "zsync/__main__.py",
        "zsync_core/sources/ldap_map.py",
        "zsync_tui/screens/options.py",
        "zsync_tui/demo.py",
        "zsync_tui/demo/staff.csv",
        "zsync_emulator/app.py",
    ):
        assert wanted in files, f"the wheel lacks {wanted}"
    assert any(name.endswith(".dist-info/LICENSE") or "licenses/LICENSE" in name for name in files)


def test_python_dash_m_zsync_is_the_zsync_command():
    result = subprocess.run(
        [sys.executable, "-m", "zsync", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("zsync ")
