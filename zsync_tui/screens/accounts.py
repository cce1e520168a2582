"""Beside the four steps: what a source yields (its data preview) and Zivver's accounts with
what zsync makes of each. Searchable lists at 100,000 rows; Enter explains an account."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Static

from zsync_core.model import SourceAccount, Unusable
from zsync_core.sources import SourceResult
from zsync_core.views import KeyKnown, Standing, ZivverRow
from zsync_core.wording import field_names

from .. import fmt
from ..widgets.table import Column, ExplainTable, VirtualTable
from .base import SearchScreen

Row = TypeVar("Row")


class Explain(Message):
    """Explain this address (any table of accounts or changes sends it)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address


class AccountsScreen(SearchScreen, Generic[Row]):
    """A searchable, filterable list of accounts; Enter explains the one under the cursor."""

    STEP = 2
    CSS = """
    #title { padding: 1 1 0 1; height: auto; }
    #bar { height: 3; margin: 0 1; }
    #search { width: 1fr; }
    #filter { width: auto; max-width: 50%; padding: 1 1 0 2; color: $text-muted; }
    #accounts { margin: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search"),
        Binding("f", "filter", "Filter"),
    ]

    def __init__(
        self,
        where: str,
        title: Text,
        columns: Sequence[Column],
        rows: Sequence[Row],
        cells: Callable[[Row], Sequence[str]],
        haystack: Callable[[Row], str],
        address: Callable[[Row], str | None],
        filters: Sequence[tuple[str, Callable[[Row], bool] | None]],
        row_class: Callable[[Row], str | None] | None = None,
        whole: Callable[[Row], str] | None = None,
        empty: str = "Nothing matches.",
    ) -> None:
        super().__init__(where)
        self.whole_of = whole
        self.empty = empty if not rows else "Nothing matches."
        self.heading = title
        self.columns = list(columns)
        self.all_rows = rows
        self.cells = cells
        self.row_class = row_class
        self.address = address
        self.filters = list(filters)
        self.chosen = 0
        self.texts = [haystack(row).lower() for row in rows]

    def body(self) -> Iterable[Widget]:
        yield Static(self.heading, id="title")
        with Horizontal(id="bar"):
            yield Input(placeholder="Search (/)", id="search")
            yield Static(id="filter")
        yield ExplainTable(
            self.columns, self.cells, self.row_class, empty=self.empty, id="accounts"
        )
        yield Static(id="current")

    def on_mount(self) -> None:
        self.refilter()
        self.query_one(VirtualTable).focus()

    def refilter(self) -> None:
        table: VirtualTable[Row] = self.query_one(VirtualTable)
        label, keep = self.filters[self.chosen]
        text = self.query_text
        rows = [
            row
            for row, said in zip(self.all_rows, self.texts, strict=True)
            if (keep is None or keep(row)) and (not text or text in said)
        ]
        table.set_rows(rows, keep=table.current)
        self.query_one("#filter", Static).update(
            f"{len(rows):,}/{len(self.all_rows):,} · {label} · f: filter"
        )

    def whole(self, row: Row) -> str:
        return self.whole_of(row) if self.whole_of is not None else ""

    @on(VirtualTable.Selected)
    def _explain(self, event: VirtualTable.Selected) -> None:
        address = self.address(event.row)
        if address:
            self.post_message(Explain(address))
        else:
            self.notify("This entry has no address zsync could read: nothing to explain.")

    def action_filter(self) -> None:
        self.chosen = (self.chosen + 1) % len(self.filters)
        self.refilter()

    def action_back(self) -> None:
        if not self.left_search():
            self.dismiss()


SourceRow = SourceAccount | Unusable


def _named(**values: str | None) -> list[str]:
    """``name value`` for each value that is set, for a row's whole line."""
    return [
        f"{name.replace('_', ' ').replace('sso', 'SSO')} {value}"
        for name, value in values.items()
        if value
    ]


