"""The records the core passes around: accounts on both sides, changes, plans, events.

These are frozen slotted dataclasses rather than pydantic models: a daily run builds
hundreds of thousands of them, and validation already happened at the edges (config,
source parsing, SCIM parsing). The two account records, made 100,000 at a time on both
sides, are NamedTuples: a third of the cost of a frozen dataclass to build, and cheap to
pickle (the directory is read in a process of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from .section import GuardedAction

NO_ADDRESSES: frozenset[str] = frozenset()


def address_set(values: Iterable[str]) -> frozenset[str]:
    """A set of addresses. Empty ones are all the same object: an empty frozenset takes 216
    bytes, and every account has two (aliases, delegates), most of them empty."""
    found = frozenset(values)
    return found if found else NO_ADDRESSES


class Kind(StrEnum):
    PERSONAL = "personal"
    FUNCTIONAL = "functional"


NO_DIVISION = "/"
"""Zivver's name for "no division" (its root); a source that says "/" means no division."""


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
    phone: str | None = None
    """A mobile number in E.164 (``+31612345678``), checked; None when the source has none."""


Kept = dict[str, Any]
"""What Zivver returned of an account that zsync does not manage, by attribute: top-level
attributes (``nickName``, ``phoneNumbers``, …) whole, and of the complex attributes zsync may
send (``name``, the enterprise and zivver blocks) only the keys it does not manage (e.g.
``ExternalAccountId``). Empty values are left out: sending ``[]`` back changes nothing."""


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
    kept: Kept | None = None
    """What zsync does not manage but must never lose (None when there is nothing)."""
    other_members: tuple[str, ...] = ()
    """Functional accounts: member ids that are no user (other groups, the group itself, ids
    that resolve to nothing). zsync cannot express them as delegates; it keeps them."""

    @property
    def phones(self) -> tuple[str, ...]:
        """Its phone numbers as Zivver has them (``phoneNumbers[].value``), in order."""
        numbers = (self.kept or {}).get("phoneNumbers")
        if not isinstance(numbers, list):
            return ()
        return tuple(
            n["value"] for n in numbers if isinstance(n, dict) and isinstance(n.get("value"), str)
        )

    @property
    def state(self) -> AccountState:
        phones = self.phones
        return AccountState(
            self.email,
            self.display_name,
            self.active,
            self.aliases,
            self.delegates,
            self.division,
            phones[0] if phones else None,
        )


class AccountState(NamedTuple):
    """The fields of an account that zsync manages: what Zivver has now (``ZivverAccount.state``)
    or what the sources want. One record for both, so a change is the difference of two."""

    email: str
    display_name: str
    active: bool
    aliases: frozenset[str] = NO_ADDRESSES
    delegates: frozenset[str] = NO_ADDRESSES
    division: str | None = None
    phone: str | None = None
    """The mobile number zsync manages (E.164): Zivver's first ``phoneNumbers`` value."""


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

REMOVALS = frozenset(
    {Action.SUSPEND_USER, Action.DELETE_USER, Action.SUSPEND_FUNCTIONAL, Action.DELETE_FUNCTIONAL}
)
"""The changes that take access away."""

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
"""Field values as shown and journaled (sets as sorted lists); built by :func:`shown`."""

SSO_KEY = "sso_key"
"""The name of the SsoAccountKey among a change's fields (it is not part of AccountState)."""

SSO_UNKNOWN = "(unknown: Zivver never returns it)"

SHOWN_ORDER = ("email", "display_name", "aliases", "delegates", "division", "phone", "active")
"""The order in which a change's fields are shown: who, then what, then the state."""


@dataclass(frozen=True, slots=True)
class Change:
    """One planned change to one Zivver account.

    ``desired`` is the whole account as it will be; ``fields`` names what differs from what
    Zivver has (the request builder sends only those). ``before`` / ``after`` are the same
    difference as plain values, for screens, reports and the journal.
    """

    id: int
    action: Action
    email: str
    """The account's address after the change."""
    zivver_id: str | None
    source_id: str | None
    source: str | None
    desired: AccountState
    fields: frozenset[str]
    """The fields that change (every field that has a value, for a create)."""
    before: Fields
    """Field values in Zivver now (empty for a create)."""
    after: Fields
    """Field values after the change."""
    guard: GuardedAction | None = None
    """Set when this change belongs to a guarded category that is present in the plan."""
    sso_key: str | None = None
    """The SsoAccountKey a request must carry if it sends the zivver block: the new key when
    the key itself changes (or for a create), else the key Zivver is known to have (``""``:
    known to have none). None: unknown, so the block must not be sent."""
    current: ZivverAccount | None = None
    """The account as Zivver had it when the plan was made (None for a create): what the
    requests are built from, and what logic reads (``before`` is for showing)."""

    @classmethod
    def planned(
        cls,
        action: Action,
        email: str,
        current: ZivverAccount | None,
        source_id: str | None,
        source: str | None,
        desired: AccountState,
        fields: Iterable[str],
        sso_key: str | None,
    ) -> Change:
        """A change before it is numbered and guarded, with its difference as plain values."""
        fields = frozenset(fields)
        before = shown(current.state, fields) if current is not None else {}
        after = shown(desired, fields)
        if SSO_KEY in fields:
            before[SSO_KEY], after[SSO_KEY] = SSO_UNKNOWN, sso_key
        return cls(
            0,
            action,
            email,
            current.zivver_id if current is not None else None,
            source_id,
            source,
            desired,
            fields,
            before,
            after,
            sso_key=sso_key,
            current=current,
        )

    @property
    def why(self) -> str | None:
        """Why a suspension or deletion is planned, in words (None for other changes)."""
        if self.action not in REMOVALS:
            return None
        if self.source is None:
            return (
                "no source holds it any more (removed from the directory, or moved out of "
                "base_dn, a filter or the scope group)"
            )
        if self.action is Action.SUSPEND_FUNCTIONAL:
            return (
                f"disabled in source {self.source!r}, or none of its delegates is an active "
                "person there any more"
            )
        return f"disabled in source {self.source!r}"


