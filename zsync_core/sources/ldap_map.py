"""LDAP entries to accounts: pure functions of the entries and the attribute mapping.

No connection here (:mod:`.ldap` connects and searches): an entry is a dict of lower-cased
attribute names to their raw values, as a search returns them, so the mapping is tested on
plain dicts. Users become personal accounts (AD shared mailboxes,
``msExchRecipientTypeDetails`` 4, become functional accounts); mail-enabled groups become
functional accounts whose (nested, flattened) members are the delegates.

    result = map_entries(users, groups, effective_attributes(source_config), source="AD")

Runs once per entry (100,000 times a day at a large customer): attribute names are
lower-cased once, and the common case (one mail, an smtp: proxy address that is the mail
itself, no delegates) takes no detour. :class:`Mapper` takes users page by page, so a read
never holds every raw entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..addresses import normalize_address
from ..model import NO_ADDRESSES, Kind, Notice, SourceAccount, address_set
from . import SourceResult
from .ldap_config import LdapAttributes

SHARED_MAILBOX = 4
AD_DISABLED_BIT = 2
BINARY_IDS = {"objectguid"}
ENTRA_ID = "msds-externaldirectoryobjectid"
FALSE_WORDS = {"", "false", "0", "no", "n", "off", "enabled", "active"}

Raw = dict[str, list[bytes]]
"""One entry: lower-cased attribute name → its values as the server sent them."""


def map_entries(
    users: dict[str, Raw],
    groups: dict[str, Raw],
    attributes: LdapAttributes,
    *,
    source: str = "LDAP",
    nested: dict[str, Raw] | None = None,
) -> SourceResult:
    """Accounts, notices and unreadable ids from entries keyed by lower-cased DN."""
    mapper = Mapper(source, attributes)
    mapper.users(users)
    return mapper.finish(groups, nested)


class Mapper:
    """Maps one read: :meth:`users` for each page of users, then :meth:`finish` once."""

    def __init__(self, source: str, attributes: LdapAttributes) -> None:
        self.source = source
        self.names = Names.of(attributes)
        self.result = SourceResult(source, [])
        self._users = _Users()

    def users(self, page: dict[str, Raw]) -> None:
        """One page of user entries (by lower-cased DN) into accounts; their delegates wait
        for every user's address (:meth:`finish`)."""
        users, result = self._users, self.result
        n = self.names
        name = self.source
        accounts = result.accounts
        for dn, raw in page.items():
            first_id = _first(raw, n.id)
            if dn in users.dns:  # the same entry again (the directory changed while it was read)
                if users.dns[dn] != first_id:  # which one is the account is not known
                    self.result.skip(dn, "it came twice in the read, with different ids")
                continue
            users.dns[dn] = first_id
            if self._bad_guid(dn, raw, n):
                continue
            email = self._email(dn, raw, result, n)
            if email is None:
                continue
            active = not self._disabled(raw, n)
            users.emails[dn] = email
            users.active[dn] = active
            recipient_type = raw.get(n.recipient_type)
            shared = (
                recipient_type is not None
                and bool(recipient_type)
                and _int(recipient_type[0]) == SHARED_MAILBOX
            )
            if raw.get(n.delegates):
                users.delegating.append((len(accounts), _dns(raw, n.delegates)))
            source_id = self._id(raw, dn, n)
            accounts.append(
                SourceAccount(
                    Kind.FUNCTIONAL if shared else Kind.PERSONAL,
                    source_id,
                    email,
                    self._display_name(raw, email, n),
                    # shared mailboxes are disabled AD users by design; the mailbox itself is live
                    True if shared else active,
                    name,
                    dn,
                    self._aliases(raw, email, n),
                    NO_ADDRESSES,
                    None if shared else self._sso_key(raw, source_id, n),
                    _text(_first(raw, n.division)) or None,
                    None if shared else _text(_first(raw, n.phone)) or None,
                )
            )

    def unknown_members(self, groups: dict[str, Raw]) -> bool:
        """Whether a group has members that are no user read: nested groups to search for."""
        members = self.names.members
        if not members:
            return False
        user_dns = self._users.dns
        return any(
            dn.decode("utf-8", "replace").lower() not in user_dns
            for raw in groups.values()
            for dn in raw.get(members, ())
        )

    def finish(self, groups: dict[str, Raw], nested: dict[str, Raw] | None = None) -> SourceResult:
        """Delegates (active users only) now that every user's address is known, then the
        groups (``nested``: groups that are only members of others, never accounts)."""
        users, result = self._users, self.result
        n = self.names
        accounts = result.accounts
        emails, active = users.emails, users.active
        unknown: list[str] = []
        for index, dns in users.delegating:
            delegates = address_set(emails[d] for d in dns if d in emails and active[d])
            accounts[index] = accounts[index]._replace(delegates=delegates)
            unknown += [d for d in dns if d not in users.dns]
        if unknown:  # deleted entries, or outside base_dn and the user filter
            shown = ", ".join(sorted(set(unknown))[:5])
            more = f" and {len(set(unknown)) - 5} more" if len(set(unknown)) > 5 else ""
            result.notices.append(
                Notice(
                    "warning",
                    f"Source {self.source!r}: {len(set(unknown))} delegate(s) named by "
                    f"{n.delegates} are no user this source read ({shown}{more}): outside "
                    "base_dn or the user filter, or deleted; they get no delegated access.",
                )
            )
        all_groups = {**(nested or {}), **groups}
        for dn, raw in groups.items():
            if self._bad_guid(dn, raw, n):
                continue
            email = self._email(dn, raw, result, n)
            if email is None:
                continue
            delegates = address_set(
                emails[d] for d in _flatten(dn, all_groups, n.members, emails) if active.get(d)
            )
            accounts.append(
                SourceAccount(
                    kind=Kind.FUNCTIONAL,
                    source_id=self._id(raw, dn, n),
                    email=email,
                    display_name=self._display_name(raw, email, n),
                    active=True,
                    source=self.source,
                    entry=dn,
                    aliases=self._aliases(raw, email, n),
                    delegates=delegates,
                    division=_text(_first(raw, n.division)) or None,
                )
            )
        return result

    def _email(self, dn: str, raw: Raw, result: SourceResult, n: Names) -> str | None:
        value = _text(_first(raw, n.mail))
        email = normalize_address(value)
        if email is None:
            source_id = self._id(raw, dn, n) if raw.get(n.id) else None
            result.skip(dn, f"mail {value!r} is not a valid address", source_id=source_id)
        return email

    def _bad_guid(self, dn: str, raw: Raw, n: Names) -> bool:
        """Whether the entry's binary id is not a GUID (16 bytes): then it is unusable."""
        for name in {n.id, n.sso_key} & BINARY_IDS:
            value = _first(raw, name)
            if value is not None and len(value) != 16:
                self.result.skip(
                    dn,
                    f"its {name} is {len(value)} bytes, not the 16 of a GUID",
                    address=normalize_address(_text(_first(raw, n.mail))),
                )
                return True
        return False

    def _id(self, raw: Raw, dn: str, n: Names) -> str:
        value = _first(raw, n.id)
        if value is None:
            return f"dn:{dn}"
        if n.id in BINARY_IDS and len(value) == 16:
            return guid_text(value)
        return value.decode("utf-8", "replace")

    def _sso_key(self, raw: Raw, source_id: str, n: Names) -> str | None:
        if n.sso_key == n.id:  # AD: both are the objectGUID, already made text
            return source_id if raw.get(n.id) else None
        value = _first(raw, n.sso_key)
        if value is None:
            return None
        if n.sso_key in BINARY_IDS and len(value) == 16:
            return guid_text(value)
        text = value.decode("utf-8", "replace")
        if n.sso_key == ENTRA_ID:  # "User_<object id>", as Entra Connect writes it back
            text = text.removeprefix("User_")
        return text or None

    def _display_name(self, raw: Raw, email: str, n: Names) -> str:
        return _text(_first(raw, n.display_name)) or _text(_first(raw, "cn")) or email

    def _aliases(self, raw: Raw, email: str, n: Names) -> frozenset[str]:
        values = raw.get(n.aliases)
        if not values:
            return NO_ADDRESSES
        proxy = n.aliases == "proxyaddresses"
        found = set()
        for value in values:
            text = value.decode("utf-8", "replace").strip()
            if proxy:
                prefix, _, text = text.partition(":")
                if prefix.lower() != "smtp":
                    continue
            if text.lower() == email:
                continue  # the primary address, listed again (every AD mailbox has it)
            address = normalize_address(text)
            if address is None:
                self.result.notices.append(
                    Notice(
                        "warning",
                        f"Source {self.source!r}: {email}: the alias {text!r} in {n.aliases} is "
                        "not a valid address; it is left out.",
                    )
                )
            elif address != email:
                found.add(address)
        return address_set(found)

    def _disabled(self, raw: Raw, n: Names) -> bool:
        if not n.disabled:
            return False
        value = _first(raw, n.disabled)
        if value is None:
            return False
        if n.disabled == "useraccountcontrol":
            return bool((_int(value) or 0) & AD_DISABLED_BIT)
        return value.decode("utf-8", "replace").strip().lower() not in FALSE_WORDS


