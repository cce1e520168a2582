"""zsync at scale, measured against what it cannot change (the directory, Zivver's rate limit).

    bench/run [--accounts 100000] [--changes 2000] [--rate-window 10] [--skip-limited]

Builds an AD look-alike directory in slapd with slapadd (``--accounts`` users plus one
mail-enabled group per 100 users), the matching organization in the Zivver emulator, and a
local store that has matched every account once. Then, each measurement in its own process
(so its peak RSS is its own):

- daily run, no changes: ``zsync --headless --dry-run`` (load + plan) against the raw
  baselines: a paged ``ldapsearch`` of the same entries and attributes, and a raw GET of
  all Users and Groups;
- the plan alone (accounts vs accounts);
- apply of ``--changes`` changes with Zivver's rate limit on (50 requests / window), and
  with it off, against the same changes sent one at a time with the zivverscim SDK;
- the TUI: opening the preview of ``--accounts`` changes and search keystrokes (Pilot).

Prints a table. Run from the repository root (bench/run does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
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
        aliases = [alias(number)] if alias(number) else []
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


@dataclass
class Figure:
    seconds: float
    peak_mb: float
    extra: dict[str, Any]


class Spawner:
    """Starts the measured commands from a small process of its own.

    Linux carries a parent's peak RSS over to a forked child (``ru_maxrss`` survives exec),
    so commands started from this driver, which holds the emulator's 100,000 accounts,
    would all seem as large as it. The spawner is started first, while the driver is small.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.zsync_bench", "spawner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )

    def run(self, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"args": args, "env": env or {}}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(10)


def serve_spawns() -> int:
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            process = subprocess.Popen(
                request["args"],
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, **request["env"]},
                cwd=ROOT,
            )
            out = process.stdout.read() if process.stdout else b""
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
        reply = {
            "seconds": seconds,
            "peak_kb": usage.ru_maxrss,
            "code": os.waitstatus_to_exitcode(status),
            "out": out.decode(errors="replace")[-100_000:],
            "err": tail,
        }
        print(json.dumps(reply), flush=True)
    return 0


SPAWNER: Spawner | None = None


def run_measured(
    args: list[str], env: dict[str, str] | None = None, codes: tuple[int, ...] = (0, 2)
) -> Figure:
    """Run a command; its wall time, its own peak RSS, and its last stdout line as JSON.
    ``codes``: the exit codes it may end with (else the bench stops with its stderr)."""
    assert SPAWNER is not None
    reply = SPAWNER.run(args, env)
    if reply["code"] not in codes:
        raise RuntimeError(f"{' '.join(args)} failed ({reply['code']}):\n{reply['err']}")
    extra: dict[str, Any] = {}
    lines = reply["out"].strip().splitlines()
    if lines and lines[-1].startswith("{"):
        extra = json.loads(lines[-1])
    return Figure(extra.pop("seconds", reply["seconds"]), reply["peak_kb"] / 1024, extra)


def median_figure(figures: list[Figure]) -> Figure:
    """The run with the median time (its own peak RSS and extras with it)."""
    return sorted(figures, key=lambda figure: figure.seconds)[len(figures) // 2]


def python(*code_args: str) -> list[str]:
    return [sys.executable, "-m", "bench.zsync_bench", *code_args]


# --- the measurements, each run in its own process ------------------------------------------


def measure_get_all(url: str) -> dict[str, Any]:
    import httpx

    started = time.perf_counter()
    count = 0
    with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=300) as client:
        for kind in ("Users", "Groups"):
            body = client.get(f"{url}/{kind}", params={"startIndex": 1, "count": 1000}).json()
            count += len(body["Resources"])
    # no "seconds": like ldapsearch and zsync, this row is the whole process, start-up included
    return {"requests_seconds": time.perf_counter() - started, "resources": count}


