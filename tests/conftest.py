from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.servers import (
    BASE_DN,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Directory,
    Slapd,
    free_port,
    make_app_certificate,
    make_certificate,
    require_binary,
)
from zsync_core.store import Store
from zsync_emulator import EmulatorServer, Organization
from zsync_emulator.microsoft import Tenant
from zsync_emulator.server import MicrosoftServer
from zsync_emulator.tls import Tls, make_tls

API_KEY = "test-api-key-7f3c9a"
M365_SECRET = "m365-client-secret~value"
M365_CLIENT = "11111111-2222-4333-8444-555555555555"


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


@pytest.fixture(scope="session")
def app_certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    return make_app_certificate(tmp_path_factory.mktemp("m365-cert"))


@pytest.fixture(scope="session")
def loopback_tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A CA of the tests' own and a certificate it signed for 127.0.0.1, ::1 and localhost."""
    return make_tls(tmp_path_factory.mktemp("loopback-tls"))


@pytest.fixture
def microsoft(
    app_certificate: dict[str, Path | str], loopback_tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MicrosoftServer]:
    """The Microsoft 365 emulator over real HTTPS on loopback (its CA the source's ca_file),
    with an app registration that has the secret ``$M365_SECRET``, the test certificate, every
    consent and an Exchange role."""
    monkeypatch.setenv("M365_SECRET", M365_SECRET)
    tenant = Tenant()
    tenant.register_app(
        M365_CLIENT, secret=M365_SECRET, certificate=str(app_certificate["certificate"])
    )
    with MicrosoftServer(tenant, tls=loopback_tls) as server:
        yield server


def m365_source(server: MicrosoftServer, **extra: Any) -> dict[str, Any]:
    """A microsoft365 source for the emulator, signing in with the client secret."""
    return {
        "name": "Microsoft 365",
        "type": "microsoft365",
        "tenant_id": server.tenant.tenant_id,
        "client_id": M365_CLIENT,
        "client_secret_env": "M365_SECRET",
        "authority_url": server.base,
        "graph_url": server.base,
        "exchange_url": server.base,
        "ca_file": str(server.ca_file),
        "max_retries": 2,
        **extra,
    }


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


# --- where notifications go: a real SMTP server (STARTTLS, a login) and a webhook receiver

SMTP_PASSWORD = "smtp-secret-9f2c"
HOOK_TOKEN = "hook-token-77aa"


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[dict[str, Any]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        from email import message_from_bytes, policy

        mail = message_from_bytes(envelope.content, policy=policy.default)
        self.mails.append(
            {
                "to": envelope.rcpt_tos,
                "subject": str(mail["Subject"]),
                "body": mail.get_content(),
                "tls": session.ssl is not None,
            }
        )
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"zsync" and auth_data.password == SMTP_PASSWORD.encode()
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Controller, Mailbox, Path]]:
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=box.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield controller, box, cert
    controller.stop()


@pytest.fixture
def hook() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/{HOOK_TOKEN}", received
    server.shutdown()
