"""Preview changes: every planned change, filterable, searchable; exclude one from this run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Static

from zsync_core.model import Action, Change, Plan
from zsync_core.wording import FIELD_NAMES

from ..widgets.table import Column, VirtualTable
from .accounts import Explain
from .base import SearchScreen


def searchable(change: Change) -> str:
    """What incremental search looks in: addresses (old and new), name, source."""
    parts = [change.email, str(change.before.get("email", "")), change.source or ""]
    parts.append(str(change.after.get("display_name") or change.before.get("display_name") or ""))
    return " ".join(parts).lower()


class PreviewScreen(SearchScreen):
    STEP = 2
    CSS = """
    #bar { height: 3; margin: 1 1 0 1; }
    #search { width: 1fr; }
    #filter { width: auto; max-width: 50%; padding: 1 1 0 2; color: $text-muted; }
    #changes { margin: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search"),
        Binding("f", "filter", "Filter"),
        Binding("x", "exclude", "Exclude"),
        Binding("w", "why", "Why?"),
    ]

    class Closed(Message):
        def __init__(self, excluded: set[int]) -> None:
            super().__init__()
            self.excluded = excluded

    class Inspect(Message):
        def __init__(self, change: Change) -> None:
            super().__init__()
            self.change = change

    def __init__(
        self, where: str, plan: Plan, excluded: set[int], action: Action | None = None
    ) -> None:
        super().__init__(where)
        self.plan = plan
        self.excluded = set(excluded)
        self.action = action
        self.actions = [a for a, n in plan.by_action().items() if n]
        self.haystack = {c.id: searchable(c) for c in plan.changes}
        self._shown: tuple[str, Action | None, list[Change]] | None = None
        """The last filter's query, action and rows: typing on narrows them instead of starting over."""

    def body(self) -> Iterable[Widget]:
        with Horizontal(id="bar"):
            yield Input(placeholder="Search address, name or source (/)", id="search")
            yield Static(id="filter")
        yield VirtualTable(
            [
                Column("", 1),
                Column("Action", 18),
                Column("Account", share=2),
                Column("Source", 10),
                Column("Fields changed", share=1),
            ],
            self._cells,
            self._row_class,
            empty="No change matches.",
            id="changes",
        )
        yield Static(id="current")

    def _cells(self, change: Change) -> tuple[str, ...]:
        mark = "✗" if change.id in self.excluded else "!" if change.guard else " "
        old = change.before.get("email")
        names = [FIELD_NAMES.get(f, f) for f in change.after if f != "email"]
        if old and old != change.email:  # a rename: the old address whole, first
            names.insert(0, f"Address (was {old})")
        return (mark, change.action.value, change.email, change.source or "—", ", ".join(names))

    def _row_class(self, change: Change) -> str | None:
        if change.id in self.excluded:
            return "muted"
        return "warning" if change.guard else None

    def on_mount(self) -> None:
        self.refilter()
        self.query_one(VirtualTable).focus()

    def refilter(self) -> None:
        table: VirtualTable[Change] = self.query_one(VirtualTable)
        text, action = self.query_text, self.action
        last = self._shown
        if last is not None and last[1] is action and text.startswith(last[0]):
            changes = last[2]  # a longer query matches a subset of what is shown
        else:
            changes = self.plan.changes
            if action is not None:
                changes = [c for c in changes if c.action is action]
        if text and (last is None or text != last[0] or last[1] is not action):
            haystack = self.haystack
            changes = [c for c in changes if text in haystack[c.id]]
        self._shown = (text, action, changes)
        table.set_rows(changes, keep=table.current)
        self._label()

    def _label(self) -> None:
        shown = len(self.query_one(VirtualTable).rows)
        showing = self.action.value if self.action else "all actions"
        excluded = f" · {len(self.excluded)} excluded" if self.excluded else ""
        self.query_one("#filter", Static).update(
            f"{shown:,}/{len(self.plan.changes):,} · {showing}{excluded}"
        )

    def whole(self, change: Change) -> str:
        """A rename's old address and every field, which a narrow terminal cuts."""
        said = f"{change.action.value} {change.email}"
        old = change.before.get("email")
        if old and old != change.email:
            said += f" ← {old}"
        names = [FIELD_NAMES.get(f, f) for f in change.after if f != "email"]
        if names:
            said += ": " + ", ".join(names)
        return said

    @on(VirtualTable.Selected)
    def _inspect(self, event: VirtualTable.Selected) -> None:
        self.post_message(self.Inspect(event.row))

    def action_filter(self) -> None:
        cycle: list[Action | None] = [None, *self.actions]
        self.action = (
            cycle[(cycle.index(self.action) + 1) % len(cycle)] if self.action in cycle else None
        )
        self.refilter()

    def action_exclude(self) -> None:
        table: VirtualTable[Change] = self.query_one(VirtualTable)
        change = table.current
        if change is None:
            return
        if change.id in self.excluded:
            self.excluded.discard(change.id)
            self.notify(f"{change.email}: included in this run again.")
        else:
            self.excluded.add(change.id)
            self.notify(f"{change.email}: excluded from this run (x includes it again).")
        table.refresh_rows()
        self._label()

    def action_why(self) -> None:
        change = self.query_one(VirtualTable).current
        if change is not None:
            self.post_message(Explain(change.email))

    def action_back(self) -> None:
        if not self.left_search():
            self.post_message(self.Closed(self.excluded))
