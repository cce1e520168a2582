"""``zsync check``: test the profile and every connection, and say what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, api_key
from .errors import ZsyncError
from .model import Event
from .sources import make_source
from .store import Store
from .zivver.client import ZivverClient
from .zivver.requests import Request


@dataclass(frozen=True, slots=True)
class CheckResult:
    what: str
    ok: bool
    message: str


async def check(config: Config) -> list[CheckResult]:
    """Read each source and Zivver once (nothing is written) and report each outcome."""
    results = [CheckResult(f"profile {config.path}", True, "valid")]

    def ignore(event: Event) -> None:
        return None

    for source_config in config.sources:
        what = f"source {source_config.name!r} ({source_config.type})"
        try:
            loaded = await make_source(source_config, config).load(ignore)
        except ZsyncError as error:
            results.append(CheckResult(what, False, str(error)))
            continue
        problems = sum(1 for n in loaded.notices if n.level == "error")
        detail = f"{len(loaded.accounts)} accounts read" + (
            f", {problems} entries unusable" if problems else ""
        )
        results.append(CheckResult(what, True, detail))
    target = config.target
    what = f"Zivver at {target.url}"
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
                results.append(CheckResult(what, False, f"{outcome.error}"))
        finally:
            await client.aclose()
    try:
        Store.open(config.state_path).close()
        results.append(CheckResult(f"state directory {config.state_path}", True, "writable"))
    except ZsyncError as error:
        results.append(CheckResult(f"state directory {config.state_path}", False, str(error)))
    return results
