"""The planner: a pure, synchronous diff of (sources, Zivver, mapping, options) -> Plan.

Its inputs are merged in :mod:`.merge`, each account is matched in :mod:`.match`, and the
changes are numbered and guarded in :mod:`.guards`.

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

from collections.abc import Mapping

from .addresses import in_domains
from .config import SyncConfig
from .guards import Departing, follow_departures, leavers, numbered
from .match import NOT_NOW, Matcher
from .merge import MappingEntry, ZivverIndex
from .model import (
    NO_ADDRESSES,
    NO_DIVISION,
    SSO_KEY,
    AccountState,
    Action,
    Change,
    Kind,
    Match,
    Notice,
    NotSent,
    Plan,
    SourceAccount,
    Takeover,
    ZivverAccount,
    address_set,
)
from .sources.fields import is_held

BLOCK_FIELDS = frozenset({"aliases", "delegates"})
SSO_NOT_SENT = (
    "Zivver keeps aliases and delegates in the user block beside the user's SsoAccountKey; a "
    "write of that block without the key erases it, and zsync does not know these users' keys "
    "(Zivver never returns them, and zsync did not set them). Set sync.existing_sso_keys in the "
    "profile: \"from-source\" if the keys came from this source's sso_key attribute (as Zivver's "
    'Synctool sets them by default), or "none" if the organization uses no SSO keys.'
)
"""The user fields that travel in Zivver's user block, beside the write-only SsoAccountKey."""


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
        self.numbers_differ = 0
        self.numbers_replaced: list[str] = []
        """Those whose first number in Zivver the source's replaces."""
        """Matched users whose source number is not among Zivver's (each is written)."""
        self.mapping = mapping
        self.removals_blocked = removals_blocked
        self.zivver = zivver
        self.index = index
        self.by_id, self.by_email, self.owner_of, self.zivver_users = index
        self.matcher: Matcher
        self.claimed: dict[str, str] = {}
        """Zivver id -> the source id of the account matched to it."""
        self.pending: list[Change] = []
        """Changes before they get their id and guard (see _finish)."""
        self.notices: list[Notice] = []
        self.matches: list[Match] = []
        self.skipped_removals: list[str] = []
        """Accounts whose suspension or deletion was not planned: removals are blocked."""
        self.renamed: dict[str, str] = {}
        """Old address -> new, for every matched account whose address changes."""
        self.not_sent: list[NotSent] = []
        self.sso_unknown: list[str] = []
        self.staying: set[str] = set()
        """Addresses of the sources' active personal accounts."""
        self.everyone: set[str] = set()
        """Addresses of every account the sources hold (in the domain filter)."""
        self.departing: list[Departing] = []
        """Changes that remove delegates because those people leave."""

    def in_domain(self, address: str) -> bool:
        return in_domains(address, self.domains)

    def run(self, sources: list[SourceAccount]) -> Plan:
        wanted = [account for account in sources if self._admit(account)]
        personal = {a.email for a in wanted if a.kind is Kind.PERSONAL and a.active}
        self.staying = personal
        self.everyone = {a.email for a in wanted}
        primaries = {a.email for a in wanted} | set(self.by_email)
        matcher = self.matcher = Matcher(
            self.index,
            self.mapping,
            {account.source_id for account in wanted},
            self.protected_addresses,
            self.notices,
        )
        self.claimed, self.renamed = matcher.claimed, matcher.renamed
        find = matcher.find
        # one list beside ``wanted``, not 100,000 pairs: fewer objects for the cycle collector
        found = [find(account) for account in wanted]
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

    def _plan_account(
        self,
        account: SourceAccount,
        current: ZivverAccount | None,
        personal: set[str],
        primaries: set[str],
    ) -> None:
        if current is NOT_NOW:
            return
        aliases = self._aliases(account, current, primaries)
        delegates = self._delegates(account, personal)
        if current is None:
            self._plan_create(account, aliases, delegates)
            return
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
        if self.matcher.held_as_alias(account):  # Zivver would refuse it with a bare 409
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
        # a source without a number leaves Zivver's as it is (and none is read without the
        # option; a plan made with other options than the load's still never writes one)
        if (
            options.sync_phone_numbers
            and account.phone
            and current.kind is Kind.PERSONAL
            and not is_held(account.phone, phones)
        ):
            self.numbers_differ += 1
            if phone is not None:
                self.numbers_replaced.append(current.email)
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
                self.matcher.left_alone.append(current.email)  # its entry is there, but unusable
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
                    Change.planned(
                        action, current.email, current, source_id, None, desired, fields, None
                    )
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
        change = Change.planned(
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
            removed = current.delegates - desired.delegates
            leaving = leavers(removed, self.staying, self.renamed, self.by_email)
            if leaving:
                self.departing.append(Departing(change, current, leaving))

    def _finish(self, source_count: int) -> Plan:
        pending, departing, kept = follow_departures(self.pending, self.departing)
        if kept:
            more = f" and {len(kept) - 20} more" if len(kept) > 20 else ""
            self.notices.append(
                Notice(
                    "warning",
                    f"{len(kept)} delegate(s) kept, as the departure of these people is not "
                    f"planned this run: {', '.join(kept[:20])}{more}.",
                )
            )
        users = self.zivver_users
        functional = len(self.zivver) - users
        threshold = self.options.suspend_threshold_percent
        changes, guards = numbered(pending, departing, threshold, users, functional)
        return Plan(
            changes=changes,
            guards=guards,
            notices=self.notices,
            matches=self.matches,
            removals_blocked=self.removals_blocked,
            counts={
                "source_accounts": source_count,
                "zivver_users": users,
                "zivver_functional_accounts": functional,
            },
            not_sent=self.not_sent,
            takeover=self._takeover(),
            blocked_removals=sorted(self.skipped_removals),
            left_alone=sorted(self.matcher.left_alone),
            skipped=sorted(self.matcher.skipped),
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
            numbers_replaced=tuple(sorted(self.numbers_replaced)),
        )
