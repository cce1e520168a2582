"""One run's life cycle, owned here for both front ends: the TUI and ``zsync --headless``.

    session = SyncSession(config, emit=print_event, mode=Mode.TUI)
    loaded = await session.load()              # step 1: the sources (in order) and Zivver
    plan = session.plan()                      # step 2: again at once when options change
    outcome = await session.apply(plan, confirmed)   # step 3: lock, send, record, conclude
    session.outcomes()                         # step 4: every change as the store journaled it

``outcome = await session.run_once(dry_run, confirmed)`` is the whole headless run.

The session takes the run lock, applies the one read-health policy, records every run
status and answers with types (:class:`RunOutcome`, :class:`~.outcome.ChangeOutcome`,
:class:`~.outcome.ExitCode`); the front ends only show what it says.

The read-health policy is in :mod:`.health`; how a run ended, in :mod:`.conclusion`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from enum import StrEnum

import httpx

from . import health
from .apply import Applier, ApplyResult
from .collector import collector_paused
from .conclusion import RunOutcome, applied, cannot_run, dry, named, problems_of, told
from .config import Config, GuardedAction, SyncConfig, api_key, exposed_secret_files
from .errors import ZsyncError
from .loading import LoadResult, read_numbers, read_sources, read_zivver
from .merge import MappingEntry, Merged, ZivverIndex, merge_sources
from .model import (
    Change,
    Emit,
    Event,
    Guard,
    Kind,
    LogEvent,
    Notice,
    Plan,
    SourceAccount,
    StepEvent,
    Unusable,
)
from .outcome import (
    ChangeOutcome,
    ChangeState,
    ExitCode,
    MappingRecord,
    RunRecord,
    RunStatus,
    TimelineEntry,
)
from .plan import plan
from .store import Store
from .zivver.client import Pacer, ZivverClient


class Mode(StrEnum):
    HEADLESS = "headless"
    """One process, one run: the lock is held from the load to the end."""
    TUI = "tui"
    """An admin may look for hours: the lock is taken for an update only (a daily run in
    between makes the loaded data stale, see :meth:`SyncSession.superseded`)."""
    CHECK = "check"
    """``zsync check``: the same load and plan as a run, on a scratch copy of the store
    (:meth:`Store.scratch`); nothing is sent, kept or locked, and each request is tried
    twice at most."""


class SyncSession:
    """One admin's (or one timer's) synchronization of one profile."""

    def __init__(
        self,
        config: Config,
        *,
        emit: Emit | None = None,
        mode: Mode | str = Mode.HEADLESS,
        http: httpx.AsyncClient | None = None,
        store: Store | None = None,
        full_read: bool = False,
    ) -> None:
        self.config = config
        self.full_read = full_read
        """The next load reads delta sources (Microsoft 365) whole (``--full-read``)."""
        self.options: SyncConfig = config.sync
        self._emit = emit or (lambda event: None)
        self.mode = Mode(mode)
        self._http = http
        self._store = store or Store.open(config.state_path)
        self.run_id: int | None = None
        self.loaded: LoadResult | None = None
        self.merged: list[SourceAccount] = []
        self.merge_notices: list[Notice] = []
        self._merged = Merged([], [], [], 0)
        """The sources merged in their order (what an id two entries share makes unusable)."""
        self._finished = False
        self._locked = False
        self._kept: tuple[int | None, set[tuple[str, str]]] = (None, set())
        """The run the events below were kept for, and those events (each is kept once)."""
        self.mapping: dict[str, MappingEntry] = {}
        self._index: tuple[LoadResult, ZivverIndex] | None = None
        """The organization indexed for planning, for the load it was made of."""
        self._baseline: dict[str, int] = {}
        """Each source's size at the last good run, as read at the load (the shrink guard's)."""
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
        """Store an event once per run (a failed step is often reported again as the load's
        error; a reload in the TUI reads the same data again)."""
        run, kept = self._kept
        if run != self.run_id:
            kept = set()
            self._kept = (self.run_id, kept)
        if (level, message) not in kept:
            kept.add((level, message))
            self._store.add_event(self.run_id, level, message)

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
            max_retries=1 if self.mode is Mode.CHECK else target.max_retries,
            timeout_seconds=target.timeout_seconds,
            verify=verify,
            pacer=self._pacer,
        )

    # --- the history (typed; the store's rows stay in the store) ------------------------------

    def runs(self, limit: int = 50) -> list[RunRecord]:
        return self._store.runs(limit)

    def run_record(self, run_id: int | None = None) -> RunRecord | None:
        """A run of the history, by default this session's."""
        wanted = self.run_id if run_id is None else run_id
        return None if wanted is None else self._store.run(wanted)

    def outcomes(self, run_id: int | None = None) -> list[ChangeOutcome]:
        """Every change of a run (by default this session's) as journaled, in plan order."""
        wanted = self.run_id if run_id is None else run_id
        return [] if wanted is None else self._store.changes(wanted)

    @property
    def merge_unusable(self) -> list[Unusable]:
        """Entries unusable because another source entry has their id (the last load)."""
        return list(self._merged.unusable)

    def history_of(
        self, email: str, zivver_ids: list[str]
    ) -> tuple[list[MappingRecord], list[TimelineEntry]]:
        """What the mapping holds of an account (by address or Zivver id) and every change to
        it the store journaled under any of its addresses, oldest first."""
        store = self._store
        mapping = store.mapping_records(email, zivver_ids)
        ids = [*zivver_ids, *(m.zivver_id for m in mapping)]
        entries = [m.source_id for m in mapping]
        timeline = store.timeline([email, *(m.email for m in mapping)], ids, entries)
        if not mapping:  # an old address: the entries that had it, under their new one
            entries = [t.change.source_id for t in timeline if t.change.source_id]
            mapping = store.mapping_records(email, ids, entries)
            if mapping:
                ids += [m.zivver_id for m in mapping]
                emails = [email, *(m.email for m in mapping)]
                timeline = store.timeline(emails, ids, [m.source_id for m in mapping])
        return mapping, timeline

    def events(self, *, with_info: bool = False) -> list[tuple[float, str, str]]:
        """(time, level, message) of every run, oldest first."""
        return [e for e in self._store.events() if with_info or e[1] != "info"]

    # --- the whole headless run ---------------------------------------------------------------

    async def run_once(
        self,
        dry_run: bool,
        confirmed: set[GuardedAction],
        planned: Callable[[Plan, frozenset[GuardedAction]], None] | None = None,
    ) -> RunOutcome:
        """Lock, load, plan, then apply (or record a dry run): the daily run, start to end.
        ``planned`` sees the plan (and what is confirmed) before anything is sent.

        Never raises for what an admin can fix; the outcome says what happened.
        """
        confirmed = confirmed | self.confirmed_in_profile()
        try:
            self._lock()
        except ZsyncError as error:
            return cannot_run(str(error))
        try:
            with collector_paused(freeze=True):  # this process is the run's own
                loaded = await self.load(dry_run)
                if not loaded.ok:
                    return self._aborted(
                        loaded.errors(), "Could not read everything, so nothing was changed."
                    )
                the_plan = self.plan()
            if the_plan.refused:
                return self._aborted(
                    [the_plan.refused], f"Unhealthy read: {the_plan.refused}. Nothing was changed."
                )
            told = {n.message for r in loaded.sources for n in r.notices}
            told.update(n.message for n in self.merge_notices)  # told as they were read
            for notice in the_plan.notices:
                if notice.level != "info" and notice.message not in told:
                    self.emit(LogEvent(notice.level, notice.message))
            if planned is not None:
                planned(the_plan, frozenset(confirmed))
            if dry_run:
                return self.dry_run(the_plan, confirmed)
            return await self.apply(the_plan, confirmed)
        except ZsyncError as error:  # the local store failed outside the journaled apply
            return cannot_run(str(error))

    # --- step 1 -------------------------------------------------------------------------------

    async def load(self, dry_run: bool = False) -> LoadResult:
        """Read every source (in order) and the Zivver organization. Never raises for I/O.

        Starts a run in the history; an incomplete read ends it as aborted.
        """
        if self.run_id is None or self._finished:
            self.run_id = self._store.start_run(self.mode.value, dry_run)
            self._finished = False
        for warning in exposed_secret_files(self.config):  # o+r secret files, at every run
            self.emit(LogEvent("warning", warning))
        result = LoadResult()
        # Zivver is read while the sources are (a directory is read in a process of its
        # own); the store's mapping while the sources may still be on their way
        store = None if self.mode is Mode.CHECK else self._store  # a check keeps nothing
        sources = asyncio.create_task(
            read_sources(result, self.config, store, self.full_read, self.emit)
        )
        try:
            await read_zivver(result, self.client, self.emit)
            self.mapping = self._store.mapping()
            # read once per load, not at every plan (options replan in threads)
            self._baseline = self._store.last_good_counts()
            await sources
        finally:
            sources.cancel()  # when this load is cancelled; a no-op once it is done
        if self.config.sync.sync_phone_numbers:  # with Zivver's: most are in step unparsed
            await asyncio.to_thread(read_numbers, result, self.config)
        self._merged = merge_sources((r.name, r.accounts) for r in result.sources)
        self.merged, self.merge_notices = self._merged.accounts, self._merged.notices
        self.loaded = result
        if result.ok:
            self.full_read = False  # asked for once, not at every reload
        for source_result in result.sources:
            for notice in source_result.notices:
                self.emit(LogEvent(notice.level, notice.message))
            for unusable in source_result.unusable:
                self.emit(LogEvent("error", unusable.text()))
        for notice in self.merge_notices:
            self.emit(LogEvent(notice.level, notice.message))
        for unusable in self._merged.unusable:  # an id two sources' entries share
            self.emit(LogEvent("error", unusable.text()))
        if not result.ok:
            self._finish(RunStatus.ABORTED, {"errors": result.errors()}, healthy=False)
        return result

    # --- step 2 -------------------------------------------------------------------------------

    def plan(self, options: SyncConfig | None = None) -> Plan:
        """Compute the plan from what was loaded (no reload), with ``options`` or the session's.

        Nothing is kept or written: to use other options for the rest of the run, set
        ``self.options``. Safe to call from a thread while nothing is being loaded.
        """
        loaded = self._require_loaded()
        options = options or self.options
        unusable = [u for r in loaded.sources for u in r.unusable] + self._merged.unusable
        protected = frozenset(u.source_id for u in unusable if u.source_id and u.protects)
        addresses = frozenset(u.address for u in unusable if u.address and u.protects)
        refused = health.refused(loaded, self._baseline, options)
        index = self._index
        if index is None or index[0] is not loaded:
            index = self._index = (loaded, ZivverIndex.of(loaded.zivver, self.mapping))
        result = plan(
            self.merged,
            loaded.zivver,
            self.mapping,
            options,
            health.removals_blocked(loaded, refused),
            protected,
            index[1],
            addresses,
        )
        result.refused = refused
        result.unusable = unusable
        result.ignored = self._merged.ignored
        health.hold_unreadable(result, loaded.unreadable)
        result.attention = health.needs_admin(result)
        result.notices[:0] = [n for r in loaded.sources for n in r.notices] + self.merge_notices
        result.counts.update({f"source:{r.name}": len(r.accounts) for r in loaded.sources})
        return result

    def _require_loaded(self) -> LoadResult:
        if self.loaded is None:
            raise RuntimeError("load() must run before plan()")
        return self.loaded

    # --- step 3 -------------------------------------------------------------------------------

    def confirmed_in_profile(self) -> set[GuardedAction]:
        return set(self.options.confirm)

    def sendable(self, plan: Plan, excluded: frozenset[int] = frozenset()) -> list[Change]:
        """The changes an update would look at (not excluded by the admin)."""
        return [c for c in plan.changes if c.id not in excluded]

    def to_confirm(self, plan: Plan, excluded: frozenset[int] = frozenset()) -> list[Guard]:
        """The guarded actions an update must have confirmed: those with a change left after
        the admin's exclusions."""
        left = {c.guard for c in plan.changes if c.guard is not None and c.id not in excluded}
        return [g for g in plan.guards if g.action in left]

    def to_send(
        self,
        plan: Plan,
        confirmed: set[GuardedAction],
        excluded: frozenset[int] = frozenset(),
    ) -> list[Change]:
        """The changes an update with these confirmations and exclusions sends."""
        held = {c.id for c in plan.held(confirmed)}
        return [c for c in plan.changes if c.id not in excluded and c.id not in held]

    def use_options(self, options: SyncConfig) -> None:
        """Plan with ``options`` from now on, for the rest of this run (the profile is as it was)."""
        self.options = options

    def use_profile(self, config: Config) -> None:
        """The profile was saved with new options: the rest of this run uses it."""
        self.config = config
        self.options = config.sync

    def why_not(self, plan: Plan) -> str | None:
        """Why an update of this plan would be refused before anything is sent, or None."""
        loaded = self._require_loaded()
        if self.mode is Mode.CHECK:
            return "a check sends nothing"
        if not loaded.ok:
            return "the last load was incomplete; nothing is applied. Reload and try again"
        return plan.refused or self.superseded()

    async def apply(
        self,
        plan: Plan,
        confirmed: set[GuardedAction],
        excluded: frozenset[int] = frozenset(),
        cancel: asyncio.Event | None = None,
    ) -> RunOutcome:
        """Send every change that is neither held (unconfirmed guard) nor excluded, and record
        how the run ended. Refuses (``ExitCode.CANNOT_RUN``, nothing sent) a plan from an
        unhealthy read, a stale one, or one another run's lock is on.
        """
        took_lock = not self._locked
        recorded = False
        try:
            if took_lock:
                self._lock()
            refused = self.why_not(plan)
            if refused:
                return self._refuse([refused], f"Not applied: {refused}. Nothing was changed.")
            assert self.run_id is not None and self.loaded is not None
            held = {c.id for c in plan.held(confirmed)}
            states = {c.id: ChangeState.HELD for c in plan.changes if c.id in held}
            states.update({i: ChangeState.EXCLUDED for i in excluded})
            recorded = True
            self._store.record_plan(self.run_id, plan, states)
            self._store.remember_matches(plan.matches)
            self._store.set_run_status(self.run_id, RunStatus.APPLYING)
            to_send = self.to_send(plan, confirmed, excluded)
            client = self.client()
            try:
                applier = Applier(
                    client,
                    self._store,
                    self.run_id,
                    self.loaded.user_ids,
                    (a.zivver_id for a in self.loaded.zivver if a.kind is Kind.FUNCTIONAL),
                    self.emit,
                )
                result = await applier.run(to_send, cancel, self.config.target.concurrency)
            finally:
                await client.aclose()
            try:
                return self._conclude(plan, result, confirmed, excluded)
            except ZsyncError as error:  # changes were sent: never "nothing was changed"
                result.stopped = result.stopped or str(error)
                return self._conclude(plan, result, confirmed, excluded)
        except ZsyncError as error:  # the lock, the client or the store, outside the journal
            if not recorded:
                return self._refuse([str(error)], f"Not started: {error} Nothing was changed.")
            try:
                self._finish(RunStatus.ABORTED, {"errors": [str(error)]}, healthy=False)
            except ZsyncError:
                pass  # the store is what failed; the outcome says so
            return cannot_run(str(error), plan)
        finally:
            if took_lock:
                self._unlock()

    def dry_run(self, plan: Plan, confirmed: set[GuardedAction]) -> RunOutcome:
        """Keep a plan in the history without sending it."""
        assert self.run_id is not None
        held = plan.held(confirmed)
        self._store.record_plan(self.run_id, plan, {c.id: ChangeState.HELD for c in held})
        outcome = dry(plan, tuple(held), frozenset(confirmed))
        self._keep_plan(plan, outcome.held)
        self._finish(
            RunStatus.DRY_RUN,
            {"planned": len(plan.changes)}
            | problems_of(plan, None, len(held))
            | {"attention": plan.attention, "exit": int(outcome.exit_code), "named": named(plan)},
            plan.removals_blocked is None,
        )
        return outcome

    def superseded(self) -> str | None:
        """Why this run's plan is out of date: another run applied changes since it loaded."""
        if self.run_id is None:
            return None
        later = [
            r for r in self._store.runs(limit=20) if r.id > self.run_id and r.status.changed_zivver
        ]
        if not later:
            return None
        return (
            f"another zsync run ({later[0].mode}, run {later[0].id}) changed Zivver after this data "
            "was loaded. Reload all data before updating"
        )

    def _conclude(
        self,
        plan: Plan,
        result: ApplyResult,
        confirmed: set[GuardedAction],
        excluded: frozenset[int],
    ) -> RunOutcome:
        """Record how an applied run ended and say it in one sentence."""
        held = tuple(c for c in plan.held(confirmed) if c.id not in excluded)
        outcome = applied(plan, result, held, frozenset(confirmed), self._store.directory)
        counts = {"succeeded": len(result.succeeded), "failed": len(result.failed)}
        if result.stopped:
            try:
                self._finish(RunStatus.STOPPED, counts, healthy=False)
            except ZsyncError:
                pass  # the store is what failed; the message says so
            return outcome
        self._keep_plan(plan, held)
        self._finish(
            outcome.status,
            counts
            | problems_of(plan, result, len(held))
            | {"cancelled": result.cancelled, "attention": plan.attention, "named": named(plan)},
            plan.removals_blocked is None and not result.cancelled,
        )
        return outcome

    def _keep_plan(self, plan: Plan, held: tuple[Change, ...]) -> None:
        """Keep in Recent events what the plan wanted to tell (see :func:`.conclusion.told`)."""
        loaded = self.loaded
        read = {n.message for r in loaded.sources for n in r.notices} if loaded else set()
        for level, message in told(plan, held, read):
            self._keep(level, message)

    def _aborted(self, errors: list[str], message: str) -> RunOutcome:
        """End this run without sending anything (an incomplete or unhealthy read)."""
        if self.run_id is not None and not self._finished:
            self._finish(RunStatus.ABORTED, {"errors": errors}, healthy=False)
        return RunOutcome(
            ExitCode.CANNOT_RUN,
            RunStatus.ABORTED,
            message,
            tuple(errors),
        )

    def _refuse(self, errors: list[str], message: str) -> RunOutcome:
        """An update refused before anything was sent. A headless run ends there; in the TUI
        the run stays open, so the admin can change options or reload and try again."""
        if self.mode is Mode.HEADLESS:
            return self._aborted(errors, message)
        return RunOutcome(
            ExitCode.CANNOT_RUN,
            RunStatus.RUNNING,
            message,
            tuple(errors),
        )

    def _finish(self, status: RunStatus, summary: Mapping[str, object], healthy: bool) -> None:
        assert self.run_id is not None
        if healthy and self.loaded is not None:
            self._store.record_source_counts(
                self.run_id, {r.name: r.size for r in self.loaded.sources}
            )
        self._store.finish_run(self.run_id, status, dict(summary))
        self._finished = True
        keep = self.config.store
        try:
            self._store.prune(keep.keep_runs, keep.keep_days)
        except ZsyncError as error:  # the run has ended as recorded; the history waits
            self.emit(LogEvent("warning", f"The run history was not pruned: {error}"))

    def _lock(self) -> None:
        self._store.lock()
        self._locked = True

    def _unlock(self) -> None:
        self._store.unlock()
        self._locked = False

    def ended_unexpectedly(self, message: str) -> None:
        """A front end caught an error the session did not (a bug): keep it in the events and
        end the run, as interrupted if Zivver may have changed (the next run converges)."""
        try:
            self._keep("error", message)
            record = self.run_record()
            if record is None or self._finished:
                return
            status = RunStatus.INTERRUPTED if record.status.changed_zivver else RunStatus.ABORTED
            self._finish(status, {"errors": [message]}, healthy=False)
        except ZsyncError:
            pass  # the store failing too: the front end still shows the message

    def new_run(self) -> None:
        """Forget the current run (a reload): one that was loaded but never applied is closed."""
        if self.run_id is not None and not self._finished:
            self._store.finish_run(self.run_id, RunStatus.NOT_APPLIED, {})
        self.run_id = None
        self.loaded = None

    def close(self) -> None:
        try:
            if self.run_id is not None and not self._finished:
                self._store.finish_run(self.run_id, RunStatus.NOT_APPLIED, {})
        except ZsyncError:
            pass  # closing must not hide the error that ended the run
        self._store.close()
