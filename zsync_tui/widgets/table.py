"""A table that renders only the rows on screen, so 100,000 changes stay instant.

Textual's DataTable builds every row up front (seconds at 100,000 rows, and again on
every filter keystroke). This table holds a plain sequence and formats the visible rows
when they are drawn; filtering is replacing the sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .. import fmt

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Column:
    label: str
    width: int = 0
    """Cells wide; 0 = share what is left."""
    share: int = 1
    """A flexible column's part of what is left (an address 2, a list of fields 1)."""


FLEXIBLE_AT_LEAST = 14
"""Cells a flexible column keeps before the fixed ones narrow (an 80-column terminal)."""


class VirtualTable(ScrollView, Generic[Row], can_focus=True):
    """Rows of any type, drawn by ``cells(row)``; a header line and a row cursor."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--muted",
        "virtual-table--error",
        "virtual-table--warning",
        "virtual-table--success",
    }
    DEFAULT_CSS = """
    VirtualTable { height: 1fr; background: $surface; }
    VirtualTable > .virtual-table--header { text-style: bold; background: $panel; }
    VirtualTable > .virtual-table--cursor { background: $boost; text-style: reverse; }
    VirtualTable:focus > .virtual-table--cursor { background: $accent; color: $text; text-style: bold; }
    VirtualTable > .virtual-table--muted { color: $text-muted; text-style: strike; }
    VirtualTable > .virtual-table--error { color: $error; }
    VirtualTable > .virtual-table--warning { color: $warning; }
    VirtualTable > .virtual-table--success { color: $success; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
        Binding("enter", "select", "Open details"),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)

    class Highlighted(Message):
        """The cursor is on another row (or the rows changed under it)."""

        def __init__(self, table: VirtualTable[Any], row: Any) -> None:
            super().__init__()
            self.table = table
            self.row = row

    class Selected(Message):
        """Enter (or a click) on a row."""

        def __init__(self, table: VirtualTable[Any], row: Any) -> None:
            super().__init__()
            self.table = table
            self.row = row

    def __init__(
        self,
        columns: Sequence[Column],
        cells: Callable[[Row], Sequence[str]],
        row_class: Callable[[Row], str | None] | None = None,
        *,
        empty: str = "Nothing to show.",
        id: str | None = None,
        opens: Callable[[Row], bool] | None = None,
    ) -> None:
        """``opens``: whether Enter on a row opens something (else Enter is not offered for
        it); by default every row does."""
        super().__init__(id=id)
        self.opens = opens
        self.columns = list(columns)
        self.cells = cells
        self.row_class = row_class or (lambda row: None)
        self.empty = empty
        self.rows: Sequence[Row] = ()

    # --- data ------------------------------------------------------------------------------

    def set_rows(self, rows: Sequence[Row], keep: Row | None = None) -> None:
        """Show ``rows``; the cursor goes to ``keep`` if it is among them, else to the top."""
        self.rows = rows
        self.virtual_size = Size(self.size.width, len(rows) + 1)
        index = 0
        if keep is not None:  # by identity: comparing 100,000 dataclasses field by field is slow
            index = next((i for i, row in enumerate(rows) if row is keep), 0)
        self.cursor = index
        self.refresh()

    @property
    def current(self) -> Row | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def grew(self, follow: bool = True) -> None:
        """Rows were appended to the same sequence (a live log); ``follow`` keeps the end in view."""
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        if follow and self.rows:
            self.cursor = len(self.rows) - 1
        else:
            self.refresh()

    def refresh_rows(self) -> None:
        """Redraw after the rows' contents (not their order) changed."""
        self.refresh()

    # --- keys ------------------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.size.height - 2))

    def action_edge(self, end: int) -> None:
        self.cursor = len(self.rows) - 1 if end else 0

    def action_select(self) -> None:
        if self.current is not None:
            self.post_message(self.Selected(self, self.current))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if 0 <= index < len(self.rows):
            if index == self.cursor:
                self.action_select()
            self.cursor = index

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select" and self.opens is not None:
            return self.current is not None and self.opens(self.current)
        return True

    def watch_cursor(self, cursor: int) -> None:
        if self.opens is not None:
            self.refresh_bindings()
        self.post_message(self.Highlighted(self, self.current))
        self._reveal(cursor)
        # the size may only now have grown (set_rows, grew): once laid out, look again
        self.call_after_refresh(self._reveal, cursor)
        self.refresh()

    def show_at_top(self, index: int) -> None:
        """Put the cursor on row ``index`` and scroll it to the top (as far as the rows allow)."""
        self.cursor = index
        self.call_after_refresh(self.scroll_to, y=index, animate=False, immediate=True)

    def _reveal(self, cursor: int) -> None:
        if cursor != self.cursor:
            return
        visible = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if cursor < top:
            self.scroll_to(y=cursor, animate=False, immediate=True)
        elif cursor >= top + visible:
            self.scroll_to(y=cursor - visible + 1, animate=False, immediate=True)

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.rows) + 1)

    # --- drawing ---------------------------------------------------------------------------

    def _widths(self, total: int) -> list[int]:
        """Each column's width: the fixed ones as asked, the flexible ones sharing the rest
        by their ``share``; when that leaves a flexible column narrower than
        FLEXIBLE_AT_LEAST, the fixed ones narrow first (never below their label)."""
        columns = self.columns
        room = total - (len(columns) - 1)
        fixed = sum(c.width for c in columns)
        shares = sum(c.share for c in columns if not c.width)
        widths = [c.width for c in columns]
        wanted = FLEXIBLE_AT_LEAST * sum(1 for c in columns if not c.width)
        if shares and fixed and room - fixed < wanted:
            scale = max(0.0, (room - wanted) / fixed)
            widths = [max(len(c.label), int(c.width * scale)) if c.width else 0 for c in columns]
        left = room - sum(widths)
        return [
            w or max(8, left * c.share // max(1, shares))
            for c, w in zip(columns, widths, strict=True)
        ]

    def _line(self, cells: Sequence[str], widths: list[int], style: Style) -> Strip:
        text = " ".join(
            set_cell_size(_ellipsis(fmt.plain(cell), width), width)
            for cell, width in zip(cells, widths, strict=False)
        )
        return Strip([Segment(text, style)]).crop_extend(0, self.size.width, style)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        widths = self._widths(self.scrollable_content_region.width)
        base = self.rich_style
        if y == 0:
            header = base + self.get_component_rich_style("virtual-table--header")
            return self._line([c.label for c in self.columns], widths, header)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self.rows):
            if not self.rows and y == 1:
                muted = base + Style(dim=True)
                return Strip([Segment(f" {self.empty}", muted)]).crop_extend(0, width, muted)
            return Strip.blank(width, base)
        row = self.rows[index]
        style = base
        name = self.row_class(row)
        if name:
            style += self.get_component_rich_style(f"virtual-table--{name}")
        if index == self.cursor:
            style += self.get_component_rich_style("virtual-table--cursor")
        return self._line(self.cells(row), widths, style)


class ExplainTable(VirtualTable[Row]):
    """A table of accounts whose Enter explains one (said so in the footer)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Explain")]


class EditTable(VirtualTable[Row]):
    """A table of things Enter edits (the profile's lines)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Edit")]


class ConnectionTable(VirtualTable[Row]):
    """A table of connections whose Enter tests one."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select", "Test this one")]


def _ellipsis(text: str, width: int) -> str:
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, max(0, width - 1)) + "…"