@dataclass(frozen=True, slots=True)
class Names:
    """The mapped attribute names, lower-cased as the parsed entries have them ("" for none)."""

    id: str
    mail: str
    display_name: str
    aliases: str
    delegates: str
    members: str
    disabled: str
    sso_key: str
    recipient_type: str
    division: str
    phone: str

    @classmethod
    def of(cls, attributes: LdapAttributes) -> Names:
        return cls(**{k: (v or "").lower() for k, v in attributes.model_dump().items()})


@dataclass(slots=True)
class _Users:
    """What the pages of users leave for the end of the read."""

    dns: dict[str, bytes | None] = field(default_factory=dict)
    """Every user entry's DN, read or not (a group member that is none of these is a group),
    and the first value of its id attribute."""
    emails: dict[str, str] = field(default_factory=dict)
    active: dict[str, bool] = field(default_factory=dict)
    delegating: list[tuple[int, list[str]]] = field(default_factory=list)
    """(index in the accounts, the DNs its delegates attribute names), for the end."""


def guid_text(value: bytes) -> str:
    """An objectGUID (16 bytes, little-endian fields) as text: what ``str(uuid.UUID(bytes_le=…))``
    gives, at a third of the cost (it runs twice per account)."""
    h = (value[3::-1] + value[5:3:-1] + value[7:5:-1] + value[8:]).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _first(raw: Raw, name: str) -> bytes | None:
    """The first value of attribute ``name`` (lower-case), or None."""
    values = raw.get(name)
    return values[0] if values else None


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace").strip() if value else ""


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _dns(raw: Raw, name: str) -> list[str]:
    return [v.decode("utf-8", "replace").lower() for v in raw.get(name, ())]


def _flatten(
    dn: str,
    groups: dict[str, Raw],
    members: str,
    users: dict[str, str],
    seen: set[str] | None = None,
) -> set[str]:
    """User DNs reachable from group ``dn`` through nested groups; cycles are cut."""
    seen = seen if seen is not None else set()
    if dn in seen:
        return set()
    seen.add(dn)
    found: set[str] = set()
    for member in _dns(groups.get(dn, {}), members):
        if member in users:
            found.add(member)
        elif member in groups:
            found |= _flatten(member, groups, members, users, seen)
    return found
