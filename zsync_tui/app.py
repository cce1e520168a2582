"""The Textual app: owns the session and decides which step is on screen.

Screens get their data in the constructor and send messages back; only this class
navigates, runs the long tasks (load, apply) in workers and turns core events into the
progress line, the step list and Recent events.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import ClassVar
from urllib.parse import urlsplit

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive

from zsync_core.config import GuardedAction, SyncConfig
from zsync_core.errors import ZsyncError
from zsync_core.model import Change, ChangeEvent, Event, LogEvent, Plan, StepEvent
from zsync_core.profile_edit import changed_options, save_sync_options
from zsync_core.session import EXIT_OK, SyncSession

from . import fmt
from .screens.confirm import ConfirmScreen
from .screens.detail import DetailScreen, diff_rows
from .screens.events import EventsScreen
from .screens.history import HistoryScreen
from .screens.load import LoadScreen
from .screens.options import OptionsResult, OptionsScreen
from .screens.preview import PreviewScreen
from .screens.review import ReviewScreen
from .screens.summary import SummaryScreen
from .screens.update import UpdateScreen
from .widgets.progress import Progress

MAX_EVENTS = 5000


def change_key(change: Change) -> str:
    """What identifies a change across recomputed plans (ids are renumbered)."""
    return f"{change.action.value}:{change.zivver_id or change.source_id or change.email}"


class ZsyncApp(App[int]):
    TITLE = "zsync"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "events", "Events"),
        Binding("H", "history", "History"),
        Binding("q", "quit", "Quit"),
    ]

    progress_tick: reactive[int] = reactive(0)

    def __init__(self, session: SyncSession, where: str | None = None) -> None:
        super().__init__()
        self.session = session
        session.mode = "tui"
        session.listen(self._emit_threadsafe)
        host = urlsplit(session.config.target.url).hostname or session.config.target.url
        self.where = where or f"{session.config.path.name} → {host}"
        self.progress = Progress()
        self.events: list[tuple[float, str, str]] = []
        self.plan: Plan | None = None
        self.excluded: set[str] = set()
        self.busy: str | None = None
        self.cancel_update = asyncio.Event()
        self.load_screen: LoadScreen | None = None
        self.update_screen: UpdateScreen | None = None
        self._thread = threading.get_ident()
        self.outcome_code: int | None = None
        self._review_message = ""

    # --- events from the core ------------------------------------------------------------

    def _emit_threadsafe(self, event: Event) -> None:
        if threading.get_ident() == self._thread:
            self._on_event(event)
        else:
            self.call_from_thread(self._on_event, event)

    def _on_event(self, event: Event) -> None:
        progress = self.progress
        if isinstance(event, StepEvent):
            progress.task = event.label + (
                f" ({event.detail})" if event.detail and event.state == "running" else ""
            )
            progress.done, progress.total = event.done, event.total
            if self.load_screen is not None and self.load_screen.is_attached:
                self.load_screen.step(event)
        elif isinstance(event, LogEvent):
            pass  # the session keeps it in the store's events
        elif isinstance(event, ChangeEvent):
            progress.done, progress.total, progress.failed = event.done, event.total, event.failed
            progress.task = f"Updating Zivver: {event.change.action.value} {event.change.email}"
            if not event.ok:
                self._event(
                    "error", f"{event.change.action.value} {event.change.email}: {event.error}"
                )
            if self.update_screen is not None and self.update_screen.is_attached:
                self.update_screen.applied(event)
        self.progress_tick += 1

    def _event(self, level: str, message: str) -> None:
        """An event the store does not keep itself (failed changes, the app's own errors)."""
        self.events.append((time.time(), level, message))
        del self.events[:-MAX_EVENTS]

    # --- step 1 --------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._show_load(autostart=False)

    def _show_load(self, autostart: bool) -> None:
        config = self.session.config
        host = urlsplit(config.target.url).hostname or config.target.url
        self.load_screen = LoadScreen(self.where, [s.name for s in config.sources], host)
        if len(self.screen_stack) > 1:
            self.switch_screen(self.load_screen)
        else:
            self.push_screen(self.load_screen)
        if autostart:
            self.call_after_refresh(self._load)

    @on(LoadScreen.StartRequested)
    def _start(self) -> None:
        self._load()

    @work(exclusive=True, group="sync")
    async def _load(self) -> None:
        screen = self.load_screen
        assert screen is not None
        self.busy = "load"
        screen.started()
        self.progress.begin("Loading the sources and Zivver")
        self.progress_tick += 1
        try:
            self.session.new_run()
            loaded = await self.session.load()
            if not loaded.ok:
                self.session.finish("aborted", {"errors": loaded.errors()}, healthy=False)
                screen.failed(loaded.errors())
                self.progress.end("Loading failed; nothing was changed. Press e for Recent events.")
                return
            self.plan = self.session.plan()
        except ZsyncError as error:
            self._event("error", str(error))
            screen.failed([str(error)])
            self.progress.end("Loading failed; nothing was changed.")
            return
        finally:
            self.busy = None
            self.progress_tick += 1
        screen.finished()
        self.excluded = set()
        source_total = sum(len(r.accounts) for r in loaded.sources)
        self.progress.end(
            f"Loaded {source_total:,} accounts from the sources and {len(loaded.zivver):,} from Zivver."
        )
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

    def _summary(self) -> SummaryScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, SummaryScreen)), None)

    @on(SummaryScreen.Chosen)
    def _chosen(self, message: SummaryScreen.Chosen) -> None:
        if message.what == "preview":
            assert self.plan is not None
            self.push_screen(
                PreviewScreen(self.where, self.plan, self._excluded_ids(), message.action)
            )
        elif message.what == "options":
            self.push_screen(
                OptionsScreen(self.session.options, self.session.config.path.name, self._recompute),
                self._options_chosen,
            )
        elif message.what == "reload":
            self._show_load(autostart=True)
        elif message.what == "update":
            self._update_now()

    def _recompute(self, options: SyncConfig) -> Plan:
        return self.session.plan(options)

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
                self.session.config = saved
                self.notify(
                    f"Saved to {self.session.config.path}: {', '.join(changes)}.",
                    title="Options saved",
                )
        elif changes:
            self.notify("These options apply to this run only; the profile is unchanged.")
        self.session.options = result.options
        self.plan = self.session.plan()
        summary = self._summary()
        if summary is not None:
            summary.show(self.plan, self._excluded_ids())

    @on(PreviewScreen.Closed)
    def _preview_closed(self, message: PreviewScreen.Closed) -> None:
        assert self.plan is not None
        ids = message.excluded
        self.excluded = {change_key(c) for c in self.plan.changes if c.id in ids}
        self.pop_screen()
        summary = self._summary()
        if summary is not None:
            summary.show(self.plan, self._excluded_ids())

    @on(PreviewScreen.Inspect)
    def _inspect_change(self, message: PreviewScreen.Inspect) -> None:
        change = message.change
        facts = [("Action", change.action.value), ("Source", change.source or "—")]
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
            self.notify(f"Wait: {self.busy} is running.", severity="warning")
            return
        excluded = self._excluded_ids()
        if not [c for c in plan.changes if c.id not in excluded]:
            self.notify("There is nothing to update.", title="Update now")
            return
        stale = self.session.superseded()
        if stale:
            self.notify(f"Not started: {stale}.", severity="error", timeout=15)
            return
        guards = [
            g
            for g in plan.guards
            if any(c.guard is g.action and c.id not in excluded for c in plan.changes)
        ]
        if guards:
            self.push_screen(ConfirmScreen(guards), self._confirmed)
        else:
            self._apply(set())

    def _confirmed(self, confirmed: set[GuardedAction] | None) -> None:
        if confirmed is None:
            self.notify("Nothing was started.", title="Update cancelled")
            return
        self._apply(confirmed)

    @work(exclusive=True, group="sync")
    async def _apply(self, confirmed: set[GuardedAction]) -> None:
        plan = self.plan
        assert plan is not None
        excluded = frozenset(self._excluded_ids())
        held = len([c for c in plan.held(confirmed) if c.id not in excluded])
        total = len(plan.changes) - len(excluded) - held
        try:
            self.session.store.lock()
        except ZsyncError as error:
            self._event("error", str(error))
            self.notify(str(error), severity="error", title="Not started", timeout=15)
            return
        self.busy = "the update"
        self.cancel_update = asyncio.Event()
        self.update_screen = UpdateScreen(self.where, total)
        await self.switch_screen(self.update_screen)
        self.progress.begin("Updating Zivver", total, unit=" changes")
        self.progress_tick += 1
        try:
            result = await self.session.apply(plan, confirmed, excluded, self.cancel_update)
            outcome = self.session.conclude(plan, result, confirmed)
            message, ok = outcome.message, outcome.exit_code == EXIT_OK
            self.outcome_code = outcome.exit_code
        except ZsyncError as error:
            self._event("error", str(error))
            try:
                self.session.finish("aborted", {"errors": [str(error)]}, healthy=False)
            except ZsyncError:
                pass
            message, ok = f"The update could not run: {error}", False
        finally:
            self.session.store.unlock()
            self.busy = None
        self.progress.end(message)
        self.progress_tick += 1
        self.update_screen.ended(message, ok)
        self._review_message = message

    @on(UpdateScreen.CancelRequested)
    def _cancel_update(self) -> None:
        self.cancel_update.set()
        self.progress.task = "Cancelling after the current change…"
        self.progress_tick += 1

    @on(UpdateScreen.ReviewRequested)
    def _review_current(self) -> None:
        run_id = self.session.run_id
        run = next(r for r in self.session.store.runs() if r.id == run_id)
        rows = self.session.store.changes(run.id)
        self.switch_screen(ReviewScreen(self.where, run, rows, self._review_message))

    # --- step 4 --------------------------------------------------------------------------

    @on(ReviewScreen.Inspect)
    def _inspect_outcome(self, message: ReviewScreen.Inspect) -> None:
        row = message.row
        facts = [
            ("Action", row["action"]),
            ("Result", row["state"]),
            ("Source", row["source"] or "—"),
        ]
        if row["http_status"]:
            facts.append(
                ("HTTP status", f"{row['http_status']} after {row['attempts']} attempt(s)")
            )
        sections = []
        if row["request"]:
            sections.append(("Request sent to Zivver", fmt.pretty_json(row["request"])))
        if row["response"]:
            sections.append(("Zivver's response", fmt.pretty_json(row["response"])))
        if not row["request"] and row["state"] not in ("succeeded", "failed"):
            sections.append(("Request", "Nothing was sent for this change."))
        self.push_screen(
            DetailScreen(
                row["email"],
                facts,
                diff_rows(row["before"] or {}, row["after"] or {}),
                sections,
                problem=row["error"],
            )
        )

    @on(ReviewScreen.NewRequested)
    def _new_sync(self) -> None:
        if len(self.screen_stack) > 2:  # a review opened from the history
            self.notify("Press Escape to leave the earlier run first.")
            return
        self.plan = None
        self._show_load(autostart=False)

    @on(ReviewScreen.Back)
    def _review_back(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()

    def action_history(self) -> None:
        if any(isinstance(s, HistoryScreen) for s in self.screen_stack):
            return
        self.push_screen(HistoryScreen(self.where, self.session.store.runs()))

    @on(HistoryScreen.Open)
    def _open_run(self, message: HistoryScreen.Open) -> None:
        run = message.run
        self.push_screen(ReviewScreen(self.where, run, self.session.store.changes(run.id)))

    @on(HistoryScreen.Back)
    def _history_back(self) -> None:
        self.pop_screen()

    # --- everywhere ----------------------------------------------------------------------

    def action_events(self) -> None:
        if isinstance(self.screen, EventsScreen):
            return
        try:
            stored = [e for e in self.session.store.events() if e[1] != "info"]
        except ZsyncError as error:
            stored = [(time.time(), "error", str(error))]
        events = sorted(stored[-MAX_EVENTS:] + self.events, key=lambda e: e[0])
        self.push_screen(EventsScreen(events[-MAX_EVENTS:]))

    async def action_quit(self) -> None:
        if self.busy == "the update":
            self.notify(
                "The update is running. Press c to cancel it (it stops after the current change), then q.",
                severity="warning",
            )
            return
        self.exit(self.outcome_code or 0)
