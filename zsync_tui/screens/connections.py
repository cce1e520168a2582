"""Test connections, one by one: Zivver and each source, as ``zsync check`` tests them. Only
reads; Enter tests the line under the cursor, a tests them all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from zsync_core.check import CheckResult
from zsync_core.config import Config
from zsync_core.connections import check_source, check_target

from .. import fmt
from ..widgets.table import Column, ConnectionTable, VirtualTable


@dataclass(slots=True)
class Line:
    """One connection and what its last test found."""

    what: str
    test: Callable[[], Awaitable[list[CheckResult]]]
    state: str = "not tested"
    results: list[CheckResult] = field(default_factory=list)

    @property
    def said(self) -> str:
        return "; ".join(
            f"{r.what}: {r.message}" if r.what and not r.ok else r.message for r in self.results
        )


STATE_CLASS = {"ok": "success", "FAILED": "error", "testing…": "warning", "warning": "warning"}


class ConnectionsScreen(ModalScreen[None]):
    CSS = """
    ConnectionsScreen { align: center middle; }
    #dialog { width: 96%; height: 92%; border: thick $accent; background: $surface; padding: 0 1; }
    #title { height: auto; padding: 0 0 1 0; }
    #lines { height: 1fr; }
    #current { height: auto; max-height: 8; padding: 1 0 0 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "test_all", "Test all"),
        Binding("escape,q", "close", "Close"),
    ]

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.lines = [Line(f"Zivver at {config.target.url}", lambda: check_target(config))]
        for source in config.sources:
            described = f" — {source.description}" if source.description else ""
            self.lines.append(
                Line(
                    f"source {source.name!r} ({source.type}){described}",
                    lambda name=source.name: check_source(config, name),  # type: ignore[misc]
                )
            )

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                "[b]Test connections[/b] — Enter tests the line under the cursor, a tests "
                "them all. Only reads: nothing is sent to Zivver, nothing is kept.",
                id="title",
            )
            yield ConnectionTable(
                [Column("State", 10), Column("Connection", share=1), Column("Result", share=2)],
                lambda line: (line.state, line.what, line.said),
                lambda line: STATE_CLASS.get(line.state),
                id="lines",
            )
            yield Static(id="current")
            yield Footer()

    def on_mount(self) -> None:
        table: VirtualTable[Line] = self.query_one(VirtualTable)
        table.set_rows(self.lines)
        table.focus()

    @on(VirtualTable.Highlighted)
    def _current(self, event: VirtualTable.Highlighted) -> None:
        line: Line | None = event.row
        text = Text()
        if line is not None and line.results:
            for result in line.results:
                mark = "✓ " if result.ok and not result.warning else "! " if result.ok else "✗ "
                text.append(mark, style="green" if result.ok else "bold red")
                said = f"{result.what}: {result.message}" if result.what else result.message
                text.append(fmt.plain(said) + "\n")
        self.query_one("#current", Static).update(text)

    @on(VirtualTable.Selected)
    def _test_one(self, event: VirtualTable.Selected) -> None:
        self.test([event.row])

    def action_test_all(self) -> None:
        self.test(self.lines)

    @work(group="connections", exit_on_error=False)
    async def test(self, lines: list[Line]) -> None:
        table: VirtualTable[Line] = self.query_one(VirtualTable)
        for line in lines:
            line.state, line.results = "testing…", []
        table.refresh_rows()
        for line in lines:
            try:
                line.results = await line.test()
            except Exception as error:  # noqa: BLE001 - a test's own fault, said on its line
                line.results = [CheckResult("", False, f"the test itself failed: {error!r}")]
            failed = any(not r.ok for r in line.results)
            warned = any(r.warning for r in line.results)
            line.state = "FAILED" if failed else "warning" if warned else "ok"
            table.refresh_rows()
            if table.current is line:
                self._current(VirtualTable.Highlighted(table, line))

    def action_close(self) -> None:
        self.dismiss(None)
