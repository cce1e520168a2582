"""What every step screen has: the step bar on top, the progress line and the keys below."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static

from .. import fmt
from ..widgets.progress import ProgressFooter
from ..widgets.stepbar import StepBar
from ..widgets.table import VirtualTable

APP_KEYS = (
    ("e", "events", "Events"),
    ("H", "history", "History"),
    ("d", "data", "Data"),
    ("z", "zivver", "Zivver"),
    ("t", "connections", "Test"),
    ("P", "profile", "Profile"),
    ("q", "quit", "Quit"),
)
"""The keys every step has (the app's): on a line of their own below the step's keys, so
that both fit 80 columns."""


class AppKeys(Static):
    """The app's keys, as the footer shows a step's."""

    DEFAULT_CSS = """
    AppKeys { height: 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        text = Text()
        for key, _action, description in APP_KEYS:
            text.append(f" {key} ", style="bold")
            text.append(f"{description} ")
        super().__init__(text)


class StepScreen(Screen[None]):
    """A step of the four; subclasses yield their body from :meth:`body`.

    Styles: this class's in DEFAULT_CSS (inherited by every step); each screen's own in its
    ``CSS``, which Textual scopes to the screen's class (so two screens' ``#dialog`` never
    meet) and ranks above widgets' defaults (a focused Tick keeps its one-line look).
    """

    STEP = 1
    DEFAULT_CSS = """
    StepScreen { background: $background; }
    StepScreen #bottom { dock: bottom; height: auto; }
    StepScreen #bottom Footer { dock: none; }
    """

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP, self.where)
        yield from self.body()
        with Vertical(id="bottom"):
            yield ProgressFooter()
            yield Footer(compact=True)
            yield AppKeys()

    def body(self) -> Iterable[Widget]:
        """The widgets between the step bar and the progress line (each screen yields its own)."""
        return ()


class SearchScreen(StepScreen):
    """A step's list with a ``#search`` box over its table (the preview, the account lists):
    typing narrows the rows (:meth:`refilter`), Enter in the box goes back to the table, and
    the row under the cursor is shown whole on the ``#current`` line (:meth:`whole`): a
    narrow terminal cuts the columns."""

    DEFAULT_CSS = """
    SearchScreen #current { height: auto; max-height: 3; margin: 0 1; color: $text-muted; }
    """

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.query_text = ""

    def refilter(self) -> None:
        """Show the rows that match ``query_text`` and the screen's filter."""

    def whole(self, row: Any) -> str:
        """The row under the cursor, whole, on one line."""
        return ""

    @on(Input.Changed, "#search")
    def _search(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip().lower()
        self.refilter()

    @on(Input.Submitted, "#search")
    def _done_searching(self) -> None:
        self.query_one(VirtualTable).focus()

    @on(VirtualTable.Highlighted)
    def _current(self, event: VirtualTable.Highlighted) -> None:
        said = self.whole(event.row) if event.row is not None else ""
        self.query_one("#current", Static).update(Text(fmt.plain(said)))

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def left_search(self) -> bool:
        """Escape in the search box goes back to the table (True), not out of the screen."""
        if self.focused is self.query_one("#search", Input):
            self.query_one(VirtualTable).focus()
            return True
        return False
