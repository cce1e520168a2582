"""The planner: a pure, synchronous diff of (sources, Zivver, mapping, options) -> Plan.

Rules (product.md, "Data rules" and "Safety"):
- accounts are matched on the immutable source id through the local mapping, falling
  back to the address only for accounts not matched before: a changed address is a rename;
- Zivver accounts the tool neither created nor matched are never touched, nor is anything
  outside the domain filter;
- an account that is personal on one side and functional on the other is skipped;
- when the read was unhealthy, no suspension or deletion is planned;
- the five guarded categories are marked on their changes, with their numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .addresses import in_domains
from .config import GuardedAction, SyncConfig
from .model import (
    ACTION_ORDER,
    NO_ADDRESSES,
    Action,
    Change,
    Fields,
    Guard,
    Kind,
    Match,
    Notice,
    Plan,
    SourceAccount,
    ZivverAccount,
    address_set,
)


class MappingEntry(NamedTuple):
    """What the local store remembers of one account (a tuple: 100,000 are read per run)."""

    zivver_id: str
    sso_key_sent: str | None = None


def merge_sources(
    per_source: Iterable[tuple[str, list[SourceAccount]]],
) -> tuple[list[SourceAccount], list[Notice]]:
    """Merge sources in precedence order: the first source holding an address wins."""
    merged: dict[str, SourceAccount] = {}
    ids: set[str] = set()
    notices: list[Notice] = []
    for _name, accounts in per_source:
        for account in accounts:
            winner = merged.get(account.email)
            if winner is not None:
                where = (
                    "the same source"
                    if winner.source == account.source
                    else f"source {winner.source!r}"
                )
                notices.append(
                    Notice(
                        "warning",
                        f"{account.email} appears twice: {account.entry} (source {account.source!r}) is "
                        f"ignored because {winner.entry} in {where} comes first.",
                    )
                )
                continue
            if account.source_id in ids:
                notices.append(
                    Notice(
                        "warning",
                        f"{account.entry} (source {account.source!r}) has the id {account.source_id} "
                        "of another account; it is ignored. Check the id attribute mapping.",
                    )
                )
                continue
            merged[account.email] = account
            ids.add(account.source_id)
    return list(merged.values()), notices


def plan(
    sources: list[SourceAccount],
    zivver: list[ZivverAccount],
    mapping: Mapping[str, MappingEntry],
    options: SyncConfig,
    removals_blocked: str | None = None,
    protected_ids: frozenset[str] = frozenset(),
) -> Plan:
    """Compute every change that brings Zivver in step with the (merged) sources.

    Args:
        sources: merged source accounts (see :func:`merge_sources`).
        zivver: every account in the Zivver organization.
        mapping: source id -> what the store remembers (Zivver id, SsoAccountKey sent).
        options: the sync options.
        removals_blocked: when set, the reason no suspension or deletion may be planned.
        protected_ids: source ids of entries a source could not parse: their accounts are
            not "missing", so they are never suspended or deleted because of it.
    """
    return _Planner(zivver, mapping, options, removals_blocked, protected_ids).run(sources)


class _Planner:
    def __init__(
        self,
        zivver: list[ZivverAccount],
        mapping: Mapping[str, MappingEntry],
        options: SyncConfig,
        removals_blocked: str | None,
        protected_ids: frozenset[str] = frozenset(),
    ) -> None:
        self.options = options
        self.domains = frozenset(options.domains)
        self.protected_ids = protected_ids
        self.mapping = mapping
        self.removals_blocked = removals_blocked
        self.zivver = zivver
        self.by_id = {account.zivver_id: account for account in zivver}
        self.by_email = {account.email: account for account in zivver}
        self.owner_of = {entry.zivver_id: source_id for source_id, entry in mapping.items()}
        self.claimed: dict[str, str] = {}
        self.pending: list[Change] = []
        """Changes before they get their id and guard (see _finish)."""
        self.notices: list[Notice] = []
        self.matches: list[Match] = []
        self.skipped_removals = 0
        self.renamed: dict[str, str] = {}

    def in_domain(self, address: str) -> bool:
        return in_domains(address, self.domains)

    def run(self, sources: list[SourceAccount]) -> Plan:
        wanted = [account for account in sources if self._admit(account)]
        source_ids = {account.source_id for account in wanted}
        personal = {a.email for a in wanted if a.kind is Kind.PERSONAL and a.active}
        primaries = {a.email for a in wanted} | set(self.by_email)
        found = [(account, self._find(account, source_ids)) for account in wanted]
        # a renamed user keeps its Zivver id, so delegations to it are unchanged
        self.renamed = {
            current.email: account.email
            for account, current in found
            if current is not None
            and current is not _SKIP
            and current.kind is account.kind
            and current.email != account.email
        }
        for account, current in found:
            self._plan_account(account, current, personal, primaries)
        self._plan_missing()
        if self.skipped_removals and self.removals_blocked:
            self.notices.append(
                Notice(
                    "warning",
                    f"{self.skipped_removals} suspension(s) or deletion(s) were not planned: "
                    f"{self.removals_blocked}",
                )
            )
        return self._finish(len(sources))

    # --- one source account ------------------------------------------------------------

    def _admit(self, account: SourceAccount) -> bool:
        if self.in_domain(account.email):
            return True
        self.notices.append(
            Notice(
                "info",
                f"{account.email} ({account.entry}) is outside the domain filter; not synced.",
            )
        )
        return False

    def _find(self, account: SourceAccount, source_ids: set[str]) -> ZivverAccount | None:
        entry = self.mapping.get(account.source_id)
        if entry is not None and entry.zivver_id in self.by_id:
            self.claimed[entry.zivver_id] = account.source_id
            return self.by_id[entry.zivver_id]
        candidate = self.by_email.get(account.email)
        if candidate is None:
            return None
        owner = self.owner_of.get(candidate.zivver_id)
        if candidate.zivver_id in self.claimed or (
            owner not in (None, account.source_id) and owner in source_ids
        ):
            self.notices.append(
                Notice(
                    "warning",
                    f"{account.email} ({account.entry}) is skipped: the Zivver account with this "
                    "address belongs to another directory entry. Resolve the address clash in the directory.",
                )
            )
            self.claimed.setdefault(candidate.zivver_id, account.source_id)
            return _SKIP
        self.claimed[candidate.zivver_id] = account.source_id
        return candidate

    def _plan_account(
        self,
        account: SourceAccount,
        current: ZivverAccount | None,
        personal: set[str],
        primaries: set[str],
    ) -> None:
        if current is _SKIP:
            return
        if current is not None and current.kind is not account.kind:
            self.claimed[current.zivver_id] = account.source_id
            self.notices.append(
                Notice(
                    "warning",
                    f"Skipping {account.email}: it is a {account.kind.value} account in source "
                    f"{account.source!r} ({account.entry}) but a {current.kind.value} account in Zivver. "
                    "Zivver cannot change an account's type; change it in the Zivver WebApp or the directory.",
                )
            )
            return
        aliases = self._aliases(account, current, primaries)
        delegates = self._delegates(account, personal)
        if current is None:
            self._plan_create(account, aliases, delegates)
            return
        self.claimed[current.zivver_id] = account.source_id
        self.matches.append(
            Match(account.kind, account.source_id, current.zivver_id, account.email, account.source)
        )
        if account.kind is Kind.PERSONAL:
            self._plan_user(account, current, aliases, delegates)
        else:
            self._plan_functional(account, current, aliases, delegates)

    def _aliases(
        self, account: SourceAccount, current: ZivverAccount | None, primaries: set[str]
    ) -> frozenset[str]:
        if not account.aliases:
            return NO_ADDRESSES
        keep = set()
        for alias in account.aliases:
            if alias == account.email:
                continue
            if current is not None and alias == current.email:
                keep.add(alias)  # a renamed account keeps its old address as an alias
            elif not self.in_domain(alias):
                self.notices.append(
                    Notice(
                        "info",
                        f"Alias {alias} of {account.email} is outside the domain filter; dropped.",
                    )
                )
            elif alias in primaries:
                self.notices.append(
                    Notice(
                        "warning",
                        f"Alias {alias} of {account.email} ({account.entry}) is the address of another "
                        "account; adding it would merge the two accounts irreversibly, so it is dropped.",
                    )
                )
            else:
                keep.add(alias)
        return address_set(keep)

    def _delegates(self, account: SourceAccount, personal: set[str]) -> frozenset[str]:
        if not account.delegates:
            return NO_ADDRESSES
        keep = set()
        for delegate in account.delegates:
            if delegate == account.email:
                continue
            if delegate in personal:
                keep.add(delegate)
            else:
                self.notices.append(
                    Notice(
                        "info",
                        f"Delegate {delegate} of {account.email} is not a synced personal account; dropped.",
                    )
                )
        return address_set(keep)

    def _plan_create(
        self, account: SourceAccount, aliases: frozenset[str], delegates: frozenset[str]
    ) -> None:
        if not account.active:
            return
        personal = account.kind is Kind.PERSONAL
        if not (self.options.create_users if personal else self.options.create_functional_accounts):
            return
        after: Fields = {"email": account.email, "display_name": account.display_name}
        if self.options.sync_aliases and aliases:
            after["aliases"] = sorted(aliases)
        if self.options.sync_delegations and delegates:
            after["delegates"] = sorted(delegates)
        if account.division:
            after["division"] = account.division
        if personal:
            after["active"] = True
        action = Action.CREATE_USER if personal else Action.CREATE_FUNCTIONAL
        self._add(action, account, None, {}, after, account.sso_key if personal else None)

    def _field_diff(
        self,
        account: SourceAccount,
        current: ZivverAccount,
        aliases: frozenset[str],
        delegates: frozenset[str],
    ) -> tuple[Fields, Fields]:
        before: Fields = {}
        after: Fields = {}
        if account.email != current.email:
            before["email"], after["email"] = current.email, account.email
        if account.display_name and account.display_name != current.display_name:
            before["display_name"], after["display_name"] = (
                current.display_name,
                account.display_name,
            )
        if self.options.sync_aliases and aliases != current.aliases:
            before["aliases"], after["aliases"] = sorted(current.aliases), sorted(aliases)
        if self.options.sync_delegations and (delegates or current.delegates):
            renamed = self.renamed
            now = (
                frozenset(renamed.get(d, d) for d in current.delegates)
                if renamed
                else current.delegates
            )
            if delegates != now:
                before["delegates"], after["delegates"] = (
                    sorted(current.delegates),
                    sorted(delegates),
                )
        if account.division and account.division != current.division:
            before["division"], after["division"] = current.division, account.division
        return before, after

    def _plan_user(
        self,
        account: SourceAccount,
        current: ZivverAccount,
        aliases: frozenset[str],
        delegates: frozenset[str],
    ) -> None:
        options = self.options
        before, after = (
            self._field_diff(account, current, aliases, delegates)
            if options.update_users
            else ({}, {})
        )
        entry = self.mapping.get(account.source_id)
        sso = self._known_sso(account, current, entry)
        if account.active != current.active:
            allowed = (
                options.reactivate_users
                if account.active
                else self._removal_allowed(options.suspend_users)
            )
            if allowed:
                action = Action.REACTIVATE_USER if account.active else Action.SUSPEND_USER
                before["active"], after["active"] = current.active, account.active
                self._add(action, account, current, before, after, sso)
            return
        if after:
            self._add(Action.UPDATE_USER, account, current, before, after, sso)
        if (
            options.update_sso_keys
            and account.sso_key
            and (entry is None or entry.sso_key_sent != account.sso_key)
        ):
            self._add(
                Action.UPDATE_USER,
                account,
                current,
                {"sso_key": "(unknown: Zivver never returns it)"},
                {"sso_key": account.sso_key},
                account.sso_key,
            )

    def _known_sso(
        self, account: SourceAccount, current: ZivverAccount, entry: MappingEntry | None
    ) -> str | None:
        """The SsoAccountKey to repeat in a PUT: only one we know Zivver already has."""
        if (
            entry is not None
            and entry.zivver_id == current.zivver_id
            and entry.sso_key_sent == account.sso_key
        ):
            return account.sso_key
        return None

    def _plan_functional(
        self,
        account: SourceAccount,
        current: ZivverAccount,
        aliases: frozenset[str],
        delegates: frozenset[str],
    ) -> None:
        options = self.options
        if not account.active or (options.sync_delegations and not delegates and current.delegates):
            if current.delegates and self._removal_allowed(options.suspend_functional_accounts):
                self._add(
                    Action.SUSPEND_FUNCTIONAL,
                    account,
                    current,
                    {"delegates": sorted(current.delegates)},
                    {"delegates": []},
                    None,
                )
            return
        if not options.update_functional_accounts:
            return
        before, after = self._field_diff(account, current, aliases, delegates)
        if after:
            self._add(Action.UPDATE_FUNCTIONAL, account, current, before, after, None)

    # --- accounts we own that the sources no longer hold --------------------------------

    def _plan_missing(self) -> None:
        options = self.options
        for source_id, entry in self.mapping.items():
            current = self.by_id.get(entry.zivver_id)
            if (
                current is None
                or current.zivver_id in self.claimed
                or source_id in self.protected_ids
                or not self.in_domain(current.email)
            ):
                continue
            before: Fields = {}
            after: Fields = {}
            action: Action | None = None
            if current.kind is Kind.PERSONAL:
                if options.delete_users:
                    action = Action.DELETE_USER if self._removal_allowed(True) else None
                elif current.active and self._removal_allowed(options.suspend_users):
                    action, before, after = Action.SUSPEND_USER, {"active": True}, {"active": False}
            elif options.delete_functional_accounts:
                action = Action.DELETE_FUNCTIONAL if self._removal_allowed(True) else None
            elif current.delegates and self._removal_allowed(options.suspend_functional_accounts):
                action = Action.SUSPEND_FUNCTIONAL
                before, after = {"delegates": sorted(current.delegates)}, {"delegates": []}
            if action is not None:
                self.pending.append(
                    Change(
                        0, action, current.email, current.zivver_id, source_id, None, before, after
                    )
                )

    def _removal_allowed(self, option: bool) -> bool:
        if not option:
            return False
        if self.removals_blocked:
            self.skipped_removals += 1
            return False
        return True

    # --- bookkeeping --------------------------------------------------------------------

    def _add(
        self,
        action: Action,
        account: SourceAccount,
        current: ZivverAccount | None,
        before: Fields,
        after: Fields,
        sso_key: str | None,
    ) -> None:
        self.pending.append(
            Change(
                0,
                action,
                account.email,
                current.zivver_id if current else None,
                account.source_id,
                account.source,
                before,
                after,
                sso_key=sso_key,
            )
        )

    def _finish(self, source_count: int) -> Plan:
        rank = {action: index for index, action in enumerate(ACTION_ORDER)}
        self.pending.sort(key=lambda item: (rank[item.action], item.email))
        guards = self._guards()
        guarded = {guard.action for guard in guards}
        changes = []
        for number, item in enumerate(self.pending, 1):
            guard = _guard_of(item.action, item.after)
            changes.append(
                dataclasses.replace(item, id=number, guard=guard if guard in guarded else None)
            )
        users = sum(1 for account in self.zivver if account.kind is Kind.PERSONAL)
        return Plan(
            changes=changes,
            guards=guards,
            notices=self.notices,
            matches=self.matches,
            removals_blocked=self.removals_blocked,
            counts={
                "source_accounts": source_count,
                "zivver_users": users,
                "zivver_functional_accounts": len(self.zivver) - users,
            },
        )

    def _guards(self) -> list[Guard]:
        counts = {action: 0 for action in GuardedAction}
        for item in self.pending:
            guard = _guard_of(item.action, item.after)
            if guard is not None:
                counts[guard] += 1
        users = sum(1 for account in self.zivver if account.kind is Kind.PERSONAL)
        functional = len(self.zivver) - users
        threshold = self.options.suspend_threshold_percent
        guards = []
        for guarded, count in counts.items():
            if not count:
                continue
            total = (
                functional
                if guarded in (GuardedAction.SUSPEND_FUNCTIONAL, GuardedAction.DELETE_FUNCTIONAL)
                else users
            )
            if (
                guarded in (GuardedAction.SUSPEND_USERS, GuardedAction.SUSPEND_FUNCTIONAL)
                and count * 100 <= threshold * total
            ):
                continue
            guards.append(Guard(guarded, count, total, guard_text(guarded, count, total)))
        return guards


_SKIP = ZivverAccount(Kind.PERSONAL, "", "", "", False)
"""Sentinel: the account must not be matched nor created this run."""


def _guard_of(action: Action, after: Fields) -> GuardedAction | None:
    if action is Action.SUSPEND_USER:
        return GuardedAction.SUSPEND_USERS
    if action is Action.SUSPEND_FUNCTIONAL:
        return GuardedAction.SUSPEND_FUNCTIONAL
    if action is Action.DELETE_USER:
        return GuardedAction.DELETE_USERS
    if action is Action.DELETE_FUNCTIONAL:
        return GuardedAction.DELETE_FUNCTIONAL
    if action is Action.UPDATE_USER and "sso_key" in after:
        return GuardedAction.UPDATE_SSO_KEYS
    return None


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f} %" if total else "100 %"


def guard_text(action: GuardedAction, count: int, total: int) -> str:
    """The checklist line, e.g. "Suspend 12 of 140 users (8.6 %)"."""
    if action is GuardedAction.SUSPEND_USERS:
        return f"Suspend {count} of {total} users ({_percent(count, total)})"
    if action is GuardedAction.SUSPEND_FUNCTIONAL:
        return f"Disable {count} of {total} functional accounts ({_percent(count, total)})"
    if action is GuardedAction.DELETE_USERS:
        return f"Delete {count} users — irreversible, their messages are lost"
    if action is GuardedAction.DELETE_FUNCTIONAL:
        return f"Delete {count} functional accounts — irreversible"
    return f"Update the SsoAccountKey of {count} existing users — can break single sign-on"
