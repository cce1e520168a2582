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
        self._draw(self.size.width or 80)

    def on_resize(self) -> None:
        self._draw(self.size.width)

    def _draw(self, width: int) -> None:
        """The steps with their names, or (narrow) only the current one's; then the profile
        and target, the profile's name cut first so the target stays in view."""
        where = fmt.plain(self.where)
        for names in (True, False):
            line = Text()
            line.append("zsync ", style="bold")
            for number, name in enumerate(STEPS, start=1):
                if number > 1:
                    line.append(" › " if names else "›", style="dim")
                current = number == self.step
                style = "bold reverse" if current else "dim" if number > self.step else ""
                shown = f" {number} {name} " if names or current else f" {number} "
                line.append(shown, style=style)
            if line.cell_len + 3 + len(where) <= width:
                break
        room = width - line.cell_len - 3
        if len(where) > room:
            profile, arrow, target = where.partition(" → ")
            keep = max(1, room - len(arrow) - len(target) - 1)
            where = (
                f"{profile[:keep]}…{arrow}{target}" if arrow else where[: max(1, room - 1)] + "…"
            )
        line.append(f"   {where}", style="italic")
        self.update(line)
