"""Reading Microsoft 365 at 100,000 users and 5,000 mail-enabled groups.

    bench/run-m365                    # 100,000 users, 5,000 groups, 50 ms per request
    bench/run-m365 --users 10000 --groups 500

The Graph emulator runs in a process of its own (Microsoft's servers do not share zsync's
cores), seeded with ``--users`` mailbox users and ``--groups`` mail-enabled groups of 20
members, and adds ``--latency`` seconds to every request. Each measurement is a process of
its own, started from this small one, so its peak RSS is its own:

1. full read: the source's first read (sign-in, the users listed by ranges of addresses
   side by side, a fixed alphabet's, which puts these addresses, all ``user…``, in one
   range: one chain of pages; every page of ``/groups/delta``, the mapping, the mirror
   written to the store);
2. no-change delta read: the next read on the same store (one page of changes each);
3. delta read after 1,000 changed users;
4. weekly full read (``--full-read``): as 1, with the ranges split where the mirror's
   addresses fall;
5. the floor: the same requests as 4 (the token, the delta link asked for first, the same
   ranges of users, every page of ``/groups/delta``, the delta link followed last) sent by
   a bare httpx loop that does nothing with the pages, 4 at a time: what the emulator and
   the machine allow any client;
6. a run's load step on the same store, as ``zsync --headless`` reads: the source and a
   Zivver organization of as many accounts (the Zivver emulator in a process of its own)
   side by side, once as a daily run (a delta read) and once weekly (``--full-read``), with
   the longest time its event loop did not run (what a key waits in the TUI meanwhile).

The figures land in ``bench/latest.json`` under ``microsoft365``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LATEST = ROOT / "bench" / "latest.json"
CLIENT = "bench-0000-4000-8000-000000000001"
SECRET = "bench-secret"
TENANT = "00000000-0000-4000-8000-00000000000a"
HEARTBEAT = 0.005
"""Seconds between two looks at the event loop during a load step."""
CA_FILE = "ZSYNC_BENCH_M365_CA"
"""The environment variable naming the emulator's CA (for the measured processes)."""
CONCURRENCY = 4
"""The emulator's (and zsync's default) Graph requests at once per app."""


