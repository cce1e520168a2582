"""Step 1 — Load and parse: every source in order, then Zivver; each sub-step with its state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from zsync_core.model import StepEvent

from .. import fmt
from ..widgets.table import Column, VirtualTable
from .base import StepScreen

STATE_MARK = {"waiting": "waiting", "running": "running…", "done": "done", "failed": "FAILED"}


@dataclass(slots=True)
class StepRow:
    key: str
    label: str
    state: str = "waiting"
    done: int | None = None
    detail: str = ""


class LoadScreen(StepScreen):
    STEP = 1
    CSS = """
    #intro { padding: 1 1 1 1; height: auto; }
    #steps { height: 1fr; margin: 0 1; }
    #errors { height: auto; max-height: 12; margin: 1 1 0 1; padding: 0 1; border: round $error; color: $text; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "start", "Start")]

    class StartRequested(Message):
        """The admin pressed Start."""

    def __init__(self, where: str, sources: list[tuple[str, str]], target: str) -> None:
        """``sources``: each source's name and description ("" for none), in order."""
        super().__init__(where)
        self.sources = sources
        self.target = target
        self.rows: list[StepRow] = []
        self.busy = False
        """Loading (not Textual's ``loading``, which would cover the steps with a spinner)."""

    def body(self) -> Iterable[Widget]:
        listed = ", ".join(repr(name) for name, _description in self.sources)
        yield Static(
            fmt.styled(
                ("Step 1 — Load and parse.", "b"),
                " Press ",
                ("s", "b"),
                f" (Start) to read the latest data from {listed} and from Zivver ({self.target}). "
                "Nothing is changed in this step.",
            ),
            id="intro",
        )
        yield VirtualTable(
            [Column("State", 9), Column("Step"), Column("Count", 12)],
            lambda row: (STATE_MARK[row.state], row.label, _count(row)),
            lambda row: {"failed": "error", "done": "success", "running": "warning"}.get(row.state),
            empty="Press s to start.",
            id="steps",
            opens=lambda row: bool(row.detail),  # a step's error, or what it read
        )
        yield Static("", id="errors")

    def on_mount(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.rows = [
            StepRow(f"{name}:", f"{name}: read" + (f" — {about}" if about else ""))
            for name, about in self.sources
        ]
        self.rows.append(StepRow("Zivver:", "Zivver: read users and functional accounts"))
        self.query_one(VirtualTable).set_rows(self.rows)
        errors = self.query_one("#errors", Static)
        errors.update("")
        errors.display = False

    @on(VirtualTable.Selected)
    def _explain(self, event: VirtualTable.Selected) -> None:
        row: StepRow = event.row
        self.notify(row.detail or f"{row.label}: {row.state}", title="Step")

    def action_start(self) -> None:
        if self.busy:
            self.notify("Loading is already running.", severity="warning")
            return
        self.post_message(self.StartRequested())

    def started(self) -> None:
        self.busy = True
        self.reset()

    def step(self, event: StepEvent) -> None:
        """A sub-step moved: update its row, adding it (in place of the placeholder) if new."""
        row = next((r for r in self.rows if r.key == event.step), None)
        if row is None:
            row = StepRow(event.step, event.label)
            placeholder = next(
                (
                    i
                    for i, r in enumerate(self.rows)
                    if r.state == "waiting" and event.step.startswith(r.key)
                ),
                None,
            )
            if placeholder is not None:
                self.rows[placeholder] = row
            else:
                position = max(
                    (
                        i + 1
                        for i, r in enumerate(self.rows)
                        if event.step.split(":")[0] == r.key.split(":")[0]
                    ),
                    default=len(self.rows),
                )
                self.rows.insert(position, row)
        row.state = event.state
        if event.total is not None or event.done:
            row.done = event.done
        row.detail = event.detail
        table = self.query_one(VirtualTable)
        table.set_rows(self.rows, keep=row)
        table.refresh_bindings()

    def failed(self, errors: list[str]) -> None:
        """The load ended with errors: say what failed, and that nothing was changed."""
        self.busy = False
        for row in self.rows:
            if row.state in ("waiting", "running"):
                row.state = "failed" if row.state == "running" else row.state
        self.query_one(VirtualTable).refresh_rows()
        panel = self.query_one("#errors", Static)
        lines = "\n".join(f"• {error}" for error in errors)
        panel.update(
            fmt.styled(
                ("Loading failed, so nothing can be changed.", "b"),
                f"\n{lines}\nFix the cause, then press ",
                ("s", "b"),
                " to start again. ",
                ("e", "b"),
                " shows Recent events.",
            )
        )
        panel.display = True

    def finished(self) -> None:
        self.busy = False


def _count(row: StepRow) -> str:
    if row.done is None:
        return ""
    return f"{row.done:,}"
