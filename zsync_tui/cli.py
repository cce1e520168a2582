"""The ``zsync`` command. Imports textual only when the TUI is opened.

zsync [--config PATH]                       open the TUI on a profile
zsync demo                                  the TUI on the built-in demo
zsync init [--config PATH]                  a first-run walk that writes a new profile
zsync --headless [--config PATH] [--dry-run] [--confirm ACTION]... [--report FILE]
                 [-q | -v] [--log-file FILE] [--full-read]
zsync check [--config PATH]                 test the profile and every connection
zsync status [--config PATH]                the last runs, what is held, is a run going
zsync history [--config PATH] [--run N] [--json]   earlier runs, or one run's changes
zsync show source NAME [--json] [--filter TEXT]  what a source yields after mapping
zsync show zivver [--json] [--filter TEXT]  Zivver's accounts, and what zsync makes of each
zsync explain ADDRESS [--json]              why an account (does not) change, its history
zsync emulator --port N --api-key KEY       serve a Zivver-compatible SCIM API
zsync emulator --microsoft --client-secret S   serve a Microsoft 365 tenant (trials)
zsync completion bash                       a bash completion script

What these commands print from outside (a server's error, an address, a stored event) goes
through ``zsync_core.output.inert`` first, as the TUI and the headless run do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from zsync_core import __version__
from zsync_core.config import GuardedAction, default_config_path, load_config
from zsync_core.errors import ZsyncError
from zsync_core.outcome import ChangeOutcome, ExitCode, RunRecord
from zsync_core.output import inert, inert_json

from . import look
from .parser import Parser as _Parser

COMMANDS = (
    "demo",
    "init",
    "check",
    "status",
    "history",
    "show",
    "explain",
    "emulator",
    "completion",
)


def _main_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zsync",
        description="Keep a Zivver organization in step with the company directory.",
        epilog="Other commands (each with --help): 'zsync demo', 'zsync init', 'zsync check', "
        "'zsync status', "
        "'zsync history', 'zsync show source NAME', 'zsync show zivver', 'zsync explain "
        "ADDRESS', 'zsync emulator', 'zsync completion bash'. "
        "Exit codes (headless): 0 done, 1 some changes failed, 2 guarded actions held, 3 could not run.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"profile (default ./zsync.toml or $ZSYNC_CONFIG; now {default_config_path()})",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="run the whole synchronization without the TUI (the daily run)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="with --headless: plan and report, send nothing"
    )
    parser.add_argument(
        "--confirm",
        action="append",
        default=[],
        metavar="ACTION",
        choices=[a.value for a in GuardedAction],
        help="with --headless: allow a guarded action: "
        + ", ".join(a.value for a in GuardedAction),
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="with --headless: write a JSON report of the plan and every change",
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="with --headless: only warnings, errors and a run that needs you (cron then "
        "mails only then)",
    )
    loudness.add_argument(
        "-v", "--verbose", action="store_true", help="with --headless: every change and note too"
    )
    parser.add_argument(
        "--log-file",
        metavar="FILE",
        help="with --headless: also append every line, with its time, to FILE",
    )
    parser.add_argument(
        "--full-read",
        action="store_true",
        help="read Microsoft 365 sources whole this once instead of only their changes (delta)",
    )
    parser.add_argument("--version", action="version", version=f"zsync {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = _command_first(list(sys.argv[1:] if argv is None else argv))
    if argv and argv[0] in COMMANDS:
        command, rest = argv[0], argv[1:]
        commands = {
            "demo": _demo,
            "init": lambda rest: _init(rest),
            "check": _check,
            "status": _status,
            "history": _history,
            "show": lambda rest: look.show(rest, _Parser),
            "explain": lambda rest: look.explain(rest, _Parser),
            "emulator": _emulator,
            "completion": _completion,
        }
        try:
            code = commands[command](rest)
            sys.stdout.flush()  # here, not at exit, where a closed pipe can only be ignored
            return code
        except BrokenPipeError:  # `zsync history | head`: the reader has what it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail too
            return 1
    parser = _main_parser()
    args = parser.parse_args(argv)
    if args.headless:
        from .headless import run_headless

        verbosity = 0 if args.quiet else 2 if args.verbose else 1
        return run_headless(
            args.config,
            args.dry_run,
            args.confirm,
            args.report,
            verbosity=verbosity,
            log_file=args.log_file,
            full_read=args.full_read,
        )
    if args.dry_run or args.confirm or args.report or args.quiet or args.verbose or args.log_file:
        parser.error("--dry-run, --confirm, --report, -q, -v and --log-file go with --headless")
    return _tui(args.config, args.full_read)


def _command_first(argv: list[str]) -> list[str]:
    """``zsync --config PATH show zivver`` as ``zsync show zivver --config PATH``: every
    command takes its profile before or after its own arguments."""
    if len(argv) >= 3 and argv[0] == "--config" and argv[2] in COMMANDS:
        return [*argv[2:], "--config", argv[1]]
    if len(argv) >= 2 and argv[0].startswith("--config=") and argv[1] in COMMANDS:
        return [*argv[1:], argv[0]]
    return argv


def _no_terminal(command: str) -> int | None:
    """The TUI needs a terminal: without one (a cron line missing --headless) it would wait
    for keys forever. Say so and exit 3 instead."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return None
    print(
        f"zsync: '{command}' opens the terminal UI, and there is no terminal here (standard "
        "input or output is not a terminal). For the daily run use "
        "'zsync --headless --config PATH'. Nothing was changed.",
        file=sys.stderr,
    )
    return ExitCode.CANNOT_RUN


