"""Step 4 — Review: failed changes first, each error explained; Enter shows the exchange."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from zsync_core.outcome import ChangeOutcome, ChangeState, RunRecord

from .. import fmt
from ..widgets.table import Column, VirtualTable
from .accounts import Explain
from .base import StepScreen

ORDER = {
    ChangeState.FAILED: 0,
    ChangeState.SENDING: 1,
    ChangeState.SUCCEEDED: 2,
    ChangeState.HELD: 3,
    ChangeState.EXCLUDED: 4,
    ChangeState.CANCELLED: 5,
    ChangeState.PLANNED: 6,
}
ROW_CLASS = {
    ChangeState.FAILED: "error",
    ChangeState.SENDING: "warning",
    ChangeState.SUCCEEDED: "success",
    ChangeState.EXCLUDED: "muted",
}
STATES: list[ChangeState | None] = [
    None,
    ChangeState.FAILED,
    ChangeState.SUCCEEDED,
    ChangeState.HELD,
    ChangeState.EXCLUDED,
    ChangeState.CANCELLED,
]
PLAIN = {
    ChangeState.SUCCEEDED: "done",
    ChangeState.HELD: "held: needs confirmation",
    ChangeState.EXCLUDED: "excluded from this run by the admin",
    ChangeState.CANCELLED: "not sent: the update was cancelled",
    ChangeState.PLANNED: "not sent (dry run or not applied)",
    ChangeState.SENDING: "no answer recorded: the run was interrupted; the next run checks it",
}


def run_line(run: RunRecord) -> str:
    """'Run 12 · manual · 14:03:27 · completed · 28 succeeded, 2 failed'."""
    return run.describe(fmt.clock(run.started_at))


class ReviewScreen(StepScreen):
    STEP = 4
    CSS = """
    #intro { padding: 1 1 0 1; height: auto; }
    #run { padding: 0 1 1 1; height: auto; color: $text-muted; }
    #changes { margin: 0 1; }
    #current { height: auto; max-height: 3; margin: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter", "Filter"),
        Binding("n", "new", "New sync"),
        Binding("w", "why", "Why?"),
        Binding("escape", "back", "Back", show=False),
    ]

    class Inspect(Message):
        def __init__(self, row: ChangeOutcome) -> None:
            super().__init__()
            self.row = row

    class NewRequested(Message):
        def __init__(self, earlier: bool) -> None:
            super().__init__()
            self.earlier = earlier

    class Back(Message):
        def __init__(self, earlier: bool) -> None:
            super().__init__()
            self.earlier = earlier

    def __init__(
        self,
        where: str,
        run: RunRecord,
        rows: list[ChangeOutcome],
        message: str = "",
        *,
        earlier: bool = False,
    ) -> None:
        super().__init__(where)
        self.run = run
        self.all_rows = sorted(rows, key=lambda r: (ORDER.get(r.state, 9), r.change_id))
        self.message = message
        self.earlier = earlier
        """An earlier run, opened from the history (Escape goes back to it)."""
        self.state: ChangeState | None = None

    def body(self) -> Iterable[Widget]:
        yield Static(fmt.styled(("Step 4 — Review.", "b"), " " + self.message), id="intro")
        yield Static(fmt.styled(run_line(self.run)), id="run")
        yield VirtualTable(
            [
                Column("Result", 9),
                Column("Action", 18),
                Column("Account", share=1),
                Column("What Zivver said", share=2),
            ],
            lambda r: (r.state.value, r.action.value, r.email, r.error or PLAIN.get(r.state, "")),
            lambda r: ROW_CLASS.get(r.state),
            empty="This run has no changes.",
            id="changes",
        )
        yield Static(id="current")

    def on_mount(self) -> None:
        self.refilter()
        self.query_one(VirtualTable).focus()

    def refilter(self) -> None:
        rows = [r for r in self.all_rows if self.state is None or r.state is self.state]
        table = self.query_one(VirtualTable)
        if self.state is not None:
            table.empty = f"No change is {self.state.value} (f shows the next filter)."
        else:
            table.empty = "This run has no changes."
        table.set_rows(rows)
        showing = f"showing {self.state.value} changes" if self.state else "showing all changes"
        self.query_one("#run", Static).update(
            fmt.styled(run_line(self.run), " · ", (f"{showing} ({len(rows):,})", "b"))
        )

    @on(VirtualTable.Highlighted)
    def _current(self, event: VirtualTable.Highlighted) -> None:
        """The row under the cursor whole (a narrow terminal cuts Zivver's answer)."""
        row: ChangeOutcome | None = event.row
        said = ""
        if row is not None:
            said = f"{row.email}: {row.error or PLAIN.get(row.state, row.state.value)}"
        self.query_one("#current", Static).update(Text(fmt.plain(said)))

    @on(VirtualTable.Selected)
    def _inspect(self, event: VirtualTable.Selected) -> None:
        self.post_message(self.Inspect(event.row))

    def action_filter(self) -> None:
        self.state = STATES[(STATES.index(self.state) + 1) % len(STATES)]
        self.refilter()

    def action_why(self) -> None:
        row = self.query_one(VirtualTable).current
        if row is not None:
            self.post_message(Explain(row.email))

    def action_new(self) -> None:
        self.post_message(self.NewRequested(self.earlier))

    def action_back(self) -> None:
        self.post_message(self.Back(self.earlier))
