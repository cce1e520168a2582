"""The planner's inputs, before any option: the sources merged in precedence order, what
the store remembers of each account, and the organization indexed once per load."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .model import Kind, Notice, SourceAccount, Unusable, ZivverAccount


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
