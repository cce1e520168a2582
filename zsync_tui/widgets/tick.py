"""A checkbox whose state reads without colour: ✓ when on, blank when off (16 colours, tmux)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Checkbox


class Tick(Checkbox):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_button", "Tick/untick"),  # said in the footer (Enter too)
    ]

    @property  # type: ignore[override]
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # noqa: N802 - Textual reads it
        return "✓" if self.value else " "
