"""Step 3 — Update now: the changes go to Zivver, live; c cancels cleanly between changes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from zsync_core.model import ChangeEvent

from .. import fmt
from ..widgets.table import Column, VirtualTable
from .base import StepScreen


class UpdateScreen(StepScreen):
    STEP = 3
    CSS = """
    #intro { padding: 1 1 1 1; height: auto; }
    #log { margin: 0 1; }
    #outcome { height: auto; margin: 1 1 0 1; padding: 0 1; border: round $success; }
    #outcome.failed { border: round $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel", "Cancel the update"),
        Binding("v", "review", "Review changes"),
    ]

    class CancelRequested(Message):
        pass

    class ReviewRequested(Message):
        pass

    def __init__(self, where: str, total: int) -> None:
        super().__init__(where)
        self.total = total
        self.rows: list[ChangeEvent] = []
        self.done = False

    def body(self) -> Iterable[Widget]:
        yield Static(
            f"[b]Step 3 — Update now.[/b] Sending {self.total:,} change(s) to Zivver, users first, "
            "paced to Zivver's rate limit. [b]c[/b] cancels after the current change.",
            id="intro",
        )
        yield VirtualTable(
            [
                Column("Result", 9),
                Column("Action", 18),
                Column("Account", share=1),
                Column("Error", share=2),
            ],
            lambda e: (
                "ok" if e.ok else "FAILED",
                e.change.action.value,
                e.change.email,
                e.error or "",
            ),
            lambda e: None if e.ok else "error",
            empty="Waiting for the first answer from Zivver…",
            id="log",
        )
        yield Static(id="outcome")

    def on_mount(self) -> None:
        self.query_one("#outcome", Static).display = False

    def applied(self, event: ChangeEvent) -> None:
        self.rows.append(event)
        table: VirtualTable[ChangeEvent] = self.query_one(VirtualTable)
        if table.rows is not self.rows:
            table.set_rows(self.rows)
        table.grew(follow=not self.done)

    def ended(self, message: str, ok: bool) -> None:
        self.done = True
        table: VirtualTable[ChangeEvent] = self.query_one(VirtualTable)
        failed = next((i for i, e in enumerate(self.rows) if not e.ok), None)
        if failed is not None:
            table.show_at_top(failed)  # the first failure, in view
        outcome = self.query_one("#outcome", Static)
        outcome.set_class(not ok, "failed")
        outcome.update(
            fmt.styled((message, "b"), "  Press ", ("v", "b"), " to review the changes.")
        )
        outcome.display = True
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cancel is offered while the update runs, the review once it has ended."""
        if action == "cancel":
            return not self.done
        if action == "review":
            return self.done
        return True

    def action_cancel(self) -> None:
        if self.done:
            self.notify("The update has already ended.")
            return
        self.post_message(self.CancelRequested())

    def action_review(self) -> None:
        if not self.done:
            self.notify("The update is still running; c cancels it.", severity="warning")
            return
        self.post_message(self.ReviewRequested())
