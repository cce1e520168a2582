"""A checkbox whose state reads without colour: ✓ when on, blank when off (16 colours, tmux)."""

from __future__ import annotations

from textual.widgets import Checkbox


class Tick(Checkbox):
    @property  # type: ignore[override]
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # noqa: N802 - Textual reads it
        return "✓" if self.value else " "
