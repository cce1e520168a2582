from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.servers import (
    BASE_DN,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Directory,
    Slapd,
    make_certificate,
    require_binary,
)
from zsync_core.store import Store
from zsync_emulator import EmulatorServer, Organization

API_KEY = "test-api-key-7f3c9a"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A real OpenLDAP slapd with an empty AD look-alike directory, on a free loopback port."""
    require_binary("/usr/sbin/slapd")
    server = Slapd(tmp_path / "slapd").start()
    yield server
    server.stop()


@pytest.fixture
def tls_slapd(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[Slapd]:
    require_binary("/usr/sbin/slapd")
    server = Slapd(tmp_path / "slapd-tls", tls=certificate).start()
    yield server
    server.stop()


@pytest.fixture
def directory(slapd: Slapd) -> Directory:
    return Directory(slapd)


@pytest.fixture
def zivver() -> Iterator[EmulatorServer]:
    """The Zivver emulator over real HTTP on loopback (rate limit off unless a test sets it)."""
    org = Organization(api_key=API_KEY, rate_limit=None)
    with EmulatorServer(org) as server:
        yield server


@dataclass
class Profile:
    """A profile on disk plus helpers to run zsync on it as an admin would."""

    path: Path
    data: dict[str, Any]

    def write(self) -> Profile:
        self.path.write_text(tomli_w.dumps(self.data))
        return self

    def run(
        self, *args: str, capsys: pytest.CaptureFixture[str] | None = None
    ) -> tuple[int, str, dict[str, Any] | None]:
        """``zsync --headless --config <profile> <args>``; returns (exit code, stderr, report)."""
        from zsync_tui.cli import main

        report = self.path.parent / "report.json"
        report.unlink(missing_ok=True)
        code = main(["--headless", "--config", str(self.path), "--report", str(report), *args])
        err = capsys.readouterr().err if capsys else ""
        data = json.loads(report.read_text()) if report.exists() else None
        return code, err, data

    def store(self) -> Store:
        return Store.open(self.path.parent / "zsync-state")


ProfileFactory = Callable[..., Profile]


@pytest.fixture
def make_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zivver: EmulatorServer
) -> ProfileFactory:
    monkeypatch.setenv("ZIVVER_API_KEY", API_KEY)
    monkeypatch.setenv("LDAP_PASSWORD", SERVICE_PASSWORD)

    def make(sources: list[dict[str, Any]], **sync: Any) -> Profile:
        data: dict[str, Any] = {
            "target": {
                "url": zivver.url,
                "api_key_env": "ZIVVER_API_KEY",
                "max_retries": 2,
                "rate_limit_requests": 1000,
            },
            "sources": sources,
            "sync": {"domains": ["example.org"], **sync},
        }
        return Profile(tmp_path / "zsync.toml", data).write()

    return make


def ldap_source(server: Slapd, **extra: Any) -> dict[str, Any]:
    return {
        "name": "Active Directory",
        "type": "ldap",
        "url": server.url,
        "bind_dn": SERVICE_DN,
        "password_env": "LDAP_PASSWORD",
        "base_dn": BASE_DN,
        "directory": "active-directory",
        "page_size": 7,
        **extra,
    }
