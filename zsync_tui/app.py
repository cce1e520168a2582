"""The Textual app: shows the session's run and decides which step is on screen.

The session (zsync_core) owns the run: the lock, the read-health policy, the statuses and
the outcomes. This class only navigates, runs the long tasks in workers (load and update
as async workers; every plan in a thread, so keys are answered at once), and turns the
core's events, posted as messages, into the progress line, the step list and the live log.
An unexpected error in a worker is shown as an error the admin can act on; the app stays up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import ClassVar, TypeVar
from urllib.parse import urlsplit

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from zsync_core.collector import collector_paused
from zsync_core.conclusion import RunOutcome
from zsync_core.config import Config, GuardedAction, SyncConfig
from zsync_core.errors import ZsyncError
from zsync_core.guards import guard_of
from zsync_core.loading import LoadResult
from zsync_core.model import Change, ChangeEvent, Event, Plan, StepEvent
from zsync_core.outcome import ChangeOutcome, ExitCode
from zsync_core.profile_edit import ProfileDocument, changed_options, save_sync_options
from zsync_core.session import SyncSession
from zsync_core.views import Explanation, ZivverRow, explain_in, rows_of

from . import fmt
from .screens.accounts import AccountsScreen, Explain, source_screen, zivver_screen
from .screens.base import APP_KEYS, StepScreen
from .screens.confirm import ConfirmScreen
from .screens.connections import ConnectionsScreen
from .screens.detail import DetailScreen, diff_rows
from .screens.events import EventsScreen
from .screens.explain import explanation_screen
from .screens.history import HistoryScreen
from .screens.load import LoadScreen
from .screens.options import OptionsResult, OptionsScreen
from .screens.preview import PreviewScreen
from .screens.profile import Draft, ProfileScreen
from .screens.review import ReviewScreen
from .screens.summary import SummaryScreen
from .screens.update import UpdateScreen
from .widgets.progress import Progress

S = TypeVar("S", bound=Screen)  # type: ignore[type-arg]
MAX_EVENTS = 5000
LOAD, UPDATE = "load", "update"
"""The names of the two workers that change the session (one at a time: group "sync")."""
WHAT = {LOAD: "loading", UPDATE: "the update", "plan": "recomputing the plan"}


def change_key(change: Change) -> str:
    """What identifies a change across recomputed plans (ids are renumbered)."""
    return f"{change.action.value}:{change.zivver_id or change.source_id or change.email}"


class CoreEvent(Message):
    """An event of the session (a step moved, a change was applied), as a Textual message:
    posting one is safe from any thread, and the app handles them in order."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class Loaded(Message):
    """The load worker ended; ``plan`` is None when the read was incomplete."""

    def __init__(self, loaded: LoadResult, plan: Plan | None) -> None:
        super().__init__()
        self.loaded = loaded
        self.plan = plan