def host(users: int, groups: int, latency: float) -> int:
    """The emulator's process: seed, serve, print the port, take commands on stdin."""
    from zsync_emulator.microsoft import Tenant, seed_tenant
    from zsync_emulator.server import MicrosoftServer

    tenant = Tenant()
    tenant.register_app(CLIENT, secret=SECRET)
    ids = seed_tenant(tenant, users, groups, 0, members_per_group=20)
    warm(tenant)
    with MicrosoftServer(tenant, http="httptools") as server:
        print(json.dumps({"base": server.base, "ca_file": str(server.ca_file)}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if command["do"] == "latency":
                tenant.latency = command["seconds"]
            elif command["do"] == "change":
                for user_id in ids[: command["users"]]:
                    tenant.update_user(user_id, displayName=f"Changed {time.time()}")
            elif command["do"] == "requests":
                tenant.requests.clear()
            print(json.dumps({"requests": sum(tenant.requests.values())}), flush=True)
    return 0


def warm(tenant: Any) -> None:
    """What Graph's servers have before anybody asks (an index of mail, each user's JSON as
    the source selects it, the groups' first delta round), built now: the emulator's first
    answers would otherwise spend a second of the bench's two cores on building them."""
    from zsync_core.sources.m365 import GROUP_SELECT, USER_SELECT

    shown = tenant.view(set(USER_SELECT))
    for user_id in tenant.by_mail(None, None):
        shown(user_id)
    tenant.delta_items("group", set(GROUP_SELECT), None)


def read(base: str, state: str, full: bool = False) -> dict[str, Any]:
    """One measured read (in its own process)."""
    from zsync_core.collector import collector_paused
    from zsync_core.config import parse_config
    from zsync_core.sources.m365 import Microsoft365Source
    from zsync_core.store import Store

    os.environ["BENCH_SECRET"] = SECRET
    config = parse_config(
        {"target": {"api_key_env": "UNUSED"}, "sources": [source_settings(base)]},
        Path(state) / "zsync.toml",
    )
    store = Store.open(Path(state) / "state")
    started, used = time.perf_counter(), os.times()
    read_at: list[float] = []

    def emit(event: Any) -> None:
        # the pages are all in when the mapping starts
        if event.step.endswith(": map accounts") and event.state == "running":
            read_at.append(time.perf_counter() - started)

    with collector_paused(freeze=True):  # as the headless run reads
        loader = Microsoft365Source(config.sources[0], config, store=store, full_read=full)  # type: ignore[arg-type]
        result = asyncio.run(loader.load(emit))
    ended, spent = time.perf_counter(), os.times()
    return {
        "seconds": ended - started,
        "cpu_seconds": spent.user + spent.system - used.user - used.system,
        "read_seconds": read_at[0],
        "accounts": len(result.accounts),
        "requests": loader.requests,
        "full": loader.full,
    }


def load(base: str, zivver: str, state: str, full: bool) -> dict[str, Any]:
    """A run's load step (in its own process): the source and Zivver read side by side."""
    from zsync_core.collector import collector_paused
    from zsync_core.config import parse_config
    from zsync_core.model import StepEvent
    from zsync_core.session import SyncSession

    from .world import API_KEY

    os.environ.update(BENCH_SECRET=SECRET, ZSYNC_BENCH_API_KEY=API_KEY)
    profile = {
        "target": {
            "url": zivver,
            "api_key_env": "ZSYNC_BENCH_API_KEY",
            "rate_limit_requests": 1_000_000,
            "concurrency": 16,
        },
        "sources": [source_settings(base)],
        "state_dir": str(Path(state) / "state"),
    }
    config = parse_config(profile, Path(state) / "zsync.toml")
    done: dict[str, float] = {}
    started = time.perf_counter()

    def emit(event: Any) -> None:
        if isinstance(event, StepEvent) and event.state == "done":
            side = "zivver" if event.step.startswith("Zivver") else "source"
            done[side] = time.perf_counter() - started

    session = SyncSession(config, emit=emit, mode="headless", full_read=full)
    stall = 0.0
    """The longest the event loop did not run: what a key waits in the TUI meanwhile."""

    async def loaded_with_heartbeat() -> Any:
        async def beat() -> None:
            nonlocal stall
            last = time.perf_counter()
            while True:
                await asyncio.sleep(HEARTBEAT)
                now = time.perf_counter()
                stall, last = max(stall, now - last - HEARTBEAT), now

        beating = asyncio.create_task(beat())
        try:
            return await session.load(dry_run=True)
        finally:
            beating.cancel()

    with collector_paused(freeze=True):  # as the headless run reads
        loaded = asyncio.run(loaded_with_heartbeat())
    seconds = time.perf_counter() - started
    session.close()
    if not loaded.ok:
        raise RuntimeError(f"the load failed: {loaded.errors()}")
    return {
        "seconds": seconds,
        "source_done_seconds": done["source"],
        "zivver_done_seconds": done["zivver"],
        "accounts": sum(len(r.accounts) for r in loaded.sources),
        "zivver_accounts": len(loaded.zivver),
        "longest_stall_seconds": stall,
    }


def source_settings(base: str) -> dict[str, Any]:
    return {
        "name": "Microsoft 365",
        "type": "microsoft365",
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret_env": "BENCH_SECRET",
        "authority_url": base,
        "graph_url": base,
        "exchange_url": base,
        "ca_file": os.environ[CA_FILE],
    }


def floor(base: str, bounds: list[str], concurrency: int) -> dict[str, Any]:
    """The requests of a weekly full read, sent as fast as this machine and the emulator
    let a client that does nothing with the pages (from the bench's own process)."""
    import httpx

    from zsync_core.sources.m365 import GROUP_SELECT, PAGE, USER_SELECT
    from zsync_core.sources.m365.ranges import spans, where

    tail = re.compile(rb'"@odata.(next|delta)Link":"([^"]+)"')

    async def run() -> dict[str, Any]:
        started, used = time.perf_counter(), os.times()
        gate = asyncio.Semaphore(concurrency)
        requests = 0
        async with httpx.AsyncClient(
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            verify=ssl.create_default_context(cafile=os.environ[CA_FILE]),
        ) as client:
            answer = await client.post(
                f"{base}/{TENANT}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": CLIENT,
                    "client_secret": SECRET,
                    "scope": "https://graph.microsoft.com/.default",
                },
            )
            headers = {
                "Authorization": f"Bearer {answer.json()['access_token']}",
                "Prefer": f"odata.maxpagesize={PAGE}",
            }

            async def chain(url: str | None, params: dict[str, str] | None) -> str:
                nonlocal requests
                link = ""
                while url:
                    async with gate:
                        requests += 1
                        body = (await client.get(url, params=params, headers=headers)).content
                    found = tail.search(body, max(0, len(body) - 4096))
                    params, url = None, None
                    if found and found[1] == b"next":
                        url = found[2].decode()
                    elif found:
                        link = found[2].decode()
                return link

            users = {"$select": ",".join(USER_SELECT), "$top": str(PAGE)}
            latest = await chain(
                f"{base}/v1.0/users/delta", {"$select": users["$select"], "$deltatoken": "latest"}
            )
            await asyncio.gather(
                chain(f"{base}/v1.0/groups/delta", {"$select": ",".join(GROUP_SELECT)}),
                *(
                    chain(f"{base}/v1.0/users", {**users, **({"$filter": f} if f else {})})
                    for f in (where(span) for span in spans(bounds))
                ),
            )
            await chain(latest, None)
        spent = os.times()
        return {
            "seconds": time.perf_counter() - started,
            "cpu_seconds": spent.user + spent.system - used.user - used.system,
            "requests": requests,
        }

    return asyncio.run(run())


def measured(*command: str) -> dict[str, Any]:
    """``read BASE STATE [full]`` or ``load BASE ZIVVER STATE [full]``, in a process of its
    own (its peak RSS its own)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.m365_bench", *command],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    out = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the measured read failed ({status})")
    figure = json.loads(out.decode().strip().splitlines()[-1])
    figure["wall_seconds"] = time.perf_counter() - started
    figure["peak_mb"] = usage.ru_maxrss / 1024
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run-m365", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=5_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--no-save", action="store_true", help="do not update bench/latest.json")
    args = parser.parse_args(argv)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "bench.m365_bench", "host", str(args.users), str(args.groups)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    assert emulator.stdin and emulator.stdout

    def tell(**command: Any) -> dict[str, Any]:
        assert emulator.stdin and emulator.stdout
        emulator.stdin.write(json.dumps(command) + "\n")
        emulator.stdin.flush()
        return dict(json.loads(emulator.stdout.readline()))

    try:
        served = json.loads(emulator.stdout.readline())
        base = served["base"]
        os.environ[CA_FILE] = served["ca_file"]  # the emulator's own CA, served over TLS
        tell(do="latency", seconds=args.latency)
        with tempfile.TemporaryDirectory() as state:
            full = measured("read", base, state)
            quiet = measured("read", base, state)
            tell(do="change", users=1000)
            changed = measured("read", base, state)
            weekly = measured("read", base, state, "full")
            from zsync_core.store import Store

            store = Store.open(Path(state) / "state")
            kept = store.space.data("Microsoft 365") or {}
            store.close()
            bounds = list(kept.get("hints", {}).get("user_bounds") or [])
            bare = floor(base, bounds, CONCURRENCY)
            from .world import EmulatorHost

            zivver = EmulatorHost(args.users)
            try:
                daily_load = measured("load", base, zivver.url, state)
                weekly_load = measured("load", base, zivver.url, state, "full")
            finally:
                zivver.close()
    finally:
        emulator.stdin.close()
        emulator.wait(timeout=30)
    # the fewest requests Graph needs for a full read: every page of 999 users and of groups
    pages = math.ceil(args.users / 999) + math.ceil(args.groups / 999)
    concurrency = CONCURRENCY
    formula = pages * args.latency / concurrency
    chain = math.ceil(args.users / 999) * args.latency
    target = f"target ≤ {1.5 * formula:.2f} s (1.5 × {pages} pages × {args.latency * 1000:.0f} ms ÷ {concurrency})"
    rows = [
        (
            "Full read (first run)",
            full,
            f"{target}; these addresses all start with 'user': one range of the fixed alphabet, "
            f"one chain ({chain:.2f} s), once per deployment; the next full read is split where "
            "they fell",
        ),
        ("Delta read, no change", quiet, "target ≤ 3 s whole"),
        ("Delta read, 1,000 users changed", changed, ""),
        ("Full read (weekly)", weekly, f"{target}; split where the last read's addresses fall"),
    ]
    print(
        f"\nMicrosoft 365 source: {args.users:,} users, {args.groups:,} groups, {args.latency * 1000:.0f} ms per request"
    )
    print(
        f"| {'Measurement':<34} | {'Whole':>7} | {'Pages in':>8} | {'CPU':>7} | {'Requests':>8} "
        f"| {'Peak RSS':>8} | Notes"
    )
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 10}|------")
    for label, figure, note in rows:
        print(
            f"| {label:<34} | {figure['seconds']:6.2f}s | {figure['read_seconds']:7.2f}s | "
            f"{figure['cpu_seconds']:6.2f}s | {figure['requests']:>8} | {figure['peak_mb']:6.0f}MB "
            f"| {note}"
        )
    print(
        f"| {'Floor: the same requests, bare':<34} | {bare['seconds']:6.2f}s | {'':>8} | "
        f"{bare['cpu_seconds']:6.2f}s | {bare['requests']:>8} | {'':>8} | the weekly read's "
        f"requests by a loop that does nothing with the pages, {CONCURRENCY} at a time"
    )
    for label, figure in (
        ("Load step: daily (delta) + Zivver", daily_load),
        ("Load step: weekly (full) + Zivver", weekly_load),
    ):
        print(
            f"| {label:<34} | {figure['seconds']:6.2f}s | {'':>8} | {'':>7} | {'':>8} | "
            f"{figure['peak_mb']:6.0f}MB | the source done at {figure['source_done_seconds']:.2f} s, "
            f"Zivver's {figure['zivver_accounts']:,} accounts at {figure['zivver_done_seconds']:.2f} s; "
            f"the event loop's longest stall {figure['longest_stall_seconds'] * 1000:.0f} ms"
        )
    print(
        "Whole: sign-in, every page, the mapping and the mirror written; pages in: until the "
        "last page had arrived (sign-in included); CPU: what the reading process spent "
        "meanwhile (every thread)."
    )
    if not args.no_save:
        latest = json.loads(LATEST.read_text()) if LATEST.exists() else {}
        latest["microsoft365"] = {
            "users": args.users,
            "groups": args.groups,
            "latency_ms": args.latency * 1000,
            "full_read": full,
            "delta_no_change": quiet,
            "delta_1000_changed": changed,
            "full_read_weekly": weekly,
            "floor_weekly_requests": bare,
            "load_daily_with_zivver": daily_load,
            "load_weekly_with_zivver": weekly_load,
            "full_read_formula_seconds": formula,
            "user_chain_seconds": chain,
            "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        }
        LATEST.write_text(json.dumps(latest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["host"]:
        raise SystemExit(host(int(sys.argv[2]), int(sys.argv[3]), 0.0))
    if sys.argv[1:2] == ["read"]:
        print(json.dumps(read(sys.argv[2], sys.argv[3], sys.argv[4:5] == ["full"])))
        raise SystemExit(0)
    if sys.argv[1:2] == ["load"]:
        print(json.dumps(load(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:6] == ["full"])))
        raise SystemExit(0)
    raise SystemExit(main())
