"""Directory sources behind one interface.

A source reads everything it is configured for and returns :class:`SourceResult`;
it reports progress as :class:`~zsync_core.model.StepEvent`s through ``emit`` and
raises :class:`~zsync_core.errors.SourceError` when it cannot read completely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..model import Emit, Notice, SourceAccount, Unusable
from ..output import first_control, without_controls
from ..section import SourceSection

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store


@dataclass(slots=True)
class SourceResult:
    name: str
    accounts: list[SourceAccount]
    notices: list[Notice] = field(default_factory=list)
    unusable: list[Unusable] = field(default_factory=list)
    """Entries that could not be used, each with where, whose and why."""
    finished: bool = False
    """Its divisions and phone numbers are mapped (:func:`.fields.finish`)."""

    def skip(
        self, where: str, reason: str, *, address: str | None = None, source_id: str | None = None
    ) -> None:
        """An entry this source cannot use: kept as :class:`Unusable` (its account is left
        alone this run; one that is nobody's blocks every removal)."""
        self.unusable.append(Unusable(self.name, where, reason, address, source_id or None))

    @property
    def size(self) -> int:
        """The entries read, usable or not (what the shrink guard compares: an entry that
        became unusable is protected, not gone)."""
        return len(self.accounts) + len(self.unusable)

    @property
    def unreadable_ids(self) -> set[str]:
        """Ids of unusable entries (their accounts must not count as missing)."""
        return {u.source_id for u in self.unusable if u.source_id}

    @property
    def unidentified(self) -> int:
        """Unusable entries with neither an address nor an id: removals are unsafe."""
        return sum(1 for u in self.unusable if u.unidentified)

    def clean(self) -> None:
        """Display names and divisions from a directory with a control character or a line
        break in them (nothing sent to Zivver may hold one): each run made one space, and
        the entry named in a warning. CSV rows with one are unusable instead (the source
        says so itself). An address this source holds twice is unusable: which of the two
        entries says how the account should be is not known, so it is left alone."""
        self._once_each()
        accounts = self.accounts
        for number, account in enumerate(accounts):
            name, division = account.display_name, account.division or ""
            if name.isprintable() and division.isprintable():
                continue  # nearly every account: no control, no separator but a space
            fixed = {}
            for field_name, value in (("display name", name), ("division", division)):
                control = first_control(value)
                if control is None:
                    continue
                fixed[field_name] = without_controls(value)
                self.notices.append(
                    Notice(
                        "warning",
                        f"Source {self.name!r}, {account.entry} ({account.email}): the "
                        f"{field_name} holds {control}, a control character; it is sent as "
                        f"{fixed[field_name]!r}. Fix it in the source.",
                    )
                )
            if fixed:
                accounts[number] = account._replace(
                    display_name=fixed.get("display name", name) or account.email,
                    division=fixed.get("division", account.division) or None,
                )

    def _once_each(self) -> None:
        first: dict[str, SourceAccount] = {}
        twice = False
        for account in self.accounts:
            if first.setdefault(account.email, account) is not account:
                twice = True
                self.skip(
                    account.entry,
                    f"the address is also held by {first[account.email].entry} in this source, "
                    "so which of the two says how the account should be is not known",
                    address=account.email,
                    source_id=account.source_id,
                )
        if twice:
            self.accounts = [a for a in self.accounts if first[a.email] is a]

    def __repr__(self) -> str:
        # short: Python 3.11's asyncio.run reprs the main task's result (its SIGINT handler
        # is a partial holding the task, and signal.getsignal formats it), 1 s at 100,000
        return f"SourceResult({self.name!r}, {len(self.accounts)} accounts, {len(self.unusable)} unusable)"


class Source(Protocol):
    name: str

    async def load(self, emit: Emit) -> SourceResult:
        """Read the whole source. Raises SourceError when that is not possible."""
        ...


def make_source(
    source: SourceSection, config: Config, *, store: Store | None = None, full_read: bool = False
) -> Source:
    """The source for ``source``, as its type (:mod:`zsync_core.registry`) reads it. ``store``: where a
    source that reads deltas keeps what it read (None: it reads everything and keeps
    nothing, as ``zsync check`` does); ``full_read``: read everything even when it could read
    only what changed."""
    from ..registry import source_type

    kind = source_type(source.type)
    reader = kind.load(kind.reader)
    if kind.keeps_state:
        return reader(source, config, store=store, full_read=full_read)  # type: ignore[no-any-return]
    return reader(source, config)  # type: ignore[no-any-return]
