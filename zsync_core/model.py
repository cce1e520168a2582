"""The records the core passes around: accounts on both sides, changes, plans, events.

These are frozen slotted dataclasses rather than pydantic models: a daily run builds
hundreds of thousands of them, and validation already happened at the edges (config,
source parsing, SCIM parsing). The two account records, made 100,000 at a time on both
sides, are NamedTuples: a third of the cost of a frozen dataclass to build, and cheap to
pickle (the directory is read in a process of its own).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from .config import GuardedAction

NO_ADDRESSES: frozenset[str] = frozenset()


def address_set(values: Iterable[str]) -> frozenset[str]:
    """A set of addresses. Empty ones are all the same object: an empty frozenset takes 216
    bytes, and every account has two (aliases, delegates), most of them empty."""
    found = frozenset(values)
    return found if found else NO_ADDRESSES


class Kind(StrEnum):
    PERSONAL = "personal"
    FUNCTIONAL = "functional"


class SourceAccount(NamedTuple):
    """One account as the directory (or a CSV file) describes it, already normalized."""

    kind: Kind
    source_id: str
    """Immutable id for account mapping; the address when the source has none."""
    email: str
    display_name: str
    active: bool
    source: str
    """The source's configured name."""
    entry: str
    """Where it came from, for messages: a DN or ``file:line``."""
    aliases: frozenset[str] = NO_ADDRESSES
    delegates: frozenset[str] = NO_ADDRESSES
    sso_key: str | None = None
    division: str | None = None


class ZivverAccount(NamedTuple):
    """One account as Zivver has it. Functional accounts are SCIM Groups."""

    kind: Kind
    zivver_id: str
    email: str
    display_name: str
    active: bool
    """Users: the ``active`` flag. Functional accounts: has at least one delegate."""
    aliases: frozenset[str] = NO_ADDRESSES
    delegates: frozenset[str] = NO_ADDRESSES
    division: str | None = None


class Action(StrEnum):
    CREATE_USER = "create-user"
    UPDATE_USER = "update-user"
    REACTIVATE_USER = "reactivate-user"
    SUSPEND_USER = "suspend-user"
    DELETE_USER = "delete-user"
    CREATE_FUNCTIONAL = "create-functional"
    UPDATE_FUNCTIONAL = "update-functional"
    SUSPEND_FUNCTIONAL = "suspend-functional"
    DELETE_FUNCTIONAL = "delete-functional"

    @property
    def kind(self) -> Kind:
        return Kind.FUNCTIONAL if self.value.endswith("functional") else Kind.PERSONAL


ACTION_ORDER = list(Action)
"""Apply order: users before functional accounts (members need user ids)."""

SUMMARY_TEXT: dict[Action, str] = {
    Action.CREATE_USER: "users added to your Zivver organization",
    Action.UPDATE_USER: "users updated",
    Action.REACTIVATE_USER: "suspended users re-enabled",
    Action.SUSPEND_USER: "users suspended",
    Action.DELETE_USER: "users deleted (irreversible)",
    Action.CREATE_FUNCTIONAL: "functional accounts added",
    Action.UPDATE_FUNCTIONAL: "functional accounts updated",
    Action.SUSPEND_FUNCTIONAL: "functional accounts disabled (all delegates removed)",
    Action.DELETE_FUNCTIONAL: "functional accounts deleted (irreversible)",
}


def summary_line(action: Action, count: int) -> str:
    """The summary sentence, e.g. "There will be 5 users added to your Zivver organization."."""
    noun = SUMMARY_TEXT[action]
    if count == 1:
        noun = noun.replace("users", "user", 1).replace("accounts", "account", 1)
    return f"There will be {count} {noun}."


Fields = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """One planned change to one Zivver account."""

    id: int
    action: Action
    email: str
    """The account's address after the change."""
    zivver_id: str | None
    source_id: str | None
    source: str | None
    before: Fields
    """Field values in Zivver now (empty for a create)."""
    after: Fields
    """Field values after the change (only the changed fields, plus email for creates)."""
    guard: GuardedAction | None = None
    """Set when this change belongs to a guarded category that is present in the plan."""
    sso_key: str | None = None
    """SsoAccountKey to send (write-only in Zivver, so it is not part of ``before``)."""

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.after)


@dataclass(frozen=True, slots=True)
class Guard:
    """A guarded category present in the plan, with its numbers."""

    action: GuardedAction
    count: int
    total: int
    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the admin should know about the data (conflict, dropped delegate, …)."""

    level: Literal["info", "warning", "error"]
    message: str


class Match(NamedTuple):
    """A source account matched to a Zivver account (kept in the local account mapping).

    A tuple, not a frozen dataclass: a daily run makes one per account, and a frozen
    dataclass sets each field through object.__setattr__.
    """

    kind: Kind
    source_id: str
    zivver_id: str
    email: str
    source: str


@dataclass(slots=True)
class Plan:
    changes: list[Change]
    guards: list[Guard]
    notices: list[Notice]
    matches: list[Match]
    removals_blocked: str | None = None
    """Why no suspension or deletion was planned this run (unhealthy read), if so."""
    counts: dict[str, int] = field(default_factory=dict)

    def by_action(self) -> dict[Action, int]:
        result = {action: 0 for action in ACTION_ORDER}
        for change in self.changes:
            result[change.action] += 1
        return result

    def held(self, confirmed: set[GuardedAction]) -> list[Change]:
        return [c for c in self.changes if c.guard is not None and c.guard not in confirmed]


# --- progress events (data, not printing) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepEvent:
    """A load/apply step moved: ``state`` is running, done or failed."""

    step: str
    label: str
    state: Literal["running", "done", "failed"]
    done: int = 0
    total: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LogEvent:
    level: Literal["info", "warning", "error"]
    message: str


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change was applied (or failed)."""

    change: Change
    ok: bool
    error: str | None
    done: int
    total: int
    failed: int


Event = StepEvent | LogEvent | ChangeEvent
