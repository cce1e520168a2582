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

Read health (the same answer for both front ends, see product.md's safety rules):

- a source or Zivver that could not be read completely: the load failed; nothing is planned
  or sent (``ExitCode.CANNOT_RUN``);
- a source far smaller than at the last good run (``sync.shrink_guard_percent``): the plan is
  *refused* (``Plan.refused``). The TUI shows it with no removals so the admin can look, but
  will not send it; headless sends nothing and exits 3. Raising the option (for this run in the
  TUI's options, or in the profile) is how an admin says the drop is real;
- entries a source could not identify: no suspension or deletion is planned from that source
  (``Plan.removals_blocked``); every other change applies.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import httpx

from .apply import Applier, ApplyResult
from .collector import collector_paused
from .config import Config, GuardedAction, SyncConfig, api_key, exposed_secret_files
from .errors import TargetError, ZsyncError
from .merge import MappingEntry, Merged, ZivverIndex, merge_sources
from .model import (
    Change,
    Emit,
    Event,
    Guard,
    Kind,
    LogEvent,
    Notice,
    NotSent,
    Plan,
    SourceAccount,
    StepEvent,
    ZivverAccount,
    not_sent_lines,
)
from .outcome import ChangeOutcome, ChangeState, ExitCode, RunRecord, RunStatus
from .plan import plan
from .sources import SourceResult, make_source
from .sources.fields import finish, read_numbers
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


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, for both front ends (and the report, notifications, monitoring)."""

    exit_code: ExitCode
    status: RunStatus
    message: str
    """"Task completed successfully." or what happened, in one sentence."""
    errors: tuple[str, ...] = ()
    """What stopped the run from starting or going on, each naming where."""
    plan: Plan | None = None
    result: ApplyResult | None = None
    held: tuple[Change, ...] = ()
    """Guarded changes not sent for want of a confirmation."""
    confirmed: frozenset[GuardedAction] = frozenset()
    """The guarded actions this run was allowed (command line, TUI and profile)."""

    @property
    def problems(self) -> dict[str, int]:
        """What kept this run from being a clean success, counted by kind (none are 0):
        ``failed`` changes, changes ``held`` for a confirmation, writes ``not_sent``,
        ``unusable`` source entries, removals not planned (``removals_blocked``) and
        accounts ``left_alone`` because an entry with their address is unusable."""
        return problems_of(self.plan, self.result, len(self.held))

    def __repr__(self) -> str:
        # short: asyncio.run on Python 3.11 reprs the main task's result (see SourceResult)
        changes = len(self.plan.changes) if self.plan else 0
        return f"RunOutcome({self.exit_code!r}, {self.status!r}, {changes} changes planned)"


def problems_of(plan: Plan | None, result: ApplyResult | None, held: int) -> dict[str, int]:
    """See :attr:`RunOutcome.problems`."""
    counts = (
        len(result.failed) if result else 0,
        held,
        len(plan.not_sent) if plan else 0,
        len(plan.unusable) if plan else 0,
        len(plan.blocked_removals) if plan else 0,
        len(plan.left_alone) if plan else 0,
    )
    return {kind: count for kind, count in zip(PROBLEM_KINDS, counts, strict=True) if count}


NAMED = 20
"""Accounts and entries a run's record names for each problem (the report has them all)."""


def _named(plan: Plan) -> dict[str, list[str]]:
    """What the run's record names for ``zsync status`` and ``zsync history``: the first
    unusable entries, removals not planned and accounts left alone."""
    named = {
        "unusable": [u.text() for u in plan.unusable[:NAMED]],
        "removals_blocked": plan.blocked_removals[:NAMED],
        "left_alone": plan.left_alone[:NAMED],
    }
    return {kind: items for kind, items in named.items() if items}


PROBLEM_KINDS = ("failed", "held", "not_sent", "unusable", "removals_blocked", "left_alone")
"""Every kind :func:`problems_of` counts (the monitoring textfile writes each, 0 included,
so that an alert on one has a series to look at)."""


@dataclass(slots=True)
class LoadResult:
    sources: list[SourceResult] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)
    target_error: str | None = None
    zivver: list[ZivverAccount] = field(default_factory=list)
    user_ids: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    """Zivver accounts answered in a shape that cannot be read whole (id: what is wrong):
    nothing is written to them (see :meth:`SyncSession.plan`)."""

    @property
    def ok(self) -> bool:
        return not self.source_errors and self.target_error is None

    def __repr__(self) -> str:
        return f"LoadResult({self.sources!r}, {len(self.zivver)} in Zivver, ok={self.ok})"

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
            return _cannot_run(str(error))
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
            return _cannot_run(str(error))

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
        sources = asyncio.create_task(self._load_sources(result))
        try:
            await self._load_target(result)
            self.mapping = self._store.mapping()
            # read once per load, not at every plan (options replan in threads)
            self._baseline = self._store.last_good_counts()
            await sources
        finally:
            sources.cancel()  # when this load is cancelled; a no-op once it is done
        if self.config.sync.sync_phone_numbers:  # with Zivver's: most are in step unparsed
            await asyncio.to_thread(self._read_numbers, result)
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
        if not result.ok:
            self._finish(RunStatus.ABORTED, {"errors": result.errors()}, healthy=False)
        return result

    def _read_numbers(self, result: LoadResult) -> None:
        known = {account.email: account.phones for account in result.zivver if account.kept}
        regions = {source.name: source.phone_region for source in self.config.sources}
        for source_result in result.sources:
            read_numbers(source_result, regions.get(source_result.name), known)

    async def _load_sources(self, result: LoadResult) -> None:
        for source_config in self.config.sources:  # in order: the first source wins a conflict
            try:
                source = make_source(  # a check reads a delta source whole and keeps nothing
                    source_config,
                    self.config,
                    store=None if self.mode is Mode.CHECK else self._store,
                    full_read=self.full_read,
                )
                loaded = await source.load(self.emit)
                finish(loaded, source_config, self.config.sync.sync_phone_numbers)
                loaded.clean()
                result.sources.append(loaded)
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
        except (
            ValueError,
            TypeError,
            AttributeError,
            KeyError,
            IndexError,
            RecursionError,
        ) as error:
            # what a Zivver answer zsync did not foresee would raise: unreadable, not a crash
            message = (
                f"Reading Zivver at {client.base_url} failed on an answer zsync could not read "
                f"({error!r}), so nothing was planned from it. Try again later; if it repeats, "
                "report it with this message."
            )
            result.target_error = message
            self.emit(StepEvent(step, step, "failed", detail=message))
            return
        finally:
            await client.aclose()
        result.unreadable = dict(client.unreadable)
        for what in result.unreadable.values():
            self.emit(
                LogEvent(
                    "warning",
                    f"Zivver at {client.base_url} answered the {what}, so zsync cannot tell what "
                    "Zivver holds for it and writes nothing to it this run. If it repeats, tell "
                    "Zivver support (or check the proxy between zsync and Zivver).",
                )
            )
        self.emit(StepEvent(step, step, "done", len(result.zivver), len(result.zivver)))

    # --- step 2 -------------------------------------------------------------------------------

    def _refused(self, loaded: LoadResult, options: SyncConfig) -> str | None:
        """Why nothing from this read may be sent (see the module's read-health policy)."""
        if not loaded.ok:
            return f"the read was incomplete ({'; '.join(loaded.errors())})"
        return self._shrunk(loaded, options)

    def _removals_blocked(self, loaded: LoadResult, refused: str | None) -> str | None:
        if loaded.source_errors:
            return f"source(s) {', '.join(loaded.source_errors)} could not be read completely"
        unsure = [u for r in loaded.sources for u in r.unusable if u.unidentified]
        if unsure:
            named = ", ".join(f"{u.source} {u.where}" for u in unsure[:5])
            more = f" and {len(unsure) - 5} more" if len(unsure) > 5 else ""
            return (
                f"{len(unsure)} source entr{'y' if len(unsure) == 1 else 'ies'} could not be "
                f"read, neither address nor id ({named}{more}): any of them may be an account "
                "that would otherwise be suspended or deleted"
            )
        return refused

    def _shrunk(self, loaded: LoadResult, options: SyncConfig) -> str | None:
        """A source that returned nothing, or far fewer accounts than at the last good run."""
        previous = self._baseline
        share = options.shrink_guard_percent
        for source in loaded.sources:
            before = previous.get(source.name)
            now = source.size
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

        Nothing is kept or written: to use other options for the rest of the run, set
        ``self.options``. Safe to call from a thread while nothing is being loaded.
        """
        loaded = self._require_loaded()
        options = options or self.options
        unusable = [u for r in loaded.sources for u in r.unusable] + self._merged.unusable
        protected = frozenset(u.source_id for u in unusable if u.source_id and u.protects)
        addresses = frozenset(u.address for u in unusable if u.address and u.protects)
        refused = self._refused(loaded, options)
        index = self._index
        if index is None or index[0] is not loaded:
            index = self._index = (loaded, ZivverIndex.of(loaded.zivver, self.mapping))
        result = plan(
            self.merged,
            loaded.zivver,
            self.mapping,
            options,
            self._removals_blocked(loaded, refused),
            protected,
            index[1],
            addresses,
        )
        result.refused = refused
        result.unusable = unusable
        result.ignored = self._merged.ignored
        _hold_unreadable(result, loaded.unreadable)
        result.attention = self._needs_admin(loaded, result)
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
            return _cannot_run(str(error), plan)
        finally:
            if took_lock:
                self._unlock()

    def dry_run(self, plan: Plan, confirmed: set[GuardedAction]) -> RunOutcome:
        """Keep a plan in the history without sending it."""
        assert self.run_id is not None
        held = plan.held(confirmed)
        self._store.record_plan(self.run_id, plan, {c.id: ChangeState.HELD for c in held})
        attention = plan.attention
        code = ExitCode.HELD if held or plan.not_sent or attention else ExitCode.OK
        self._keep_plan(plan, tuple(held))
        self._finish(
            RunStatus.DRY_RUN,
            {"planned": len(plan.changes)}
            | problems_of(plan, None, len(held))
            | {"attention": attention, "exit": int(code), "named": _named(plan)},
            plan.removals_blocked is None,
        )
        message = f"Dry run: {len(plan.changes)} change(s) planned, nothing was sent to Zivver."
        if attention:
            said = "; ".join(attention)
            message += f" {said[:1].upper()}{said[1:]}."
        return RunOutcome(
            code,
            RunStatus.DRY_RUN,
            message,
            plan=plan,
            held=tuple(held),
            confirmed=frozenset(confirmed),
        )

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
        counts = {"succeeded": len(result.succeeded), "failed": len(result.failed)}
        if result.stopped:
            code = ExitCode.FAILED if result.done else ExitCode.CANNOT_RUN
            message = _stopped_message(result, self._store.directory)
            try:
                self._finish(RunStatus.STOPPED, counts, healthy=False)
            except ZsyncError:
                pass  # the store is what failed; the message says so
            return RunOutcome(
                code,
                RunStatus.STOPPED,
                message,
                (result.stopped,),
                plan,
                result,
                held,
                frozenset(confirmed),
            )
        not_sent = plan.not_sent
        attention = plan.attention
        if result.failed:
            code, status = ExitCode.FAILED, RunStatus.FAILED_CHANGES
        elif held or not_sent or attention:
            code = ExitCode.HELD
            status = RunStatus.HELD if held or not_sent else RunStatus.ATTENTION
        else:
            code, status = ExitCode.OK, RunStatus.COMPLETED
        if result.cancelled:
            status = RunStatus.CANCELLED
        self._keep_plan(plan, held)
        self._finish(
            status,
            counts
            | problems_of(plan, result, len(held))
            | {"cancelled": result.cancelled, "attention": plan.attention, "named": _named(plan)},
            plan.removals_blocked is None and not result.cancelled,
        )
        parts = [f"{len(held)} held for confirmation"] if held else []
        unreadable = sum(1 for h in not_sent if h.reason == UNREADABLE_NOT_SENT)
        if len(not_sent) > unreadable:
            parts.append(
                f"{len(not_sent) - unreadable} not sent (an SsoAccountKey zsync does not know)"
            )
        if unreadable:
            parts.append(f"{unreadable} not sent (Zivver's answer for the account was unreadable)")
        also = "".join(f"; {part}" for part in parts + attention)
        if result.cancelled:
            failed = f" ({len(result.failed)} failed)" if result.failed else ""
            message = (
                f"Cancelled: {result.done} change(s) sent{failed}, {result.cancelled} not "
                f"sent{also}."
            )
        elif result.failed:
            message = f"{len(result.failed)} of {result.done} change(s) failed{also}."
        elif parts or attention:
            message = f"Applied {result.done} change(s){also}."
        elif result.done:
            message = "Task completed successfully."
        else:
            message = "Nothing to do: Zivver is in step with the sources."
        return RunOutcome(
            code,
            status,
            message,
            plan=plan,
            result=result,
            held=held,
            confirmed=frozenset(confirmed),
        )

    def _keep_plan(self, plan: Plan, held: tuple[Change, ...] | list[Change]) -> None:
        """Keep in Recent events what the plan wanted to tell (the source's own notices and
        unusable entries were kept as they were read): the data's notices, what a takeover
        meets, writes not sent, removals not planned, changes held for a confirmation."""
        loaded = self.loaded
        told = {n.message for r in loaded.sources for n in r.notices} if loaded else set()
        for notice in plan.notices:
            if notice.level != "info" and notice.message not in told:
                self._keep(notice.level, notice.message)
        if plan.takeover is not None and plan.takeover.worth_showing:
            for line in plan.takeover.lines():
                self._keep("warning", f"Taking over: {line}")
        if plan.not_sent:
            self._keep("warning", "\n".join(not_sent_lines(plan.not_sent, shown=10)))
        for phrase in plan.attention:
            self._keep("warning", f"{phrase[:1].upper()}{phrase[1:]}.")
        if held:
            guards = sorted({c.guard.value for c in held if c.guard})
            shown = ", ".join(c.email for c in held[:10])
            more = f" and {len(held) - 10} more" if len(held) > 10 else ""
            self._keep(
                "warning",
                f"{len(held)} change(s) held for confirmation ({', '.join(guards)}): "
                f"{shown}{more}. Review them, then run with "
                f"{' '.join('--confirm ' + g for g in guards)}.",
            )

    def _needs_admin(self, loaded: LoadResult, plan: Plan) -> list[str]:
        """What else in this run needs the admin (product.md: a run that skipped or blocked
        anything never exits 0): source entries skipped as unusable, and suspensions or
        deletions not planned because the read was not healthy (:attr:`Plan.attention`)."""
        parts = []
        skipped = sum(1 for u in plan.unusable if u.protects)
        if skipped:
            parts.append(
                f"{skipped} source entr{'y' if skipped == 1 else 'ies'} skipped as unusable "
                "(each is named in an error)"
            )
        values = Counter(u.value for u in plan.unusable if u.value)
        for value, count in sorted(values.items()):
            parts.append(
                f"{count} {value}{'' if count == 1 else 's'} that cannot be read, not synced "
                "(each is named in an error; the accounts synced without it)"
            )
        if plan.ignored:
            parts.append(
                f"{plan.ignored} source entr{'y' if plan.ignored == 1 else 'ies'} ignored because "
                "a source earlier in the order holds the same address (each is named in a warning)"
            )
        if plan.skipped:
            parts.append(
                f"{len(plan.skipped)} account(s) not synced because they clash with Zivver "
                "(each is named in a warning)"
            )
        if plan.removals_blocked:
            parts.append(f"no suspension or deletion was planned: {plan.removals_blocked}")
        return parts

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


UNREADABLE_NOT_SENT = (
    "Zivver answered these accounts in a shape zsync cannot read whole (see the warnings), so "
    "it cannot tell what a write would remove and sends nothing to them"
)


def _hold_unreadable(plan: Plan, unreadable: Mapping[str, str]) -> None:
    """Take every change to an account Zivver answered unreadably out of ``plan``, into its
    held writes (exit 2, named), with the accounts the sources hold that need none: what
    Zivver has of them is unknown, so "in step" is not known either."""
    if not unreadable:
        return
    held: dict[str, list[str]] = {}
    emails: dict[str, str] = {}
    kept = []
    for change in plan.changes:
        if change.zivver_id is not None and change.zivver_id in unreadable:
            held.setdefault(change.zivver_id, []).append(change.action.value)
            emails[change.zivver_id] = change.email
        else:
            kept.append(change)
    plan.changes[:] = kept
    # a confirmation is asked only for what will be sent
    plan.guards[:] = [g for g in plan.guards if any(c.guard is g.action for c in kept)]
    for match in plan.matches:
        if match.zivver_id in unreadable and match.zivver_id not in held:
            held[match.zivver_id] = ["(not compared)"]
            emails[match.zivver_id] = match.email
    plan.not_sent += [
        NotSent(emails[zivver_id], tuple(actions), UNREADABLE_NOT_SENT)
        for zivver_id, actions in held.items()
    ]


def _stopped_message(result: ApplyResult, state_dir: Path) -> str:
    """What a run that the local store stopped did, in Zivver and in the journal, and how to
    go on: never "nothing was changed" once a change was sent."""
    if not result.done:
        return f"Stopped before sending anything: {result.stopped}. Nothing was changed."
    text = (
        f"Stopped after sending {result.done} change(s) to Zivver ({len(result.succeeded)} "
        f"succeeded, {len(result.failed)} failed), because the local store failed: "
        f"{result.stopped}."
    )
    if result.unrecorded:
        shown = ", ".join(f"{c.action.value} {c.email}" for c in result.unrecorded[:5])
        more = f" and {len(result.unrecorded) - 5} more" if len(result.unrecorded) > 5 else ""
        text += (
            f" Zivver answered {len(result.unrecorded)} of them that the store could not record "
            f"whole ({shown}{more}): the journal may still show them as sending; it holds the "
            "outcome of the others."
        )
    else:
        text += " The journal holds the outcome of each."
    if result.never_sent:
        text += f" {result.never_sent} change(s) were not sent."
    return (
        f"{text} Free space on the disk of the state directory {state_dir} (or fix its "
        "permissions), then run zsync again: it reads Zivver anew, takes over what was created "
        "by its address and sends only what is still to do."
    )


def _cannot_run(error: str, plan: Plan | None = None) -> RunOutcome:
    return RunOutcome(
        ExitCode.CANNOT_RUN, RunStatus.ABORTED, f"{error} Nothing was changed.", (error,), plan
    )
