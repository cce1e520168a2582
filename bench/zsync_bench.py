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
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ZSYNC = str(Path(sys.executable).parent / "zsync")

from bench import measures  # noqa: E402
from bench.measures import (  # noqa: E402
    Spawner,
    measure_apply,
    measure_ceiling,
    measure_get_all,
    measure_options,
    measure_plan,
    measure_sdk,
    measure_tui,
    median_figure,
    python,
    run_measured,
    serve_spawns,
)
from bench.world import (  # noqa: E402
    API_KEY,
    ATTRIBUTES,
    DAILY_ROUNDS,
    WAN_LATENCY,
    EmulatorHost,
    host_emulator,
    start_directory,
    write_profile,
)
from tests.servers import (  # noqa: E402  (the same slapd setup as the tests)
    BASE_DN,
    SERVICE_DN,
    SERVICE_PASSWORD,
)


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

    os.environ["ZSYNC_BENCH_API_KEY"] = API_KEY
    os.environ["ZSYNC_BENCH_LDAP_PASSWORD"] = SERVICE_PASSWORD
    measures.SPAWNER = spawner = Spawner()  # every measure's process is started by it
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
        spawner.close()
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
