"""The four steps as one object, shared by the TUI and ``zsync --headless``.

session = SyncSession(config, emit=print_event)
await session.load()                 # step 1: sources (in order) and Zivver
plan = session.plan()                # step 2: recomputed at once when options change
result = await session.apply(plan, confirmed={...})   # step 3
session.store.changes(session.run_id)                  # step 4: review
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from .apply import Applier, ApplyResult
from .config import Config, GuardedAction, SyncConfig, api_key
from .errors import TargetError, ZsyncError
from .model import Event, LogEvent, Notice, Plan, SourceAccount, StepEvent, ZivverAccount
from .plan import MappingEntry, merge_sources, plan
from .sources import SourceResult, make_source
from .store import Store
from .zivver.client import Pacer, ZivverClient

Emit = Callable[[Event], None]

APPLIED = ("applying", "completed", "failed-changes", "held", "stopped", "cancelled", "interrupted")
"""Run statuses after which Zivver may have changed."""

EXIT_OK, EXIT_FAILED, EXIT_HELD, EXIT_CANNOT_RUN = 0, 1, 2, 3
"""The exit codes of product.md; the TUI shows the same outcomes in words."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How an applied run ended, for both front ends."""

    exit_code: int
    status: str
    message: str
    """"Task completed successfully." or what went wrong, in one sentence."""


@dataclass(slots=True)
class LoadResult:
    sources: list[SourceResult] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)
    target_error: str | None = None
    zivver: list[ZivverAccount] = field(default_factory=list)
    user_ids: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.source_errors and self.target_error is None

    def errors(self) -> list[str]:
        return list(self.source_errors.values()) + (
            [self.target_error] if self.target_error else []
        )