def measure_ceiling(url: str, count: int) -> dict[str, Any]:
    """What the emulator can serve: ``count`` PUTs, 16 at a time, from a client that does nothing else."""
    import httpx

    async def run() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(headers=headers, timeout=300) as client:
            users = (await client.get(f"{url}/Users")).json()["Resources"][:count]
        queue = list(users)
        started = time.perf_counter()

        async def worker() -> None:  # a client (one connection) each, as zsync does
            async with httpx.AsyncClient(headers=headers, timeout=300) as client:
                while queue:
                    user = queue.pop()
                    response = await client.put(f"{url}/Users/{user['id']}", json=user)
                    response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(UNLIMITED_CONCURRENCY)))
        return {"seconds": time.perf_counter() - started, "changes": len(users)}

    return asyncio.run(run())


def measure_plan(profile: str) -> dict[str, Any]:
    from zsync_core.collector import collector_paused
    from zsync_core.config import load_config
    from zsync_core.session import SyncSession

    session = SyncSession(load_config(profile), mode="tui")
    loaded = asyncio.run(session.load(dry_run=True))
    assert loaded.ok, loaded.errors()

    def median(quiet: bool) -> float:
        timings = []
        for _ in range(3):  # the median of three: a shared machine makes one plan jump by ±50 %
            started = time.perf_counter()
            if quiet:
                with collector_paused():
                    session.plan()
            else:
                session.plan()
            timings.append(time.perf_counter() - started)
        return sorted(timings)[1]

    seconds = median(True)  # as zsync plans: the cycle collector paused
    busy = median(False)  # with the collector on, to show what the pause is worth
    plan = session.plan()
    session.close()
    return {
        "seconds": seconds,
        "collector_on": busy,
        "changes": len(plan.changes),
        "source": len(session.merged),
        "zivver": len(loaded.zivver),
    }


