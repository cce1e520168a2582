"""``zsync check``: test the profile and every connection, and say what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, Microsoft365SourceConfig, api_key, exposed_secret_files
from .errors import TargetError, ZsyncError
from .model import Event, LogEvent, ZivverAccount, held_lines
from .plan import MappingEntry, merge_sources, plan
from .sources import SourceResult, make_source
from .store import Store
from .zivver.client import ZivverClient
from .zivver.requests import Request
from .zivver.scim import RETRIED


@dataclass(frozen=True, slots=True)
class CheckResult:
    what: str
    ok: bool
    message: str
    warning: bool = False
    """Works, but the admin should know (e.g. what a first run would take over)."""
    unusable: bool = False
    """A source entry a run would skip (the run would exit 2): named with where and why."""


async def check(config: Config) -> list[CheckResult]:
    """Read each source and Zivver once (nothing is sent to Zivver) and report each outcome,
    with what the next run would take over or hold."""
    results = [CheckResult(f"profile {config.path}", True, "valid")]
    results += [
        CheckResult("secret file", True, warning, warning=True)
        for warning in exposed_secret_files(config)
    ]
    what = ""

    def ignore(event: Event) -> None:
        """Progress is not shown; a source's warning (cleartext, say) is a WARN line."""
        if isinstance(event, LogEvent) and event.level != "info":
            results.append(CheckResult(what, True, event.message, warning=True))

    read: list[SourceResult] = []
    for source_config in config.sources:
        what = f"source {source_config.name!r} ({source_config.type})"
        if isinstance(source_config, Microsoft365SourceConfig):
            from .sources.m365 import probe

            probes = await probe(source_config, config)
            results += [CheckResult(f"{what}: {p.what}", p.ok, p.message) for p in probes]
            if not all(p.ok for p in probes):
                continue
        try:
            loaded = await make_source(source_config, config).load(ignore)
        except ZsyncError as error:
            results.append(CheckResult(what, False, str(error)))
            continue
        loaded.clean()
        read.append(loaded)
        problems = len(loaded.unusable)
        detail = f"{len(loaded.accounts)} accounts read" + (
            f", {problems} entr{'y' if problems == 1 else 'ies'} unusable" if problems else ""
        )
        results.append(CheckResult(what, True, detail))
        for unusable in loaded.unusable:
            results.append(CheckResult(what, True, unusable.text(), warning=True, unusable=True))
        for notice in loaded.notices:
            if notice.level != "info":
                results.append(CheckResult(what, True, notice.message, warning=True))
    target = config.target
    what = f"Zivver at {target.url}"
    zivver: list[ZivverAccount] | None = None
    try:
        client = ZivverClient(
            target.url,
            api_key(config),
            max_retries=1,
            timeout_seconds=target.timeout_seconds,
            verify=str(config.resolve(target.ca_file)) if target.ca_file else target.verify_tls,
        )
    except ZsyncError as error:
        results.append(CheckResult(what, False, str(error)))
    else:
        try:
            outcome = await client.send(
                Request("GET", "/Users"),
                params={"filter": 'userName eq "zsync-check@invalid.invalid"'},
            )
            if outcome.ok:
                results.append(CheckResult(what, True, "reachable, API key accepted"))
            else:
                said = (outcome.error or "no answer").replace(
                    RETRIED,
                    "check the URL, the network and any proxy, then run 'zsync check' again",
                )
                results.append(CheckResult(what, False, said))
            if outcome.ok and len(read) == len(config.sources):
                try:
                    zivver, _ids = await client.read_organization()
                except TargetError as error:
                    results.append(CheckResult(what, False, str(error)))
        finally:
            await client.aclose()
    state = Store.check(config.state_path)  # read only: a check writes nothing
    results.append(CheckResult(f"state directory {config.state_path}", state.ok, state.message))
    mapping = state.mapping
    if zivver is not None:
        results += _what_a_run_would_meet(config, read, zivver, mapping)
    return results


def _what_a_run_would_meet(
    config: Config,
    read: list[SourceResult],
    zivver: list[ZivverAccount],
    mapping: dict[str, MappingEntry],
) -> list[CheckResult]:
    """Warnings from the plan a run would make now: what it takes over, what it holds."""
    merged, _notices = merge_sources((r.name, r.accounts) for r in read)
    planned = plan(
        merged,
        zivver,
        mapping,
        config.sync,
        protected_ids=frozenset(i for r in read for i in r.unreadable_ids),
        protected_addresses=frozenset(u.address for r in read for u in r.unusable if u.address),
    )
    found: list[CheckResult] = []
    if planned.takeover is not None and planned.takeover.worth_showing:
        for line in planned.takeover.lines():
            found.append(CheckResult("takeover", True, line, warning=True))
    for line in held_lines(planned.held_writes, shown=5):
        if not line.startswith(" "):
            found.append(CheckResult("next run", True, line, warning=True))
    return found
