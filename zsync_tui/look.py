"""``zsync show source NAME``, ``zsync show zivver`` and ``zsync explain ADDRESS``: what a
source yields, what Zivver holds and why one account (does not) change, read only.

Each prints a table or a few paragraphs, or with ``--json`` one JSON document on stdout (a
contract: see zsync_core.view_json). Exit 0; 3 when the profile, the store, a source or
Zivver is wrong (the error is named on stderr, and with ``--json`` as ``{"error": …}``).
Nothing is sent to Zivver; the store is only read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterable

from zsync_core.config import Config, load_config
from zsync_core.errors import ZsyncError
from zsync_core.outcome import ExitCode
from zsync_core.output import inert, inert_json
from zsync_core.wording import diff_rows, field_names, history_line


def show(argv: list[str], parser_class: type[argparse.ArgumentParser]) -> int:
    parser = parser_class(
        prog="zsync show",
        description="Show what a source yields after mapping, or Zivver's accounts with what "
        "zsync makes of each. Read only: nothing is sent, the store is only read.",
        epilog="Exit code: 0, or 3 when the profile, a source or Zivver is wrong.",
    )
    parser.add_argument("what", choices=["source", "zivver"], help="source NAME, or zivver")
    parser.add_argument("name", nargs="?", metavar="NAME", help="the source's name (show source)")
    parser.add_argument("--config", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--filter", metavar="TEXT", default="", help="only rows holding TEXT")
    args = parser.parse_intermixed_args(argv)  # --config before or after NAME
    if args.what == "source" and not args.name:
        parser.error("show source needs the source's NAME (zsync show source 'Active Directory')")
    if args.what == "zivver" and args.name:
        parser.error(f"show zivver takes no NAME (got {args.name!r})")
    if args.what == "source":
        return _run(args.config, args.json, lambda config: _show_source(config, args))
    return _run(args.config, args.json, lambda config: _show_zivver(config, args))


def explain(argv: list[str], parser_class: type[argparse.ArgumentParser]) -> int:
    parser = parser_class(
        prog="zsync explain",
        description="Why is this account (not) changing? The source entries that hold the "
        "address, the mapping, Zivver's account, what the next run would do and why, and "
        "every change to it in the history. Read only: it reads the sources and Zivver as "
        "'zsync check' does; nothing is sent.",
        epilog="Exit code: 0, or 3 when the profile, a source or Zivver is wrong.",
    )
    parser.add_argument("address", metavar="ADDRESS", nargs="?")
    parser.add_argument(
        "--address",
        dest="given",
        metavar="ADDRESS",
        help="the address, for one that begins with '-' (--address=-desk@example.org)",
    )
    parser.add_argument("--config", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_intermixed_args(argv)
    if (args.address is None) == (args.given is None):
        parser.error("explain needs one ADDRESS (zsync explain ann@example.org)")
    args.address = args.address if args.address is not None else args.given
    from zsync_core.addresses import normalize_address

    if normalize_address(args.address) is None:
        parser.error(f"{args.address!r} is not an e-mail address")
    return _run(args.config, args.json, lambda config: _explain(config, args))


def _run(config_path: str | None, as_json: bool, work: Callable[[Config], int]) -> int:
    """Load the profile and do ``work``; a ZsyncError is said on stderr (and as JSON)."""
    try:
        return work(load_config(config_path))
    except ZsyncError as error:
        said = f"{error} Nothing was changed."
        if as_json:
            print(inert_json(json.dumps({"error": said}, ensure_ascii=False)))
        print(f"zsync: {inert(said, lines=True)}", file=sys.stderr)
        return ExitCode.CANNOT_RUN


def _show_source(config: Config, args: argparse.Namespace) -> int:
    from zsync_core.view_json import source_json
    from zsync_core.views import read_one_source

    view = asyncio.run(read_one_source(config, args.name))
    data = source_json(view, args.filter)
    if args.json:
        _print_json(data)
        return ExitCode.OK
    counts = data["counts"]
    assert isinstance(counts, dict)
    title = f"Source {view.source.name!r} ({view.source.type})"
    if view.source.description:
        title += f" — {view.source.description}"
    print(inert(title))
    print(
        f"{counts['accounts']:,} accounts ({counts['active']:,} active, "
        f"{counts['disabled']:,} disabled), {counts['unusable']:,} unusable "
        + ("entry" if counts["unusable"] == 1 else "entries")
        + ("" if view.phones_synced else "; phone numbers are not synced (sync_phone_numbers)")
    )
    rows = [
        (
            a["address"],
            a["name"],
            a["kind"],
            f"{a['state']}, left alone" if a["left_alone"] else a["state"],
            a["division"] or "",
            a["phone"] or "",
            a["immutable_id"],
            a["sso_key"] or "",
            ", ".join(_strings(a["aliases"])),
            ", ".join(_strings(a["delegates"])),
        )
        for a in _dicts(data["accounts"])
    ]
    header = ("Address", "Name", "Kind", "State", "Division", "Phone", "Id", "SSO key")
    _table((*header, "Aliases", "Delegates"), rows)
    for u in _dicts(data["unusable"]):
        print(inert(f"UNUSABLE  {u['entry']}: {u['reason']}"))
    return ExitCode.OK


def _show_zivver(config: Config, args: argparse.Namespace) -> int:
    from zsync_core.view_json import zivver_json
    from zsync_core.views import look

    looked = asyncio.run(look(config))
    looked.session.close()
    data = zivver_json(looked.rows, args.filter, looked.loaded.unaddressed)
    if args.json:
        _print_json(data)
        return ExitCode.OK
    counts = data["counts"]
    assert isinstance(counts, dict)
    print(
        f"{counts.pop('accounts'):,} accounts in Zivver at {config.target.url}: "
        + ", ".join(f"{n:,} {standing}" for standing, n in counts.items() if n)
    )
    rows = []
    for a in _dicts(data["accounts"]):
        change = a["next_change"]
        rows.append(
            (
                a["address"],
                a["kind"],
                a["standing"],
                a["source"] or "",
                a["sso_key"] or "",
                change["action"] if isinstance(change, dict) else "",
            )
        )
    _table(("Address", "Kind", "Standing", "Source", "SSO key", "Next run"), rows)
    for said in _strings(data["unaddressed"]):
        print(inert(f"NO ADDRESS  {said}: never touched; fix or remove it in the Zivver WebApp"))
    return ExitCode.OK


def _explain(config: Config, args: argparse.Namespace) -> int:
    from zsync_core.view_json import explanation_json
    from zsync_core.views import explain_in, look

    looked = asyncio.run(look(config))
    try:
        explanation = explain_in(looked.session, looked.plan, args.address, looked.rows)
    finally:
        looked.session.close()
    data = explanation_json(explanation)
    if args.json:
        _print_json(data)
        return ExitCode.OK
    lines = [explanation.address, f"  {explanation.verdict}", ""]
    lines.append("Sources:" if explanation.holdings else "Sources: none holds this address.")
    for holding in explanation.holdings:
        a = holding.account
        state = "active" if a.active else "disabled"
        lines.append(f"  {a.source} {a.entry} ({a.kind.value}, {state}, id {a.source_id})")
        lines.append(f"    {holding.why}")
    for unusable in explanation.unusable:
        lines.append(f"  UNUSABLE {unusable.source} {unusable.where}: {unusable.reason}")
    for record in explanation.mapping:
        lines.append(
            f"Mapping: id {record.source_id} -> Zivver {record.zivver_id} ({record.email}, "
            f"recorded {_when(record.updated_at)})"
        )
    zivver = explanation.zivver
    if zivver is None:
        lines.append("Zivver: no account holds this address.")
    else:
        held = {"alias": " (as an alias)", "renamed": " (to be renamed)"}.get(
            explanation.zivver_as or "", ""
        )
        lines.append(
            f"Zivver{held}: {zivver.email} ({zivver.kind.value}, "
            f"{'active' if zivver.active else 'not active'}), id {zivver.zivver_id}, "
            f"standing: {explanation.standing.value if explanation.standing else '?'}"
        )
    for change in explanation.changes:
        lines.append(f"Next run: {change.action.value}")
        for name, old, new in diff_rows(change.before, change.after):
            lines.append(f"  {name}: {old} → {new}")
    for not_sent in explanation.not_sent:
        fields = ", ".join(field_names(not_sent.fields))
        lines.append(f"Not sent: {fields}: {not_sent.reason}")
    applied = explanation.applied
    lines.append("History:" if applied else "History: no change recorded.")
    lines += [f"  {history_line(entry, _when(entry.at))}" for entry in applied]
    dry = len(explanation.timeline) - len(applied)
    if dry:
        lines.append(f"  ({dry} change(s) planned in dry runs are not listed; --json lists them)")
    print("\n".join(inert(line) for line in lines))  # a line break in a name stays in its line
    return ExitCode.OK


def _print_json(data: dict[str, object]) -> None:
    print(inert_json(json.dumps(data, ensure_ascii=False, indent=2)))


def _strings(value: object) -> list[str]:
    assert isinstance(value, list)
    return value


def _dicts(value: object) -> list[dict[str, object]]:
    assert isinstance(value, list)
    return value


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _table(header: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> None:
    """Rows in columns as wide as their widest cell (a terminal pager cuts them)."""
    shown = [tuple(inert(str(cell)) for cell in row) for row in rows]
    widths = [max([len(h)] + [len(r[n]) for r in shown]) for n, h in enumerate(header)]
    for row in [header, *shown]:
        print("  ".join(cell.ljust(widths[n]) for n, cell in enumerate(row)).rstrip())