def _web_stack(command: str) -> bool:
    """The demo and the emulator serve Zivver's API with starlette and uvicorn: the ``demo``
    extra, which a server running only the daily sync does not need."""
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        print(
            f"zsync: '{command}' needs {' and '.join(missing)} (the demo extra): install it with "
            "scripts/setup '[demo]' or pip install 'zsync[demo]'. Nothing was changed.",
            file=sys.stderr,
        )
    return not missing


def _tui(config_path: str | None, full_read: bool = False) -> int:
    refused = _no_terminal("zsync")
    if refused is not None:
        return refused
    try:
        config = load_config(config_path)
    except ZsyncError as error:
        print(f"zsync: {inert(str(error), lines=True)}", file=sys.stderr)
        return ExitCode.CANNOT_RUN
    from zsync_core.session import SyncSession

    try:
        session = SyncSession(config, mode="tui", full_read=full_read)
    except ZsyncError as error:
        print(f"zsync: {inert(str(error), lines=True)}", file=sys.stderr)
        return ExitCode.CANNOT_RUN
    from .app import ZsyncApp

    try:
        return ZsyncApp(session).run() or ExitCode.OK
    finally:
        session.close()


def _demo(argv: list[str]) -> int:
    parser = _Parser(prog="zsync demo", description="Open the TUI on a built-in demo.")
    parser.parse_args(argv)
    refused = _no_terminal("zsync demo")
    if refused is not None:
        return refused
    if not _web_stack("zsync demo"):
        return ExitCode.CANNOT_RUN
    from .demo import run_demo

    return run_demo()


def _init(argv: list[str]) -> int:
    refused = None if "-h" in argv or "--help" in argv else _no_terminal("zsync init")
    from .init import command

    return command(argv, _Parser, refused)


