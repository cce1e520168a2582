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
    NO_DIVISION,
    SSO_KEY,
    SSO_UNKNOWN,
    AccountState,
    Action,
    Change,
    Guard,
    Kind,
    Match,
    Notice,
    NotSent,
    Plan,
    SourceAccount,
    Takeover,
    Unusable,
    ZivverAccount,
    address_set,
    shown,
)
from .sources.fields import canonical

BLOCK_FIELDS = frozenset({"aliases", "delegates"})
SSO_NOT_SENT = (
    "Zivver keeps aliases and delegates in the user block beside the user's SsoAccountKey; a "
    "write of that block without the key erases it, and zsync does not know these users' keys "
    "(Zivver never returns them, and zsync did not set them). Set sync.existing_sso_keys in the "
    "profile: \"from-source\" if the keys came from this source's sso_key attribute (as Zivver's "
    'Synctool sets them by default), or "none" if the organization uses no SSO keys.'
)
"""The user fields that travel in Zivver's user block, beside the write-only SsoAccountKey."""


class MappingEntry(NamedTuple):
    """What the local store remembers of one account (a tuple: 100,000 are read per run)."""

    zivver_id: str
    sso_key_sent: str | None = None


class Merged(NamedTuple):
    """The sources' accounts in one list, and what merging them set aside."""

    accounts: list[SourceAccount]
    notices: list[Notice]
    unusable: list[Unusable]
    """Entries whose id another entry (of any source) already has: which of them the mapped
    Zivver account belongs to is not known, so the account with its address is left alone."""
    ignored: int
    """Entries a source earlier in the order overrides (it holds the same address)."""


def merge_sources(per_source: Iterable[tuple[str, list[SourceAccount]]]) -> Merged:
    """Merge sources in precedence order: the first source holding an address wins."""
    merged: dict[str, SourceAccount] = {}
    ids: dict[str, SourceAccount] = {}
    notices: list[Notice] = []
    unusable: list[Unusable] = []
    ignored = 0
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
                ignored += 1
                continue
            other = ids.get(account.source_id)
            if other is not None:
                unusable.append(
                    Unusable(
                        account.source,
                        account.entry,
                        f"its id {account.source_id} is also the id of {other.entry} (source "
                        f"{other.source!r}), so which account it is is not known; check the id "
                        "attribute or column",
                        account.email,
                    )
                )
                continue
            merged[account.email] = account
            ids[account.source_id] = account
    return Merged(list(merged.values()), notices, unusable, ignored)


class ZivverIndex(NamedTuple):
    """The organization as read, indexed once per load (a plan at 100,000 accounts is
    recomputed at every change of options; these do not depend on them)."""

    by_id: dict[str, ZivverAccount]
    by_email: dict[str, ZivverAccount]
    owner_of: dict[str, str]
    """Zivver id -> the source id the store maps to it."""
    users: int
    """How many are personal accounts."""

    @classmethod
    def of(cls, zivver: list[ZivverAccount], mapping: Mapping[str, MappingEntry]) -> ZivverIndex:
        return cls(
            {account.zivver_id: account for account in zivver},
            {account.email: account for account in zivver},
            {entry.zivver_id: source_id for source_id, entry in mapping.items()},
            sum(1 for account in zivver if account.kind is Kind.PERSONAL),
        )


def plan(
    sources: list[SourceAccount],
    zivver: list[ZivverAccount],
    mapping: Mapping[str, MappingEntry],
    options: SyncConfig,
    removals_blocked: str | None = None,
    protected_ids: frozenset[str] = frozenset(),
    index: ZivverIndex | None = None,
    protected_addresses: frozenset[str] = frozenset(),
) -> Plan:
    """Compute every change that brings Zivver in step with the (merged) sources.

    Args:
        sources: merged source accounts (see :func:`merge_sources`).
        zivver: every account in the Zivver organization.
        mapping: source id -> what the store remembers (Zivver id, SsoAccountKey sent).
        options: the sync options.
        removals_blocked: when set, the reason no suspension or deletion may be planned.
        protected_ids: source ids of entries a source could not use: their accounts are
            not "missing", so they are never suspended or deleted because of it.
        index: ``ZivverIndex.of(zivver, mapping)``, when the caller keeps one.
        protected_addresses: addresses of entries a source could not use: the accounts with
            them are left as they are this run (no suspension, deletion, update or rename).
    """
    index = index or ZivverIndex.of(zivver, mapping)
    return _Planner(
        zivver, mapping, options, removals_blocked, protected_ids, index, protected_addresses
    ).run(sources)


