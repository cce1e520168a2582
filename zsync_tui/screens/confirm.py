"""The confirmation checklist: every guarded action in the plan must be ticked to start."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from zsync_core.config import GuardedAction
from zsync_core.model import Guard

from .. import fmt
from ..widgets.tick import Tick
from .lines import LinesScreen

WHY = {
    GuardedAction.SUSPEND_USERS: "Suspending a large part of your organization is unusual and often unintended.",
    GuardedAction.SUSPEND_FUNCTIONAL: "Their delegates lose access; unusual and often unintended.",
    GuardedAction.DELETE_USERS: "Irreversible: the Zivver messages of these users are lost.",
    GuardedAction.DELETE_FUNCTIONAL: "Irreversible: the messages of these functional accounts are lost.",
    GuardedAction.UPDATE_SSO_KEYS: "Can break logging in to Zivver with single sign-on.",
}


class ConfirmScreen(ModalScreen[set[GuardedAction] | None]):
    """Returns the ticked actions when the admin starts the update, None on Escape."""

    CSS = """
    ConfirmScreen { align: center middle; }
    #dialog { width: 90%; max-width: 90; height: auto; max-height: 95%; border: thick $error; background: $surface; padding: 0 1; }
    #explain { height: auto; padding: 0 0 1 0; }
    #checklist { height: auto; max-height: 14; }
    #checklist Tick { border: none; padding: 0; height: auto; background: $surface; }
    #checklist .names { height: auto; padding: 0 0 0 4; }
    #missing { height: auto; padding: 1 0 0 0; color: $warning; }
    #buttons { height: 3; margin: 1 0 0 0; }
    #buttons Button { margin: 0 1 0 0; }
    #why { height: auto; padding: 1 0 0 0; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("u", "start", "Update now"),
        Binding("l", "list", "List the accounts"),
        Binding("down", "app.focus_next", "Next", show=False),
        Binding("up", "app.focus_previous", "Previous", show=False),
    ]

    def __init__(self, guards: list[Guard], followers: dict[str, list[str]] | None = None) -> None:
        """``followers``: by guard, the other accounts whose change waits with it (a
        functional account that loses the leavers as delegates)."""
        super().__init__()
        self.guards = guards
        self.followers = followers or {}

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                "[b]Confirm before updating[/b]\nThis run contains actions with a large or irreversible "
                "effect. Tick each one (space) to confirm it; the update starts only when all are ticked.",
                id="explain",
            )
            with Vertical(id="checklist"):
                for guard in self.guards:
                    # a checkbox's label is one line: the rest of the item wraps below it
                    yield Tick(Text(guard.label, style="bold"), id=guard.action.value)
                    yield Static(
                        fmt.styled(
                            (guard.detail.strip(), "bold"),
                            (f"\n{guard.named()}" if guard.accounts else "", "dim"),
                        ),
                        classes="names",
                    )
            yield Static(
                "\n".join(f"• {g.label}: {WHY[g.action]}" for g in self.guards),
                id="why",
            )
            yield Static(id="missing")
            with Horizontal(id="buttons"):
                yield Button("Update now", id="start", variant="error", disabled=True)
                yield Button("Cancel", id="cancel")
            yield Footer()

    def _selected(self) -> set[GuardedAction]:
        return {GuardedAction(t.id) for t in self.query(Tick) if t.value and t.id}

    def on_mount(self) -> None:
        self._ticked()
        self.query(Tick).first().focus()

    @on(Tick.Changed)
    def _ticked(self) -> None:
        left = len(self.guards) - len(self._selected())
        self.query_one("#start", Button).disabled = left > 0
        self.query_one("#missing", Static).update(
            f"{left} of {len(self.guards)} still to confirm."
            if left
            else "All confirmed. Press u to start."
        )

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        selected = self._selected()
        if len(selected) < len(self.guards):
            self.notify(
                "Tick every item first (space), or press Escape to go back.", severity="warning"
            )
            return
        self.dismiss(selected)

    def action_list(self) -> None:
        """Every account of the item in focus (the first item when none is)."""
        focused = self.focused
        guard = next((g for g in self.guards if focused and g.action.value == focused.id), None)
        guard = guard or self.guards[0]
        lines = list(guard.accounts)
        followers = self.followers.get(guard.action.value, [])
        if followers:
            lines += ["", "Updated with them (the leavers removed as delegates):", *followers]
        self.app.push_screen(LinesScreen(f"{guard.text}: {len(guard.accounts)}", lines))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
