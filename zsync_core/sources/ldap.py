"""LDAP / Active Directory source (ldap3, read in a process of its own: see process.py).

Reads users and mail-enabled groups with paged searches, and turns them into accounts:
users become personal accounts (AD shared mailboxes, ``msExchRecipientTypeDetails`` 4,
become functional accounts); mail-enabled groups become functional accounts whose
(nested, flattened) members are the delegates.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as ldap_errors

from ..addresses import normalize_address
from ..config import Config, LdapAttributes, LdapSourceConfig, read_secret
from ..errors import SourceError
from ..model import NO_ADDRESSES, Event, Kind, Notice, SourceAccount, StepEvent, address_set
from . import Emit, SourceResult, process
from .ldap_fast import LOWERED, use_fast_search

PAGED_RESULTS = "1.2.840.113556.1.4.319"
SHARED_MAILBOX = 4
AD_DISABLED_BIT = 2
BINARY_IDS = {"objectguid"}


@dataclass(frozen=True, slots=True)
class Preset:
    user_filter: str
    group_filter: str
    nesting_filter: str
    attributes: LdapAttributes


PRESETS: dict[str, Preset] = {
    "active-directory": Preset(
        user_filter="(&(objectClass=user)(mail=*))",
        group_filter="(&(objectClass=group)(mail=*))",
        nesting_filter="(objectClass=group)",
        attributes=LdapAttributes(
            id="objectGUID",
            mail="mail",
            display_name="displayName",
            aliases="proxyAddresses",
            delegates="msExchDelegateListLink",
            members="member",
            disabled="userAccountControl",
            sso_key="objectGUID",
            recipient_type="msExchRecipientTypeDetails",
        ),
    ),
    "openldap": Preset(
        user_filter="(&(objectClass=inetOrgPerson)(mail=*))",
        group_filter="(&(objectClass=groupOfNames)(mail=*))",
        nesting_filter="(objectClass=groupOfNames)",
        attributes=LdapAttributes(
            id="entryUUID",
            mail="mail",
            display_name="displayName",
            members="member",
            sso_key="entryUUID",
        ),
    ),
}

FALSE_WORDS = {"", "false", "0", "no", "n", "off", "enabled", "active"}


def effective_attributes(source: LdapSourceConfig) -> LdapAttributes:
    """The preset's attribute mapping overridden by the source's own ``attributes``."""
    preset = PRESETS[source.directory].attributes.model_dump()
    preset.update(source.attributes.model_dump(exclude_none=True))
    return LdapAttributes(**preset)


Raw = dict[str, list[bytes]]


class LdapSource:
    def __init__(self, source: LdapSourceConfig, config: Config) -> None:
        self.config = source
        self.profile = config
        self.name = source.name
        self.preset = PRESETS[source.directory]
        self.attrs = effective_attributes(source)

    async def load(self, emit: Emit) -> SourceResult:
        loop = asyncio.get_running_loop()

        def threadsafe(event: Event) -> None:
            loop.call_soon_threadsafe(emit, event)

        password = read_secret(
            self.config.password_env,
            self.config.password_file,
            f"sources ({self.name}).password",
            self.profile,
        )
        try:  # a core of its own: see process.py
            child = process.start(READER, self.config, self.profile, password)
        except OSError:
            return await asyncio.to_thread(self._load, threadsafe, password)
        try:
            return await asyncio.to_thread(process.collect, child, threadsafe, self.name)
        finally:
            child.stop()

    # --- runs in the reading process (in a worker thread when no process can be started) -----

    def _load(self, emit: Emit, password: str | None) -> SourceResult:
        result = SourceResult(self.name, [])
        users = _Users(_Names.of(self.attrs))
        connection = self._connect(emit, password)
        try:
            self._search_step(  # users are parsed page by page, while the server sends the next
                emit,
                connection,
                "users",
                self.config.user_filter or self.preset.user_filter,
                self._user_attributes(),
                lambda page: self._parse_users(page, users, result),
            )
            group_filter = (
                self.preset.group_filter
                if self.config.group_filter is None
                else self.config.group_filter
            )
            groups = (
                self._search_step(
                    emit, connection, "groups", group_filter, self._group_attributes()
                )
                if group_filter
                else {}
            )
            nested = self._nested_groups(emit, connection, users.dns, groups)
        finally:
            connection.unbind()
        step = f"{self.name}: parse"
        emit(StepEvent(step, step, "running"))
        self._finish_parse(users, groups, nested, result)
        emit(StepEvent(step, step, "done", len(result.accounts), len(result.accounts)))
        return result

    def _fail(
        self, emit: Emit, step: str, message: str, cause: BaseException | None = None
    ) -> SourceError:
        emit(StepEvent(step, step, "failed", detail=message))
        error = SourceError(message)
        error.__cause__ = cause
        return error

    def _connect(self, emit: Emit, password: str | None) -> ldap3.Connection:
        source = self.config
        url = source.url
        parts = urlsplit(url)
        secure = parts.scheme.lower() == "ldaps"
        step = f"{self.name}: connect to {url}"
        emit(StepEvent(step, step, "running"))
        tls = None
        if secure or source.start_tls:
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED if source.verify_tls else ssl.CERT_NONE,
                ca_certs_file=str(self.profile.resolve(source.ca_file)) if source.ca_file else None,
                valid_names=[source.tls_server_name] if source.tls_server_name else None,
            )
        server = ldap3.Server(
            parts.hostname,
            port=parts.port or (636 if secure else 389),
            use_ssl=secure,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=max(1, round(source.timeout_seconds)),
        )
        connection = ldap3.Connection(
            server,
            user=source.bind_dn,
            password=password,
            read_only=True,
            receive_timeout=max(1, round(source.timeout_seconds)),
            raise_exceptions=False,
            auto_referrals=False,
        )
        use_fast_search(connection)
        try:
            connection.open()
            if source.start_tls:
                connection.start_tls()
        except ldap_errors.LDAPException as error:
            raise self._fail(emit, step, self._explain_connect(error), error) from error
        emit(StepEvent(step, step, "done"))
        step = f"{self.name}: bind as {source.bind_dn or 'anonymous'}"
        emit(StepEvent(step, step, "running"))
        try:
            bound = connection.bind()
        except ldap_errors.LDAPException as error:
            raise self._fail(emit, step, self._explain_connect(error), error) from error
        if not bound:
            result = connection.result or {}
            description = result.get("description", "")
            if description == "invalidCredentials":
                reason = f"invalid credentials for {source.bind_dn}. Check bind_dn and the password in {source.password_env or source.password_file}"
            elif description == "strongerAuthRequired":
                reason = (
                    "the server requires an encrypted connection: use ldaps:// or start_tls = true"
                )
            else:
                reason = f"{description or 'refused'} {result.get('message', '')}".strip()
            raise self._fail(emit, step, f"LDAP bind to {url} failed: {reason}.")
        emit(StepEvent(step, step, "done"))
        return connection

    def _explain_connect(self, error: BaseException) -> str:
        url = self.config.url
        text = str(error)
        if "certificate" in text.lower() or isinstance(
            error, ldap_errors.LDAPSSLConfigurationError
        ):
            return (
                f"Source {self.name!r}: TLS certificate of {url} could not be verified ({text}). "
                "Set ca_file to the CA that signed it (or tls_server_name if the name differs)."
            )
        if "timed out" in text.lower():
            return f"Source {self.name!r}: {url} did not answer within {self.config.timeout_seconds:g} s. Check host, port and firewall."
        return f"Source {self.name!r}: cannot connect to {url}: {text}. Check the host, port and that the server runs."

    def _user_attributes(self) -> list[str]:
        a = self.attrs
        names = [
            a.id,
            a.mail,
            a.display_name,
            a.aliases,
            a.delegates,
            a.disabled,
            a.sso_key,
            a.recipient_type,
            a.division,
            "cn",
        ]
        return sorted({name for name in names if name})

    def _group_attributes(self) -> list[str]:
        a = self.attrs
        names = [a.id, a.mail, a.display_name, a.aliases, a.members, a.division, "cn"]
        return sorted({name for name in names if name})

    def _search_step(
        self,
        emit: Emit,
        connection: ldap3.Connection,
        what: str,
        search_filter: str,
        attributes: list[str],
        on_page: Callable[[dict[str, Raw]], None] | None = None,
    ) -> dict[str, Raw]:
        """Every entry found, by lower-cased DN; or, with ``on_page``, each page handed to it
        as it arrives (and nothing kept here)."""
        step = f"{self.name}: search {what}"
        emit(StepEvent(step, step, "running"))
        found: dict[str, Raw] = {}
        count = 0
        try:
            for page, entries in enumerate(
                self._paged(connection, search_filter, attributes), start=1
            ):
                count += len(entries)
                if on_page is None:
                    found.update(entries)
                else:
                    on_page(entries)
                emit(StepEvent(step, step, "running", count, None, f"page {page}"))
        except SourceError as error:
            raise self._fail(emit, step, str(error), error) from error
        emit(StepEvent(step, step, "done", count, count))
        return found

    def _paged(
        self, connection: ldap3.Connection, search_filter: str, attributes: list[str]
    ) -> Iterator[dict[str, Raw]]:
        cookie: bytes | None = None
        while True:
            try:
                ok = connection.search(
                    self.config.base_dn,
                    search_filter,
                    search_scope=ldap3.SUBTREE,
                    attributes=attributes,
                    paged_size=self.config.page_size,
                    paged_cookie=cookie,
                )
            except ldap_errors.LDAPInvalidFilterError as error:
                raise SourceError(
                    f"Source {self.name!r}: invalid LDAP filter {search_filter!r}: {error}"
                ) from error
            except ldap_errors.LDAPException as error:
                raise SourceError(
                    f"Source {self.name!r}: the search under {self.config.base_dn} on {self.config.url} "
                    f"broke off ({error}); the read is incomplete, so nothing is synced from it."
                ) from error
            result = connection.result or {}
            if not ok and result.get("description") not in ("success", None):
                description = result.get("description")
                if description == "noSuchObject":
                    raise SourceError(
                        f"Source {self.name!r}: base_dn {self.config.base_dn!r} does not exist on {self.config.url}."
                    )
                raise SourceError(
                    f"Source {self.name!r}: search {search_filter!r} under {self.config.base_dn} failed: "
                    f"{description} {result.get('message', '')}".strip()
                )
            page: dict[str, Raw] = {}
            for item in connection.response or []:
                if item.get("type") == "searchResEntry":
                    raw = item["raw_attributes"]
                    page[item["dn"].lower()] = (
                        raw if item.get(LOWERED) else {k.lower(): v for k, v in raw.items()}
                    )
            yield page
            controls = result.get("controls") or {}
            cookie = controls.get(PAGED_RESULTS, {}).get("value", {}).get("cookie")
            if not cookie:
                return

    def _nested_groups(
        self,
        emit: Emit,
        connection: ldap3.Connection,
        users: set[str],
        groups: dict[str, Raw],
    ) -> dict[str, Raw]:
        members = (self.attrs.members or "").lower()
        unknown = {
            dn.decode("utf-8", "replace").lower()
            for raw in groups.values()
            for dn in raw.get(members, [])
            if dn.decode("utf-8", "replace").lower() not in users
        }
        if not unknown or not members:
            return {}
        return self._search_step(
            emit,
            connection,
            "nested groups",
            self.preset.nesting_filter,
            [self.attrs.members or "member"],
        )

    # --- parsing (pure) -----------------------------------------------------------------------
    # Runs once per entry (100,000 times a day at a large customer): attribute names are
    # lower-cased once, and the common case (one mail, an smtp: proxy address that is the
    # mail itself, no delegates) takes no detour.

    def _parse_users(self, page: dict[str, Raw], users: _Users, result: SourceResult) -> None:
        """One page of users into accounts; their delegates wait for every user's address."""
        n = users.names
        name = self.name
        accounts = result.accounts
        for dn, raw in page.items():
            if dn in users.dns:
                continue  # the same entry again (the directory changed while it was read)
            users.dns.add(dn)
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
                )
            )

    def _finish_parse(
        self, users: _Users, groups: dict[str, Raw], nested: dict[str, Raw], result: SourceResult
    ) -> None:
        """Delegates (active users only) now that every user's address is known, then groups."""
        n = users.names
        accounts = result.accounts
        emails, active = users.emails, users.active
        for index, dns in users.delegating:
            delegates = address_set(emails[d] for d in dns if d in emails and active[d])
            accounts[index] = accounts[index]._replace(delegates=delegates)
        all_groups = {**nested, **groups}
        for dn, raw in groups.items():
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
                    source=self.name,
                    entry=dn,
                    aliases=self._aliases(raw, email, n),
                    delegates=delegates,
                    division=_text(_first(raw, n.division)) or None,
                )
            )

    def _email(self, dn: str, raw: Raw, result: SourceResult, n: _Names) -> str | None:
        value = _text(_first(raw, n.mail))
        email = normalize_address(value)
        if email is None:
            result.notices.append(
                Notice(
                    "error",
                    f"Source {self.name!r}: {dn} has mail {value!r}, which is not a valid address; entry skipped.",
                )
            )
            result.unreadable_ids.add(self._id(raw, dn, n))
        return email

    def _id(self, raw: Raw, dn: str, n: _Names) -> str:
        value = _first(raw, n.id)
        if value is None:
            return f"dn:{dn}"
        if n.id in BINARY_IDS and len(value) == 16:
            return guid_text(value)
        return value.decode("utf-8", "replace")

    def _sso_key(self, raw: Raw, source_id: str, n: _Names) -> str | None:
        if n.sso_key == n.id:  # AD: both are the objectGUID, already made text
            return source_id if raw.get(n.id) else None
        value = _first(raw, n.sso_key)
        if value is None:
            return None
        if n.sso_key in BINARY_IDS and len(value) == 16:
            return guid_text(value)
        return value.decode("utf-8", "replace")

    def _display_name(self, raw: Raw, email: str, n: _Names) -> str:
        return _text(_first(raw, n.display_name)) or _text(_first(raw, "cn")) or email

    def _aliases(self, raw: Raw, email: str, n: _Names) -> frozenset[str]:
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
            if address and address != email:
                found.add(address)
        return address_set(found)

    def _disabled(self, raw: Raw, n: _Names) -> bool:
        if not n.disabled:
            return False
        value = _first(raw, n.disabled)
        if value is None:
            return False
        if n.disabled == "useraccountcontrol":
            return bool((_int(value) or 0) & AD_DISABLED_BIT)
        return value.decode("utf-8", "replace").strip().lower() not in FALSE_WORDS


@dataclass(frozen=True, slots=True)
class _Names:
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

    @classmethod
    def of(cls, attributes: LdapAttributes) -> _Names:
        return cls(**{k: (v or "").lower() for k, v in attributes.model_dump().items()})


@dataclass(slots=True)
class _Users:
    """What the pages of users leave for the end of the read."""

    names: _Names
    dns: set[str] = field(default_factory=set)
    """Every user entry's DN, read or not (a group member that is none of these is a group)."""
    emails: dict[str, str] = field(default_factory=dict)
    active: dict[str, bool] = field(default_factory=dict)
    delegating: list[tuple[int, list[str]]] = field(default_factory=list)
    """(index in the accounts, the DNs its delegates attribute names), for the end."""


def read(
    source: LdapSourceConfig, profile: Config, password: str | None, emit: Emit
) -> SourceResult:
    """Read ``source``: what the reading process runs (see :mod:`.process`)."""
    return LdapSource(source, profile)._load(emit, password)


READER = f"{__name__}:{read.__name__}"


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