class SyncSession:
    """One admin's (or one timer's) synchronization of one profile."""

    def __init__(
        self,
        config: Config,
        *,
        emit: Emit | None = None,
        mode: str = "headless",
        http: httpx.AsyncClient | None = None,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.options: SyncConfig = config.sync
        self._emit = emit or (lambda event: None)
        self.mode = mode
        self._http = http
        self.store = store or Store.open(config.state_path)
        self.run_id: int | None = None
        self.loaded: LoadResult | None = None
        self.merged: list[SourceAccount] = []
        self.merge_notices: list[Notice] = []
        self._finished = False
        self._last_kept: tuple[str, str] | None = None
        self.mapping: dict[str, MappingEntry] = {}
        target = config.target
        self._pacer = Pacer(target.rate_limit_requests, target.rate_limit_window_seconds)
        """One pace for every request of this session: reading Zivver counts against its limit too."""

    def listen(self, emit: Emit) -> None:
        """Send this session's events to ``emit`` from now on (a front end that starts later)."""
        self._emit = emit

    def emit(self, event: Event) -> None:
        if isinstance(event, LogEvent):
            self._keep(event.level, event.message)
        elif isinstance(event, StepEvent) and event.state == "failed" and event.detail:
            self._keep("error", event.detail)
        self._emit(event)

    def _keep(self, level: str, message: str) -> None:
        """Store an event once (a failed step is often reported again as the load's error)."""
        if (level, message) != self._last_kept:
            self._last_kept = (level, message)
            self.store.add_event(self.run_id, level, message)

    def client(self) -> ZivverClient:
        target = self.config.target
        verify: bool | str = (
            str(self.config.resolve(target.ca_file)) if target.ca_file else target.verify_tls
        )
        return ZivverClient(
            target.url,
            api_key(self.config),
            http=self._http,
            rate_limit_requests=target.rate_limit_requests,
            rate_limit_window_seconds=target.rate_limit_window_seconds,
            max_retries=target.max_retries,
            timeout_seconds=target.timeout_seconds,
            verify=verify,
            pacer=self._pacer,
        )

    # --- step 1 -------------------------------------------------------------------------------

    async def load(self, dry_run: bool = False) -> LoadResult:
        """Read every source (in order) and the Zivver organization. Never raises for I/O."""
        if self.run_id is None:
            self.run_id = self.store.start_run(self.mode, dry_run)
            self._finished = False
        result = LoadResult()
        with _no_cyclic_gc():
            # Zivver is read while the sources are (a directory is read in a process of its
            # own); the store's mapping while the sources may still be on their way
            sources = asyncio.create_task(self._load_sources(result))
            try:
                await self._load_target(result)
                self.mapping = self.store.mapping()
                await sources
            finally:
                sources.cancel()  # when this load is cancelled; a no-op once it is done
            self.merged, self.merge_notices = merge_sources(
                (r.name, r.accounts) for r in result.sources
            )
        self.loaded = result
        for source_result in result.sources:
            for notice in source_result.notices:
                self.emit(LogEvent(notice.level, notice.message))
        for notice in self.merge_notices:
            self.emit(LogEvent(notice.level, notice.message))
        return result

    async def _load_sources(self, result: LoadResult) -> None:
        for source_config in self.config.sources:  # in order: the first source wins a conflict
            try:
                source = make_source(source_config, self.config)
                result.sources.append(await source.load(self.emit))
            except ZsyncError as error:
                result.source_errors[source_config.name] = str(error)
                self.emit(LogEvent("error", str(error)))
            except Exception as error:  # an unexpected failure still names the source
                message = (
                    f"Source {source_config.name!r}: unexpected error while reading: {error!r}"
                )
                result.source_errors[source_config.name] = message
                self.emit(LogEvent("error", message))

    async def _load_target(self, result: LoadResult) -> None:
        step = "Zivver: read users and functional accounts"
        self.emit(StepEvent(step, step, "running"))
        try:
            client = self.client()
        except ZsyncError as error:
            result.target_error = str(error)
            self.emit(StepEvent(step, step, "failed", detail=str(error)))
            return
        try:

            def on_page(kind: str, done: int, total: int | None) -> None:
                self.emit(StepEvent(step, step, "running", done, total, f"{kind}"))

            result.zivver, result.user_ids = await client.read_organization(on_page)
        except TargetError as error:
            result.target_error = str(error)
            self.emit(StepEvent(step, step, "failed", detail=str(error)))
            return
        finally:
            await client.aclose()
        self.emit(StepEvent(step, step, "done", len(result.zivver), len(result.zivver)))

    # --- step 2 -------------------------------------------------------------------------------

    def removals_blocked(self) -> str | None:
        """Why this run must not suspend or delete anything (an unhealthy read), or None."""
        loaded = self._require_loaded()
        if loaded.source_errors:
            return f"source(s) {', '.join(loaded.source_errors)} could not be read completely"
        unsure = [r.name for r in loaded.sources if r.unidentified]
        if unsure:
            return f"source(s) {', '.join(unsure)} have entries that could not be read (see the warnings)"
        return self.shrunk()

    def shrunk(self) -> str | None:
        """A source that returned nothing, or far fewer accounts than at the last good run."""
        loaded = self._require_loaded()
        previous = self.store.last_good_counts()
        share = self.options.shrink_guard_percent
        for source in loaded.sources:
            before = previous.get(source.name)
            now = len(source.accounts)
            if before and (before - now) * 100 > share * before:
                return (
                    f"source {source.name!r} returned {now} accounts, against {before} at the last good run "
                    f"(a drop of more than sync.shrink_guard_percent = {share:g} %). Check the source (base_dn, "
                    "filters, the service account's rights). If the drop is real, run once with a higher "
                    "shrink_guard_percent"
                )
        return None

    def plan(self, options: SyncConfig | None = None) -> Plan:
        """Compute the plan from what was loaded (no reload), with ``options`` or the session's.

        Nothing is kept: to use other options for the rest of the run, set ``self.options``.
        """
        loaded = self._require_loaded()
        protected = frozenset(i for r in loaded.sources for i in r.unreadable_ids)
        with _no_cyclic_gc():
            result = plan(
                self.merged,
                loaded.zivver,
                self.mapping,
                options or self.options,
                self.removals_blocked(),
                protected,
            )
        result.notices[:0] = self.merge_notices
        result.counts.update({f"source:{r.name}": len(r.accounts) for r in loaded.sources})
        return result

    def _require_loaded(self) -> LoadResult:
        if self.loaded is None:
            raise RuntimeError("load() must run before plan()")
        return self.loaded

    # --- step 3 -------------------------------------------------------------------------------

    def confirmed_in_profile(self) -> set[GuardedAction]:
        return set(self.options.confirm)

    async def apply(
        self,
        plan: Plan,
        confirmed: set[GuardedAction],
        excluded: frozenset[int] = frozenset(),
        cancel: asyncio.Event | None = None,
    ) -> ApplyResult:
        """Send every change that is neither held (unconfirmed guard) nor excluded."""
        loaded = self._require_loaded()
        if not loaded.ok:
            raise ZsyncError(
                "The last load was incomplete; nothing is applied. Reload and try again."
            )
        assert self.run_id is not None
        held = {c.id for c in plan.held(confirmed)}
        states = {c.id: "held" for c in plan.changes if c.id in held}
        states.update({i: "excluded" for i in excluded})
        self.store.record_plan(self.run_id, plan, states)
        self.store.remember_matches(plan.matches)
        self.store.set_run_status(self.run_id, "applying")
        to_send = [c for c in plan.changes if c.id not in held and c.id not in excluded]
        client = self.client()
        try:
            applier = Applier(
                client, self.store, self.run_id, loaded.zivver, loaded.user_ids, self.emit
            )
            return await applier.run(to_send, cancel, self.config.target.concurrency)
        finally:
            await client.aclose()

    def record_plan_only(self, plan: Plan, confirmed: set[GuardedAction]) -> None:
        """A dry run keeps its plan in the history too."""
        assert self.run_id is not None
        held = {c.id: "held" for c in plan.held(confirmed)}
        self.store.record_plan(self.run_id, plan, held)

    def superseded(self) -> str | None:
        """Why this run's plan is out of date: another run applied changes since it loaded."""
        if self.run_id is None:
            return None
        later = [r for r in self.store.runs(limit=20) if r.id > self.run_id and r.status in APPLIED]
        if not later:
            return None
        return (
            f"another zsync run ({later[0].mode}, run {later[0].id}) changed Zivver after this data "
            "was loaded. Reload all data before updating"
        )

    def conclude(
        self, plan: Plan, result: ApplyResult, confirmed: set[GuardedAction]
    ) -> RunOutcome:
        """Record how an applied run ended and say it in one sentence."""
        held = plan.held(confirmed)
        counts = {"succeeded": len(result.succeeded), "failed": len(result.failed)}
        if result.stopped:
            code = EXIT_FAILED if result.done else EXIT_CANNOT_RUN
            message = (
                f"stopped after {result.done} change(s): {result.stopped}. Fix the state directory "
                "and run again; the next run converges."
            )
            try:
                self.finish("stopped", counts, healthy=False)
            except ZsyncError:
                pass  # the store is what failed; the message says so
            return RunOutcome(code, "stopped", message)
        not_sent = plan.held_writes
        code = EXIT_FAILED if result.failed else EXIT_HELD if held or not_sent else EXIT_OK
        status = {EXIT_OK: "completed", EXIT_FAILED: "failed-changes", EXIT_HELD: "held"}[code]
        if result.cancelled:
            status = "cancelled"
        self.finish(
            status,
            counts | {"held": len(held), "not_sent": len(not_sent), "cancelled": result.cancelled},
            plan.removals_blocked is None and not result.cancelled,
        )
        if result.cancelled:
            failed = f" ({len(result.failed)} failed)" if result.failed else ""
            message = (
                f"Cancelled: {result.done} change(s) sent{failed}, {result.cancelled} not sent."
            )
        elif result.failed:
            message = f"{len(result.failed)} of {result.done} change(s) failed."
        elif held or not_sent:
            parts = [f"{len(held)} held for confirmation"] if held else []
            if not_sent:
                parts.append(f"{len(not_sent)} not sent (an SsoAccountKey zsync does not know)")
            message = f"Applied {result.done} change(s); {'; '.join(parts)}."
        elif result.done:
            message = "Task completed successfully."
        else:
            message = "Nothing to do: Zivver is in step with the sources."
        return RunOutcome(code, status, message)

    def finish(self, status: str, summary: Mapping[str, object], healthy: bool) -> None:
        assert self.run_id is not None
        if healthy and self.loaded is not None:
            self.store.record_source_counts(
                self.run_id, {r.name: len(r.accounts) for r in self.loaded.sources}
            )
        self.store.finish_run(self.run_id, status, dict(summary))
        self._finished = True

    def new_run(self) -> None:
        """Forget the current run (a reload): one that was loaded but never applied is closed."""
        if self.run_id is not None and not self._finished:
            self.store.finish_run(self.run_id, "not-applied", {})
        self.run_id = None
        self.loaded = None

    def close(self) -> None:
        try:
            if self.run_id is not None and not self._finished:
                self.store.finish_run(self.run_id, "not-applied", {})
        except ZsyncError:
            pass  # closing must not hide the error that ended the run
        self.store.close()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Build 100,000s of long-lived, acyclic records without the cycle collector rescanning
    them all again and again (it ran for a third of the plan). Reference counting still frees.

    Afterwards they are frozen: left in the youngest generation, the next collection would
    scan them all once more (0.1 s at 100,000 accounts). The collector then never looks at
    them; reference counting still frees them when a reload or a new plan drops them. What
    was frozen last time is thawed first: a freeze also catches the TUI's screens, and a
    screen closed since is cyclic garbage that only the collector can free.
    """
    enabled = gc.isenabled()
    gc.unfreeze()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
