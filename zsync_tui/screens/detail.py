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

from .. import fmt

FIELD_NAMES = {
    "email": "Address",
    "display_name": "Name",
    "active": "Active",
    "aliases": "Aliases",
    "delegates": "Delegates",
    "division": "Division",
    "phone": "Phone",
    "sso_key": "SsoAccountKey",
}


def diff_rows(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, before, after) for every field the change touches; secrets never shown."""
    rows = []
    for key in after:
        new = "(set, not shown)" if key == "sso_key" else fmt.value(after[key])
        rows.append((FIELD_NAMES.get(key, key), fmt.value(before.get(key)), new))
    for key in before:
        if key not in after:
            rows.append((FIELD_NAMES.get(key, key), fmt.value(before[key]), "(removed)"))
    return rows


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
