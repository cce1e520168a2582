"""The world the bench measures in: an AD look-alike directory of ``--accounts`` users in
slapd (with aliases, mobile numbers, divisions by OU and mail-enabled groups), the Zivver
emulator filled to match in a process of its own, and the profile that reads them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ZSYNC = str(Path(sys.executable).parent / "zsync")

from tests.servers import (  # noqa: E402  (the same slapd setup as the tests)
    BASE_DN,
    GROUPS,
    SERVICE_DN,
    SERVICE_PASSWORD,
    STAFF,
    Slapd,
)

API_KEY = "bench-key"
ATTRIBUTES = [
    "objectGUID",
    "mail",
    "displayName",
    "userAccountControl",
    "proxyAddresses",
    "msExchRecipientTypeDetails",
    "msExchDelegateListLink",
    "member",
    "mobile",
    "objectClass",
]
ZIVVER_USER = "urn:ietf:params:scim:schemas:zivver:0.1:User"
UNLIMITED_CONCURRENCY = 16
"""target.concurrency with the rate limit off (the default, 4, is plenty at Zivver's 5 req/s)."""
DAILY_ROUNDS = 5
"""--rounds: the daily run and its baselines are measured this many times, in turn (medians kept)."""
WAN_LATENCY = 0.02
"""Seconds the emulator waits per request in the second comparison: a network like the one to Zivver."""


def guid(number: int) -> uuid.UUID:
    return uuid.UUID(int=(0x5A5A << 112) | number)


def email(number: int) -> str:
    return f"user{number:06}@example.org"


def alias(number: int) -> str | None:
    return f"u{number:06}@example.org" if number % 10 == 0 else None


def members(group: int) -> list[int]:
    return [group * 100 + k for k in range(5)]


FINANCE = f"ou=Finance,{STAFF}"
OU_MAP = {FINANCE: "finance", STAFF: "staff"}
"""The profile's ou_map: one user in five is in Finance, the others in Staff."""


def user_dn(number: int) -> str:
    return f"cn=user{number:06},{FINANCE if number % 5 == 0 else STAFF}"


def division(number: int) -> str:
    return "finance" if number % 5 == 0 else "staff"


def mobile(number: int) -> tuple[str, str] | None:
    """One user in eight has a mobile number: (as the directory holds it, in E.164), half
    of them written the Dutch way, as people type them."""
    if number % 8:
        return None
    e164 = f"+3161{number % 10_000_000:07}"  # 06-0… is no Dutch mobile range
    typed = f"06 {e164[4:8]} {e164[8:]}" if number % 16 else e164
    return typed, e164


# --- the directory -------------------------------------------------------------------------


def write_ldif(path: Path, accounts: int) -> None:
    import base64

    def b64(value: bytes) -> str:
        return base64.b64encode(value).decode()

    with path.open("w", encoding="utf-8") as out:
        out.write(
            f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
        )
        for ou in ("Staff", "Groups"):
            out.write(f"dn: ou={ou},{BASE_DN}\nobjectClass: organizationalUnit\nou: {ou}\n\n")
        out.write(f"dn: {FINANCE}\nobjectClass: organizationalUnit\nou: Finance\n\n")
        out.write(
            f"dn: {SERVICE_DN}\nobjectClass: person\ncn: svc-zivver\nsn: service\nuserPassword: {SERVICE_PASSWORD}\n\n"
        )
        for number in range(accounts):
            mail = email(number)
            lines = [
                f"dn: {user_dn(number)}",
                "objectClass: top",
                "objectClass: person",
                "objectClass: organizationalPerson",
                "objectClass: user",
                f"cn: user{number:06}",
                f"sn: {number:06}",
                f"sAMAccountName: user{number:06}",
                f"mail: {mail}",
                f"displayName: User {number:06}",
                "userAccountControl: 512",
                f"objectGUID:: {b64(guid(number).bytes_le)}",
                f"proxyAddresses: SMTP:{mail}",
            ]
            if alias(number):
                lines.append(f"proxyAddresses: smtp:{alias(number)}")
            number_of = mobile(number)
            if number_of:
                lines.append(f"mobile: {number_of[0]}")
            out.write("\n".join(lines) + "\n\n")
        for group in range(accounts // 100):
            lines = [
                f"dn: cn=team{group:05},{GROUPS}",
                "objectClass: top",
                "objectClass: group",
                f"cn: team{group:05}",
                f"displayName: Team {group:05}",
                f"mail: team{group:05}@example.org",
                f"objectGUID:: {b64(guid(10_000_000 + group).bytes_le)}",
            ]
            lines += [f"member: {user_dn(m)}" for m in members(group)]
            out.write("\n".join(lines) + "\n\n")


def start_directory(work: Path, accounts: int) -> Slapd:
    slapd = Slapd(work / "slapd", unlimited_service=True)  # as its admin would
    slapd.conf.write_text(slapd.conf.read_text().replace("maxsize 268435456", "maxsize 8589934592"))
    ldif = work / "directory.ldif"
    write_ldif(ldif, accounts)
    subprocess.run(
        ["/usr/sbin/slapadd", "-q", "-f", str(slapd.conf), "-b", BASE_DN, "-l", str(ldif)],
        check=True,
        capture_output=True,
    )
    return slapd.start()


# --- Zivver ----------------------------------------------------------------------------------


def seed_organization(org: Any, accounts: int) -> None:
    from zsync_emulator.organization import new_group, new_user

    ids = []
    org.divisions |= set(OU_MAP.values())
    for number in range(accounts):
        user_id = str(uuid.UUID(int=number + 1))
        ids.append(user_id)
        extra = alias(number)
        aliases = [extra] if extra else []
        user = new_user(
            user_id, email(number), f"User {number:06}", True, aliases, [], division(number)
        )
        number_of = mobile(number)
        if number_of:
            user["phoneNumbers"] = [{"value": number_of[1]}]
        org.users[user_id] = user
    for group in range(accounts // 100):
        group_id = str(uuid.UUID(int=20_000_000 + group))
        org.groups[group_id] = new_group(
            group_id,
            f"team{group:05}@example.org",
            f"Team {group:05}",
            [ids[m] for m in members(group)],
            [],
        )


def rename_users(org: Any, count: int) -> None:
    """Make ``count`` users differ from the directory (their display name): ``count`` updates."""
    for number, user in enumerate(org.users.values()):
        if number >= count:
            break
        user["name"]["formatted"] = f"Old name {number}"


def write_profile(work: Path, slapd: Slapd, url: str, limited: bool) -> Path:
    import tomli_w

    profile = work / "zsync.toml"
    data = {
        "target": {
            "url": url,
            "api_key_env": "ZSYNC_BENCH_API_KEY",
            **(
                {}
                if limited
                else {"rate_limit_requests": 1_000_000, "concurrency": UNLIMITED_CONCURRENCY}
            ),
        },
        "sources": [
            {
                "name": "Directory",
                "type": "ldap",
                "url": slapd.url,
                "bind_dn": SERVICE_DN,
                "password_env": "ZSYNC_BENCH_LDAP_PASSWORD",
                "base_dn": BASE_DN,
                "directory": "active-directory",
                "page_size": 1000,
                "phone_region": "NL",
                "ou_mapping": "dn",
                "ou_map": OU_MAP,
            }
        ],
        "sync": {
            "domains": ["example.org"],
            "shrink_guard_percent": 100,
            "sync_phone_numbers": True,
        },
    }
    profile.write_text(tomli_w.dumps(data), encoding="utf-8")
    return profile


class EmulatorHost:
    """The emulator with ``accounts`` accounts, in a process of its own, driven over a pipe.

    Zivver runs on machines of its own; in the driver's process the emulator would share
    one interpreter (and its lock) with the driver. Commands (JSON lines): ``rename`` (make
    ``count`` users differ from the directory), ``set`` (the Organization's ``latency``,
    ``rate_limit``, ``rate_window``), ``mark`` and ``since`` (what was sent after a mark).
    """

    def __init__(self, accounts: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.zsync_bench", "emulator", str(accounts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        started = self._reply()
        self.url: str = started["url"]
        self.http: str = started["http"]

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process ended (exit {self.process.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        assert self.process.stdin
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(30)


def host_emulator(accounts: int) -> int:
    """The other end of :class:`EmulatorHost`."""
    import importlib.util

    from zsync_emulator.organization import Organization
    from zsync_emulator.server import EmulatorServer

    org = Organization(api_key=API_KEY, rate_limit=None)
    seed_organization(org, accounts)
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    with EmulatorServer(org, http=http) as server:
        print(json.dumps({"url": server.url, "http": http}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op = command.pop("op")
            reply: dict[str, Any] = {}
            with org.lock:
                if op == "rename":
                    rename_users(org, command["count"])
                elif op == "set":
                    for name, value in command.items():
                        setattr(org, name, value)
                elif op == "mark":
                    reply = {"mark": len(org.requests)}
                elif op == "since":
                    during = org.requests[command["mark"] :]
                    reply = {
                        "sent": sum(1 for r in during if r[0] != "GET"),
                        "throttled": sum(1 for r in during if r[2] == 429),
                    }
            print(json.dumps(reply), flush=True)
    return 0


# --- measuring -------------------------------------------------------------------------------
