"""Which Zivver account each source account is.

An account is matched on the immutable source id through the store's mapping, and by address
only when it was not matched before (so a changed address is a rename). Set aside this run:
an account whose Zivver account another entry holds, one whose kind differs from Zivver's,
and one an unusable entry shares an address with.
"""

from __future__ import annotations

from collections.abc import Mapping

from .merge import MappingEntry, ZivverIndex
from .model import Kind, Notice, SourceAccount, ZivverAccount

NOT_NOW = ZivverAccount(Kind.PERSONAL, "", "", "", False)
"""What :meth:`Matcher.find` answers for an account that is neither matched nor created
this run."""


class Matcher:
    """Matches source accounts one by one, keeping what it decided for the planner."""

    def __init__(
        self,
        index: ZivverIndex,
        mapping: Mapping[str, MappingEntry],
        source_ids: set[str],
        protected_addresses: frozenset[str],
        notices: list[Notice],
    ) -> None:
        self.by_id, self.by_email, self.owner_of, _users = index
        self.mapping = mapping
        self.source_ids = source_ids
        """The ids of every account the sources hold this run."""
        self.protected = protected_addresses
        self.notices = notices
        self.claimed: dict[str, str] = {}
        """Zivver id -> the source id of the account matched to it."""
        self.renamed: dict[str, str] = {}
        """Old address -> new, for every matched account whose address changes."""
        self.skipped: list[str] = []
        """Accounts not synced because they clash with Zivver (a kind, another entry's account)."""
        self.left_alone: list[str] = []
        """Accounts not changed because an unusable entry has their address."""
        self._alias_owners: dict[str, ZivverAccount] | None = None

    def find(self, account: SourceAccount) -> ZivverAccount | None:
        """The Zivver account ``account`` is, None when it has none (a create), or
        :data:`NOT_NOW`."""
        current = self._candidate(account)
        if current is None:
            # not created either: the unusable entry may be the one that says it should not be
            return NOT_NOW if self.protected and self._protected(account, None) else None
        if current is NOT_NOW:
            return current
        if current.kind is account.kind and current.email != account.email:
            # a renamed user keeps its Zivver id, so delegations to it are unchanged
            self.renamed[current.email] = account.email
        if self.protected and self._protected(account, current):
            return NOT_NOW
        if current.kind is not account.kind:
            self.skipped.append(account.email)
            self.notices.append(
                Notice(
                    "warning",
                    f"Skipping {account.email}: it is a {account.kind.value} account in source "
                    f"{account.source!r} ({account.entry}) but a {current.kind.value} account in Zivver. "
                    "Zivver cannot change an account's type; change it in the Zivver WebApp or the directory.",
                )
            )
            return NOT_NOW
        return current

    def held_as_alias(self, account: SourceAccount) -> bool:
        """Whether Zivver holds the address of ``account`` (to be created) as another
        account's alias: then it is skipped, with a warning (Zivver would refuse the create
        with a bare 409). The index of aliases is built at the first create."""
        owners = self._alias_owners
        if owners is None:
            owners = self._alias_owners = {
                alias: zivver for zivver in self.by_id.values() for alias in zivver.aliases
            }
        owner = owners.get(account.email)
        if owner is None:
            return False
        self.skipped.append(account.email)
        self.notices.append(
            Notice(
                "warning",
                f"{account.email} ({account.entry}) is not created: Zivver holds it as an alias "
                f"of {owner.email}. Take the alias off {owner.email} (in its source, or in the "
                "Zivver WebApp); the next run creates it.",
            )
        )
        return True

    def _candidate(self, account: SourceAccount) -> ZivverAccount | None:
        entry = self.mapping.get(account.source_id)
        if entry is not None and entry.zivver_id in self.by_id:
            self.claimed[entry.zivver_id] = account.source_id
            return self.by_id[entry.zivver_id]
        candidate = self.by_email.get(account.email)
        if candidate is None:
            return None
        owner = self.owner_of.get(candidate.zivver_id)
        if candidate.zivver_id in self.claimed or (
            owner not in (None, account.source_id) and owner in self.source_ids
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
            return NOT_NOW
        self.claimed[candidate.zivver_id] = account.source_id
        return candidate

    def _protected(self, account: SourceAccount, current: ZivverAccount | None) -> bool:
        """Whether the account is left alone (or not created, when ``current`` is None): an
        entry with its address (or the address of its Zivver account, before a rename) is
        unusable in a source this run."""
        protected = self.protected
        address = account.email if account.email in protected else None
        if address is None and current is not None and current.email in protected:
            address = current.email
        if address is None:
            return False
        self.left_alone.append(account.email)
        self.notices.append(
            Notice(
                "warning",
                f"{account.email} is {'left as it is' if current else 'not created'} this run: "
                f"an entry with {address} in a source is unusable (named in an error). Fix that "
                "entry; the next run syncs it.",
            )
        )
        return True
