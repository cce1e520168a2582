"""Step 4 — Review: failed changes first, each error explained; Enter shows the exchange."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from zsync_core.store import RunRecord

from .. import fmt
from ..widgets.table import Column, VirtualTable
from .base import HERE, StepScreen

ORDER = {
    "failed": 0,
    "sending": 1,
    "succeeded": 2,
    "held": 3,
    "excluded": 4,
    "cancelled": 5,
    "planned": 6,
}
ROW_CLASS = {"failed": "error", "sending": "warning", "succeeded": "success", "excluded": "muted"}
STATES = [None, "failed", "succeeded", "held", "excluded", "cancelled"]


def counts(run: RunRecord) -> str:
    """'28 succeeded, 2 failed' from a run's summary."""
    return ", ".join(f"{v} {k}" for k, v in run.summary.items() if isinstance(v, int) and v)


def run_line(run: RunRecord) -> str:
    """'Run 12 · manual · 14:03:27 · completed · 28 succeeded, 2 failed'."""
    done = counts(run)
    mode = {"tui": "manual", "headless": "daily (headless)"}.get(run.mode, run.mode)
    dry = " (dry run)" if run.dry_run else ""
    return f"Run {run.id} · {mode}{dry} · {fmt.clock(run.started_at)} · {run.status}" + (
        f" · {done}" if done else ""
    )


class ReviewScreen(StepScreen):
    STEP = 4
    CSS_PATH = HERE / "review.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter", "Filter by result"),
        Binding("n", "new", "New synchronization"),
        Binding("escape", "back", "Back", show=False),
    ]

    class Inspect(Message):
        def __init__(self, row: dict[str, Any]) -> None:
            super().__init__()
            self.row = row

    class NewRequested(Message):
        pass

    class Back(Message):
        pass

    def __init__(
        self, where: str, run: RunRecord, rows: list[dict[str, Any]], message: str = ""
    ) -> None:
        super().__init__(where)
        self.run = run
        self.all_rows = sorted(rows, key=lambda r: (ORDER.get(r["state"], 9), r["change_id"]))
        self.message = message
        self.state: str | None = None

    def body(self) -> Iterable[Widget]:
        heading = "[b]Step 4 — Review.[/b] " + (self.message or "")
        yield Static(heading, id="intro")
        yield Static(run_line(self.run), id="run")
        yield VirtualTable(
            [
                Column("Result", 9),
                Column("Action", 18),
                Column("Account", 30),
                Column("What Zivver said"),
            ],
            lambda r: (r["state"], r["action"], r["email"], r["error"] or _plain(r)),
            lambda r: ROW_CLASS.get(r["state"]),
            empty="This run has no changes.",
            id="changes",
        )

    def on_mount(self) -> None:
        self.refilter()
        self.query_one(VirtualTable).focus()

    def refilter(self) -> None:
        rows = [r for r in self.all_rows if self.state is None or r["state"] == self.state]
        self.query_one(VirtualTable).set_rows(rows)

    @on(VirtualTable.Selected)
    def _inspect(self, event: VirtualTable.Selected) -> None:
        self.post_message(self.Inspect(event.row))

    def action_filter(self) -> None:
        self.state = STATES[(STATES.index(self.state) + 1) % len(STATES)]
        self.refilter()
        self.notify(f"Showing {self.state or 'all'} changes.")

    def action_new(self) -> None:
        self.post_message(self.NewRequested())

    def action_back(self) -> None:
        self.post_message(self.Back())


def _plain(row: dict[str, Any]) -> str:
    return {
        "succeeded": "done",
        "held": "held: needs confirmation",
        "excluded": "excluded from this run by the admin",
        "cancelled": "not sent: the update was cancelled",
        "planned": "not sent (dry run or not applied)",
        "sending": "no answer recorded: the run was interrupted; the next run checks it",
    }.get(row["state"], "")