class _Planner:
    def __init__(
        self,
        zivver: list[ZivverAccount],
        mapping: Mapping[str, MappingEntry],
        options: SyncConfig,
        removals_blocked: str | None,
        protected_ids: frozenset[str],
        index: ZivverIndex,
        protected_addresses: frozenset[str] = frozenset(),
    ) -> None:
        self.options = options
        self.domains = frozenset(options.domains)
        self.protected_ids = protected_ids
        self.protected_addresses = protected_addresses
        self.left_alone: list[str] = []
        """Accounts not changed because an unusable entry has their address."""
        self.skipped: list[str] = []
        """Accounts not synced because they clash with Zivver (a kind, another entry's account)."""
        self.numbers_differ = 0
        """Matched users whose source number is not among Zivver's (each is written)."""
        self.mapping = mapping
        self.removals_blocked = removals_blocked
        self.zivver = zivver
        self.by_id, self.by_email, self.owner_of, self.zivver_users = index
        self.claimed: dict[str, str] = {}
        self.pending: list[Change] = []
        """Changes before they get their id and guard (see _finish)."""
        self.notices: list[Notice] = []
        self.matches: list[Match] = []
        self.skipped_removals: list[str] = []
        """Accounts whose suspension or deletion was not planned: removals are blocked."""
        self.renamed: dict[str, str] = {}
        self.not_sent: list[NotSent] = []
        self.sso_unknown: list[str] = []
        self.staying: set[str] = set()
        """Addresses of the sources' active personal accounts."""
        self.everyone: set[str] = set()
        """Addresses of every account the sources hold (in the domain filter)."""
        self.leavers_dropped: list[tuple[Change, ZivverAccount, frozenset[str]]] = []
        """Changes that remove delegates because those people leave (missing or disabled in
        the sources, active in Zivver): (change, the account now, those delegates)."""

    def in_domain(self, address: str) -> bool:
        return in_domains(address, self.domains)

    def run(self, sources: list[SourceAccount]) -> Plan:
        wanted = [account for account in sources if self._admit(account)]
        source_ids = {account.source_id for account in wanted}
        personal = {a.email for a in wanted if a.kind is Kind.PERSONAL and a.active}
        self.staying = personal
        self.everyone = {a.email for a in wanted}
        primaries = {a.email for a in wanted} | set(self.by_email)
        find = self._find
        # one list beside ``wanted``, not 100,000 pairs: fewer objects for the cycle collector
        found = [find(account, source_ids) for account in wanted]
        # a renamed user keeps its Zivver id, so delegations to it are unchanged
        self.renamed = {
            current.email: account.email
            for account, current in zip(wanted, found, strict=True)
            if current is not None
            and current is not _SKIP
            and current.kind is account.kind
            and current.email != account.email
        }
        plan_account = self._plan_account
        for account, current in zip(wanted, found, strict=True):
            plan_account(account, current, personal, primaries)
        self._plan_missing()
        if self.skipped_removals and self.removals_blocked:
            skipped = sorted(self.skipped_removals)
            more = f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
            self.notices.append(
                Notice(
                    "warning",
                    f"{len(skipped)} suspension(s) or deletion(s) were not planned "
                    f"({', '.join(skipped[:20])}{more}): {self.removals_blocked}",
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
            self.skipped.append(account.email)
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
        if self.protected_addresses and self._protected(account, current):
            return
        if current is not None and current.kind is not account.kind:
            self.claimed[current.zivver_id] = account.source_id
            self.skipped.append(account.email)
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

    def _protected(self, account: SourceAccount, current: ZivverAccount | None) -> bool:
        """Whether the account is left alone: an entry with its address (or the address of
        its Zivver account, before a rename) is unusable in a source this run."""
        if current is None:
            return False  # nothing in Zivver to leave alone: a create from a usable entry goes
        protected = self.protected_addresses
        address = account.email if account.email in protected else None
        if address is None and current is not None and current.email in protected:
            address = current.email
        if address is None:
            return False
        self.claimed[current.zivver_id] = account.source_id
        self.left_alone.append(account.email)
        self.notices.append(
            Notice(
                "warning",
                f"{account.email} is left as it is this run: an entry with {address} in a "
                "source is unusable (named in an error). Fix that entry; the next run syncs it.",
            )
        )
        return True

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
            elif delegate in self.everyone:  # disabled, or a functional account: as meant
                self.notices.append(
                    Notice(
                        "info",
                        f"Delegate {delegate} of {account.email} is not an active person; dropped.",
                    )
                )
            else:
                self.notices.append(
                    Notice(
                        "warning",
                        f"Delegate {delegate} of {account.email} ({account.entry}) is in no "
                        "source (or outside the domain filter); dropped.",
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
        desired = AccountState(
            account.email,
            account.display_name,
            True,
            aliases if self.options.sync_aliases else NO_ADDRESSES,
            delegates if self.options.sync_delegations else NO_ADDRESSES,
            None if account.division == NO_DIVISION else account.division,
            account.phone if personal and self.options.sync_phone_numbers else None,
        )
        fields = {"email", "display_name"} | {
            name for name in ("aliases", "delegates", "division", "phone") if getattr(desired, name)
        }
        if personal:
            fields.add("active")
        action = Action.CREATE_USER if personal else Action.CREATE_FUNCTIONAL
        # a created user's key is known: the one sent, or none ("")
        sso = (account.sso_key or "") if personal else None
        self._add(action, account, None, desired, fields, sso)

    def _desired(
        self,
        account: SourceAccount,
        current: ZivverAccount,
        aliases: frozenset[str],
        delegates: frozenset[str],
    ) -> tuple[AccountState | None, set[str]]:
        """What the sources want of a matched account and which of its fields differ; None
        for the state when nothing differs (most accounts: nothing is built for them)."""
        options = self.options
        fields: set[str] = set()
        if account.email != current.email:
            fields.add("email")
        display_name = account.display_name or current.display_name
        if display_name != current.display_name:
            fields.add("display_name")
        wanted_aliases = aliases if options.sync_aliases else current.aliases
        if wanted_aliases != current.aliases:
            fields.add("aliases")
        # "/" from a source is Zivver's "none", which Zivver answers as no division
        division = None if account.division == NO_DIVISION else account.division or current.division
        if division != current.division:
            fields.add("division")
        phones = current.phones if current.kept else ()
        phone = phones[0] if phones else None
        if phones and any(not number[1:].isdigit() for number in phones):
            # a number held with spaces or dashes is held all the same
            phones = phones + tuple(filter(None, (canonical(n, None) for n in phones)))
        # a source without a number leaves Zivver's as it is (and none is read without the
        # option; a plan made with other options than the load's still never writes one)
        if (
            options.sync_phone_numbers
            and account.phone
            and current.kind is Kind.PERSONAL
            and account.phone not in phones
        ):
            self.numbers_differ += 1
            phone = account.phone
            fields.add("phone")
        wanted_delegates = current.delegates
        if options.sync_delegations and (delegates or current.delegates):
            renamed = self.renamed
            # a renamed delegate keeps its Zivver id: it is not a change of delegates
            now = (
                frozenset(renamed.get(d, d) for d in current.delegates)
                if renamed
                else current.delegates
            )
            if delegates != now:
                wanted_delegates = delegates
                fields.add("delegates")
        if not fields:
            return None, fields
        desired = AccountState(
            account.email,
            display_name,
            current.active,
            wanted_aliases,
            wanted_delegates,
            division,
            phone,
        )
        return desired, fields

    def _plan_user(
        self,
        account: SourceAccount,
        current: ZivverAccount,
        aliases: frozenset[str],
        delegates: frozenset[str],
    ) -> None:
        options = self.options
        found, fields = (
            self._desired(account, current, aliases, delegates)
            if options.update_users
            else (None, set())
        )
        entry = self.mapping.get(account.source_id)
        sso = self._zivver_key(account, current, entry)
        if sso is None:
            self.sso_unknown.append(current.email)
        if found is None and account.active == current.active:
            if options.update_sso_keys and account.sso_key and account.sso_key != sso:
                self._plan_key_update(account, current)
            return  # the common case: in step
        desired = found if found is not None else current.state
        if sso is None:
            blocked = sorted(fields & BLOCK_FIELDS)
            if blocked:
                # the zivver block carries aliases and delegates; sent without the user's key,
                # Zivver erases it, and zsync cannot read it back
                fields -= BLOCK_FIELDS
                desired = desired._replace(aliases=current.aliases, delegates=current.delegates)
                self.not_sent.append(NotSent(account.email, tuple(blocked), SSO_NOT_SENT))
        if account.active != current.active:
            allowed = (
                options.reactivate_users
                if account.active
                else self._removal_allowed(options.suspend_users, current.email)
            )
            if allowed:
                action = Action.REACTIVATE_USER if account.active else Action.SUSPEND_USER
                desired = desired._replace(active=account.active)
                self._add(action, account, current, desired, fields | {"active"}, sso)
            return
        if fields:
            self._add(Action.UPDATE_USER, account, current, desired, fields, sso)
        if options.update_sso_keys and account.sso_key and account.sso_key != sso:
            self._plan_key_update(account, current)

    def _plan_key_update(self, account: SourceAccount, current: ZivverAccount) -> None:
        """Send the source's SsoAccountKey (guarded: update-sso-keys)."""
        self._add(
            Action.UPDATE_USER,
            account,
            current,
            current.state._replace(email=account.email),
            {SSO_KEY},
            account.sso_key,
        )

    def _zivver_key(
        self, account: SourceAccount, current: ZivverAccount, entry: MappingEntry | None
    ) -> str | None:
        """The SsoAccountKey Zivver has for this user ("" for none), or None when unknown.

        zsync knows the key it sent itself; for accounts it took over, the profile says where
        the keys came from (sync.existing_sso_keys).
        """
        if (
            entry is not None
            and entry.zivver_id == current.zivver_id
            and entry.sso_key_sent is not None
        ):
            return entry.sso_key_sent
        origin = self.options.existing_sso_keys
        if origin == "from-source":
            return account.sso_key or ""
        if origin == "none":
            return ""
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
            if current.delegates and self._removal_allowed(
                options.suspend_functional_accounts, current.email
            ):
                desired = current.state._replace(delegates=NO_ADDRESSES)
                self._add(Action.SUSPEND_FUNCTIONAL, account, current, desired, {"delegates"}, None)
            return
        if not options.update_functional_accounts:
            return
        wanted, fields = self._desired(account, current, aliases, delegates)
        if wanted is not None:
            self._add(Action.UPDATE_FUNCTIONAL, account, current, wanted, fields, None)

    # --- accounts we own that the sources no longer hold --------------------------------

    def _plan_missing(self) -> None:
        options = self.options
        for source_id, entry in self.mapping.items():
            current = self.by_id.get(entry.zivver_id)
            if (
                current is None
                or current.zivver_id in self.claimed
                or not self.in_domain(current.email)
            ):
                continue
            if source_id in self.protected_ids or current.email in self.protected_addresses:
                self.left_alone.append(current.email)  # its entry is there, but unusable
                continue
            desired = current.state
            fields: set[str] = set()
            action: Action | None = None
            if current.kind is Kind.PERSONAL:
                if options.delete_users:
                    allowed = self._removal_allowed(True, current.email)
                    action = Action.DELETE_USER if allowed else None
                elif current.active and self._removal_allowed(options.suspend_users, current.email):
                    action, fields = Action.SUSPEND_USER, {"active"}
                    desired = desired._replace(active=False)
            elif options.delete_functional_accounts:
                allowed = self._removal_allowed(True, current.email)
                action = Action.DELETE_FUNCTIONAL if allowed else None
            elif current.delegates and self._removal_allowed(
                options.suspend_functional_accounts, current.email
            ):
                action, fields = Action.SUSPEND_FUNCTIONAL, {"delegates"}
                desired = desired._replace(delegates=NO_ADDRESSES)
            if action is not None:
                self.pending.append(
                    _change(action, current.email, current, source_id, None, desired, fields, None)
                )

    def _removal_allowed(self, option: bool, email: str) -> bool:
        if not option:
            return False
        if self.removals_blocked:
            self.skipped_removals.append(email)
            return False
        return True

    # --- bookkeeping --------------------------------------------------------------------

    def _add(
        self,
        action: Action,
        account: SourceAccount,
        current: ZivverAccount | None,
        desired: AccountState,
        fields: set[str],
        sso_key: str | None,
    ) -> None:
        change = _change(
            action,
            account.email,
            current,
            account.source_id,
            account.source,
            desired,
            fields,
            sso_key,
        )
        self.pending.append(change)
        if current is not None and "delegates" in fields:
            leavers = self._leavers(current.delegates - desired.delegates)
            if leavers:
                self.leavers_dropped.append((change, current, leavers))

    def _leavers(self, removed: frozenset[str]) -> frozenset[str]:
        """The removed delegates who are removed because they leave: active users in Zivver
        whom the sources no longer hold as active people (a renamed one is no removal)."""
        renamed, staying, by_email = self.renamed, self.staying, self.by_email
        return frozenset(
            address
            for address in removed
            if renamed.get(address, address) not in staying
            and (user := by_email.get(address)) is not None
            and user.kind is Kind.PERSONAL
            and user.active
        )

    def _departures(self) -> dict[str, Change]:
        """The planned suspensions and deletions of users, by address."""
        return {
            item.email: item
            for item in self.pending
            if item.action in (Action.SUSPEND_USER, Action.DELETE_USER)
        }

    def _keep_leaving_delegates(self) -> None:
        """A delegate removal follows the departure that causes it (nothing unintended is
        destroyed): when the departure is not planned (removals blocked by the read, an
        unreadable entry), the delegate stays. A change left with nothing to do is dropped."""
        departures = self._departures()
        kept: list[str] = []
        position = {id(item): number for number, item in enumerate(self.pending)}
        dropped: set[int] = set()
        followed = []
        for change, current, leavers in self.leavers_dropped:
            staying = leavers - departures.keys()
            if not staying:
                followed.append((change, current, leavers))
                continue
            kept += sorted(f"{address} (of {current.email})" for address in staying)
            delegates = change.desired.delegates | staying
            fields = set(change.fields)
            if delegates == current.delegates:
                fields.discard("delegates")
            number = position[id(change)]
            if not fields:
                dropped.add(number)
                continue
            action = change.action
            if action is Action.SUSPEND_FUNCTIONAL:
                action = Action.UPDATE_FUNCTIONAL  # some of its delegates stay
            change = self.pending[number] = _change(
                action,
                change.email,
                current,
                change.source_id,
                change.source,
                change.desired._replace(delegates=delegates),
                fields,
                change.sso_key,
            )
            followed.append((change, current, leavers - staying))
        self.leavers_dropped = followed
        if dropped:
            self.pending = [item for n, item in enumerate(self.pending) if n not in dropped]
        if kept:
            more = f" and {len(kept) - 20} more" if len(kept) > 20 else ""
            self.notices.append(
                Notice(
                    "warning",
                    f"{len(kept)} delegate(s) kept, as the departure of these people is not "
                    f"planned this run: {', '.join(kept[:20])}{more}.",
                )
            )

    def _held_with_departures(self, guarded: set[GuardedAction]) -> dict[int, GuardedAction]:
        """The guard each change that removes leaving delegates shares with their departure,
        when that departure waits for a confirmation (by ``id()`` of the change)."""
        departures = self._departures()
        linked: dict[int, GuardedAction] = {}
        for change, _current, leavers in self.leavers_dropped:
            held = {
                guard
                for address in leavers
                if (guard := _guard_of(departures[address].action, frozenset())) in guarded
            }
            if held:
                linked[id(change)] = min(held)
        return linked

    def _finish(self, source_count: int) -> Plan:
        self._keep_leaving_delegates()
        rank = {action: index for index, action in enumerate(ACTION_ORDER)}
        self.pending.sort(key=lambda item: (rank[item.action], item.email))
        guards = self._guards()
        guarded = {guard.action for guard in guards}
        linked = self._held_with_departures(guarded)
        if linked:
            guards = _with_followers(guards, list(linked.values()))
        changes = []
        for number, item in enumerate(self.pending, 1):
            guard = _guard_of(item.action, item.fields)
            if guard not in guarded:
                guard = linked.get(id(item))
            changes.append(dataclasses.replace(item, id=number, guard=guard))
        users = self.zivver_users
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
            not_sent=self.not_sent,
            takeover=self._takeover(),
            blocked_removals=sorted(self.skipped_removals),
            left_alone=sorted(self.left_alone),
            skipped=sorted(self.skipped),
        )

    def _takeover(self) -> Takeover:
        mapping = self.mapping
        matched_by_address = sum(
            1
            for match in self.matches
            if (entry := mapping.get(match.source_id)) is None or entry.zivver_id != match.zivver_id
        )
        untouched: list[str] = []
        outside = 0
        foreign: list[str] = []
        claimed, owned = self.claimed, self.owner_of
        for account in self.zivver:
            if account.other_members and any(
                member != account.zivver_id for member in account.other_members
            ):
                foreign.append(account.email)
            if account.zivver_id in claimed or account.zivver_id in owned:
                continue  # matched accounts are in the domain filter: only sources' are admitted
            if not self.in_domain(account.email):
                outside += 1
            else:
                untouched.append(account.email)
        return Takeover(
            first_run=not mapping,
            matched_by_address=matched_by_address,
            untouched=tuple(sorted(untouched)),
            outside_filter=outside,
            sso_unknown=tuple(sorted(self.sso_unknown)),
            foreign_members=tuple(sorted(foreign)),
            numbers_differ=self.numbers_differ,
        )

    def _guards(self) -> list[Guard]:
        counts = {action: 0 for action in GuardedAction}
        named: dict[GuardedAction, list[str]] = {action: [] for action in GuardedAction}
        for item in self.pending:
            guard = _guard_of(item.action, item.fields)
            if guard is not None:
                counts[guard] += 1
                named[guard].append(item.email)
        users = self.zivver_users
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
            label = guard_label(guarded, count, total)
            detail = guard_detail(guarded, count, total)
            guards.append(
                Guard(guarded, count, total, label, detail, tuple(sorted(named[guarded])))
            )
        return guards


_SKIP = ZivverAccount(Kind.PERSONAL, "", "", "", False)
"""Sentinel: the account must not be matched nor created this run."""


def _change(
    action: Action,
    email: str,
    current: ZivverAccount | None,
    source_id: str | None,
    source: str | None,
    desired: AccountState,
    fields: set[str],
    sso_key: str | None,
) -> Change:
    """A change (numbered and guarded later, in _finish), with its difference as plain values."""
    before = shown(current.state, fields) if current is not None else {}
    after = shown(desired, fields)
    if SSO_KEY in fields:
        before[SSO_KEY], after[SSO_KEY] = SSO_UNKNOWN, sso_key
    return Change(
        0,
        action,
        email,
        current.zivver_id if current is not None else None,
        source_id,
        source,
        desired,
        frozenset(fields),
        before,
        after,
        sso_key=sso_key,
        current=current,
    )


def _guard_of(action: Action, fields: frozenset[str]) -> GuardedAction | None:
    if action is Action.SUSPEND_USER:
        return GuardedAction.SUSPEND_USERS
    if action is Action.SUSPEND_FUNCTIONAL:
        return GuardedAction.SUSPEND_FUNCTIONAL
    if action is Action.DELETE_USER:
        return GuardedAction.DELETE_USERS
    if action is Action.DELETE_FUNCTIONAL:
        return GuardedAction.DELETE_FUNCTIONAL
    if action is Action.UPDATE_USER and SSO_KEY in fields:
        return GuardedAction.UPDATE_SSO_KEYS
    return None


def _with_followers(guards: list[Guard], followers: list[GuardedAction]) -> list[Guard]:
    """The guards, each saying how many changes of other accounts wait with it (a functional
    account's update that removes the leavers as delegates): the checklist names all it sends."""
    result = []
    for guard in guards:
        count = followers.count(guard.action)
        if count:
            guard = dataclasses.replace(
                guard,
                detail=f"{guard.detail}, and the update of {count} account(s) that have them as "
                "delegates",
            )
        result.append(guard)
    return result


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.1f} %" if total else "100 %"


def guard_label(action: GuardedAction, count: int, total: int) -> str:
    """What a guarded action does, in a few words: "Suspend 12 of 140 users"."""
    if action is GuardedAction.SUSPEND_USERS:
        return f"Suspend {count} of {total} users"
    if action is GuardedAction.SUSPEND_FUNCTIONAL:
        return f"Disable {count} of {total} functional accounts"
    if action is GuardedAction.DELETE_USERS:
        return f"Delete {count} users"
    if action is GuardedAction.DELETE_FUNCTIONAL:
        return f"Delete {count} functional accounts"
    return f"Update the SsoAccountKey of {count} existing users"


def guard_detail(action: GuardedAction, count: int, total: int) -> str:
    """What the checklist line says after the label: the share, or why it is guarded."""
    if action in (GuardedAction.SUSPEND_USERS, GuardedAction.SUSPEND_FUNCTIONAL):
        return f" ({_percent(count, total)})"
    if action is GuardedAction.DELETE_USERS:
        return " — irreversible, their messages are lost"
    if action is GuardedAction.DELETE_FUNCTIONAL:
        return " — irreversible"
    return " — can break single sign-on"


def guard_text(action: GuardedAction, count: int, total: int) -> str:
    """The checklist line, e.g. "Suspend 12 of 140 users (8.6 %)"."""
    return guard_label(action, count, total) + guard_detail(action, count, total)
