"""Earlier runs from the local store; Enter reviews one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from zsync_core.outcome import RunRecord, RunStatus
from zsync_core.wording import mode_name

from .. import fmt
from ..widgets.table import Column, VirtualTable
from .base import StepScreen

STATUS_CLASS = {
    RunStatus.COMPLETED: "success",
    RunStatus.FAILED_CHANGES: "error",
    RunStatus.STOPPED: "error",
    RunStatus.ABORTED: "error",
    RunStatus.INTERRUPTED: "error",
    RunStatus.HELD: "warning",
    RunStatus.ATTENTION: "warning",
    RunStatus.CANCELLED: "warning",
}


class HistoryScreen(StepScreen):
    STEP = 4
    CSS = """
    #intro { padding: 1 1 0 1; height: auto; }
    #run { padding: 0 1 1 1; height: auto; color: $text-muted; }
    #changes { margin: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    class Open(Message):
        def __init__(self, run: RunRecord) -> None:
            super().__init__()
            self.run = run

    class Back(Message):
        pass

    def __init__(self, where: str, runs: list[RunRecord]) -> None:
        super().__init__(where)
        self.runs = runs

    def body(self) -> Iterable[Widget]:
        yield Static(
            "[b]Earlier runs[/b] (newest first). Enter reviews a run's changes.", id="intro"
        )
        yield Static("Kept in the local store next to the profile.", id="run")
        yield VirtualTable(
            [
                Column("Run", 5),
                Column("Started", 16),
                Column("Mode", 8),
                Column("Dry", 3),
                Column("Status", 14),
                Column("Changes"),
            ],
            lambda r: (
                str(r.id),
                fmt.clock(r.started_at),
                mode_name(r.mode),
                "yes" if r.dry_run else "",
                r.status.value,
                r.counts or "—",
            ),
            lambda r: STATUS_CLASS.get(r.status),
            empty="No runs yet.",
            id="changes",
        )

    def on_mount(self) -> None:
        self.query_one(VirtualTable).set_rows(self.runs)
        self.query_one(VirtualTable).focus()

    @on(VirtualTable.Selected)
    def _open(self, event: VirtualTable.Selected) -> None:
        self.post_message(self.Open(event.row))

    def action_back(self) -> None:
        self.post_message(self.Back())