class Applied(Message):
    """The update worker ended (or was refused before sending anything)."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class ZsyncApp(App[int]):
    TITLE = "zsync"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [  # shown on every step's last line (AppKeys)
        Binding(key, action, description, show=False) for key, action, description in APP_KEYS
    ]

    progress: reactive[Progress] = reactive(Progress)
    """What the app is doing now; the progress line at the bottom of every screen shows it."""

    def __init__(self, session: SyncSession, where: str | None = None) -> None:
        super().__init__()
        self.session = session
        session.listen(self._post_core_event)
        host = urlsplit(session.config.target.url).hostname or session.config.target.url
        self.where = where or f"{session.config.path.name} → {host}"
        self.events: list[tuple[float, str, str]] = []
        self.plan: Plan | None = None
        self.excluded: set[str] = set()
        self.cancel_update = asyncio.Event()
        self.outcome_code: int | None = None
        self._review_message = ""
        self.applied = False
        """An update was sent since the load (the plan is history, not the next run)."""
        self._rows: tuple[Plan, list[ZivverRow]] | None = None
        """Zivver's rows for the plan they were made of (the Zivver screen, explain)."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A notification (screens' ``notify`` comes here too). Its text is mostly a server's
        or a profile's: shown inert and never read as markup, whatever the caller asks."""
        super().notify(
            fmt.block(message),
            title=fmt.plain(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    @property
    def busy(self) -> str | None:
        """What is running that must finish before another load or update (a worker's name:
        "load", "update", "plan")."""
        running = (
            w
            for w in self.workers
            if w.group in ("sync", "plan") and w.state in _ACTIVE and not w.is_finished
        )
        return next((w.name for w in running), None)

    # --- events from the core ------------------------------------------------------------

    def _post_core_event(self, event: Event) -> None:
        self.post_message(CoreEvent(event))

    @on(CoreEvent)
    def _on_core_event(self, message: CoreEvent) -> None:
        event = message.event
        if isinstance(event, StepEvent):
            task = event.label + (
                f" ({event.detail})" if event.detail and event.state == "running" else ""
            )
            self.progress = replace(self.progress, task=task, done=event.done, total=event.total)
            load = self._screen(LoadScreen)
            if load is not None:
                load.step(event)
        elif isinstance(event, ChangeEvent):
            self.progress = replace(
                self.progress,
                task=f"Updating Zivver: {event.change.action.value} {event.change.email}",
                done=event.done,
                total=event.total,
                failed=event.failed,
            )
            if not event.ok:
                self._event(
                    "error", f"{event.change.action.value} {event.change.email}: {event.error}"
                )
            update = self._screen(UpdateScreen)
            if update is not None:
                update.applied(event)
        # a LogEvent is kept by the session in the store's events

    def _event(self, level: str, message: str) -> None:
        """An event the store does not keep itself (failed changes, the app's own errors)."""
        self.events.append((time.time(), level, message))
        del self.events[:-MAX_EVENTS]

    def _screen(self, kind: type[S]) -> S | None:
        """The screen of that kind in the stack, if one is (navigation by type, never depth)."""
        return next((s for s in reversed(self.screen_stack) if isinstance(s, kind)), None)

    # --- unexpected errors -----------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that raised: say what failed and what to do, and keep the app usable."""
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        what = WHAT.get(event.worker.name, event.worker.name)
        message = (
            f"Unexpected error during {what}: {error!r}. This is a bug in zsync; please report it "
            "with Recent events (e)."
        )
        self._event("error", message)
        if event.worker.name in (LOAD, UPDATE):
            self.session.ended_unexpectedly(message)
        if event.worker.name == LOAD:
            load = self._screen(LoadScreen)
            if load is not None:
                load.failed([message])
            self.progress = self.progress.end("Loading failed; nothing was changed.")
        elif event.worker.name == UPDATE:
            update = self._screen(UpdateScreen)
            if update is not None:
                update.ended(message, ok=False)
            self._review_message = message
            self.progress = self.progress.end(message)
        else:  # a plan after new options: the summary still shows the plan it showed
            self.progress = self.progress.end(
                "The plan could not be recomputed; the summary shows the previous one."
            )
        self.notify(message, severity="error", title="Unexpected error", timeout=20)

    # --- step 1 --------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._show_load(autostart=False)

    def _show_load(self, autostart: bool) -> None:
        config = self.session.config
        host = urlsplit(config.target.url).hostname or config.target.url
        sources = [(s.name, s.description) for s in config.sources]
        screen = LoadScreen(self.where, sources, host)
        if isinstance(self.screen, StepScreen):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)
        if autostart:
            self.call_after_refresh(self._load)

    @on(LoadScreen.StartRequested)
    def _start(self) -> None:
        self._load()

    @work(exclusive=True, group="sync", name=LOAD, exit_on_error=False)
    async def _load(self) -> None:
        screen = self._screen(LoadScreen)
        assert screen is not None
        screen.started()
        self.progress = Progress.begin("Loading the sources and Zivver")
        self.session.new_run()
        with collector_paused():  # see zsync_core/collector.py: measured in bench/
            loaded = await self.session.load()
        plan = None
        if loaded.ok:  # else the session has ended the run as aborted
            self.progress = replace(self.progress, task="Computing the plan", done=0, total=None)
            plan = await asyncio.to_thread(self.plan_quietly)
        self.post_message(Loaded(loaded, plan))  # after the load's own events, in order

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        screen = self._screen(LoadScreen)
        loaded = message.loaded
        if message.plan is None:
            if screen is not None:
                screen.failed(loaded.errors())
            self.progress = self.progress.end(
                "Loading failed; nothing was changed. Press e for Recent events."
            )
            return
        if screen is not None:
            screen.finished()
        self.plan = message.plan
        self.applied = False
        self.excluded = set()
        self.progress = self.progress.end(_loaded_line(loaded))
        self._show_summary()

    # --- step 2 --------------------------------------------------------------------------

    def _read_line(self) -> str:
        loaded = self.session.loaded
        assert loaded is not None
        parts = [f"{r.name}: {len(r.accounts):,} accounts" for r in loaded.sources]
        parts.append(f"Zivver: {len(loaded.zivver):,} accounts")
        return "Read " + " · ".join(parts) + "."

    def _excluded_ids(self) -> set[int]:
        assert self.plan is not None
        return {c.id for c in self.plan.changes if change_key(c) in self.excluded}

    def _show_summary(self) -> None:
        assert self.plan is not None
        self.switch_screen(
            SummaryScreen(self.where, self.plan, self._excluded_ids(), self._read_line())
        )

    def _summary_shows(self, plan: Plan) -> None:
        self.plan = plan
        summary = self._screen(SummaryScreen)
        if summary is not None:
            summary.show(plan, self._excluded_ids())

    @on(SummaryScreen.Chosen)
    def _chosen(self, message: SummaryScreen.Chosen) -> None:
        if message.what != "preview" and self.busy:
            self.notify(f"Wait: {WHAT[self.busy]} is running.", severity="warning")
            return
        if message.what == "preview":
            assert self.plan is not None
            self.push_screen(
                PreviewScreen(self.where, self.plan, self._excluded_ids(), message.action)
            )
        elif message.what == "options":
            self.push_screen(
                OptionsScreen(
                    self.session.options, self.session.config.path.name, self.plan_quietly
                ),
                self._options_chosen,
            )
        elif message.what == "reload":
            self._show_load(autostart=True)
        elif message.what == "update":
            self._update_now()

    def _options_chosen(self, result: OptionsResult | None) -> None:
        if result is None:
            return
        changes = changed_options(self.session.config.sync, result.options)
        if result.save:
            if not changes:
                self.notify("The profile already has these options.")
            else:
                try:
                    saved = save_sync_options(self.session.config.path, changes)
                except ZsyncError as error:
                    self._event("error", str(error))
                    self.notify(str(error), severity="error", title="Not saved", timeout=15)
                    return
                self.session.use_profile(saved)
                self.notify(
                    f"Saved to {self.session.config.path}: {', '.join(changes)}.",
                    title="Options saved",
                )
        elif changes:
            self.notify("These options apply to this run only; the profile is unchanged.")
        if result.plan is not None:  # the options screen already planned with these options
            self.session.use_options(result.options)
            self._summary_shows(result.plan)
        else:
            self.progress = Progress.begin("Recomputing the plan with the new options")
            self._replan(result.options)

    @work(thread=True, exclusive=True, group="plan", name="plan", exit_on_error=False)
    def _replan(self, options: SyncConfig) -> None:
        plan = self.plan_quietly(options)
        self.call_from_thread(self._replanned, options, plan)

    def plan_quietly(self, options: SyncConfig | None = None) -> Plan:
        """The session's plan (run in a thread), with the cycle collector paused: at 100,000
        accounts a full collection would hold the interpreter, and the keys, ~150 ms."""
        with collector_paused():
            return self.session.plan(options)

    def _replanned(self, options: SyncConfig, plan: Plan) -> None:
        self.session.use_options(options)
        self._summary_shows(plan)
        self.progress = self.progress.end(f"Plan recomputed: {len(plan.changes):,} change(s).")

    @on(PreviewScreen.Closed)
    def _preview_closed(self, message: PreviewScreen.Closed) -> None:
        assert self.plan is not None
        ids = message.excluded
        self.excluded = {change_key(c) for c in self.plan.changes if c.id in ids}
        self.pop_screen()
        self._summary_shows(self.plan)

    @on(PreviewScreen.Inspect)
    def _inspect_change(self, message: PreviewScreen.Inspect) -> None:
        change = message.change
        facts = [("Action", change.action.value), ("Source", change.source or "none")]
        if change.why:
            facts.append(("Why", change.why))
        if change.guard:
            facts.append(("Needs confirmation", change.guard.value))
        if change.id in self._excluded_ids():
            facts.append(("This run", "excluded (x in the preview includes it again)"))
        self.push_screen(DetailScreen(change.email, facts, diff_rows(change.before, change.after)))

    # --- step 3 --------------------------------------------------------------------------

    def _update_now(self) -> None:
        plan = self.plan
        assert plan is not None
        if self.busy:
            self.notify(f"Wait: {WHAT[self.busy]} is running.", severity="warning")
            return
        refused = self.session.why_not(plan)
        if refused:
            self.notify(f"Not started: {refused}.", severity="error", timeout=20)
            return
        excluded = self._excluded_ids()
        if not self.session.sendable(plan, frozenset(excluded)):
            self.notify("There is nothing to update.", title="Update now")
            return
        guards = self.session.to_confirm(plan, frozenset(excluded))
        if guards:
            followers: dict[str, list[str]] = {}
            for change in plan.changes:
                own = guard_of(change.action, change.fields)
                if (
                    change.guard is not None
                    and change.guard is not own
                    and change.id not in excluded
                ):
                    followers.setdefault(change.guard.value, []).append(change.email)
            self.push_screen(ConfirmScreen(guards, followers), self._confirmed)
        else:
            self._apply(set())

    def _confirmed(self, confirmed: set[GuardedAction] | None) -> None:
        if confirmed is None:
            self.notify("Nothing was started.", title="Update cancelled")
            return
        self._apply(confirmed)

    @work(exclusive=True, group="sync", name=UPDATE, exit_on_error=False)
    async def _apply(self, confirmed: set[GuardedAction]) -> None:
        plan = self.plan
        assert plan is not None
        excluded = frozenset(self._excluded_ids())
        total = len(self.session.to_send(plan, confirmed, excluded))
        self.cancel_update = asyncio.Event()
        await self.switch_screen(UpdateScreen(self.where, total))
        self.progress = Progress.begin("Updating Zivver", total, unit=" changes")
        outcome = await self.session.apply(plan, confirmed, excluded, self.cancel_update)
        self.post_message(Applied(outcome))  # after every change's own event, in order

    @on(Applied)
    def _applied(self, message: Applied) -> None:
        outcome = message.outcome
        if outcome.result is None:  # refused before anything was sent: back to the summary
            self._event("error", outcome.message)
            self.progress = self.progress.end(outcome.message)
            self._show_summary()
            self.notify(outcome.message, severity="error", title="Not started", timeout=20)
            return
        self.outcome_code = outcome.exit_code
        self.applied = True  # the plan and the data loaded are from before these changes
        self.progress = self.progress.end(outcome.message)
        update = self._screen(UpdateScreen)
        if update is not None:
            update.ended(outcome.message, outcome.exit_code is ExitCode.OK)
        self._review_message = outcome.message

    @on(UpdateScreen.CancelRequested)
    def _cancel_update(self) -> None:
        self.cancel_update.set()
        self.progress = replace(self.progress, task="Cancelling after the current change…")

    @on(UpdateScreen.ReviewRequested)
    def _review_current(self) -> None:
        run = self.session.run_record()
        assert run is not None
        self.switch_screen(
            ReviewScreen(self.where, run, self.session.outcomes(), self._review_message)
        )

    # --- step 4 --------------------------------------------------------------------------

    @on(ReviewScreen.Inspect)
    def _inspect_outcome(self, message: ReviewScreen.Inspect) -> None:
        row: ChangeOutcome = message.row
        facts = [
            ("Action", row.action.value),
            ("Result", row.state.value),
            ("Source", row.source or "—"),
        ]
        if row.http_status:
            facts.append(("HTTP status", f"{row.http_status} after {row.attempts} attempt(s)"))
        sections = []
        if row.request:
            sections.append(("Request sent to Zivver", fmt.pretty_json(row.request)))
        if row.response:
            sections.append(("Zivver's response", fmt.pretty_json(row.response)))
        if not row.request and not row.state.was_sent:
            sections.append(("Request", "Nothing was sent for this change."))
        self.push_screen(
            DetailScreen(
                row.email,
                facts,
                diff_rows(row.before, row.after),
                sections,
                problem=row.error,
            )
        )

    @on(ReviewScreen.NewRequested)
    def _new_sync(self, message: ReviewScreen.NewRequested) -> None:
        if message.earlier:
            self.notify("Press Escape to leave the earlier run first.")
            return
        self.plan = None
        self._show_load(autostart=False)

    @on(ReviewScreen.Back)
    def _review_back(self, message: ReviewScreen.Back) -> None:
        if message.earlier:
            self.pop_screen()

    # --- beside the steps: the sources' data, Zivver's accounts, one account explained ----

    def action_profile(self) -> None:
        if self.busy:
            self.notify(f"Wait: {WHAT[self.busy]} is running.", severity="warning")
            return
        try:
            screen = ProfileScreen(Draft(ProfileDocument.load(self.session.config.path)))
        except ZsyncError as error:
            self.notify(str(error), severity="error")
            return
        self.push_screen(screen, self._profile_saved)

    def _profile_saved(self, config: Config | None) -> None:
        if config is None:
            return
        self.session.use_profile(config)
        self.notify(
            f"Saved {config.path}. Press r on the summary (or s on the first step) to read "
            "the sources and Zivver again with it.",
            title="Profile",
        )

    def action_connections(self) -> None:
        self.push_screen(ConnectionsScreen(self.session.config))

    def _zivver_rows(self, plan: Plan) -> list[ZivverRow]:
        """Zivver's rows for ``plan``, made once per plan (safe in a thread)."""
        made = self._rows
        if made is None or made[0] is not plan:
            made = self._rows = (plan, rows_of(self.session, plan))
        return made[1]

    def _needs_load(self, after_update: bool = False) -> bool:
        """Whether the data and plan cannot be shown (not loaded, or from before an update
        unless ``after_update``: the caller says it is)."""
        if self.plan is None or self.session.loaded is None:
            self.notify("Load the sources and Zivver first (s on the first step).")
            return True
        if self.applied and not after_update:
            self.notify(
                "The data loaded is from before the update that was just sent: start a new "
                "synchronization (n on the review) to see Zivver as it is now.",
                severity="warning",
            )
            return True
        return False

    def _one_list(self) -> None:
        """d and z replace each other (one list at a time)."""
        if isinstance(self.screen, AccountsScreen):
            self.pop_screen()

    def action_data(self) -> None:
        if self._needs_load():
            return
        loaded = self.session.loaded
        assert loaded is not None
        self._one_list()
        descriptions = {s.name: s.description for s in self.session.config.sources}
        self.push_screen(source_screen(self.where, loaded.sources, descriptions))

    @work(exclusive=True, group="look", exit_on_error=False)
    async def action_zivver(self) -> None:
        if self._needs_load():
            return
        plan = self.plan
        assert plan is not None
        rows = await asyncio.to_thread(self._zivver_rows, plan)
        self._one_list()
        url = self.session.config.target.url
        self.push_screen(zivver_screen(self.where, rows, urlsplit(url).hostname or url))

    @on(Explain)
    @work(exclusive=True, group="look", exit_on_error=False)
    async def _explain(self, message: Explain) -> None:
        """One account explained; after an update, its history (what was sent) with the
        account as read before it: the next run's change is not known until a new sync."""
        stale = self.applied
        if self._needs_load(after_update=True):
            return
        plan = self.plan
        assert plan is not None
        excluded = frozenset(self._excluded_ids())

        def explained() -> Explanation:
            rows = self._zivver_rows(plan)
            return explain_in(self.session, plan, message.address, rows, excluded)

        try:
            explanation = await asyncio.to_thread(explained)
        except ZsyncError as error:
            self.notify(str(error), severity="error")
            return
        self.push_screen(explanation_screen(explanation, before_update=stale))

    def action_history(self) -> None:
        if self._screen(HistoryScreen) is not None:
            return
        self.push_screen(HistoryScreen(self.where, self.session.runs()))

    @on(HistoryScreen.Open)
    def _open_run(self, message: HistoryScreen.Open) -> None:
        run = message.run
        self.push_screen(ReviewScreen(self.where, run, self.session.outcomes(run.id), earlier=True))

    @on(HistoryScreen.Back)
    def _history_back(self) -> None:
        self.pop_screen()

    # --- everywhere ----------------------------------------------------------------------

    def action_events(self) -> None:
        if isinstance(self.screen, EventsScreen):
            return
        try:
            stored = self.session.events()
        except ZsyncError as error:
            stored = [(time.time(), "error", str(error))]
        events = sorted(stored[-MAX_EVENTS:] + self.events, key=lambda e: e[0])
        self.push_screen(EventsScreen(events[-MAX_EVENTS:]))

    async def action_quit(self) -> None:
        if self.busy == UPDATE:
            self.notify(
                "The update is running. Press c to cancel it (it stops after the current change), then q.",
                severity="warning",
            )
            return
        self.exit(self.outcome_code or 0)


_ACTIVE = (WorkerState.PENDING, WorkerState.RUNNING)


def _loaded_line(loaded: LoadResult) -> str:
    source_total = sum(len(r.accounts) for r in loaded.sources)
    return (
        f"Loaded {source_total:,} accounts from the sources and {len(loaded.zivver):,} from Zivver."
    )
