"""The read-only views at 100,000 accounts: ``zsync explain`` against one load, and the TUI's
Zivver accounts, source data and explanation from a loaded session.

    .venv/bin/python -m bench.views_bench [--accounts 100000] [--rounds 3]

A CSV source of ``--accounts`` users and the Zivver emulator (in a process of its own, as in
bench/run) holding the same users and one functional account per hundred; one headless run
first, so the store has matched every account. Then:

- ``zsync explain ADDRESS --json`` and ``zsync --headless --dry-run`` (load and plan: the
  floor ``explain`` is held to, ≤ 1.5 ×), whole processes, in turn, ``--rounds`` times;
- in this process, a TUI session loaded once: Zivver's accounts (the rows made and the
  screen mounted, ≤ 1 s), the sources' data (≤ 1 s) and one explanation (≤ 0.2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.world import API_KEY, EmulatorHost, email

ROOT = Path(__file__).resolve().parents[1]
ZSYNC = str(Path(sys.executable).parent / "zsync")
LATEST = ROOT / "bench" / "latest.json"


def write_world(folder: Path, url: str, accounts: int) -> Path:
    """The CSV of the emulator's users and a profile that reads it."""
    rows = ["email,name,id"] + [f"{email(n)},User {n:06},{n}" for n in range(accounts)]
    (folder / "people.csv").write_text("\n".join(rows) + "\n")
    profile = folder / "zsync.toml"
    profile.write_text(
        f"""[target]
url = "{url}"
api_key_env = "ZSYNC_BENCH_API_KEY"
rate_limit_requests = 100000

[[sources]]
name = "People"
type = "csv"
path = "people.csv"

[sync]
domains = ["example.org"]
existing_sso_keys = "none"
"""
    )
    return profile


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    if done.returncode not in (0, 2):
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - started


async def in_the_tui(profile: Path, address: str) -> dict[str, float]:
    from textual.app import App
    from textual.reactive import reactive

    from zsync_core.config import load_config
    from zsync_core.session import SyncSession
    from zsync_core.views import explain_in, rows_of
    from zsync_tui.screens.accounts import source_screen, zivver_screen
    from zsync_tui.widgets.progress import Progress
    from zsync_tui.widgets.table import VirtualTable

    class Host(App[None]):
        progress: reactive[Progress] = reactive(Progress)

    session = SyncSession(load_config(str(profile)), mode="tui")
    started = time.perf_counter()
    loaded = await session.load()
    plan = session.plan()
    figures = {"load_and_plan": time.perf_counter() - started}
    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        started = time.perf_counter()
        rows = rows_of(session, plan)
        screen = zivver_screen("bench", rows, "zivver")
        await app.push_screen(screen)
        await pilot.pause()
        assert len(screen.query_one(VirtualTable).rows) == len(rows)
        figures["zivver_screen"] = time.perf_counter() - started
        app.pop_screen()
        started = time.perf_counter()
        data = source_screen("bench", loaded.sources, {})
        await app.push_screen(data)
        await pilot.pause()
        figures["source_screen"] = time.perf_counter() - started
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            explain_in(session, plan, address, rows)
            timings.append(time.perf_counter() - started)
        figures["explain"] = statistics.median(timings)
    session.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-save", action="store_true", help="do not update bench/latest.json")
    args = parser.parse_args()
    os.environ["ZSYNC_BENCH_API_KEY"] = API_KEY
    host = EmulatorHost(args.accounts)
    try:
        with tempfile.TemporaryDirectory(prefix="zsync-views-") as folder:
            profile = write_world(Path(folder), host.url, args.accounts)
            config = ["--config", str(profile)]
            timed([ZSYNC, "--headless", *config])  # the store matches every account
            address = email(args.accounts // 2)
            floors, explains = [], []
            for _ in range(args.rounds):
                floors.append(timed([ZSYNC, "--headless", "--dry-run", *config]))
                explains.append(timed([ZSYNC, "explain", address, "--json", *config]))
            ratios = sorted(e / f for e, f in zip(explains, floors, strict=True))
            tui = asyncio.run(in_the_tui(profile, address))
    finally:
        host.close()
    figures = {
        "accounts": args.accounts,
        "dry_run": statistics.median(floors),
        "explain_cli": statistics.median(explains),
        "explain_ratio": statistics.median(ratios),
        "explain_ratio_range": [ratios[0], ratios[-1]],
        **{f"tui_{k}": v for k, v in tui.items()},
    }
    print(f"\nRead-only views: {args.accounts:,} accounts, {args.rounds} rounds")
    print(
        f"| zsync explain (CLI)               | {figures['explain_cli']:.2f} s | "
        f"{figures['explain_ratio']:.2f} × the dry run's {figures['dry_run']:.2f} s "
        f"(rounds {ratios[0]:.2f}–{ratios[-1]:.2f}; target ≤ 1.5 ×) |"
    )
    print(f"| TUI: Zivver's accounts open       | {tui['zivver_screen']:.2f} s | target ≤ 1 s |")
    print(f"| TUI: the sources' data open       | {tui['source_screen']:.2f} s | target ≤ 1 s |")
    print(f"| TUI: one account explained        | {tui['explain']:.3f} s | target ≤ 0.2 s |")
    if not args.no_save:
        latest = json.loads(LATEST.read_text()) if LATEST.exists() else {}
        latest["views"] = figures
        LATEST.write_text(json.dumps(latest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
