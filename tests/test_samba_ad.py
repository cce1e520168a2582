"""Active Directory specifics against a real Samba AD DC: objectGUID, userAccountControl,
proxyAddresses, mail-enabled and nested groups, LDAPS with the DC's own CA.

Samba's LDAP ports are fixed (636), so the DC gets its own loopback address. It costs
about 10 s, so it runs once per session, and only with RUN_SAMBA=1 or in CI."""

from __future__ import annotations

import os
import random
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest
import tomli_w

from tests.conftest import API_KEY
from zsync_tui.cli import main

pytestmark = pytest.mark.samba

ADMIN_PASSWORD = "Passw0rd!Test"
BASE = "DC=example,DC=org"
OU = f"OU=Staff,{BASE}"


@dataclass
class SambaDC:
    address: str
    ca_file: Path
    conn: ldap3.Connection

    @property
    def url(self) -> str:
        return f"ldaps://{self.address}:636"

    def user(self, uid: str, *, disabled: bool = False, aliases: tuple[str, ...] = ()) -> str:
        dn = f"CN={uid},{OU}"
        ok = self.conn.add(
            dn,
            ["top", "person", "organizationalPerson", "user"],
            {
                "sAMAccountName": uid,
                "mail": f"{uid}@example.org",
                "displayName": uid.title(),
                "proxyAddresses": [f"SMTP:{uid}@example.org"] + [f"smtp:{a}" for a in aliases],
                "unicodePwd": f'"Pw-{uid}-12345!"'.encode("utf-16-le"),
                "userAccountControl": 514 if disabled else 512,
            },
        )
        assert ok, self.conn.result
        return dn

    def group(self, cn: str, mail: str | None, members: list[str]) -> str:
        dn = f"CN={cn},{OU}"
        attributes: dict[str, object] = {"sAMAccountName": cn, "member": members}
        if mail:
            attributes["mail"] = mail
        assert self.conn.add(dn, ["top", "group"], attributes), self.conn.result
        return dn

    def guid(self, dn: str) -> str:
        self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
        return str(uuid.UUID(bytes_le=self.conn.response[0]["raw_attributes"]["objectGUID"][0]))


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    if not (os.environ.get("RUN_SAMBA") or os.environ.get("CI")):
        pytest.skip("Samba AD tests run with RUN_SAMBA=1 (scripts/test sets CI=1)")
    if shutil.which("samba-tool") is None or shutil.which("samba") is None:
        pytest.fail("samba is not installed (scripts/test installs it)")
    root = tmp_path_factory.mktemp("samba")
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    subprocess.run(
        [
            "samba-tool",
            "domain",
            "provision",
            f"--targetdir={root}",
            "--realm=EXAMPLE.ORG",
            "--domain=EXAMPLE",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--use-rfc2307",
            "--host-name=dc1",
            f"--adminpass={ADMIN_PASSWORD}",
            f"--option=interfaces={address}/8",
            "--option=bind interfaces only=yes",
            "--option=server services=ldap",
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (root / "cache").mkdir(exist_ok=True)
    process = subprocess.Popen(
        [
            "samba",
            "-i",
            "-M",
            "single",
            "-s",
            str(root / "etc" / "smb.conf"),
            "--option=ldap server require strong auth=no",
            f"--option=log file={root}/log.%m",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with_port = _wait(address, process)
        ca_file = root / "private" / "tls" / "ca.pem"
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED, ca_certs_file=str(ca_file), valid_names=["DC1.example.org"]
        )
        server = ldap3.Server(address, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
        conn = ldap3.Connection(server, "Administrator@example.org", ADMIN_PASSWORD, auto_bind=True)
        assert conn.add(OU, ["top", "organizationalUnit"]), conn.result
        yield SambaDC(with_port, ca_file, conn)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait(address: str, process: subprocess.Popen[bytes]) -> str:
    import socket
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"samba exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex((address, 636)) == 0:
                return address
        time.sleep(0.1)
    raise RuntimeError("samba did not listen on 636 within 60 s")


def test_active_directory_users_groups_and_leavers(samba_dc, zivver, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZIVVER_API_KEY", API_KEY)
    monkeypatch.setenv("AD_PASSWORD", ADMIN_PASSWORD)
    ann = samba_dc.user("ann", aliases=("a.smith@example.org",))
    bob = samba_dc.user("bob")
    samba_dc.user("cat", disabled=True)
    inner = samba_dc.group("inner", None, [bob])
    samba_dc.group("support", "support@example.org", [ann, inner])
    profile = tmp_path / "zsync.toml"
    profile.write_text(
        tomli_w.dumps(
            {
                "target": {"url": zivver.url, "api_key_env": "ZIVVER_API_KEY"},
                "sources": [
                    {
                        "name": "Samba AD",
                        "type": "ldap",
                        "url": samba_dc.url,
                        "bind_dn": "Administrator@example.org",
                        "password_env": "AD_PASSWORD",
                        "base_dn": OU,
                        "directory": "active-directory",
                        "ca_file": str(samba_dc.ca_file),
                        "tls_server_name": "DC1.example.org",
                        "page_size": 2,
                    }
                ],
                "sync": {"domains": ["example.org"]},
            }
        )
    )
    run = ["--headless", "--config", str(profile)]

    assert main(run) == 0, capsys.readouterr().err
    org = zivver.org
    created = org.user_by_email("ann@example.org")
    assert created["urn:ietf:params:scim:schemas:zivver:0.1:User"]["aliases"] == [
        "a.smith@example.org"
    ]
    assert org.sso_keys[created["id"]] == samba_dc.guid(ann), "SsoAccountKey is AD's objectGUID"
    assert org.user_by_email("cat@example.org") is None
    assert org.delegates_of("support@example.org") == {"ann@example.org", "bob@example.org"}

    capsys.readouterr()
    assert main(run) == 0
    assert "Summary: no changes." in capsys.readouterr().err

    # rename (same objectGUID) and disable: userAccountControl gets bit 2
    samba_dc.conn.modify(ann, {"mail": [(ldap3.MODIFY_REPLACE, ["ann.jones@example.org"])]})
    samba_dc.conn.modify(bob, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [514])]})
    code = main([*run, "--confirm", "suspend-users", "--confirm", "suspend-functional"])
    assert code == 0, capsys.readouterr().err
    renamed = org.user_by_email("ann.jones@example.org")
    assert renamed["id"] == created["id"]
    assert org.user_by_email("bob@example.org")["active"] is False
    assert org.delegates_of("support@example.org") == {"ann.jones@example.org"}


def test_a_memberof_filter_scopes_the_sync_to_a_security_group(
    samba_dc, zivver, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("ZIVVER_API_KEY", API_KEY)
    monkeypatch.setenv("AD_PASSWORD", ADMIN_PASSWORD)
    scoped = f"OU=Scoped,{BASE}"
    samba_dc.conn.add(scoped, ["top", "organizationalUnit"])
    dns = []
    for uid in ("dan", "eve"):
        dn = f"CN={uid},{scoped}"
        assert samba_dc.conn.add(
            dn,
            ["top", "person", "organizationalPerson", "user"],
            {
                "sAMAccountName": uid,
                "mail": f"{uid}@example.org",
                "unicodePwd": f'"Pw-{uid}-12345!"'.encode("utf-16-le"),
                "userAccountControl": 512,
            },
        ), samba_dc.conn.result
        dns.append(dn)
    group = f"CN=Zivver Users,{scoped}"
    assert samba_dc.conn.add(
        group, ["top", "group"], {"sAMAccountName": "zivver-users", "member": [dns[0]]}
    )
    profile = tmp_path / "zsync.toml"
    profile.write_text(
        tomli_w.dumps(
            {
                "target": {"url": zivver.url, "api_key_env": "ZIVVER_API_KEY"},
                "sources": [
                    {
                        "name": "Samba AD",
                        "type": "ldap",
                        "url": samba_dc.url,
                        "bind_dn": "Administrator@example.org",
                        "password_env": "AD_PASSWORD",
                        "base_dn": scoped,
                        "ca_file": str(samba_dc.ca_file),
                        "tls_server_name": "DC1.example.org",
                        # memberOf is AD's real back-link, maintained by the DC
                        "user_filter": f"(&(objectClass=user)(mail=*)(memberOf={group}))",
                    }
                ],
            }
        )
    )

    assert main(["--headless", "--config", str(profile)]) == 0, capsys.readouterr().err
    assert zivver.org.user_by_email("dan@example.org") is not None
    assert zivver.org.user_by_email("eve@example.org") is None


def test_an_active_directorys_root_dse_gives_its_preset_and_domain(samba_dc, tmp_path):
    from zsync_core.sources.ldap_discover import discover

    found = discover(
        {
            "url": samba_dc.url,
            "bind_dn": "Administrator@example.org",
            "password_env": "AD_PASSWORD",
            "ca_file": str(samba_dc.ca_file),
            "tls_server_name": "DC1.example.org",
        },
        ADMIN_PASSWORD,
        tmp_path / "zsync.toml",
    )

    assert found.directory == "active-directory"
    assert found.base_dns[0].lower() == BASE.lower()
