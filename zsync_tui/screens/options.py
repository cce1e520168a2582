"""Change sync options: every option of the profile's [sync] table, the plan recomputed live.

A plan at 100,000 accounts takes about a second, so it is recomputed in a thread worker
(exclusive: a newer request replaces an older one) after a short pause in typing; the
screen answers every key at once and says when the figures are being recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from pydantic import ValidationError
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static
from textual.worker import Worker, WorkerState, get_current_worker

from zsync_core.config import SyncConfig
from zsync_core.model import Plan

from .. import fmt
from ..widgets.tick import Tick

GROUPS: dict[str, list[tuple[str, str]]] = {
    "Personal accounts (users)": [
        ("create_users", "Create new users"),
        ("update_users", "Update existing users (name, address, aliases)"),
        ("suspend_users", "Suspend users missing or disabled in the sources"),
        ("reactivate_users", "Re-enable users who are active again"),
        ("delete_users", "Delete users missing from the sources (irreversible)"),
        ("update_sso_keys", "Update the SsoAccountKey of existing users"),
    ],
    "Functional accounts": [
        ("create_functional_accounts", "Create new functional accounts"),
        ("update_functional_accounts", "Update functional accounts (name, aliases, delegates)"),
        ("suspend_functional_accounts", "Disable functional accounts (remove all delegates)"),
        ("delete_functional_accounts", "Delete functional accounts (irreversible)"),
    ],
    "Other": [
        ("sync_aliases", "Synchronize aliases"),
        ("sync_delegations", "Synchronize delegations"),
    ],
}


DEBOUNCE_SECONDS = 0.1
"""How long typing must pause before the plan is recomputed (a toggle waits as long)."""


@dataclass(frozen=True, slots=True)
class OptionsResult:
    options: SyncConfig
    save: bool
    """Also write the changed options into the profile (comments and layout are kept)."""
    plan: Plan | None = None
    """The plan with these options, when it was computed before the screen closed."""


class OptionsScreen(ModalScreen[OptionsResult | None]):
    CSS = """
    OptionsScreen { align: center middle; }
    #dialog { width: 90%; max-width: 100; height: 95%; border: thick $accent; background: $surface; padding: 0 1; }
    #fields { height: 1fr; }
    .group { text-style: bold; margin: 1 0 0 0; }
    Tick { border: none; padding: 0; height: 1; background: $surface; }
    .field { height: 3; }
    .field Label { width: 1fr; padding: 1 1 0 0; }
    .field Input { width: 24; }
    #effect { height: auto; padding: 1 0 0 0; }
    #buttons { height: 3; }
    #buttons Button { margin: 0 1 0 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+r", "use(False)", "Use for this run", priority=True),
        Binding("ctrl+s", "use(True)", "Save to profile", priority=True),
    ]

    class Replanned(Message):
        def __init__(self, options: SyncConfig, plan: Plan) -> None:
            super().__init__()
            self.options = options
            self.plan = plan

    def __init__(
        self, options: SyncConfig, profile: str, recompute: Callable[[SyncConfig], Plan]
    ) -> None:
        super().__init__()
        self.options = options
        self.profile = profile
        self.recompute = recompute
        self.latest: tuple[SyncConfig, Plan] | None = None
        self._pending: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                "[b]Synchronization options[/b] — the plan is recomputed as you change them."
            )
            with VerticalScroll(id="fields"):
                for heading, options in GROUPS.items():
                    yield Label(heading, classes="group")
                    for key, label in options:
                        yield Tick(label, getattr(self.options, key), id=key)
                yield Label("Limits and filter", classes="group")
                with Horizontal(classes="field"):
                    yield Label("Confirm suspending more than (%)")
                    yield Input(
                        f"{self.options.suspend_threshold_percent:g}",
                        id="suspend_threshold_percent",
                    )
                with Horizontal(classes="field"):
                    yield Label("Plan no removals if a source shrank by (%)")
                    yield Input(f"{self.options.shrink_guard_percent:g}", id="shrink_guard_percent")
                with Horizontal(classes="field"):
                    yield Label("Only these domains (comma-separated; empty = all)")
                    yield Input(", ".join(self.options.domains), id="domains")
            yield Static(id="effect")
            with Horizontal(id="buttons"):
                yield Button("Use for this run", id="use", variant="primary")
                yield Button(f"Save to {self.profile}", id="save")
                yield Button("Cancel", id="cancel")
            yield Footer()

    def on_mount(self) -> None:
        self._changed()

    def _read(self) -> SyncConfig:
        """The options as now on screen. Raises ValueError with a message for bad input."""
        values = self.options.model_dump()
        for options in GROUPS.values():
            for key, _ in options:
                values[key] = self.query_one(f"#{key}", Checkbox).value
        for key in ("suspend_threshold_percent", "shrink_guard_percent"):
            values[key] = self.query_one(f"#{key}", Input).value.strip()
        domains = self.query_one("#domains", Input).value
        values["domains"] = [d.strip() for d in domains.split(",") if d.strip()]
        try:
            return SyncConfig.model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"][:1])
            raise ValueError(f"sync.{field}: {first['msg']}") from None

    @on(Checkbox.Changed)
    @on(Input.Changed)
    def _changed(self) -> None:
        """Answer the key at once; recompute the plan once typing pauses."""
        effect = self.query_one("#effect", Static)
        if self._pending is not None:
            self._pending.stop()
            self._pending = None
        try:
            options = self._read()
        except ValueError as error:
            effect.update(fmt.styled((str(error), "b red")))
            return
        if self.latest is not None and self.latest[0] == options:
            self._show(self.latest[1])
            return
        effect.update("[i]Recomputing the plan with these options…[/]")
        self._pending = self.set_timer(DEBOUNCE_SECONDS, lambda: self._replan(options))

    @work(thread=True, exclusive=True, group="options-plan", name="plan", exit_on_error=False)
    def _replan(self, options: SyncConfig) -> None:
        plan = self.recompute(options)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Replanned(options, plan))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            self.latest = None
            self.query_one("#effect", Static).update(
                fmt.styled(
                    ("The plan could not be recomputed:", "b red"),
                    f" {event.worker.error!r}. This is a bug in zsync; Escape keeps the options "
                    "as they were.",
                )
            )

    @on(Replanned)
    def _replanned(self, message: Replanned) -> None:
        self.latest = (message.options, message.plan)
        try:
            current = self._read()
        except ValueError:
            return  # the input is invalid now; its error is on screen
        if current == message.options:
            self._show(message.plan)

    def _show(self, plan: Plan) -> None:
        guards = "; ".join(g.text for g in plan.guards)
        refused = (("\nUpdate now would be refused:", "b red"), f" {plan.refused}.")
        self.query_one("#effect", Static).update(
            fmt.styled(
                "With these options: ",
                (f"{len(plan.changes):,}", "b"),
                " change(s)"
                + (f", needing confirmation: {guards}" if guards else ", none needing confirmation")
                + ".",
                *(refused if plan.refused else ()),
            )
        )

    @on(Button.Pressed, "#use")
    def _use_pressed(self) -> None:
        self.action_use(False)

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_use(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_use(self, save: bool) -> None:
        try:
            options = self._read()
        except ValueError as error:
            self.notify(str(error), severity="error", title="Option not valid")
            return
        latest = self.latest[1] if self.latest and self.latest[0] == options else None
        self.dismiss(OptionsResult(options, save, latest))