def _check(argv: list[str]) -> int:
    parser = _Parser(prog="zsync check", description="Test the profile and every connection.")
    parser.add_argument("--config", metavar="PATH")
    args = parser.parse_args(argv)
    from zsync_core.check import check

    try:
        config = load_config(args.config)
    except ZsyncError as error:
        print(f"FAIL  {inert(str(error), lines=True)}")
        return ExitCode.CANNOT_RUN
    results = asyncio.run(check(config))
    for result in results:
        label = "WARN" if result.warning else "ok  " if result.ok else "FAIL"
        said = f"{result.what}: {result.message}" if result.what else result.message
        print(f"{label}  {inert(said)}")
    failed = sum(not r.ok for r in results)
    unusable = sum(r.unusable for r in results)
    holds = sum(r.holds for r in results)
    if failed:
        print(f"{failed} check(s) failed; fix them and run 'zsync check' again.")
        return ExitCode.CANNOT_RUN
    if holds and not unusable:
        print(
            "Every connection works, but the next run would hold or leave out what the WARN "
            "lines above say 'would' of, and exit 2. Confirm or fix it, then run 'zsync check' "
            "again."
        )
        return ExitCode.HELD
    if unusable:
        print(
            f"Every connection works, but {unusable} source entr"
            f"{'y or value is' if unusable == 1 else 'ies or values are'} unusable (each WARN "
            "above names where and why): a run leaves them out (an account whose value is "
            "unusable syncs without it) and exits 2. Fix them in the source and run "
            "'zsync check' again."
        )
        return ExitCode.HELD
    print("All checks passed.")
    return ExitCode.OK


def _status(argv: list[str]) -> int:
    parser = _Parser(
        prog="zsync status",
        description="Is the daily sync still running? The last runs, what is held, whether a "
        "run is going now and when the timer starts the next. Reads the store; writes nothing.",
        epilog="Exit code: the last finished run's (0 done, 1 failed changes, 2 held, "
        "3 could not run or no run yet).",
    )
    parser.add_argument("--config", metavar="PATH")
    args = parser.parse_args(argv)
    from zsync_core.status import ago, status

    try:
        found = status(load_config(args.config))
    except ZsyncError as error:
        print(f"zsync: {inert(str(error), lines=True)}", file=sys.stderr)
        return ExitCode.CANNOT_RUN
    print(inert(f"Profile {found.profile} · state {found.state_dir}"))
    last = found.last
    if last is None:
        print("No run has finished yet: run 'zsync check', then 'zsync --headless'.")
    else:
        print(f"Last run: {_run_line(last)} ({ago(last.started_at)})")
        success = found.last_success
        if success is None:
            print("No run has completed without problems yet.")
        elif success.id != last.id:
            print(f"Last run without problems: run {success.id}, {ago(success.started_at)}")
        if found.held:
            names = sorted({h.guard.value for h in found.held if h.guard})
            print(
                f"Held in run {last.id}: {len(found.held)} change(s) need confirmation "
                f"({', '.join(names)}); review them with 'zsync history --run {last.id}'."
            )
        failed = last.summary.get("failed")
        if failed:
            print(
                f"Failed in run {last.id}: {failed} change(s); 'zsync history --run {last.id}' "
                "says why."
            )
        not_sent = last.summary.get("not_sent")
        if not_sent:
            print(
                f"Not sent in run {last.id}: {not_sent} write(s) (see 'zsync history --run {last.id}')."
            )
        attention = last.summary.get("attention")
        if isinstance(attention, list) and attention:
            said = "; ".join(inert(str(a)) for a in attention)
            print(f"Needs you in run {last.id}: {said}.")
        _print_named(last)
        errors = last.summary.get("errors")
        if errors:
            print(f"Why it could not run: {inert(str(errors[0]), lines=True)}")
    going = found.lock_holder
    print(f"A run is going now: process {going}." if going else "No run is going now.")
    print(f"Next timer run: {found.next_timer_run or 'not known (no enabled zsync.timer here)'}")
    return found.exit_code


NAMED_AS = {
    "unusable": "Source entries skipped as unusable",
    "removals_blocked": "Not suspended or deleted (removals were blocked)",
    "left_alone": "Left as they are (an entry with their address is unusable)",
}


