"""A source type of its own, as a package outside zsync would write it: a "roster" of
people given in the profile itself. Registered by tests/test_registry.py as an entry point."""

from __future__ import annotations

from typing import Literal

from zsync_core.config import Config, SourceSection
from zsync_core.model import Emit, Kind, SourceAccount, StepEvent
from zsync_core.registry import SourceType
from zsync_core.sources import SourceResult


class RosterConfig(SourceSection):
    type: Literal["roster"]
    people: list[str]
    """The addresses of the people, each an active personal account."""


class RosterSource:
    def __init__(self, source: RosterConfig, config: Config) -> None:
        self.name = source.name
        self.people = source.people

    async def load(self, emit: Emit) -> SourceResult:
        step = f"{self.name}: read the roster"
        accounts = [
            SourceAccount(
                Kind.PERSONAL,
                email,
                email,
                email.split("@")[0].title(),
                True,
                self.name,
                f"roster:{n}",
            )
            for n, email in enumerate(self.people, 1)
        ]
        emit(StepEvent(step, step, "done", len(accounts), len(accounts)))
        return SourceResult(self.name, accounts)


ROSTER = SourceType("roster", RosterConfig, "tests.plugin.roster:RosterSource")
