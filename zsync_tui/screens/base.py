"""What every step screen has: the step bar on top, the progress line and the keys below."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from ..widgets.progress import ProgressFooter
from ..widgets.stepbar import StepBar


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

    def body(self) -> Iterable[Widget]:
        """The widgets between the step bar and the progress line (each screen yields its own)."""
        return ()