def _print_named(run: RunRecord) -> None:
    """The entries and accounts a run's record names for each problem (the first 20)."""
    named = run.summary.get("named")
    if not isinstance(named, dict):
        return
    for kind, heading in NAMED_AS.items():
        items = named.get(kind)
        if isinstance(items, list) and items:
            print(f"{heading} in run {run.id}:")
            for item in items:
                print(f"  {inert(str(item))}")


def _run_number(text: str) -> int:
    """A run's number as the store can hold it (SQLite's integers are 64-bit)."""
    number = int(text)
    if not 0 < number < 2**63:
        raise ValueError(text)
    return number


_run_number.__name__ = "run number"  # argparse says "invalid run number value: ..."


def _history(argv: list[str]) -> int:
    parser = _Parser(
        prog="zsync history",
        description="Earlier runs from the local store, newest first; with --run N, that run's "
        "changes and what Zivver said. Reads the store; writes nothing.",
    )
    parser.add_argument("--config", metavar="PATH")
    parser.add_argument("--run", type=_run_number, metavar="N", help="the changes of run N")
    parser.add_argument("--limit", type=int, default=50, help="how many runs (default 50)")
    parser.add_argument("--json", action="store_true", help="as JSON, for scripts")
    args = parser.parse_args(argv)
    import dataclasses

    from zsync_core.status import history, run_changes

    try:
        config = load_config(args.config)
        if args.run is None:
            runs = history(config, args.limit)
            if args.json:
                print(inert_json(json.dumps([dataclasses.asdict(r) for r in runs], indent=2)))
            elif not runs:
                print("No runs yet.")
            for run in [] if args.json else runs:
                print(_run_line(run))
            return ExitCode.OK
        found = run_changes(config, args.run)
    except ZsyncError as error:
        print(f"zsync: {inert(str(error), lines=True)}", file=sys.stderr)
        return ExitCode.CANNOT_RUN
    if found is None:
        print(
            f"zsync: there is no run {args.run} in the store; 'zsync history' lists them.",
            file=sys.stderr,
        )
        return ExitCode.CANNOT_RUN
    run, changes = found
    if args.json:
        print(  # exact JSON, inert on a terminal
            inert_json(
                json.dumps(
                    {"run": dataclasses.asdict(run), "changes": [_change(c) for c in changes]},
                    indent=2,
                    ensure_ascii=False,
                )
            )
        )
        return ExitCode.OK
    print(_run_line(run))
    _print_named(run)
    if not changes:
        print("  no changes")
    for change in changes:
        said = inert(change.error or "")
        line = f"  {change.state.value:<10} {change.action.value:<20} {inert(change.email)}  {said}"
        print(line.rstrip())
    return ExitCode.OK


def _run_line(run: RunRecord) -> str:
    import time

    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_at))
    return run.describe(started, label="run")


def _change(change: ChangeOutcome) -> dict[str, object]:
    """A change for --json, with SsoAccountKeys shown as set, never their values (as in the
    --report file)."""
    import dataclasses

    data = dataclasses.asdict(change)
    data["after"] = {k: ("(set)" if k == "sso_key" else v) for k, v in change.after.items()}
    data["request"] = _masked(change.request)
    return data


