"""Real test servers: OpenLDAP slapd with an AD look-alike schema, and the Zivver emulator."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import ldap3

INFRA = Path(__file__).parent / "infra"
BASE_DN = "dc=example,dc=org"
STAFF = f"ou=Staff,{BASE_DN}"
GROUPS = f"ou=Groups,{BASE_DN}"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-secret"
SERVICE_DN = f"cn=svc-zivver,{BASE_DN}"
SERVICE_PASSWORD = "svc-password-123"
NORMAL, DISABLED = 512, 514


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode} before listening on {port}"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def require_binary(path: str) -> None:
    import pytest

    if shutil.which(path) is None and not os.path.exists(path):
        message = f"{path} is not installed (scripts/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    cert, key = directory / "server.pem", directory / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class Slapd:
    """One slapd process with a fresh database, owned by the test.

    slapd's own limits hold (500 entries a search, paged or not), as on a server nobody
    tuned: the tests bind as the service account (``SERVICE_DN``), never as the rootdn, which
    no limit applies to. ``unlimited_service``: lift the limits for the service account only,
    as an admin whose directory holds more than 500 accounts does (the bench's 100,000).
    """

    def __init__(
        self, directory: Path, tls: tuple[Path, Path] | None = None, unlimited_service: bool = False
    ) -> None:
        self.dir = directory
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.process: subprocess.Popen[bytes] | None = None
        (directory / "db").mkdir(parents=True, exist_ok=True)
        tls_lines = ""
        if tls:
            tls_lines = f"TLSCACertificateFile {tls[0]}\nTLSCertificateFile {tls[0]}\nTLSCertificateKeyFile {tls[1]}"
        conf = (INFRA / "slapd.conf.in").read_text()
        conf = (
            conf.replace("@SCHEMA_DIR@", str(INFRA))
            .replace("@RUN_DIR@", str(directory))
            .replace("@TLS@", tls_lines)
        )
        if unlimited_service:
            conf += f'\nlimits dn.exact="{SERVICE_DN}" size=unlimited time=unlimited\n'
        self.conf = directory / "slapd.conf"
        self.conf.write_text(conf)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def start(self) -> Slapd:
        """Start slapd and wait until it listens on every port; a port another process took
        between free_port() and slapd's bind makes slapd exit, so it starts again on others."""
        for attempt in range(3):
            urls = self.url + "/" + (f" {self.ldaps_url}/" if self.tls else "")
            self.process = subprocess.Popen(
                ["/usr/sbin/slapd", "-d", "0", "-f", str(self.conf), "-h", urls],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                for port in filter(None, (self.port, self.tls_port)):
                    wait_for_port(port, self.process)
                time.sleep(0.05)
                if self.process.poll() is None:
                    return self
            except RuntimeError:
                if attempt == 2:
                    raise
            self.stop()
            self.port = free_port()
            self.tls_port = free_port() if self.tls else None
        raise RuntimeError(f"slapd in {self.dir} did not stay up")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def admin(self) -> ldap3.Connection:
        return ldap3.Connection(
            ldap3.Server("127.0.0.1", port=self.port, get_info=ldap3.NONE),
            ADMIN_DN,
            ADMIN_PASSWORD,
            auto_bind=True,
        )


class Directory:
    """Writes AD-like entries into a running slapd, and remembers their GUIDs."""

    def __init__(self, slapd: Slapd) -> None:
        self.slapd = slapd
        self.conn = slapd.admin()
        self.guids: dict[str, uuid.UUID] = {}
        self.dns: dict[str, str] = {}
        """uid → DN, for users made under an OU of their own."""
        self._add(BASE_DN, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
        self._add(STAFF, ["organizationalUnit"], {"ou": "Staff"})
        self._add(GROUPS, ["organizationalUnit"], {"ou": "Groups"})
        self._add(
            SERVICE_DN,
            ["person"],
            {"cn": "svc-zivver", "sn": "service", "userPassword": SERVICE_PASSWORD},
        )

    def _add(self, dn: str, classes: list[str], attributes: dict[str, object]) -> None:
        if not self.conn.add(dn, classes, attributes):
            raise RuntimeError(f"cannot add {dn}: {self.conn.result}")

    def user_dn(self, uid: str) -> str:
        return self.dns.get(uid, f"cn={uid},{STAFF}")

    def ou(self, name: str, parent: str = STAFF) -> str:
        """A new organizational unit ``ou=<name>`` under ``parent``; its DN."""
        dn = f"ou={name},{parent}"
        self._add(dn, ["organizationalUnit"], {"ou": name})
        return dn

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},{GROUPS}"

    def user(
        self,
        uid: str,
        mail: str | None = None,
        name: str | None = None,
        *,
        disabled: bool = False,
        aliases: Iterable[str] = (),
        delegates: Iterable[str] = (),
        shared: bool = False,
        entra_id: str | None = None,
        mobile: str | None = None,
        under: str | None = None,
    ) -> str:
        """``entra_id``: the Entra object id Entra Connect wrote back (a hybrid directory);
        ``under``: the DN of the OU it is made in (default ou=Staff)."""
        if under is not None:
            self.dns[uid] = f"cn={uid},{under}"
        dn = self.user_dn(uid)
        guid = uuid.uuid4()
        self.guids[uid] = guid
        mail = mail or f"{uid}@example.org"
        attributes: dict[str, object] = {
            "cn": uid,
            "sn": uid,
            "sAMAccountName": uid,
            "mail": mail,
            "displayName": name or uid.replace(".", " ").title(),
            "userAccountControl": DISABLED if (disabled or shared) else NORMAL,
            "objectGUID": guid.bytes_le,
            "proxyAddresses": [f"SMTP:{mail}"]
            + [f"smtp:{a}" for a in aliases]
            + ["X500:/o=Example/cn=" + uid],
        }
        if delegates:
            attributes["msExchDelegateListLink"] = [self.user_dn(d) for d in delegates]
        if shared:
            attributes["msExchRecipientTypeDetails"] = 4
        if entra_id:
            attributes["msDS-ExternalDirectoryObjectId"] = f"User_{entra_id}"
        if mobile:
            attributes["mobile"] = mobile
        self._add(dn, ["top", "person", "organizationalPerson", "user"], attributes)
        return dn

    def group(
        self, cn: str, mail: str | None, members: Iterable[str] = (), name: str | None = None
    ) -> str:
        dn = self.group_dn(cn)
        guid = uuid.uuid4()
        self.guids[cn] = guid
        attributes: dict[str, object] = {
            "cn": cn,
            "objectGUID": guid.bytes_le,
            "displayName": name or cn,
        }
        if mail:
            attributes["mail"] = mail
        member_list = list(members)
        if member_list:
            attributes["member"] = member_list
        self._add(dn, ["top", "group"], attributes)
        return dn

    def modify(self, dn: str, **changes: object) -> None:
        spec = {
            key: [(ldap3.MODIFY_REPLACE, value if isinstance(value, list) else [value])]
            for key, value in changes.items()
        }
        if not self.conn.modify(dn, spec):
            raise RuntimeError(f"cannot modify {dn}: {self.conn.result}")

    def disable(self, uid: str) -> None:
        self.modify(self.user_dn(uid), userAccountControl=DISABLED)

    def delete(self, dn: str) -> None:
        if not self.conn.delete(dn):
            raise RuntimeError(f"cannot delete {dn}: {self.conn.result}")


class CuttingProxy:
    """A TCP proxy to 127.0.0.1:``target`` that drops every connection once the server has
    sent ``cut_after`` bytes through it: a server dying in the middle of an answer."""

    def __init__(self, target: int, cut_after: int) -> None:
        import threading

        self.target = target
        self.cut_after = cut_after
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = int(self.listener.getsockname()[1])
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self.cut_after), daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(4096)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    sink.sendall(data[: limit - sent])
                    self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


def make_app_certificate(directory: Path, password: str = "pfx-password") -> dict[str, Path | str]:
    """An app registration's certificate as Entra takes it: ``pem`` (key and certificate, one
    file), ``pfx`` (with ``password``), ``encrypted`` (PEM with an encrypted key) and
    ``certificate`` (the public PEM text, to register)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zsync test app")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    public = cert.public_bytes(serialization.Encoding.PEM)
    plain = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem, locked, pfx = directory / "app.pem", directory / "app-locked.pem", directory / "app.pfx"
    pem.write_bytes(plain + public)
    locked.write_bytes(encrypted + public)
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"zsync", key, cert, None, serialization.BestAvailableEncryption(password.encode())
        )
    )
    return {"pem": pem, "encrypted": locked, "pfx": pfx, "certificate": public.decode()}
