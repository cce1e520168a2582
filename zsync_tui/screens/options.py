"""Change sync options: every option of the profile's [sync] table, the plan recomputed live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from zsync_core.config import SyncConfig
from zsync_core.model import Plan

from ..widgets.tick import Tick
from .base import HERE

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


@dataclass(frozen=True, slots=True)
class OptionsResult:
    options: SyncConfig
    save: bool
    """Also write the changed options into the profile (comments and layout are kept)."""


class OptionsScreen(ModalScreen[OptionsResult | None]):
    CSS_PATH = HERE / "options.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+r", "use(False)", "Use for this run", priority=True),
        Binding("ctrl+s", "use(True)", "Save to profile", priority=True),
    ]

    def __init__(
        self, options: SyncConfig, profile: str, recompute: Callable[[SyncConfig], Plan]
    ) -> None:
        super().__init__()
        self.options = options
        self.profile = profile
        self.recompute = recompute

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
        self._recompute()

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
    def _recompute(self) -> None:
        effect = self.query_one("#effect", Static)
        try:
            options = self._read()
        except ValueError as error:
            effect.update(f"[b red]{error}[/]")
            return
        plan = self.recompute(options)
        guards = "; ".join(g.text for g in plan.guards)
        effect.update(
            f"With these options: [b]{len(plan.changes):,}[/b] change(s)"
            + (f", needing confirmation: {guards}" if guards else ", none needing confirmation")
            + "."
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
        self.dismiss(OptionsResult(options, save))
