"""LDAP / Active Directory source (ldap3, read in a process of its own: see process.py).

This module connects (TLS, bind) and searches (paged; nested groups when a group has
members that are no user); :mod:`.ldap_map` turns the entries into accounts, page by page
as they arrive. One account's way: a search page here → ``Mapper.users`` → a
``SourceAccount`` → the plan (plan.py) → a request (zivver/requests.py).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import ldap3
from ldap3.core import exceptions as ldap_errors

from ..config import Config, read_secret
from ..errors import SourceError
from ..model import Event, LogEvent, StepEvent
from . import Emit, SourceResult, process
from .fields import finish
from .ldap_config import LdapAttributes, LdapSourceConfig
from .ldap_fast import LOWERED, use_fast_search
from .ldap_map import Mapper, Raw

PAGED_RESULTS = "1.2.840.113556.1.4.319"


ENTRA_ID_ATTRIBUTE = "msDS-ExternalDirectoryObjectId"
"""Where Entra Connect writes a synced user's Entra object id back, as ``User_<id>``."""


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
            phone="mobile",
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
            phone="mobile",
        ),
    ),
}


def effective_attributes(source: LdapSourceConfig) -> LdapAttributes:
    """The preset's attribute mapping overridden by the source's own ``attributes``."""
    preset = PRESETS[source.directory].attributes.model_dump()
    if source.sso_key == "entra-object-id":
        preset["sso_key"] = ENTRA_ID_ATTRIBUTE
    preset.update(source.attributes.model_dump(exclude_none=True))
    return LdapAttributes(**preset)


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

        if self.config.cleartext:  # allowed by allow_cleartext (config.py), never silently
            emit(
                LogEvent(
                    "warning",
                    f"Source {self.name!r}: {self.config.url} is ldap:// without start_tls "
                    "(allow_cleartext = true): the bind password and the directory data travel "
                    "unencrypted over the network. Use ldaps:// or start_tls = true.",
                )
            )
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
        mapper = Mapper(self.name, self.attrs)
        connection = self._connect(emit, password)
        try:
            self._search_step(  # users are parsed page by page, while the server sends the next
                emit,
                connection,
                "users",
                self.config.user_filter or self.preset.user_filter,
                self._user_attributes(),
                mapper.users,
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
            nested = (
                self._search_step(
                    emit,
                    connection,
                    "nested groups",
                    self.preset.nesting_filter,
                    [self.attrs.members or "member"],
                )
                if mapper.unknown_members(groups)
                else {}
            )
        finally:
            connection.unbind()
        step = f"{self.name}: parse"
        emit(StepEvent(step, step, "running"))
        result = mapper.finish(groups, nested)
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
            auto_range=False,  # ranged values are followed in _whole, where a gap is an error
        )
        use_fast_search(connection, source.page_size)
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
            a.phone,
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
        """Each page of a paged search, until the server's last page.

        Only a ``searchResDone`` with result 0 (success) ends a page: a server that stops at a
        size, time or administrative limit still sends the entries it had (ldap3 then calls
        the search a success), and taking those as the whole directory would suspend everyone
        after the cut. A paging cookie seen twice would loop for ever.

        Raises:
            SourceError: the search failed, stopped early or cannot be trusted (nothing from
                it may be synced).
        """
        cookie: bytes | None = None
        cookies: set[bytes] = set()
        count = 0
        where = f"under {self.config.base_dn} on {self.config.url}"
        while True:
            try:
                connection.search(
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
                    f"Source {self.name!r}: the search {where} broke off ({error}); "
                    "the read is incomplete, so nothing is synced from it."
                ) from error
            page: dict[str, Raw] = {}
            ranged: list[str] = []  # only entries ldap_fast left to ldap3 can hold ranges
            for item in connection.response or []:
                if item.get("type") == "searchResEntry":
                    raw = item["raw_attributes"]
                    dn = item["dn"].lower()
                    if item.get(LOWERED):
                        page[dn] = raw
                        continue
                    page[dn] = raw = {k.lower(): v for k, v in raw.items()}
                    if any(";range=" in name for name in raw):
                        ranged.append(dn)
            count += len(page)
            result = connection.result or {}
            if result.get("type") != "searchResDone" or result.get("result") != 0:
                raise SourceError(self._incomplete(search_filter, result, count))
            self._no_referral_inside(connection.response or [], count)
            for dn in ranged:
                page[dn] = self._whole(connection, dn, page[dn])
            controls = result.get("controls") or {}
            yield page
            cookie = controls.get(PAGED_RESULTS, {}).get("value", {}).get("cookie")
            if not cookie:
                return
            if cookie in cookies:
                raise SourceError(
                    f"Source {self.name!r}: the search {where} sent a paging cookie it had sent "
                    f"before, after {count} entries: the server would page for ever. The read "
                    "is incomplete, so nothing is synced from it."
                )
            cookies.add(cookie)

    def _no_referral_inside(self, items: list[dict[str, Any]], count: int) -> None:
        """A reference (searchResRef) to a part of base_dn held by another server means that
        part was not read: its people would look like leavers. References elsewhere (AD's
        ForestDnsZones, DomainDnsZones) are not the accounts' subtree and are passed over.

        Raises:
            SourceError: a reference into base_dn.
        """
        base = _dn_key(self.config.base_dn)
        for item in items:
            if item.get("type") != "searchResRef":
                continue
            for uri in item.get("uri") or []:
                referred = _dn_key(unquote(urlsplit(uri).path.lstrip("/")).split("?")[0])
                if referred == base or referred.endswith("," + base):
                    raise SourceError(
                        f"Source {self.name!r}: the search under {self.config.base_dn} on "
                        f"{self.config.url} referred part of it to another server ({uri}) after "
                        f"{count} entries; zsync does not follow referrals, so the read is "
                        "incomplete and nothing is synced from it. Point url at a server that "
                        "holds all of base_dn (a global catalog, port 3268/3269, for a forest)."
                    )

    def _whole(self, connection: ldap3.Connection, dn: str, raw: Raw) -> Raw:
        """``raw`` with each ranged attribute (AD sends ``member;range=0-1499`` for a group of
        more members than its MaxValRange) read to its end by base searches for the next
        range, under its plain name.

        Raises:
            SourceError: a follow-up failed, came back empty or without the next range: the
                values would be cut short (delegates lost), so the read is incomplete.
        """
        whole: Raw = {name: values for name, values in raw.items() if ";range=" not in name}
        for name, values in raw.items():
            if ";range=" not in name:
                continue
            attribute, _, span = name.partition(";range=")
            collected = list(values)
            while True:
                low, _, high = span.partition("-")
                if high == "*":
                    break
                if not (low.isdigit() and high.isdigit()) or int(high) < int(low):
                    raise SourceError(
                        self._cut(dn, attribute, f"a range {span!r} that makes no sense")
                    )
                wanted = f"{attribute};range={int(high) + 1}-*"
                try:
                    connection.search(
                        dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[wanted]
                    )
                except ldap_errors.LDAPException as error:
                    raise SourceError(
                        self._cut(dn, attribute, f"the search broke off ({error})")
                    ) from error
                result = connection.result or {}
                entries = [
                    item
                    for item in connection.response or []
                    if item.get("type") == "searchResEntry"
                ]
                if result.get("result") != 0 or len(entries) != 1:
                    said = result.get("description") or f"result {result.get('result')}"
                    raise SourceError(
                        self._cut(
                            dn, attribute, f"the server answered {said} with {len(entries)} entries"
                        )
                    )
                follow = {k.lower(): v for k, v in entries[0]["raw_attributes"].items()}
                ranged = [k for k in follow if k.startswith(f"{attribute};range=")]
                if len(ranged) != 1:
                    raise SourceError(self._cut(dn, attribute, "the answer held no next range"))
                span = ranged[0].partition(";range=")[2]
                if not span.startswith(f"{int(high) + 1}-"):
                    raise SourceError(
                        self._cut(
                            dn, attribute, f"the next range was {span!r}, not from {int(high) + 1}"
                        )
                    )
                collected += follow[ranged[0]]
            whole[attribute] = collected
        return whole

    def _cut(self, dn: str, attribute: str, why: str) -> str:
        return (
            f"Source {self.name!r}: {dn} has more {attribute} values than {self.config.url} sends "
            f"at once, and reading the rest failed: {why}. The read is incomplete (its values "
            "would be cut short), so nothing is synced from it; run again, and if it repeats, "
            "check the server's MaxValRange and the service account's rights."
        )

    def _incomplete(self, search_filter: str, result: dict[str, Any], count: int) -> str:
        """What to tell the admin about a search that did not end with success."""
        description = result.get("description") or f"result {result.get('result')}"
        said = f" ({result['message']})" if result.get("message") else ""
        head = f"Source {self.name!r}: the search {search_filter!r} under {self.config.base_dn} on {self.config.url}"
        incomplete = "the read is incomplete, so nothing is synced from it"
        bind = self.config.bind_dn or "the anonymous bind"
        if result.get("type") != "searchResDone":
            return (
                f"{head} ended with a {result.get('type') or 'missing'} answer instead of the end "
                f"of the search (searchResDone), after {count} entries; {incomplete}."
            )
        if description == "noSuchObject":
            return f"Source {self.name!r}: base_dn {self.config.base_dn!r} does not exist on {self.config.url}."
        limits = {
            "sizeLimitExceeded": (
                "size limit",
                f'OpenLDAP: `limits dn.exact="{bind}" size=unlimited` in slapd.conf (or '
                "olcLimits on the database); Active Directory: MaxPageSize and "
                "MaxResultSetSize in its LDAP query policy",
            ),
            "timeLimitExceeded": (
                "time limit",
                f'OpenLDAP: `limits dn.exact="{bind}" time=unlimited`; Active Directory: '
                "MaxQueryDuration in its LDAP query policy",
            ),
            "adminLimitExceeded": (
                "administrative limit",
                "Active Directory: the LDAP query policy (MaxPageSize, MaxResultSetSize, "
                "MaxQueryDuration); OpenLDAP: the limits directive for the bind account",
            ),
        }
        if description in limits:
            limit, setting = limits[description]
            return (
                f"{head} was stopped by the server's {limit} after {count} entries "
                f"({description}{said}); {incomplete}. Raise the limit for {bind} "
                f"({setting}), or narrow base_dn or the filter."
            )
        return f"{head} failed after {count} entries: {description}{said}; {incomplete}."


def read(
    source: LdapSourceConfig, profile: Config, password: str | None, emit: Emit
) -> SourceResult:
    """Read ``source``: what the reading process runs (see :mod:`.process`), its fields
    finished there too (:func:`.fields.finish`: the phone numbers parsed beside Zivver's read)."""
    result = LdapSource(source, profile)._load(emit, password)
    finish(result, source, profile.sync.sync_phone_numbers)
    return result


READER = f"{__name__}:{read.__name__}"


def _dn_key(dn: str) -> str:
    """A DN compared as LDAP does for these purposes: case and spaces around separators aside."""
    return ",".join(part.strip() for part in dn.lower().split(","))
