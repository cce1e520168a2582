"""``zsync check``: test the profile and every connection, and say what is wrong.

A check is a session of its own mode (:attr:`Mode.CHECK`): the same load and the same plan,
with the same read-health rules, as the run it announces, on a scratch copy of the store, so
that ``check`` and the run cannot disagree about a plan. Nothing is sent to Zivver, and not a
byte of the state directory changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .errors import ZsyncError
from .loading import LoadResult
from .model import Event, LogEvent, Plan, not_sent_groups
from .registry import source_type
from .session import Mode, SyncSession
from .store import Store
from .zivver.scim import RETRIED


@dataclass(frozen=True, slots=True)
class CheckResult:
    what: str
    """What was checked ("" when the message names it itself)."""
    ok: bool
    message: str
    warning: bool = False
    """Works, but the admin should know (e.g. what a first run would take over)."""
    unusable: bool = False
    """A source entry a run would skip (the run would exit 2): named with where and why."""
    holds: bool = False
    """Something a run would hold or not do (it would exit 2): a guarded action, a write not
    sent, removals not planned."""


async def check(config: Config) -> list[CheckResult]:
    """Read each source and Zivver once as a run would (nothing is sent to Zivver) and report
    each outcome, with what the next run would take over, hold or refuse."""
    results = [CheckResult(f"profile {config.path}", True, "valid")]
    probed: set[str] = set()
    """Sources whose permissions were tried one by one and found wanting (said once)."""
    for source in config.sources:
        kind = source_type(source.type)
        if kind.probe is not None:
            what = f"source {source.name!r} ({source.type})"
            try:
                probe = kind.load(kind.probe)
            except Exception as error:  # noqa: BLE001 - a plug-in's own fault, named
                results.append(
                    CheckResult(what, False, f"{kind.probe} cannot be loaded: {error!r}")
                )
                probed.add(source.name)
                continue
            probes = await probe(source, config)
            results += [CheckResult(f"{what}: {p.what}", p.ok, p.message) for p in probes]
            if not all(p.ok for p in probes):
                probed.add(source.name)
    state = Store.check(config.state_path)  # read only: a check writes nothing
    state_line = CheckResult(f"state directory {config.state_path}", state.ok, state.message)
    warnings: list[str] = []

    def told(event: Event) -> None:
        if isinstance(event, LogEvent) and event.level == "warning":
            warnings.append(event.message)

    try:
        # a store that cannot be used is said below: the sources and Zivver are read anyway
        scratch = Store.scratch(config.state_path, copy=state.ok)
        session = SyncSession(config, emit=told, mode=Mode.CHECK, store=scratch)
    except ZsyncError as error:
        return [*results, state_line, CheckResult("check", False, str(error))]
    try:
        try:
            loaded = await session.load()
        except ZsyncError as error:  # the store's copy could not take the run's record
            return [*results, state_line, CheckResult("check", False, str(error))]
        results += _what_was_read(config, loaded, probed)
        results += [  # an id two entries share: found when the sources are merged
            CheckResult(f"source {u.source!r}", True, u.text(), warning=True, unusable=True)
            for u in session.merge_unusable
        ]
        said = {result.message for result in results}  # a source's notices are said with it
        results += [
            CheckResult("", True, text, warning=True) for text in warnings if text not in said
        ]
        results.append(state_line)
        going = scratch.lock_holder()  # the lock file beside the store: no second open
        if going is not None:
            results.append(
                CheckResult(
                    "state directory",
                    True,
                    f"a run is going now (process {going}): a run started meanwhile exits 3 "
                    "and changes nothing until it has ended",
                    warning=True,
                )
            )
        if loaded.ok and state.ok:
            results += _what_a_run_would_meet(session.plan())
    finally:
        session.close()
    return results


def _what_was_read(config: Config, loaded: LoadResult, probed: set[str]) -> list[CheckResult]:
    found: list[CheckResult] = []
    read = {r.name: r for r in loaded.sources}
    for source in config.sources:
        what = f"source {source.name!r} ({source.type})"
        if source.description:
            what += f" — {source.description}"
        error = loaded.source_errors.get(source.name)
        if error is not None:
            if source.name not in probed:  # else its probe said what is wrong
                found.append(CheckResult(what, False, error))
            continue
        result = read[source.name]
        problems = sum(1 for u in result.unusable if u.protects)
        values = len(result.unusable) - problems
        detail = f"{len(result.accounts)} accounts read" + (
            f", {problems} entr{'y' if problems == 1 else 'ies'} unusable" if problems else ""
        )
        if values:  # the accounts sync; only these values do not
            detail += f", {values} value{'' if values == 1 else 's'} unusable"
        found.append(CheckResult(what, True, detail))
        found += [
            CheckResult(what, True, u.text(), warning=True, unusable=True) for u in result.unusable
        ]
        found += [
            CheckResult(what, True, n.message, warning=True)
            for n in result.notices
            if n.level != "info"
        ]
    what = f"Zivver at {config.target.url}"
    if loaded.target_error is not None:
        said = loaded.target_error.replace(
            RETRIED, "check the URL, the network and any proxy, then run 'zsync check' again"
        )
        found.append(CheckResult(what, False, said))
    else:
        found.append(
            CheckResult(
                what, True, f"reachable, API key accepted: {len(loaded.zivver):,} accounts read"
            )
        )
    return found


def _what_a_run_would_meet(plan: Plan) -> list[CheckResult]:
    """What the run would do with this read that the admin should know first: refuse it,
    plan no removal, take accounts over, hold writes or changes for a confirmation."""
    found: list[CheckResult] = []
    if plan.refused:
        found.append(CheckResult("next run", False, f"would change nothing: {plan.refused}."))
    elif plan.removals_blocked:
        found.append(
            CheckResult(
                "next run",
                True,
                f"would plan no suspension or deletion: {plan.removals_blocked}.",
                warning=True,
                holds=True,
            )
        )
    if plan.takeover is not None and plan.takeover.worth_showing:
        found += [
            CheckResult("takeover", True, line, warning=True) for line in plan.takeover.lines()
        ]
    for reason, held in not_sent_groups(plan.not_sent):
        found.append(
            CheckResult(
                "next run",
                True,
                f"{len(held)} change(s) not sent: {reason}",
                warning=True,
                holds=True,
            )
        )
    for guard in plan.guards:
        found.append(
            CheckResult(
                "next run",
                True,
                f"would hold for --confirm {guard.action.value}: {guard.text} ({guard.named()})",
                warning=True,
                holds=True,
            )
        )
    return found