def source_screen(
    where: str, results: list[SourceResult], descriptions: dict[str, str]
) -> AccountsScreen[SourceRow]:
    """The sources' data preview: every account each yields after mapping, then every entry
    it cannot use, with why; ``f`` shows one source at a time."""
    rows: list[SourceRow] = []
    for result in results:
        rows += [*result.accounts, *result.unusable]
    parts = []
    for result in results:
        described = f" ({descriptions[result.name]})" if descriptions.get(result.name) else ""
        parts.append(
            f"{result.name}{described}: {len(result.accounts):,} accounts, "
            f"{len(result.unusable):,} unusable"
        )
    title = Text("Source data", style="bold")
    title.append(" · " + fmt.plain(" · ".join(parts)) + ". Enter explains an account.")

    def cells(row: SourceRow) -> tuple[str, ...]:
        if isinstance(row, Unusable):
            return (row.address or "?", row.reason, "", "unusable", "", "", row.where, "")
        return (
            row.email,
            row.display_name,
            row.kind.value,
            "active" if row.active else "disabled",
            row.division or "",
            row.phone or "",
            row.source_id,
            row.sso_key or "",
        )

    held = {u.address for result in results for u in result.unusable if u.protects}

    def whole(row: SourceRow) -> str:
        if isinstance(row, Unusable):
            return f"{row.source} {row.where}: unusable, {row.reason}"
        said = [
            row.email,
            row.display_name,
            f"{row.kind.value}, {'active' if row.active else 'disabled'}",
        ]
        if row.email in held:
            said.append("left alone: an entry with this address is unusable")
        said += _named(
            aliases=", ".join(sorted(row.aliases)),
            delegates=", ".join(sorted(row.delegates)),
            division=row.division,
            phone=row.phone,
            id=row.source_id,
            sso_key=row.sso_key,
        )
        return " · ".join([*said, f"{row.source} {row.entry}"])

    def haystack(row: SourceRow) -> str:
        if isinstance(row, Unusable):
            return f"{row.address or ''} {row.where} {row.reason}"
        return " ".join((row.email, row.display_name, row.entry, *row.aliases))

    filters: list[tuple[str, Callable[[SourceRow], bool] | None]] = [
        ("every source", None),
        ("active", lambda r: isinstance(r, SourceAccount) and r.active),
        ("disabled", lambda r: isinstance(r, SourceAccount) and not r.active),
        ("unusable", lambda r: isinstance(r, Unusable)),
    ]
    if len(results) > 1:
        filters += [
            (f"source {result.name}", lambda r, name=result.name: r.source == name)  # type: ignore[misc]
            for result in results
        ]
    return AccountsScreen(
        where,
        title,
        [
            Column("Address", share=2),
            Column("Name", share=1),
            Column("Kind", 10),
            Column("State", 8),
            Column("Division", 10),
            Column("Phone", 12),
            Column("Id", share=1),
            Column("SSO key", share=1),
        ],
        rows,
        cells,
        haystack,
        lambda row: row.address if isinstance(row, Unusable) else row.email,
        filters,
        lambda row: "error" if isinstance(row, Unusable) else None if row.active else "muted",
        whole,
    )


STANDING_CLASS = {
    Standing.OUTSIDE_DOMAINS: "muted",
    Standing.UNTOUCHED: "muted",
    Standing.LEAVING: "warning",
    Standing.LEFT_ALONE: "warning",
    Standing.SKIPPED: "error",
}


def zivver_screen(where: str, rows: list[ZivverRow], host: str) -> AccountsScreen[ZivverRow]:
    """Zivver's users and functional accounts, each with what zsync makes of it."""
    counts = {standing: 0 for standing in Standing}
    for row in rows:
        counts[row.standing] += 1
    said = ", ".join(f"{n:,} {s.value}" for s, n in counts.items() if n)
    title = Text(f"Zivver at {fmt.plain(host)}", style="bold")
    if rows:
        title.append(f": {len(rows):,} accounts ({said}). Enter explains one.")
    else:
        title.append(": no accounts yet.")

    def cells(row: ZivverRow) -> tuple[str, ...]:
        account = row.account
        return (
            account.email,
            account.kind.value,
            row.standing.value,
            row.source or "",
            row.sso_key.value if row.sso_key is not KeyKnown.NOT_A_USER else "",
            row.change.action.value if row.change else "—",  # nothing planned (Enter: why)
        )

    def whole(row: ZivverRow) -> str:
        account = row.account
        said = [
            account.email,
            account.display_name,
            f"{account.kind.value}, {'active' if account.active else 'not active'}",
            row.standing.value
            + (f" by {row.source}" if row.source else "")
            + (f" (matched by {row.matched_by})" if row.matched_by else ""),
        ]
        if row.sso_key is not KeyKnown.NOT_A_USER:
            said.append(f"SSO key {row.sso_key.value}")
        said += _named(
            aliases=", ".join(sorted(account.aliases)),
            delegates=", ".join(sorted(account.delegates)),
            division=account.division,
            phones=", ".join(account.phones),
            unreadable=row.unreadable,
        )
        if row.change is not None:
            fields = ", ".join(field_names(f for f in row.change.after if f != "email"))
            said.append(f"next run: {row.change.action.value}" + (f" ({fields})" if fields else ""))
        return " · ".join(said)

    return AccountsScreen(
        where,
        title,
        [
            Column("Address", share=2),
            Column("Kind", 10),
            Column("Standing", 15),
            Column("Source", share=1),
            Column("SSO key", 7),
            Column("Next run", 12),
        ],
        rows,
        cells,
        lambda r: (
            f"{r.account.email} {r.account.display_name} {r.source or ''} "
            + " ".join(r.account.aliases)
        ),
        lambda r: r.account.email,
        [("every account", None)]
        + [
            (standing.value, lambda r, s=standing: r.standing is s)  # type: ignore[misc]
            for standing in Standing
            if counts[standing]
        ],
        lambda r: STANDING_CLASS.get(r.standing),
        whole,
        "Zivver holds no account yet: the first run creates them.",
    )