def _masked(value: object) -> object:
    if isinstance(value, dict):
        return {k: "(set)" if k == "SsoAccountKey" and v else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _completion(argv: list[str]) -> int:
    from .completion import command

    return command(argv, _Parser, COMMANDS)


def _emulator(argv: list[str]) -> int:
    parser = _Parser(
        prog="zsync emulator",
        description="Serve a Zivver-compatible SCIM API, or with --microsoft a Microsoft 365 "
        "tenant (Entra sign-in, Graph, Exchange Online), for tests and trials.",
    )
    parser.add_argument("--port", type=int, default=None, help="default 8765 (Microsoft: 8766)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", help="the bearer token clients must send (Zivver)")
    microsoft = parser.add_argument_group("Microsoft 365 (--microsoft)")
    microsoft.add_argument(
        "--microsoft", action="store_true", help="serve a Microsoft 365 tenant instead"
    )
    microsoft.add_argument("--client-secret", help="the app registration's client secret")
    microsoft.add_argument("--users", type=int, default=200, help="mailbox users (200)")
    microsoft.add_argument("--groups", type=int, default=10, help="mail-enabled groups (10)")
    microsoft.add_argument("--shared", type=int, default=3, help="shared mailboxes (3)")
    parser.add_argument(
        "--domain", action="append", default=[], help="a claimed domain (repeatable; default: all)"
    )
    parser.add_argument(
        "--division", action="append", default=[], help="a known division besides '/' (repeatable)"
    )
    parser.add_argument(
        "--rate-limit", type=int, default=50, help="requests per window before 429 (0 = off)"
    )
    parser.add_argument(
        "--rate-window", type=float, default=10.0, help="the rate limit's window in seconds"
    )
    args = parser.parse_args(argv)
    if args.microsoft:
        return _microsoft_emulator(parser, args)
    if not args.api_key:
        parser.error("--api-key is required (the bearer token clients must send)")
    if not _web_stack("zsync emulator"):
        return ExitCode.CANNOT_RUN
    from zsync_emulator.app import create_app
    from zsync_emulator.organization import Organization
    from zsync_emulator.server import serve_forever

    org = Organization(
        api_key=args.api_key,
        domains=[d.lower() for d in args.domain],
        divisions={"/", *args.division},
        rate_limit=args.rate_limit or None,
        rate_window=args.rate_window,
    )
    port = args.port or 8765
    print(
        f"Zivver emulator: http://{args.host}:{port}/api/scim/v2 (Ctrl-C stops it)",
        file=sys.stderr,
    )
    serve_forever(create_app(org), args.host, port)
    return ExitCode.OK


MICROSOFT_CLIENT = "00000000-0000-4000-8000-0000000c1e47"


def _microsoft_emulator(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """A seeded tenant with one app registration that has every consent and an Exchange
    role; prints the source to put in a profile."""
    if not args.client_secret:
        parser.error("--microsoft needs --client-secret (the app's secret clients must send)")
    if min(args.users, args.groups, args.shared) < 0:
        parser.error("--users, --groups and --shared count things: 0 or more")
    if not _web_stack("zsync emulator"):
        return ExitCode.CANNOT_RUN
    from zsync_emulator.microsoft import Tenant, create_app, seed_tenant
    from zsync_emulator.server import serve_forever
    from zsync_emulator.tls import make_tls

    tenant = Tenant()
    tenant.register_app(MICROSOFT_CLIENT, secret=args.client_secret)
    seed_tenant(tenant, args.users, args.groups, args.shared)
    port = args.port or 8766
    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"https://{host}:{port}"
    # served over TLS as Microsoft is, with a CA of its own made anew at each start in the
    # same place, so the profile's ca_file stays right
    tls = make_tls(Path.home() / ".cache" / "zsync" / "emulator-tls")
    print(
        f"Microsoft 365 emulator: {base} ({args.users} users, {args.groups} groups, "
        f"{args.shared} shared mailboxes; Ctrl-C stops it). A source for it:\n\n"
        "[[sources]]\n"
        'name = "Microsoft 365"\n'
        'type = "microsoft365"\n'
        f'tenant_id = "{tenant.tenant_id}"\n'
        f'client_id = "{MICROSOFT_CLIENT}"\n'
        'client_secret_env = "M365_SECRET"   # holding the --client-secret\n'
        "shared_mailboxes = true\n"
        f'authority_url = "{base}"\n'
        f'graph_url = "{base}"\n'
        f'exchange_url = "{base}"\n'
        f'ca_file = "{tls.ca_file}"   # the emulator\'s own CA\n',
        file=sys.stderr,
    )
    serve_forever(create_app(tenant), args.host, port, tls)
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
