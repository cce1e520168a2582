"""No secret in clear on the wire: plain http:// and ldap:// are refused for another host
(unless an LDAP source says ``allow_cleartext``, and then every run warns), and a secret file
every user may read is named with the chmod that fixes it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import API_KEY, ProfileFactory, ldap_source
from tests.servers import Directory
from zsync_core.config import api_key, exposed_secret_files, load_config
from zsync_emulator import EmulatorServer


def _cleartext_warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "travel unencrypted over the network" in line]


def test_a_plain_http_target_on_another_host_is_refused_before_anything_is_sent(
    make_profile: ProfileFactory, zivver: EmulatorServer, capsys, tmp_path
):
    (tmp_path / "people.csv").write_text("email,name\nann@example.org,Ann\n")
    profile = make_profile([{"name": "People", "type": "csv", "path": "people.csv"}])
    profile.data["target"]["url"] = "http://zivver.example.org/api/scim/v2"
    profile.write()

    code, err, _report = profile.run(capsys=capsys)

    assert code == 3, err
    assert "target.url: 'http://zivver.example.org/api/scim/v2' is plain http" in err
    assert "the API key would travel unencrypted" in err
    assert "use https://" in err
    assert "Nothing was changed." in err
    assert not (tmp_path / "zsync-state").exists(), "refused before a run started"
    assert not zivver.org.requests


def test_ldap_without_tls_to_another_host_is_refused_naming_the_source(
    make_profile: ProfileFactory, zivver: EmulatorServer, capsys, tmp_path
):
    source = {
        "name": "Head Office",
        "type": "ldap",
        "url": "ldap://dc1.example.org:389",
        "bind_dn": "CN=svc,DC=example,DC=org",
        "password_env": "LDAP_PASSWORD",
        "base_dn": "DC=example,DC=org",
    }
    profile = make_profile([source])

    code, err, _report = profile.run(capsys=capsys)

    assert code == 3, err
    assert "sources[0] (Head Office): url 'ldap://dc1.example.org:389'" in err
    assert "the bind password and the directory data would travel unencrypted" in err
    assert "Use ldaps:// (port 636) or add start_tls = true" in err
    assert "allow_cleartext = true" in err
    assert not (tmp_path / "zsync-state").exists()
    assert not zivver.org.requests

    source["start_tls"] = True
    assert load_config(profile.write().path).sources[0].url == "ldap://dc1.example.org:389"


class _Forwarder:
    """A TCP forwarder from ``host`` (an address of this machine that is not loopback) to
    127.0.0.1:``port``, where the test slapd listens."""

    def __init__(self, host: str, port: int) -> None:
        self.target = port
        self.listener = socket.create_server((host, 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


def _outward_address() -> str | None:
    """This machine's address on its network (no packet is sent), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture
def network_slapd_url(directory: Directory) -> Iterator[str]:
    """An ldap:// URL of the test slapd through this machine's network address."""
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no network address other than loopback")
    forwarder = _Forwarder(address, directory.slapd.port)
    yield f"ldap://{address}:{forwarder.port}"
    forwarder.close()


def test_allow_cleartext_reads_the_directory_and_warns_at_every_run(
    directory: Directory,
    network_slapd_url: str,
    make_profile: ProfileFactory,
    zivver: EmulatorServer,
    capsys,
):
    directory.user("ann")
    on_loopback = make_profile([ldap_source(directory.slapd)])
    code, err, _report = on_loopback.run(capsys=capsys)
    assert code == 0, err
    assert not _cleartext_warnings(err), "ldap:// on this machine stays silent"

    directory.user("bob")
    profile = make_profile([ldap_source(directory.slapd, url=network_slapd_url)])
    code, err, _report = profile.run(capsys=capsys)
    assert code == 3 and "would travel unencrypted" in err, "refused without allow_cleartext"

    profile.data["sources"][0]["allow_cleartext"] = True
    profile.write()
    for _run in range(2):
        code, err, _report = profile.run(capsys=capsys)
        assert code == 0, err
        (warning,) = _cleartext_warnings(err)
        assert warning.startswith("WARNING Source 'Active Directory': ")
        assert network_slapd_url in warning
        assert "the bind password and the directory data travel unencrypted" in warning
    assert zivver.org.user_by_email("bob@example.org") is not None, "read through the network"
    events = [message for _at, _level, message in profile.store().events()]
    assert sum("travel unencrypted over the network" in m for m in events) == 2


def test_a_secret_file_every_user_may_read_is_named_with_the_chmod(
    make_profile: ProfileFactory, capsys, tmp_path
):
    (tmp_path / "people.csv").write_text("email,name\nann@example.org,Ann\n")
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o644)
    profile = make_profile([{"name": "People", "type": "csv", "path": "people.csv"}])
    del profile.data["target"]["api_key_env"]
    profile.data["target"]["api_key_file"] = "api-key"
    profile.write()

    code, err, _report = profile.run("--dry-run", capsys=capsys)

    assert code == 0, err
    (warning,) = [line for line in err.splitlines() if "chmod" in line]
    assert warning.startswith("WARNING ")
    assert f"target.api_key_file {key_file} can be read by every user" in warning
    assert "(mode 0644)" in warning
    assert f"Run chmod 640 {key_file} (or chmod o-r {key_file})" in warning
    events = [message for _at, level, message in profile.store().events() if level == "warning"]
    assert any(f"chmod 640 {key_file}" in message for message in events)

    from zsync_tui.cli import main

    code = main(["check", "--config", str(profile.path)])
    out = capsys.readouterr().out
    assert f"WARN  {profile.path}: target.api_key_file {key_file} can be read" in out

    key_file.chmod(0o640)
    code, err, _report = profile.run("--dry-run", capsys=capsys)
    assert code == 0, err
    assert "chmod" not in err


def test_a_systemd_credential_is_checked_in_place_of_the_profiles_file(tmp_path, monkeypatch):
    """Under LoadCredential= zsync reads the credential (systemd keeps it private), so the
    warning is about that file, not about the path the profile names."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o644)
    profile = tmp_path / "zsync.toml"
    profile.write_text(
        f'[target]\napi_key_file = "{key_file}"\n\n'
        '[[sources]]\nname = "People"\ntype = "csv"\npath = "people.csv"\n'
    )
    assert len(exposed_secret_files(load_config(profile))) == 1

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api-key").write_text(API_KEY + "\n")
    (credentials / "api-key").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = load_config(profile)
    assert api_key(config) == API_KEY
    assert exposed_secret_files(config) == []
