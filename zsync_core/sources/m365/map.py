"""Microsoft 365 objects to accounts: pure functions of what Graph and Exchange returned.

Users and groups are Graph objects as the local mirror keeps them (the ``$select``'ed
properties; a group's ``members`` a list of member ids); mailboxes and their permissions are
what Exchange's ``Get-Mailbox`` and ``Get-MailboxPermission`` return. Tested on plain dicts.

- A member user (never a guest) with a ``mail`` becomes a personal account: ``accountEnabled``
  is its status, the ``smtp:`` proxy addresses other than the primary are its aliases, the
  Entra object id its immutable id, and its SsoAccountKey the Entra object id or the
  on-premises objectGUID (``onPremisesImmutableId`` decoded), as the profile says.
- A user behind a shared, room or equipment mailbox is no person: a shared mailbox becomes a
  functional account (whatever its Entra account says: since 2025 new ones are blocked);
  rooms and equipment are left out. Its delegates are the users with FullAccess that is
  neither denied nor inherited; a group named there stands for its members.
- A mail-enabled group becomes a functional account; its transitive members are its
  delegates (nesting flattened, cycles cut).
- Delegates are active users only: a disabled user loses delegated access, as elsewhere.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ...addresses import normalize_address
from ...errors import SourceError
from ...model import NO_ADDRESSES, Kind, Notice, SourceAccount, address_set
from .. import SourceResult
from ..ldap_map import guid_text

Obj = dict[str, Any]
SHARED = "SharedMailbox"
NOT_PEOPLE = {"SharedMailbox", "RoomMailbox", "EquipmentMailbox", "SchedulingMailbox"}
SYSTEM_PRINCIPALS = ("nt authority\\", "s-1-5-", "nt-autoriteit\\", "autorite nt\\")


@dataclass(frozen=True, slots=True)
class Options:
    source: str
    sso_key: str = "entra-object-id"
    users: bool = True
    groups: bool = True
    microsoft365_groups: bool = True
    scope_group: str | None = None


class Person(NamedTuple):
    """What one user is, worked out from the user alone (:func:`person`): the mapping keeps
    it while the user does not change, so a read can work it out while pages arrive."""

    state: str
    """"ok", "guest", "no mail" or "bad mail" (then ``where`` and ``email`` say why)."""
    email: str
    where: str
    active: bool
    aliases: frozenset[str]
    upn: str
    """The sign-in name, lower-case ("" without one)."""
    account: SourceAccount | None
    """The personal account it is (None unless "ok")."""


def person(user_id: str, user: Obj, options: Options) -> Person:
    """One Graph user as what it can be: a personal account, or why not."""
    if user.get("userType") not in (None, "Member"):
        return Person("guest", "", "", False, NO_ADDRESSES, "", None)
    mail = user.get("mail")
    if not mail:
        return Person("no mail", "", "", False, NO_ADDRESSES, "", None)
    upn = user.get("userPrincipalName")
    where = f"user {upn or user_id}"
    email = normalize_address(mail)
    if email is None:
        return Person("bad mail", str(mail), where, False, NO_ADDRESSES, "", None)
    active = user.get("accountEnabled") is not False
    aliases = _aliases(user.get("proxyAddresses"), email)
    sso_key = (
        user_id
        if options.sso_key == "entra-object-id"
        else _guid(user.get("onPremisesImmutableId"))
    )
    account = SourceAccount(
        Kind.PERSONAL,
        user_id,
        email,
        (user.get("displayName") or "").strip() or email,
        active,
        options.source,
        where,
        aliases,
        NO_ADDRESSES,
        sso_key,
        None,
        mobile.strip() or None if isinstance((mobile := user.get("mobilePhone")), str) else None,
    )
    return Person("ok", email, where, active, aliases, str(upn or "").lower(), account)


def map_tenant(
    users: dict[str, Obj],
    groups: dict[str, Obj],
    options: Options,
    mailboxes: Iterable[Obj] | None = None,
    permissions: dict[str, list[Obj]] | None = None,
    persons: dict[str, Person] | None = None,
) -> SourceResult:
    """Accounts and notices from a tenant's users, groups and (when read) mailboxes.

    ``persons``: users already worked out by :func:`person` with these options (the source
    fills it while pages arrive and drops a user's entry when the user changes)."""
    result = SourceResult(options.source, [])
    name = options.source
    boxes = {str(m.get("ExternalDirectoryObjectId") or ""): m for m in mailboxes or ()}
    scope = _scope(options.scope_group, users, groups, result) if options.scope_group else None
    emails: dict[str, str] = {}
    """User id → address, for every active member user (delegates come from these)."""
    by_sign_in: dict[str, str] = {}
    """UPN and every smtp address (lower-case) → the user's primary address (active users)."""
    inactive: set[str] = set()
    """UPNs and addresses of disabled users (a permission naming one is no surprise)."""
    resolve = mailboxes is not None
    """Permissions name users by sign-in name or address: index them only when needed."""
    skipped_guests = no_guid = 0
    known = persons or {}
    append, want_users = result.accounts.append, options.users
    for user_id, user in users.items():
        if user_id in boxes:
            continue  # a mailbox's own account is no person, nor anybody's delegate
        found = known.get(user_id)
        if found is None:
            found = person(user_id, user, options)
        if found.state != "ok":
            if found.state == "guest":
                skipped_guests += 1
            elif found.state == "bad mail":
                result.skip(
                    f"{found.where} (object id {user_id})",
                    f"mail {found.email!r} is not a valid address",
                    source_id=user_id,
                )
            continue  # no mail: no mailbox (the source keeps no such user)
        email = found.email
        if found.active:
            emails[user_id] = email
            if resolve:
                if found.upn:
                    by_sign_in[found.upn] = email
                for alias in found.aliases:
                    by_sign_in.setdefault(alias, email)
                by_sign_in[email] = email
        elif resolve:
            inactive.add(email)
            inactive.add(found.upn)
        if not want_users or (scope is not None and user_id not in scope):
            continue
        account = found.account
        assert account is not None
        if account.sso_key is None:
            no_guid += 1
        append(account)
    if skipped_guests:
        result.notices.append(
            Notice("info", f"Source {name!r}: {skipped_guests} guest users are never synced.")
        )
    if no_guid:
        result.notices.append(
            Notice(
                "warning",
                f"Source {name!r}: {no_guid} users have no usable onPremisesImmutableId (cloud-only "
                'users?), so they get no SsoAccountKey with sso_key = "on-premises-guid".',
            )
        )
    if options.groups:
        _groups(users, groups, options, emails, result)
    if mailboxes is not None:
        _shared(boxes, permissions or {}, groups, users, emails, by_sign_in, inactive, result, name)
    return result


def _groups(
    users: dict[str, Obj],
    groups: dict[str, Obj],
    options: Options,
    emails: dict[str, str],
    result: SourceResult,
) -> None:
    name = options.source
    for group_id, group in groups.items():
        if not group.get("mailEnabled") or not group.get("mail"):
            continue
        if not options.microsoft365_groups and "Unified" in (group.get("groupTypes") or ()):
            continue
        email = normalize_address(group["mail"])
        where = f"group {group.get('displayName') or group_id}"
        if email is None:
            result.skip(
                f"{where} (object id {group_id})",
                f"mail {group['mail']!r} is not a valid address",
                source_id=group_id,
            )
            continue
        members = _transitive(group_id, groups, users)
        result.accounts.append(
            _functional(
                group_id,
                email,
                group.get("displayName"),
                name,
                where,
                _aliases(group.get("proxyAddresses"), email),
                (emails[m] for m in members if m in emails),
            )
        )


def _shared(
    boxes: dict[str, Obj],
    permissions: dict[str, list[Obj]],
    groups: dict[str, Obj],
    users: dict[str, Obj],
    emails: dict[str, str],
    by_sign_in: dict[str, str],
    inactive: set[str],
    result: SourceResult,
    name: str,
) -> None:
    group_by_name: dict[str, str] = {}
    for group_id, group in groups.items():
        for key in (group.get("mail"), group.get("displayName")):
            if key:
                group_by_name.setdefault(str(key).lower(), group_id)
    unresolved = 0
    for box_id, box in boxes.items():
        if box.get("RecipientTypeDetails") != SHARED:
            continue
        primary = box.get("PrimarySmtpAddress") or ""
        email = normalize_address(primary)
        where = f"shared mailbox {box.get('DisplayName') or primary}"
        if email is None or not box_id:
            why = f"address {primary!r} is not valid" if email is None else ""
            why += (" and " if why else "") + (
                "it has no ExternalDirectoryObjectId" if not box_id else ""
            )
            result.skip(where, why, address=email, source_id=box_id or None)
            continue
        delegates: set[str] = set()
        for entry in permissions.get(box_id, ()):
            if (
                entry.get("Deny")
                or entry.get("IsInherited")
                or not _full_access(entry.get("AccessRights"))
            ):
                continue
            principal = str(entry.get("User") or "").strip().lower()
            if not principal or principal.startswith(SYSTEM_PRINCIPALS):
                continue
            address = by_sign_in.get(principal)
            if address is not None:
                delegates.add(address)
            elif principal in group_by_name:
                delegates |= {
                    emails[m]
                    for m in _transitive(group_by_name[principal], groups, users)
                    if m in emails
                }
            elif principal not in inactive:
                unresolved += 1
        delegates.discard(email)
        result.accounts.append(
            _functional(
                box_id,
                email,
                box.get("DisplayName"),
                name,
                where,
                _aliases(box.get("EmailAddresses"), email),
                delegates,
            )
        )
    if unresolved:
        result.notices.append(
            Notice(
                "info",
                f"Source {name!r}: {unresolved} FullAccess permissions name no user of this tenant "
                "(deleted users, other tenants); they give no delegated access.",
            )
        )


def _functional(
    object_id: str,
    email: str,
    display_name: str | None,
    source: str,
    where: str,
    aliases: frozenset[str],
    delegates: Iterable[str],
) -> SourceAccount:
    """A functional account (a group or a shared mailbox): always active."""
    return SourceAccount(
        Kind.FUNCTIONAL,
        object_id,
        email,
        (display_name or "").strip() or email,
        True,
        source,
        where,
        aliases,
        address_set(delegates),
    )


def _full_access(rights: Any) -> bool:
    if isinstance(rights, str):
        rights = rights.split(",")
    return any(str(r).strip().lower() == "fullaccess" for r in rights or ())


def _aliases(values: Iterable[str] | None, email: str) -> frozenset[str]:
    """The ``smtp:`` addresses other than the primary (``SIP:``, ``X500:``, ``SPO:`` are no
    addresses). Runs for every user: the primary listed again (every mailbox has it) is
    skipped before any parsing."""
    if not values:
        return NO_ADDRESSES
    found = None
    for value in values:
        prefix, _, address = value.partition(":")
        if prefix.lower() != "smtp" or address.lower() == email:
            continue
        parsed = normalize_address(address)
        if parsed and parsed != email:
            found = found or set()
            found.add(parsed)
    return address_set(found) if found else NO_ADDRESSES


def _guid(immutable_id: str | None) -> str | None:
    """``onPremisesImmutableId`` (base64 of the objectGUID's 16 bytes) as the GUID's text."""
    if not immutable_id:
        return None
    try:
        raw = base64.b64decode(immutable_id, validate=True)
    except (binascii.Error, ValueError):
        return None
    return guid_text(raw) if len(raw) == 16 else None


def _transitive(group_id: str, groups: dict[str, Obj], users: dict[str, Obj]) -> set[str]:
    """User ids reachable from a group through nested groups; cycles are cut."""
    found: set[str] = set()
    seen = {group_id}
    stack = [group_id]
    while stack:
        for member in groups.get(stack.pop(), {}).get("members", ()):
            if member in users:
                found.add(member)
            elif member in groups and member not in seen:
                seen.add(member)
                stack.append(member)
    return found


def _scope(
    wanted: str, users: dict[str, Obj], groups: dict[str, Obj], result: SourceResult
) -> set[str]:
    key = wanted.strip().lower()
    for group_id, group in groups.items():
        if key in (group_id.lower(), str(group.get("mail") or "").lower()):
            return _transitive(group_id, groups, users)
    raise SourceError(
        f"Source {result.name!r}: scope_group {wanted!r} is no group of this tenant (by object "
        "id or address). Check the key; nothing was read as missing."
    )