def shown(state: AccountState, fields: Iterable[str]) -> Fields:
    """The values of ``fields`` of ``state`` as plain data (sets become sorted lists), in
    :data:`SHOWN_ORDER` (a set's order changes from one process to the next)."""
    values: Fields = {}
    wanted = set(fields)
    for name in SHOWN_ORDER:
        if name not in wanted:
            continue
        value = getattr(state, name)
        values[name] = sorted(value) if isinstance(value, frozenset) else value
    return values


@dataclass(frozen=True, slots=True)
class Guard:
    """A guarded category present in the plan, with its numbers."""

    action: GuardedAction
    count: int
    total: int
    label: str
    """What it does in a few words: "Suspend 12 of 140 users"."""
    detail: str = ""
    """What follows the label in the checklist line: " (8.6 %)", " — irreversible", and the
    other changes that wait with it."""
    accounts: tuple[str, ...] = ()
    """The addresses of the accounts it holds, sorted."""

    @property
    def text(self) -> str:
        """The checklist line: "Suspend 12 of 140 users (8.6 %)"."""
        return self.label + self.detail

    def named(self, shown: int = 5) -> str:
        """'a@x, b@x, c@x and 7 more': the first ``shown`` of its accounts."""
        names = ", ".join(self.accounts[:shown])
        more = len(self.accounts) - shown
        return f"{names} and {more} more" if more > 0 else names


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the admin should know about the data (conflict, dropped delegate, …)."""

    level: Literal["info", "warning", "error"]
    message: str


@dataclass(frozen=True, slots=True)
class Unusable:
    """A source entry that could not be used as an account: where it is, whose it may be,
    and why. Its account is left alone this run (see ``protects``)."""

    source: str
    where: str
    """A ``file:line``, a DN, or a Microsoft 365 object ("user <id>", "group <name>")."""
    reason: str
    address: str | None = None
    """Its address, when that could be read: the account with it is left alone this run."""
    source_id: str | None = None
    """Its id, when that could be read: the account mapped to it is left alone this run."""
    value: str | None = None
    """Set when only this value of the entry is unusable (``"phone number"``): the account is
    synced without it, and nothing is left alone for it."""

    @property
    def unidentified(self) -> bool:
        """Neither its address nor its id could be read: it may be any account, so no
        suspension or deletion is safe this run."""
        return self.value is None and self.address is None and self.source_id is None

    @property
    def protects(self) -> bool:
        """Whether the account it names is left alone this run (the entry was skipped)."""
        return self.value is None

    def text(self) -> str:
        who = f" ({self.address})" if self.address else ""
        outcome = f"the {self.value} is not synced" if self.value else "entry skipped"
        return f"Source {self.source!r}, {self.where}{who}: {self.reason}; {outcome}."

    def as_dict(self) -> dict[str, str | None]:
        return {
            "source": self.source,
            "where": self.where,
            "address": self.address,
            "id": self.source_id,
            "reason": self.reason,
            "value": self.value,
        }


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


@dataclass(frozen=True, slots=True)
class NotSent:
    """Part of a change that zsync does not send, and why: sending it could destroy something
    zsync cannot see (an SsoAccountKey it does not know). The rest of the change still goes."""

    email: str
    fields: tuple[str, ...]
    reason: str


def not_sent_groups(not_sent: list[NotSent]) -> list[tuple[str, list[NotSent]]]:
    """The writes not sent, grouped by why, in the order the reasons first come."""
    by_reason: dict[str, list[NotSent]] = {}
    for item in not_sent:
        by_reason.setdefault(item.reason, []).append(item)
    return list(by_reason.items())


def not_sent_lines(not_sent: list[NotSent], shown: int = 20) -> list[str]:
    """The writes not sent in lines, grouped by why."""
    lines = []
    for reason, items in not_sent_groups(not_sent):
        lines.append(f"{len(items)} change(s) not sent: {reason}")
        lines += [f"  {item.email}: {', '.join(item.fields)}" for item in items[:shown]]
        if len(items) > shown:
            lines.append(f"  ... and {len(items) - shown} more")
    return lines


@dataclass(frozen=True, slots=True)
class Takeover:
    """What zsync found when it met accounts it had not managed before (another tool, a script
    or admins built them): shown before the first run changes anything."""

    first_run: bool
    """The local store knew no account yet: this profile has never synchronized."""
    matched_by_address: int
    """Zivver accounts matched to a source entry by address in this run (new to the mapping)."""
    untouched: tuple[str, ...]
    """Zivver accounts in the domain filter that no source holds: zsync never touches them."""
    outside_filter: int
    """Zivver accounts outside the domain filter (never touched)."""
    sso_unknown: tuple[str, ...]
    """Matched users whose SsoAccountKey zsync does not know: changes to their aliases or
    delegates are held (see sync.existing_sso_keys)."""
    foreign_members: tuple[str, ...]
    """Functional accounts with members zsync cannot express (other functional accounts,
    ids that resolve to nothing): they are kept on every write."""
    numbers_differ: int = 0
    """Matched users whose mobile number in the sources is not among theirs in Zivver (read
    only with ``sync.sync_phone_numbers``): each is written."""
    numbers_replaced: tuple[str, ...] = ()
    """Those of them whose first number in Zivver (often one they set themselves) is
    replaced by the source's."""

    @property
    def worth_showing(self) -> bool:
        return self.first_run or bool(self.matched_by_address)

    def lines(self, shown: int = 5) -> list[str]:
        """The takeover in sentences, for the summary, headless output and ``zsync check``."""
        lines = []
        if self.first_run:
            lines.append(
                "First run of this profile: zsync matches Zivver's accounts to the sources by address."
            )
        if self.matched_by_address:
            lines.append(
                f"{self.matched_by_address} existing Zivver account(s) matched by address."
            )
        if self.untouched:
            lines.append(
                f"{len(self.untouched)} Zivver account(s) are in no source and are never touched: "
                + _some(self.untouched, shown)
                + "."
            )
        if self.outside_filter:
            lines.append(
                f"{self.outside_filter} Zivver account(s) are outside sync.domains and are never touched."
            )
        if self.sso_unknown:
            lines.append(
                f"{len(self.sso_unknown)} matched user(s) have an SsoAccountKey zsync cannot read "
                "(Zivver never returns it): changes to their aliases or delegates are held, because "
                "Zivver would erase the key. Set sync.existing_sso_keys in the profile: "
                "\"from-source\" if the keys came from this profile's sso_key attribute (Zivver's "
                'Synctool does so by default), "none" if the organization uses no SSO keys. '
                "Users: " + _some(self.sso_unknown, shown) + "."
            )
        if self.foreign_members:
            lines.append(
                f"{len(self.foreign_members)} functional account(s) have members zsync cannot "
                "express (other functional accounts, ids of no account); zsync keeps the functional "
                "accounts among them on every write: " + _some(self.foreign_members, shown) + "."
            )
        if self.numbers_differ:
            replaced = self.numbers_replaced
            lines.append(
                f"{self.numbers_differ} phone number(s) would change: the sources' number "
                "becomes each user's first number in Zivver (their others stay)"
                + (
                    f"; it replaces the first number {len(replaced)} of them have now: "
                    + _some(replaced, shown)
                    if replaced
                    else ""
                )
                + "."
            )
        return lines


