"""What zsync sees, read only: the accounts one source yields, Zivver's accounts with what
zsync makes of each, and one account explained (``zsync show source``, ``zsync show
zivver``, ``zsync explain`` and their screens).

Nothing here sends anything to Zivver or writes to the state directory: Zivver and the
sources are read by a session in :attr:`~.session.Mode.CHECK` (the same load and plan as a
run, on a scratch copy of the store), and one source is read as a check reads it (a delta
source whole, keeping nothing). The TUI calls the same functions on the session it has
loaded, so a screen and the command line always agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .addresses import in_domains, normalize_address
from .config import Config, SyncConfig
from .errors import ConfigError, StoreError, ZsyncError
from .loading import LoadResult, read_numbers, read_source
from .merge import MappingEntry, merge_sources
from .model import (
    Action,
    Change,
    Kind,
    Notice,
    NotSent,
    Plan,
    SourceAccount,
    Unusable,
    ZivverAccount,
)
from .outcome import MappingRecord, TimelineEntry
from .section import GuardedAction, SourceSection
from .session import Mode, SyncSession
from .store import Store

# --- one source ------------------------------------------------------------------------


@dataclass(slots=True)
class SourceView:
    """Every account one source yields after mapping, and every entry it cannot use."""

    source: SourceSection
    accounts: list[SourceAccount]
    unusable: list[Unusable]
    notices: list[Notice]
    phones_synced: bool
    """Whether the profile syncs phone numbers (they are read and checked here either way)."""

    def __repr__(self) -> str:
        # short: asyncio.run on Python 3.11 reprs the main task's result (2 s at 100,000)
        return f"SourceView({self.source.name!r}, {len(self.accounts)} accounts)"


def source_named(config: Config, name: str) -> SourceSection:
    """The profile's source called ``name`` (its case does not matter).

    Raises:
        ConfigError: the profile has no such source (its sources are named).
    """
    for source in config.sources:  # exactly as written first (two may differ by case)
        if source.name == name or source.name.strip() == name.strip():
            return source
    wanted = name.strip().casefold()
    alike = [s for s in config.sources if s.name.strip().casefold() == wanted]
    if len(alike) == 1:
        return alike[0]
    names = ", ".join(repr(s.name) for s in config.sources) or "none"
    raise ConfigError(
        f"Profile {config.path}: there is no source named {name!r} (its sources: {names}). "
        "Give one of those names."
    )


async def read_one_source(config: Config, name: str) -> SourceView:
    """Read one source as a check reads it, its phone numbers checked whatever the profile
    says of syncing them.

    Raises:
        ZsyncError: no such source, or it cannot be read whole (named).
    """
    section = source_named(config, name)
    # the numbers read and checked as they would be with sync_phone_numbers on
    sync = config.sync.model_copy(update={"sync_phone_numbers": True})
    reading = config.model_copy(update={"sync": sync})
    result = await read_source(section, reading, None, True, lambda event: None)
    loaded = LoadResult(sources=[result])
    await asyncio.to_thread(read_numbers, loaded, reading)
    merged = merge_sources([(result.name, result.accounts)])  # an id two entries share
    shared = {(u.source, u.where) for u in merged.unusable}
    accounts = [a for a in result.accounts if (a.source, a.entry) not in shared]
    return SourceView(
        section,
        accounts,
        [*result.unusable, *merged.unusable],
        result.notices,
        config.sync.sync_phone_numbers,
    )


# --- Zivver's accounts -----------------------------------------------------------------


class Standing(StrEnum):
    """What zsync makes of an account in Zivver."""

    MANAGED = "managed"
    """A source holds it (matched by id or by address): zsync keeps it in step."""
    LEAVING = "leaving"
    """zsync created or matched it before, and no source holds it now: a removal is planned,
    or not allowed (the options, or the read's health)."""
    UNTOUCHED = "untouched"
    """No source holds it and zsync never managed it: zsync never touches it."""
    OUTSIDE_DOMAINS = "outside-domains"
    """Its address is outside ``sync.domains``: never touched."""
    LEFT_ALONE = "left-alone"
    """An entry with its address is unusable in a source this run: left as it is."""
    SKIPPED = "skipped"
    """A source holds it, but it clashes with Zivver (a kind, another entry's account)."""


class KeyKnown(StrEnum):
    """Whether zsync knows a user's SsoAccountKey (Zivver never returns it)."""

    KNOWN = "known"
    UNKNOWN = "unknown"
    NONE = "none"
    """Known to have none."""
    NOT_A_USER = ""


@dataclass(frozen=True, slots=True)
class ZivverRow:
    """One Zivver account and what zsync makes of it."""

    account: ZivverAccount
    standing: Standing
    source: str | None = None
    """The source that holds it (managed), or that held it (leaving)."""
    matched_by: str | None = None
    """"id" (the mapping) or "address" (matched this run for the first time)."""
    sso_key: KeyKnown = KeyKnown.NOT_A_USER
    change: Change | None = None
    """What the next run would do to it."""
    unreadable: str | None = None
    """What Zivver's answer for it lacked (nothing is written to it this run)."""


def zivver_rows(
    zivver: list[ZivverAccount],
    plan: Plan,
    mapping: dict[str, MappingEntry],
    options_domains: Iterable[str],
    existing_sso_keys: str,
    unreadable: Mapping[str, str] | None = None,
) -> list[ZivverRow]:
    """Each Zivver account with its standing, from a load and its plan (no read)."""
    domains = frozenset(options_domains)
    matched = {m.zivver_id: m for m in plan.matches}
    changes = {c.zivver_id: c for c in plan.changes if c.zivver_id is not None}
    owned = {entry.zivver_id: (source_id, entry) for source_id, entry in mapping.items()}
    left_alone, skipped = set(plan.left_alone), set(plan.skipped)
    unknown = set(plan.takeover.sso_unknown) if plan.takeover else set()
    rows = []
    for account in zivver:
        zivver_id = account.zivver_id
        match = matched.get(zivver_id)
        mapped = owned.get(zivver_id)
        source = matched_by = None
        if not in_domains(account.email, domains):
            standing = Standing.OUTSIDE_DOMAINS
        elif match is not None:
            standing, source = Standing.MANAGED, match.source
            by_id = mapped is not None and mapped[0] == match.source_id
            matched_by = "id" if by_id else "address"
        elif account.email in left_alone:
            standing = Standing.LEFT_ALONE
        elif account.email in skipped:
            standing = Standing.SKIPPED
        elif mapped is not None:
            standing = Standing.LEAVING
        else:
            standing = Standing.UNTOUCHED
        key = KeyKnown.NOT_A_USER
        if account.kind is Kind.PERSONAL:
            key = _key_known(account, mapped, standing, unknown, existing_sso_keys)
        lacks = (unreadable or {}).get(zivver_id)
        change = changes.get(zivver_id)
        rows.append(ZivverRow(account, standing, source, matched_by, key, change, lacks))
    return rows


def _key_known(
    account: ZivverAccount,
    mapped: tuple[str, MappingEntry] | None,
    standing: Standing,
    unknown: set[str],
    existing_sso_keys: str,
) -> KeyKnown:
    if mapped is not None and mapped[1].sso_key_sent is not None:
        return KeyKnown.KNOWN if mapped[1].sso_key_sent else KeyKnown.NONE
    if standing is not Standing.MANAGED or account.email in unknown:
        return KeyKnown.UNKNOWN
    if existing_sso_keys == "none":
        return KeyKnown.NONE
    return KeyKnown.KNOWN if existing_sso_keys == "from-source" else KeyKnown.UNKNOWN


# --- one account explained -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding:
    """A source entry that holds an address."""

    account: SourceAccount
    holds_as: str
    """"address" or "alias"."""
    wins: bool
    """Its account is the one zsync syncs (the first source in the order holding it)."""
    why: str


@dataclass(slots=True)
class Explanation:
    """Everything zsync knows of one address, and why the next run does what it does."""

    address: str
    verdict: str
    """Why the next run changes it, or why not, in one sentence."""
    standing: Standing | None
    """What zsync makes of it in Zivver (None: Zivver has no account with it)."""
    holdings: list[Holding] = field(default_factory=list)
    unusable: list[Unusable] = field(default_factory=list)
    mapping: list[MappingRecord] = field(default_factory=list)
    zivver: ZivverAccount | None = None
    zivver_as: str | None = None
    """"address" or "alias": how the Zivver account holds it."""
    changes: list[Change] = field(default_factory=list)
    """What the next run would do to it (a rename or a removal of delegates may be two)."""
    unreadable: str | None = None
    """What Zivver's answer for its account lacked."""
    not_sent: list[NotSent] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    """Every journaled change to it, oldest first, dry runs' planned ones included."""

    @property
    def applied(self) -> list[TimelineEntry]:
        """The timeline without dry runs (what was sent, or held, in real runs)."""
        return [t for t in self.timeline if not t.dry_run]


def explain(
    raw: str,
    loaded: LoadResult,
    plan: Plan,
    rows: list[ZivverRow],
    mapping: list[MappingRecord],
    timeline: list[TimelineEntry],
    options: SyncConfig,
    confirmed: frozenset[str] = frozenset(),
    excluded: frozenset[int] = frozenset(),
) -> Explanation:
    """Explain ``raw`` (an address) from a load, its plan and Zivver's rows."""
    address = normalize_address(raw) or raw.strip().lower()
    unusable = [u for u in plan.unusable if u.address == address]
    doubtful = {(u.source, u.where): u for u in plan.unusable}
    holdings = _holdings(address, loaded, doubtful) + _renamed(address, loaded, mapping, doubtful)
    row = next((r for r in rows if r.account.email == address), None)
    zivver_as = "address" if row is not None else None
    if row is None:
        row = next((r for r in rows if address in r.account.aliases), None)
        zivver_as = "alias" if row is not None else None
    if row is None:  # the sources hold it under a new address: a rename, by the mapping
        ids = {m.zivver_id for m in mapping}
        row = next((r for r in rows if r.account.zivver_id in ids), None)
        zivver_as = "renamed" if row is not None else None
    zivver_id = row.account.zivver_id if row is not None else None
    changes = [
        c
        for c in plan.changes
        if c.email == address or (zivver_id is not None and c.zivver_id == zivver_id)
    ]
    not_sent = [n for n in plan.not_sent if n.email == address]
    explanation = Explanation(
        address,
        "",
        row.standing if row is not None else None,
        holdings,
        unusable,
        mapping,
        row.account if row is not None else None,
        zivver_as,
        changes,
        row.unreadable if row is not None else None,
        not_sent,
        timeline,
    )
    outside = not in_domains(address, frozenset(options.domains))
    threshold = options.suspend_threshold_percent
    explanation.verdict = _verdict(explanation, plan, outside, confirmed, excluded, threshold)
    return explanation


def _holdings(
    address: str, loaded: LoadResult, doubtful: Mapping[tuple[str, str], Unusable]
) -> list[Holding]:
    found: list[Holding] = []
    winner: SourceAccount | None = None
    for result in loaded.sources:
        for account in result.accounts:
            if account.email == address:
                holds_as = "address"
            elif address in account.aliases:
                holds_as = "alias"
            else:
                continue
            unusable = doubtful.get((account.source, account.entry))
            if unusable is not None and unusable.value is None:
                why = f"not used: {unusable.reason}"
                found.append(Holding(account, holds_as, False, why))
            elif holds_as == "address" and winner is None:
                winner = account
                why = "the first source in the order that holds this address"
                held = any(u.protects and u.address == address for u in doubtful.values())
                if held:  # another entry with it is unusable: neither says how it should be
                    why += ", but not used this run: another entry with it is unusable"
                found.append(Holding(account, holds_as, not held, why))
            elif holds_as == "address":
                assert winner is not None
                where = (
                    "earlier in the same source"
                    if winner.source == account.source
                    else f"in source {winner.source!r}, earlier in the order"
                )
                why = f"ignored: {winner.entry} {where} holds the same address"
                found.append(Holding(account, holds_as, False, why))
            else:
                why = f"an alias of {account.email}"
                found.append(Holding(account, holds_as, False, why))
    return found


ACTION_WORDS = {
    Action.CREATE_USER: "create the user",
    Action.UPDATE_USER: "update the user",
    Action.REACTIVATE_USER: "re-enable the user",
    Action.SUSPEND_USER: "suspend the user",
    Action.DELETE_USER: "delete the user",
    Action.CREATE_FUNCTIONAL: "create the functional account",
    Action.UPDATE_FUNCTIONAL: "update the functional account",
    Action.SUSPEND_FUNCTIONAL: "disable the functional account (remove its delegates)",
    Action.DELETE_FUNCTIONAL: "delete the functional account",
}
FIELD_WORDS = {"email": "address", "display_name": "name", "sso_key": "SsoAccountKey"}


def _renamed(
    address: str,
    loaded: LoadResult,
    mapping: list[MappingRecord],
    doubtful: Mapping[tuple[str, str], Unusable],
) -> list[Holding]:
    """Source entries that hold the account by its id under another address: a rename."""
    ids = {m.source_id for m in mapping}
    ids -= {u.source_id for u in doubtful.values() if u.source_id and u.value is None}
    return [
        Holding(
            account,
            "id",
            True,
            f"the entry the mapping knows by its id ({account.source_id}) now has the address "
            f"{account.email}: the account is renamed to it",
        )
        for result in loaded.sources
        for account in result.accounts
        if account.source_id in ids
        and account.email != address
        and (account.source, account.entry) not in doubtful
    ]


def _guarded_by(plan: Plan, change: Change, threshold: float) -> str:
    """Why a change waits for a confirmation, after "held until confirmed"."""
    guard = next((g for g in plan.guards if g.action is change.guard), None)
    if guard is None:
        return ""
    said = f": {guard.label[0].lower()}{guard.label[1:]}{guard.detail}"
    if guard.action in (GuardedAction.SUSPEND_USERS, GuardedAction.SUSPEND_FUNCTIONAL):
        said += f", more than suspend_threshold_percent ({threshold:g} %)"
    return said


def _verdict(
    e: Explanation,
    plan: Plan,
    outside: bool,
    confirmed: frozenset[str],
    excluded: frozenset[int],
    threshold: float,
) -> str:
    """Why the next run does what it does to the address, in one sentence."""
    if plan.refused:
        return f"The next run changes nothing: {plan.refused}."
    if e.zivver is not None and e.unreadable:
        return (
            "Nothing is written to it: Zivver answered it in a shape zsync cannot read whole "
            f"({e.unreadable}), so what a write would remove is not known."
        )
    if e.zivver_as == "alias" and e.zivver is not None and e.address in plan.skipped:
        owner = e.zivver.email
        said = f"Not created: Zivver holds it as an alias of {owner}."
        if any(c.zivver_id == e.zivver.zivver_id and "aliases" in c.fields for c in e.changes):
            return said + f" The next run takes the alias off {owner}; the run after creates it."
        return said + f" Take the alias off {owner} (in its source, or in the Zivver WebApp)."
    if e.changes:
        parts = []
        for change in e.changes:
            fields = ", ".join(FIELD_WORDS.get(f, f) for f in sorted(change.fields))
            said = f"{ACTION_WORDS[change.action]} ({fields})"
            if change.id in excluded:
                said += ": excluded by you in this session"
            elif change.guard is not None and change.guard.value not in confirmed:
                said += f": held until confirmed{_guarded_by(plan, change, threshold)} (--confirm "
                said += f"{change.guard.value}, or its box in the checklist)"
            elif change.why:
                said += f": {change.why}"
            parts.append(said)
        text = "The next run would " + "; then ".join(parts)
        if e.not_sent:
            text += "; not sent: " + "; ".join(n.reason for n in e.not_sent)
        return text + "."
    if e.not_sent:
        return "Nothing is sent to it: " + "; ".join(n.reason for n in e.not_sent) + "."
    if e.unusable and any(u.protects for u in e.unusable):
        return (
            ("Left as it is" if e.zivver is not None else "Not created")
            + " this run: an entry with this address is unusable ("
            + "; ".join(f"{u.source} {u.where}: {u.reason}" for u in e.unusable)
            + ")."
        )
    standing = e.standing
    if outside or standing is Standing.OUTSIDE_DOMAINS:
        return "Never touched: its address is outside sync.domains."
    if standing is Standing.UNTOUCHED:
        return "Never touched: no source holds it, and zsync did not create or match it."
    if standing is Standing.SKIPPED:
        return "Not synced: it clashes with Zivver (see the warning that names it)."
    zivver = e.zivver
    if e.address in plan.blocked_removals and plan.removals_blocked:
        return f"Not suspended or deleted this run: {plan.removals_blocked}."
    if standing is Standing.LEAVING:
        if zivver is not None and zivver.kind is Kind.PERSONAL and not zivver.active:
            return "No source holds it any more; it is suspended already (delete_users is off)."
        if zivver is not None and zivver.kind is Kind.FUNCTIONAL and not zivver.delegates:
            return (
                "No source holds it any more; it has no delegates already "
                "(delete_functional_accounts is off)."
            )
        return (
            "No source holds it any more; the options plan no removal for it (suspend_users, "
            "delete_users and their functional twins)."
        )
    winners = [h for h in e.holdings if h.wins]
    if e.zivver_as == "renamed" and zivver is not None:
        return (
            f"Renamed: the account that had this address is now {zivver.email} "
            f"(zsync explain {zivver.email})."
        )
    if standing is Standing.MANAGED and e.zivver_as == "alias" and zivver is not None:
        return f"An alias of {zivver.email} in Zivver, which is in step with the sources."
    if standing is Standing.MANAGED:
        user = zivver is not None and zivver.kind is Kind.PERSONAL
        if user and winners and zivver is not None and winners[0].account.active != zivver.active:
            wanted = "re-enable" if winners[0].account.active else "suspend"
            return (
                f"Not in step, and no change is planned: the options do not {wanted} it "
                "(reactivate_users / suspend_users)."
            )
        return "In step: Zivver already holds what the sources say."
    if winners:
        account = winners[0].account
        if not account.active:
            return "Not in Zivver, and not created: it is disabled in the source."
        return (
            "Not in Zivver, and not created: the options do not create it (create_users / "
            "create_functional_accounts)."
        )
    if e.holdings:
        return "Only an alias of another account holds this address."
    renamed = [m for m in e.mapping if m.email != e.address]
    if renamed:
        return (
            f"Renamed: the account that had this address is now {renamed[-1].email} "
            f"(zsync explain {renamed[-1].email})."
        )
    return "Neither Zivver nor any source holds this address."


# --- read by a check session (the command line) -----------------------------------------


@dataclass(slots=True)
class Looked:
    """A check session's load and plan, with Zivver's rows."""

    session: SyncSession
    loaded: LoadResult
    plan: Plan
    rows: list[ZivverRow]

    def __repr__(self) -> str:  # short: see SourceView.__repr__
        return f"Looked({self.loaded!r}, {len(self.rows)} rows)"


async def look(config: Config) -> Looked:
    """Read every source and Zivver as a check does, and plan (nothing is sent or kept).
    The caller closes ``looked.session``.

    Raises:
        ZsyncError: the store cannot be read, or a source or Zivver cannot be read whole
            (each named).
    """
    state = Store.check(config.state_path)
    if not state.ok:
        raise StoreError(f"State directory {config.state_path}: {state.message}")
    session = SyncSession(
        config, mode=Mode.CHECK, store=Store.scratch(config.state_path, copy=True)
    )
    try:
        loaded = await session.load()
        if not loaded.ok:
            raise ZsyncError("Could not read everything: " + "; ".join(loaded.errors()))
        plan = await asyncio.to_thread(session.plan)
    except BaseException:
        session.close()
        raise
    rows = rows_of(session, plan)
    return Looked(session, loaded, plan, rows)


def rows_of(session: SyncSession, plan: Plan) -> list[ZivverRow]:
    """Zivver's rows for a loaded session's plan."""
    assert session.loaded is not None
    options = session.options
    loaded = session.loaded
    return zivver_rows(
        loaded.zivver,
        plan,
        session.mapping,
        options.domains,
        options.existing_sso_keys,
        loaded.unreadable,
    )


def explain_in(
    session: SyncSession,
    plan: Plan,
    raw: str,
    rows: list[ZivverRow] | None = None,
    excluded: frozenset[int] = frozenset(),
    confirmed: frozenset[str] | None = None,
) -> Explanation:
    """Explain ``raw`` from a session that has loaded (the TUI: no read)."""
    assert session.loaded is not None
    rows = rows if rows is not None else rows_of(session, plan)
    address = normalize_address(raw) or raw.strip().lower()
    ids = [r.account.zivver_id for r in rows if r.account.email == address]
    mapped = session.mapping
    ids += [  # a source entry with this address, matched before under another: a rename
        mapped[a.source_id].zivver_id
        for result in session.loaded.sources
        for a in result.accounts
        if a.email == address and a.source_id in mapped
    ]
    mapping, timeline = session.history_of(address, ids)  # its old addresses' too
    if confirmed is None:
        confirmed = frozenset(g.value for g in session.confirmed_in_profile())
    return explain(
        raw,
        session.loaded,
        plan,
        rows,
        mapping,
        timeline,
        session.options,
        confirmed,
        excluded,
    )
