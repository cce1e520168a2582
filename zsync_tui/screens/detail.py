"""One change, field by field (before → after), and for applied changes Zivver's exchange."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from zsync_core import wording

from .. import fmt


def diff_rows(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, before, after) for every field the change touches, inert; its SsoAccountKey
    masked (:mod:`zsync_core.wording`)."""
    rows = wording.diff_rows(before, after)
    return [(fmt.plain(name), fmt.plain(old), fmt.plain(new)) for name, old, new in rows]


class DetailScreen(ModalScreen[None]):
    """Read-only; Escape (or Enter, or q) closes it."""

    CSS = """
    DetailScreen { align: center middle; }
    #dialog { width: 92%; max-width: 110; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    #title { height: auto; padding: 0 0 1 0; }
    #content { height: 1fr; }
    #diff { height: auto; margin: 0 0 1 0; }
    .heading { height: auto; margin: 1 0 0 0; }
    .section { height: auto; color: $text; }
    .problem { margin: 0 0 1 0; color: $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Close"),
    ]

    def __init__(
        self,
        title: str,
        facts: Iterable[tuple[str, str]],
        rows: list[tuple[str, str, str]],
        sections: Iterable[tuple[str, str]] = (),
        problem: str | None = None,
    ) -> None:
        super().__init__()
        self.problem = problem
        self.heading = title
        self.facts = list(facts)
        self.rows = rows
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(fmt.plain(self.heading), style="bold"), id="title")
            with VerticalScroll(id="content"):
                facts = Text()
                for name, value in self.facts:
                    facts.append(f"{name}: ", style="bold")
                    facts.append(f"{fmt.plain(value)}\n")
                yield Static(facts)
                if self.problem:
                    yield Static(Text("What went wrong", style="bold"), classes="heading")
                    yield Static(Text(fmt.block(self.problem)), classes="section problem")
                table = Table(expand=True, box=None, header_style="bold", pad_edge=False)
                table.add_column("Field", ratio=1, no_wrap=True)
                table.add_column("Before (in Zivver)", ratio=3)
                table.add_column("→ After", ratio=3)
                for field, before, after in self.rows:
                    changed = before != after
                    # Text, not str: a table reads a str as markup ("[/]" in a name)
                    table.add_row(
                        Text(fmt.plain(field)),
                        Text(fmt.plain(before)),
                        Text(fmt.plain(after), style="bold" if changed else ""),
                    )
                if self.rows:
                    yield Static(table, id="diff")
                for heading, body in self.sections:
                    yield Static(Text(heading, style="bold"), classes="heading")
                    yield Static(Text(fmt.block(body)), classes="section")
            yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
