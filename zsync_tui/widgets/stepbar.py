"""The line at the top of every screen: the four steps (the current one lit) and the profile."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from .. import fmt

STEPS = ("Load", "Summary", "Update", "Review")


class StepBar(Static):
    DEFAULT_CSS = """
    StepBar { height: 1; dock: top; background: $primary-background; padding: 0 1; }
    """

    def __init__(self, step: int, where: str) -> None:
        super().__init__()
        self.step = step
        self.where = where

    def on_mount(self) -> None:
        line = Text()
        line.append("zsync ", style="bold")
        for number, name in enumerate(STEPS, start=1):
            if number > 1:
                line.append(" › ", style="dim")
            style = "bold reverse" if number == self.step else "dim" if number > self.step else ""
            line.append(f" {number} {name} ", style=style)
        line.append(f"   {fmt.plain(self.where)}", style="italic")
        self.update(line)