def measure_options(profile: str) -> dict[str, Any]:
    """The options screen on the loaded organization, two ways:

    - the new plan: one option toggled, nothing else pressed; from the key to the screen
      holding the plan for the new options (the debounce included);
    - keys while a plan is recomputed: an option toggled, then (from 0.3 s on, the plan now
      running in its thread) a focus key every 0.1 s until the plan is in; each key's answer
      is from the key event to the focus having moved (Textual's own handling and redraw
      included, no Pilot round trip). The same keys with no plan running, for comparison.
    """
    from textual import events
    from textual.app import App
    from textual.reactive import reactive

    from zsync_core.collector import collector_paused
    from zsync_core.config import load_config
    from zsync_core.session import SyncSession
    from zsync_tui.screens.options import OptionsScreen
    from zsync_tui.widgets.progress import Progress

    session = SyncSession(load_config(profile), mode="tui")
    loaded = asyncio.run(session.load(dry_run=True))
    assert loaded.ok, loaded.errors()

    class Host(App[None]):
        progress: reactive[Progress] = reactive(Progress)

    def quietly(options: Any) -> Any:  # as the app plans (ZsyncApp.plan_quietly)
        with collector_paused():
            return session.plan(options)

    async def answer(app: App[None], key: str) -> float:
        before = app.focused
        started = time.perf_counter()
        event = events.Key(key, None)
        event.set_sender(app)
        assert app._driver is not None
        app._driver.send_message(event)
        while app.focused is before:
            await asyncio.sleep(0.002)
        return time.perf_counter() - started

    async def run() -> dict[str, Any]:
        app = Host()
        async with app.run_test(size=(100, 40)) as pilot:
            screen = OptionsScreen(session.options, "bench.toml", quietly)
            await app.push_screen(screen)
            box = screen.query_one("#suspend_users")

            async def toggled() -> float:
                wanted = not box.value  # type: ignore[attr-defined]
                box.focus()
                await pilot.pause()
                started = time.perf_counter()
                await pilot.press("space")
                while screen.latest is None or screen.latest[0].suspend_users is not wanted:
                    await asyncio.sleep(0.005)
                return time.perf_counter() - started

            while screen.latest is None:  # the first plan, with the profile's options
                await asyncio.sleep(0.01)
            idle = []
            for key in ("tab", "shift+tab") * 3:
                idle.append(await answer(app, key))
                await asyncio.sleep(0.1)
            replans = sorted([await toggled() for _ in range(3)])
            wanted = not box.value  # type: ignore[attr-defined]
            box.focus()
            await pilot.pause()
            await pilot.press("space")
            await asyncio.sleep(0.3)
            busy: list[float] = []
            while screen.latest is None or screen.latest[0].suspend_users is not wanted:
                busy.append(await answer(app, "tab" if len(busy) % 2 == 0 else "shift+tab"))
                await asyncio.sleep(0.1)
        busy.sort()
        return {
            "key_idle": sorted(idle)[len(idle) // 2],
            "key_busy": busy[len(busy) // 2] if busy else 0.0,
            "key_busy_slowest": busy[-1] if busy else 0.0,
            "keys": len(busy),
            "replanned": replans[1],
        }

    result = asyncio.run(run())
    session.close()
    return {"seconds": result["replanned"], **result}


def measure_apply(profile: str) -> dict[str, Any]:
    from zsync_core.config import load_config
    from zsync_core.session import SyncSession

    session = SyncSession(load_config(profile), mode="headless")
    loaded = asyncio.run(session.load())
    assert loaded.ok, loaded.errors()
    plan = session.plan()
    started = time.perf_counter()
    outcome = asyncio.run(session.apply(plan, set()))
    seconds = time.perf_counter() - started
    session.close()
    result = outcome.result
    assert result is not None, outcome.message
    return {"seconds": seconds, "changes": result.done, "failed": len(result.failed)}


def measure_sdk(url: str, count: int) -> dict[str, Any]:
    """The same updates with Zivver's zivverscim SDK, one at a time, as its README shows."""
    import httpx
    from zivverscim.scim_connection_crud import ZivverSCIMConnection

    with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=300) as client:
        users = client.get(f"{url}/Users").json()["Resources"][:count]
    base = url.rstrip("/") + "/Users/"
    connection = ZivverSCIMConnection(API_KEY, base, base, base, base)
    started = time.perf_counter()
    for user in users:
        connection.update_user_in_zivver(
            account_id=user["id"],
            last_name=f"SDK {user['userName']}",
            user_name=user["userName"],
            is_active=True,
            aliases=user[ZIVVER_USER]["aliases"],
            delegates=[],
        )
    return {"seconds": time.perf_counter() - started, "changes": len(users)}


def measure_tui(count: int) -> dict[str, Any]:
    """Open the preview of ``count`` changes, then type 5 characters into its search (Pilot).

    A keystroke through Pilot costs about 0.1 s however small the table (Pilot waits for
    the screen to settle), so the same is measured with 10 changes: the difference is what
    the 100,000 cost.
    """
    from textual.app import App
    from textual.reactive import reactive

    from zsync_core.collector import collector_paused
    from zsync_core.model import AccountState, Action, Change, Plan
    from zsync_tui.screens.preview import PreviewScreen
    from zsync_tui.widgets.progress import Progress

    class Host(App[None]):
        progress: reactive[Progress] = reactive(Progress)

    def make(rows: int) -> list[Change]:
        return [
            Change(
                n + 1,
                Action.UPDATE_USER,
                email(n),
                str(n),
                str(n),
                "Directory",
                AccountState(email(n), f"User {n:06}", True),
                frozenset({"display_name"}),
                {"display_name": f"Old {n}"},
                {"display_name": f"User {n:06}"},
            )
            for n in range(rows)
        ]

    async def run(rows: int) -> dict[str, Any]:
        with collector_paused():  # as the app plans (ZsyncApp.plan_quietly)
            changes = make(rows)
        plan = Plan(changes, [], [], [])
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            started = time.perf_counter()
            screen = PreviewScreen("bench", plan, set())
            await app.push_screen(screen)
            await pilot.pause()
            opened = time.perf_counter() - started
            await pilot.press("slash")
            await pilot.pause()
            timings = []
            for key in "user0":
                started = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                timings.append(time.perf_counter() - started)
            shown = len(screen.query_one("#changes").rows)
        return {"open": opened, "filter": max(timings), "rows": shown}

    small = asyncio.run(run(10))
    large = asyncio.run(run(count))
    return {
        "seconds": large["open"],
        **large,
        "filter_10": small["filter"],
        "open_10": small["open"],
    }


# --- the driver ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument(
        "--rate-window", type=float, default=10.0, help="Zivver: 50 requests per this many seconds"
    )
    parser.add_argument(
        "--skip-limited",
        action="store_true",
        help="skip the rate-limited apply (it takes changes/5 s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DAILY_ROUNDS,
        help="how many times the daily run and its baselines are measured, in turn",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    global SPAWNER
    os.environ["ZSYNC_BENCH_API_KEY"] = API_KEY
    os.environ["ZSYNC_BENCH_LDAP_PASSWORD"] = SERVICE_PASSWORD
    SPAWNER = Spawner()
    work = Path(tempfile.mkdtemp(prefix="zsync-bench-"))
    rows: list[tuple[str, str, str, str]] = []
    figures: dict[str, Any] = {
        "accounts": args.accounts,
        "changes": args.changes,
        "machine": machine(),
    }
    slapd = None
    server = None
    try:
        print(f"Building {args.accounts:,} accounts in slapd and the emulator …", file=sys.stderr)
        started = time.perf_counter()
        slapd = start_directory(work, args.accounts)
        server = EmulatorHost(args.accounts)
        figures["emulator_http"] = server.http
        print(f"  ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        profile = str(write_profile(work, slapd, server.url, limited=False))
        # first run: match every account once (the store's mapping), as after a first sync
        run_measured([ZSYNC, "--headless", "--config", profile])

        ldapsearch_command = [
            "ldapsearch",
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            slapd.url,
            "-D",
            SERVICE_DN,
            "-w",
            SERVICE_PASSWORD,
            "-b",
            BASE_DN,
            "-E",
            "pr=1000/noprompt",
            "(|(&(objectClass=user)(mail=*))(&(objectClass=group)(mail=*)))",
            *ATTRIBUTES,
        ]
        # in turn, --rounds times: a shared machine moves one run by ±20 %; the ratio is
        # taken round by round (the three ran within seconds of each other) and its median kept
        rounds = []
        for _ in range(max(1, args.rounds)):
            ldapsearch = run_measured(ldapsearch_command)
            get_all = run_measured(python("get-all", server.url))
            # a clean run: one that skipped anything (exit 2) would measure something else
            daily = run_measured(
                [ZSYNC, "--headless", "--dry-run", "--config", profile], codes=(0,)
            )
            rounds.append((ldapsearch, get_all, daily))
        ratios = sorted(d.seconds / (lds.seconds + ga.seconds) for lds, ga, d in rounds)
        ratio = ratios[len(ratios) // 2]
        ldapsearch = median_figure([r[0] for r in rounds])
        get_all = median_figure([r[1] for r in rounds])
        daily = median_figure([r[2] for r in rounds])
        baseline = ldapsearch.seconds + get_all.seconds
        rows.append(
            (
                "Raw: paged ldapsearch of the same entries",
                f"{ldapsearch.seconds:.2f} s",
                f"{ldapsearch.peak_mb:.0f} MB",
                "C client",
            )
        )
        rows.append(
            (
                "Raw: GET all Users and Groups",
                f"{get_all.seconds:.2f} s",
                f"{get_all.peak_mb:.0f} MB",
                f"{get_all.extra['resources']:,} resources (the two GETs alone: "
                f"{get_all.extra['requests_seconds']:.2f} s)",
            )
        )
        rows.append(
            (
                "zsync daily run, no changes (load + plan)",
                f"{daily.seconds:.2f} s",
                f"{daily.peak_mb:.0f} MB",
                f"{ratio:.2f} × the raw sum, rounds {ratios[0]:.2f}–{ratios[-1]:.2f} "
                "(target ≤ 1.25, ≤ 500 MB)",
            )
        )
        figures["daily"] = {
            "seconds": daily.seconds,
            "peak_mb": daily.peak_mb,
            "baseline": baseline,
            "ratio": ratio,
            "ratios": ratios,
        }

        plan = run_measured(python("plan", profile))
        rows.append(
            (
                "Plan alone",
                f"{plan.seconds:.3f} s",
                f"{plan.peak_mb:.0f} MB",
                f"{plan.extra['source']:,} vs {plan.extra['zivver']:,} accounts, median of 3; with the "
                f"cycle collector on: {plan.extra['collector_on']:.3f} s (target ≤ 1 s)",
            )
        )
        figures["plan"] = {
            "seconds": plan.seconds,
            "collector_on": plan.extra["collector_on"],
            "peak_mb": plan.peak_mb,
            "changes": plan.extra["changes"],
        }

        options = run_measured(python("options", profile))
        rows.append(
            (
                "TUI options: a key while the plan is recomputed",
                f"{options.extra['key_busy'] * 1000:.0f} ms",
                f"{options.peak_mb:.0f} MB",
                f"median of {options.extra['keys']}, slowest "
                f"{options.extra['key_busy_slowest'] * 1000:.0f} ms; with no plan running "
                f"{options.extra['key_idle'] * 1000:.0f} ms (target ≤ 100 ms)",
            )
        )
        rows.append(
            (
                "TUI options: the new plan after a toggle",
                f"{options.extra['replanned']:.2f} s",
                "",
                f"{plan.extra['source']:,} accounts, one key, median of 3, the 0.1 s debounce "
                "included (target ≤ 1 s)",
            )
        )
        figures["options"] = {
            "key_busy": options.extra["key_busy"],
            "key_idle": options.extra["key_idle"],
            "key_busy_slowest": options.extra["key_busy_slowest"],
            "replanned": options.extra["replanned"],
            "peak_mb": options.peak_mb,
        }

        # rate limit off: zsync against the SDK, the same updates, on loopback and on a WAN
        ceiling = run_measured(python("ceiling", server.url, str(args.changes)))
        ceiling_rate = ceiling.extra["changes"] / ceiling.seconds
        rows.append(
            (
                "Emulator alone: plain httpx PUTs, 16 at a time",
                f"{ceiling.seconds:.2f} s",
                "",
                f"{ceiling_rate:,.0f} requests/s: about what this emulator serves on this machine",
            )
        )
        figures["emulator_ceiling"] = ceiling_rate
        for latency, where in (
            (0.0, "loopback"),
            (WAN_LATENCY, f"{WAN_LATENCY * 1000:.0f} ms per request"),
        ):
            server.call("set", latency=latency)
            server.call("rename", count=args.changes)
            before = server.call("mark")["mark"]
            unlimited = run_measured(python("apply", profile))
            sent = server.call("since", mark=before)["sent"]
            zsync_rate = unlimited.extra["changes"] / unlimited.seconds
            sdk = run_measured(python("sdk", server.url, str(args.changes)))
            sdk_rate = sdk.extra["changes"] / sdk.seconds
            rows.append(
                (
                    f"Apply, rate limit off, {where}: zsync",
                    f"{unlimited.seconds:.2f} s",
                    f"{unlimited.peak_mb:.0f} MB",
                    f"{zsync_rate:,.0f} changes/s, {sent / max(1, unlimited.extra['changes']):.2f} requests/change, {unlimited.extra['failed']} failed",
                )
            )
            rows.append(
                (
                    f"Apply, rate limit off, {where}: zivverscim SDK",
                    f"{sdk.seconds:.2f} s",
                    f"{sdk.peak_mb:.0f} MB",
                    f"{sdk_rate:,.0f} changes/s, one at a time; zsync is {zsync_rate / sdk_rate:.1f} × (target ≥ 10)",
                )
            )
            key = "apply_unlimited" if latency == 0 else "apply_wan"
            figures[key] = {
                "seconds": unlimited.seconds,
                "rate": zsync_rate,
                "sdk_rate": sdk_rate,
                "ratio": zsync_rate / sdk_rate,
                "peak_mb": unlimited.peak_mb,
                "failed": unlimited.extra["failed"],
            }
        server.call("set", latency=0.0)

        if not args.skip_limited:
            limited_profile = str(write_profile(work, slapd, server.url, limited=True))
            text = (
                Path(limited_profile)
                .read_text()
                .replace(
                    "[target]\n",
                    f"[target]\nrate_limit_window_seconds = {args.rate_window}\n",
                    1,
                )
            )
            Path(limited_profile).write_text(text)
            server.call("rename", count=args.changes)
            server.call("set", rate_limit=50, rate_window=args.rate_window)
            before = server.call("mark")["mark"]
            limited = run_measured(python("apply", limited_profile))
            server.call("set", rate_limit=None)
            during = server.call("since", mark=before)
            sent, throttled = during["sent"], during["throttled"]
            admitted = 50 / args.rate_window
            share = sent / limited.seconds / admitted
            rows.append(
                (
                    "Apply, Zivver's rate limit on",
                    f"{limited.seconds:.1f} s",
                    f"{limited.peak_mb:.0f} MB",
                    f"{share:.1%} of the admitted {admitted:g} req/s, {throttled} × 429, {sent / max(1, limited.extra['changes']):.3f} requests/change, {limited.extra['failed']} failed (targets ≥ 95 %, 0 failed, ≤ 1.05)",
                )
            )
            figures["apply_limited"] = {
                "seconds": limited.seconds,
                "share": share,
                "throttled": throttled,
                "requests_per_change": sent / max(1, limited.extra["changes"]),
                "failed": limited.extra["failed"],
            }

        tui = run_measured(python("tui", str(args.accounts)))
        rows.append(
            (
                "TUI: open the preview",
                f"{tui.extra['open']:.3f} s",
                f"{tui.peak_mb:.0f} MB",
                f"{args.accounts:,} changes (target ≤ 1 s)",
            )
        )
        rows.append(
            (
                "TUI: one search keystroke (slowest of 5)",
                f"{tui.extra['filter'] * 1000:.0f} ms",
                "",
                f"with 10 changes: {tui.extra['filter_10'] * 1000:.0f} ms (Pilot's own round trip); "
                "target ≤ 150 ms",
            )
        )
        figures["tui"] = {
            "open": tui.extra["open"],
            "filter": tui.extra["filter"],
            "filter_10": tui.extra["filter_10"],
            "peak_mb": tui.peak_mb,
            "rows": tui.extra["rows"],
        }
    finally:
        SPAWNER.close()
        if server:
            server.close()
        if slapd:
            slapd.stop()
        shutil.rmtree(work, ignore_errors=True)

    print_table(rows, figures["machine"], args.accounts)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {sys.version.split()[0]}"


def print_table(rows: list[tuple[str, str, str, str]], where: str, accounts: int) -> None:
    print(f"\nzsync bench: {accounts:,} accounts · {where}\n")
    print(f"| {'Measurement':<52} | {'Time':>9} | {'Peak RSS':>8} | Notes")
    print(f"|{'-' * 54}|{'-' * 11}|{'-' * 10}|------")
    for name, seconds, peak, note in rows:
        print(f"| {name:<52} | {seconds:>9} | {peak:>8} | {note}")


CHILDREN = ("get-all", "plan", "apply", "sdk", "ceiling", "tui", "options")


def _child(argv: list[str]) -> int:
    what, rest = argv[0], argv[1:]
    result = {
        "get-all": lambda: measure_get_all(rest[0]),
        "plan": lambda: measure_plan(rest[0]),
        "apply": lambda: measure_apply(rest[0]),
        "sdk": lambda: measure_sdk(rest[0], int(rest[1])),
        "ceiling": lambda: measure_ceiling(rest[0], int(rest[1])),
        "tui": lambda: measure_tui(int(rest[0])),
        "options": lambda: measure_options(rest[0]),
    }[what]()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["spawner"]:
        raise SystemExit(serve_spawns())
    if sys.argv[1:2] == ["emulator"]:
        raise SystemExit(host_emulator(int(sys.argv[2])))
    if len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        raise SystemExit(_child(sys.argv[1:]))
    raise SystemExit(main())
