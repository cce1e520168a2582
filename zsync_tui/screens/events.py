"""Recent events: every warning and error of this session and earlier runs, newest last."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, RichLog, Static

from .. import fmt

LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": ""}


class EventsScreen(ModalScreen[None]):
    CSS = """
    EventsScreen { align: center middle; }
    #dialog { width: 96%; height: 92%; border: thick $accent; background: $surface; padding: 0 1; }
    #title { height: auto; padding: 0 0 1 0; }
    #log { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,e,q", "close", "Close")]

    def __init__(self, events: list[tuple[float, str, str]]) -> None:
        super().__init__()
        self.events = events

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                f"[b]Recent events[/b] — {len(self.events)} (errors and warnings of the last runs)",
                id="title",
            )
            yield RichLog(wrap=True, min_width=20, markup=False, highlight=False, id="log")
            yield Footer()

    def on_mount(self) -> None:
        log = self.query_one(RichLog)
        if not self.events:
            log.write(Text("Nothing has happened yet.", style="dim"))
        for at, level, message in self.events:
            line = Text(f"{fmt.clock(at)} ", style="dim")
            line.append(f"{level.upper():<7}", style=LEVEL_STYLE.get(level, ""))
            line.append("  ")
            line.append(fmt.block(message))
            log.write(line)
        log.focus()

    def action_close(self) -> None:
        self.dismiss(None)