def _some(items: tuple[str, ...], shown: int) -> str:
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")


@dataclass(slots=True)
class Plan:
    changes: list[Change]
    guards: list[Guard]
    notices: list[Notice]
    matches: list[Match]
    removals_blocked: str | None = None
    """Why no suspension or deletion was planned this run (unhealthy read), if so."""
    refused: str | None = None
    """Why this plan must not be applied at all (an incomplete or shrunk read), if so: both
    front ends refuse it, and it is shown with its removals blocked."""
    counts: dict[str, int] = field(default_factory=dict)
    not_sent: list[NotSent] = field(default_factory=list)
    """Parts of changes zsync does not send because they could destroy what it cannot see."""
    takeover: Takeover | None = None
    attention: list[str] = field(default_factory=list)
    """What else needs the admin, one phrase each (source entries skipped as unusable,
    suspensions and deletions not planned): the session sets it, and a run with any ends
    held (exit 2), never "in step"."""
    blocked_removals: list[str] = field(default_factory=list)
    """The accounts whose suspension or deletion was not planned because removals were
    blocked (``removals_blocked``), sorted."""
    unusable: list[Unusable] = field(default_factory=list)
    """The source entries that could not be used (the session sets it from the read)."""
    left_alone: list[str] = field(default_factory=list)
    """Accounts not changed this run because an entry with their address is unusable."""
    skipped: list[str] = field(default_factory=list)
    """Accounts not synced because they clash with Zivver: personal in a source but
    functional in Zivver (or the other way), or their address is another entry's account."""
    ignored: int = 0
    """Source entries a source earlier in the order overrides (the same address)."""

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

Emit = Callable[[Event], None]
"""Where a source, the session or the applier sends its events (a front end listens)."""
