"""Test one connection at a time: the target (Zivver) or one source, as ``zsync check`` tests
them all (the TUI's Test connection), or the notifications. Only reads: nothing is sent to
Zivver but a lookup, and nothing is kept; a notification test sends a message that says it
is one.
"""

from __future__ import annotations

import asyncio
import time

from .check import CheckResult
from .config import Config, api_key
from .errors import ZsyncError
from .notify import send, trial_message
from .registry import source_type
from .session import Mode, SyncSession
from .store import Store
from .views import read_one_source, source_named
from .zivver.requests import Request

PROBE_ADDRESS = "zsync-connection-test@invalid.example"
"""The address a target test looks up: no account has it, so the answer is small."""


async def check_target(config: Config) -> list[CheckResult]:
    """Reach Zivver, its certificate, the API key, and one small read (a lookup by address)."""
    what = f"Zivver at {config.target.url}"
    try:
        api_key(config)
    except ZsyncError as error:
        return [CheckResult(what, False, str(error))]
    session = SyncSession(
        config, mode=Mode.CHECK, store=Store.scratch(config.state_path, copy=False)
    )
    try:
        client = session.client()
        try:
            started = time.perf_counter()
            result = await client.send(
                Request("GET", "/Users"), params={"filter": f'userName eq "{PROBE_ADDRESS}"'}
            )
        finally:
            await client.aclose()
    except ZsyncError as error:
        return [CheckResult(what, False, str(error))]
    finally:
        session.close()
    if not result.ok:
        return [CheckResult(what, False, result.error or f"HTTP {result.status}")]
    took = (time.perf_counter() - started) * 1000
    tls = "over TLS" if config.target.url.startswith("https://") else "over plain http (loopback)"
    return [
        CheckResult(
            what, True, f"reachable {tls}, API key accepted, a lookup answered in {took:.0f} ms"
        )
    ]


async def check_source(config: Config, name: str) -> list[CheckResult]:
    """One source: its permissions one by one when its type can try them, then a read of
    everything it yields (as a check reads it: nothing kept)."""
    try:
        source = source_named(config, name)
    except ZsyncError as error:
        return [CheckResult(f"source {name!r}", False, str(error))]
    what = f"source {source.name!r} ({source.type})"
    found: list[CheckResult] = []
    kind = source_type(source.type)
    if kind.probe is not None:
        try:
            probe = kind.load(kind.probe)
            probes = await probe(source, config)
        except ZsyncError as error:
            return [CheckResult(what, False, str(error))]
        except Exception as error:  # noqa: BLE001 - a plug-in's own fault, named
            return [CheckResult(what, False, f"{kind.probe} failed: {error!r}")]
        found += [CheckResult(f"{what}: {p.what}", p.ok, p.message) for p in probes]
        if not all(p.ok for p in probes):
            return found
    try:
        view = await read_one_source(config, source.name)
    except ZsyncError as error:
        return [*found, CheckResult(what, False, str(error))]
    unusable = sum(1 for u in view.unusable if u.protects)
    values = len(view.unusable) - unusable
    said = f"read: {len(view.accounts):,} accounts"
    if unusable:
        said += f", {unusable:,} unusable entr{'y' if unusable == 1 else 'ies'}"
    if values:
        said += f", {values:,} unusable value{'' if values == 1 else 's'}"
    return [*found, CheckResult(what, True, said, warning=bool(view.unusable))]


async def check_notifications(config: Config) -> list[CheckResult]:
    """Send a test message by every way ``[notify]`` names (a mail, a webhook)."""
    ways = [
        f"mail to {', '.join(config.notify.email.to)}" if config.notify.email else "",
        f"{config.notify.webhook.format} webhook" if config.notify.webhook else "",
    ]
    ways = [way for way in ways if way]
    if not ways:
        return [
            CheckResult("notify", False, "No mail and no webhook is set: nobody hears of a run.")
        ]
    try:
        problems = await asyncio.to_thread(send, config, trial_message(config))
    except ZsyncError as error:
        return [CheckResult("notify", False, str(error))]
    if problems:
        return [CheckResult("notify", False, problem) for problem in problems]
    return [CheckResult("notify", True, f"A test message was sent ({' and '.join(ways)}).")]
