"""Directory sources behind one interface.

A source reads everything it is configured for and returns :class:`SourceResult`;
it reports progress as :class:`~zsync_core.model.StepEvent`s through ``emit`` and
raises :class:`~zsync_core.errors.SourceError` when it cannot read completely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..config import (
    Config,
    CsvSourceConfig,
    LdapSourceConfig,
    Microsoft365SourceConfig,
    SourceConfig,
)
from ..model import Event, Notice, SourceAccount

if TYPE_CHECKING:
    from ..store import Store

Emit = Callable[[Event], None]


@dataclass(slots=True)
class SourceResult:
    name: str
    accounts: list[SourceAccount]
    notices: list[Notice] = field(default_factory=list)
    unreadable_ids: set[str] = field(default_factory=set)
    """Ids of entries that could not be parsed (their accounts must not count as missing)."""
    unidentified: int = 0
    """Entries that could not be parsed and have no id: removals are unsafe this run."""

    def __repr__(self) -> str:
        # short: Python 3.11's asyncio.run reprs the main task's result (its SIGINT handler
        # is a partial holding the task, and signal.getsignal formats it), 1 s at 100,000
        return f"SourceResult({self.name!r}, {len(self.accounts)} accounts, {len(self.notices)} notices)"


class Source(Protocol):
    name: str

    async def load(self, emit: Emit) -> SourceResult:
        """Read the whole source. Raises SourceError when that is not possible."""
        ...


def make_source(
    source: SourceConfig, config: Config, *, store: Store | None = None, full_read: bool = False
) -> Source:
    """The source for ``source``. ``store``: where a delta source (Microsoft 365) keeps its
    mirror and links (None: it reads everything and keeps nothing, as ``zsync check`` does);
    ``full_read``: read everything even when a delta link is there."""
    if isinstance(source, Microsoft365SourceConfig):
        from .m365 import Microsoft365Source

        return Microsoft365Source(source, config, store=store, full_read=full_read)
    if isinstance(source, LdapSourceConfig):
        from .ldap import LdapSource

        return LdapSource(source, config)
    if isinstance(source, CsvSourceConfig):
        from .csv import CsvSource

        return CsvSource(source, config)
    raise TypeError(f"unknown source type {type(source).__name__}")
