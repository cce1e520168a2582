"""A list to open: every line of something a screen shows only the start of (the accounts a
checklist item holds, the source entries a read could not use)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, RichLog, Static

from .. import fmt


class LinesScreen(ModalScreen[None]):
    CSS = """
    LinesScreen { align: center middle; }
    #dialog { width: 96%; height: 92%; border: thick $accent; background: $surface; padding: 0 1; }
    #title { height: auto; padding: 0 0 1 0; }
    #lines { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,l", "close", "Close")]

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(fmt.plain(self.title_text), style="bold"), id="title")
            yield RichLog(wrap=True, min_width=20, markup=False, highlight=False, id="lines")
            yield Footer()

    def on_mount(self) -> None:
        log = self.query_one(RichLog)
        for line in self.lines:
            log.write(Text(fmt.plain(line)))
        log.focus()

    def action_close(self) -> None:
        self.dismiss(None)
