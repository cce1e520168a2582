"""Microsoft 365 as an app-only client meets it: Entra's token endpoint, Graph v1.0 and the
Exchange Online REST admin API, on one loopback server.

Built from Microsoft's documented shapes (../shared/docs/microsoft365.md). It is a witness,
not a friend: where the documentation is silent it takes the stricter behaviour, marked
*(silent)*.

Signing in (``/{tenant}/…``):
- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: what MSAL reads first; an unknown
  tenant answers 400 ``AADSTS90002``.
- ``POST /{tenant}/oauth2/v2.0/token``, client credentials only, one resource per token
  (``scope=<resource>/.default``). A certificate's ``client_assertion`` is verified against
  the certificates registered for the app (RS256 with ``x5t``, PS256 with ``x5t#S256``), its
  audience must be the token endpoint (served over plain http, its https form too: MSAL
  only speaks https) and it must not have expired. Errors are Entra's:
  ``AADSTS700016`` unknown app (400 ``unauthorized_client``), ``AADSTS7000215`` wrong secret,
  ``AADSTS7000222`` expired secret, ``AADSTS700027`` unknown key or bad signature (401
  ``invalid_client``), ``AADSTS1002012`` a scope that is not ``<resource>/.default`` (400).
- A token carries the application permissions the app was granted admin consent for
  (``roles``); it lasts ``token_lifetime`` seconds (3599).

Graph (``/v1.0``):
- ``/users``, ``/users/delta``, ``/groups/delta``: only ``$select``'ed properties come back
  (``id`` always); pages hold ``Prefer: odata.maxpagesize`` (delta) or ``$top`` (lists) items,
  at most 999, **100 when neither is sent** *(silent: Graph's own default varies)*, and end
  in ``@odata.nextLink`` or, for delta, ``@odata.deltaLink``.
- A delta round lists every object (initial) or what changed since its token: a changed
  object with ``id`` and only the changed selected properties, a deleted one as
  ``{"id", "@removed": {"reason": "deleted"}}``; a group's ``members@delta`` lists members
  added (``@odata.type``, ``id``) and removed (``@removed``). A group's members come at most
  ``members_per_item`` (500) per item: the same group appears again on a later page with the
  rest *(silent: Graph documents that it may split, not where)*. ``$deltatoken=latest`` gives
  a deltaLink and nothing else. A token older than its round's ``expire_tokens`` answers 410
  ``syncStateNotFound``.
- ``$filter`` on ``/users``: ``eq``, ``in``, ``startswith``, and ``ge``/``le`` on the
  properties Graph's table allows by default (``mail``, names, ``department``, ``jobTitle``;
  ``userPrincipalName`` only ``le``), joined by ``and``; string comparisons ignore case. ``ne``,
  ``not`` and ``endsWith`` are advanced queries and need ``ConsistencyLevel: eventual`` and
  ``$count=true``, else 400 ``Request_UnsupportedQuery``. Delta refuses ``$filter`` (400).
  Lists come in the order the users were made, a range of addresses by address *(silent:
  Graph promises no order; Azure AD Graph's team wrote in 2013 that users list by
  userPrincipalName by default; ``ranges_by_address`` off lists a range as made)*.
- Without the ``User.Read.All`` role, users answer 403 ``Authorization_RequestDenied``
  ("Insufficient privileges to complete the operation."); groups need ``GroupMember.Read.All``
  (or ``Group.Read.All``). A bad or expired token: 401 ``InvalidAuthenticationToken``.
- ``GET /v1.0/organization``: the tenant (any valid Graph token).

Exchange (``/adminapi/beta/{tenant}``):
- ``POST …/InvokeCommand`` with ``{"CmdletInput": {"CmdletName", "Parameters"}}``:
  ``Get-Mailbox`` (``RecipientTypeDetails``, ``ResultSize``, ``Identity``) and
  ``Get-MailboxPermission`` (``Identity``); results in ``value``, more through
  ``@odata.nextLink`` (POST the same body to it), ``Prefer: odata.maxpagesize`` (default 100,
  at most 1000). ``GET …/Mailbox`` and ``…/Mailbox('<base64 identity>')/MailboxPermission
  ?isEncoded=true``, as Cloud Sync reads them.
- Without ``Exchange.ManageAsApp`` in the token: 401; with it but without an Exchange role
  assigned to the app: 403 naming the role *(silent: the exact texts are unknown)*. An
  unknown cmdlet or identity: 400 with Exchange's error text *(silent)*.

Faults and throttling (knobs on :class:`Tenant`): ``latency`` seconds added to every Graph and
Exchange request; ``throttle`` a queue of ``(status, retry_after)`` answered to the next
requests (429/503 with ``Retry-After``); ``max_concurrent`` requests at once per app and
service (4), beyond which it answers 429 with ``Retry-After: 1``; ``fail_page`` answers 500 to
the nth page of a paged read; ``requests`` counts what was asked, ``overflows`` what was
refused for concurrency; ``on_list`` runs as a list of users starts; ``range_filters`` and
``latest_tokens`` off stand for a Graph that refuses ``ge``/``le`` or ``$deltatoken=latest``;
``lost_by_ranges`` for one whose address ranges lose users, ``ranges_by_address`` off for one
that lists a range in no address order.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

GRAPH = "https://graph.microsoft.com"
EXCHANGE = "https://outlook.office365.com"
RESOURCES = (GRAPH, EXCHANGE)
MAX_PAGE = 999
KEPT_ROUNDS = 10_000
"""Paged answers whose next pages can still be asked for (older ones are forgotten)."""
KEPT_LISTS = 64
"""The same for lists of users (each may hold every user's JSON)."""
DEFAULT_PAGE = 100
USER_PROPERTIES = frozenset(
    {
        "id",
        "mail",
        "displayName",
        "userPrincipalName",
        "accountEnabled",
        "userType",
        "proxyAddresses",
        "onPremisesImmutableId",
        "mobilePhone",
        "department",
        "givenName",
        "surname",
    }
)
GROUP_PROPERTIES = frozenset(
    {"id", "displayName", "mail", "mailEnabled", "securityEnabled", "groupTypes", "proxyAddresses"}
)
USERS_ROLES = {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All"}
GROUPS_ROLES = {"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"}
MANAGE_AS_APP = "Exchange.ManageAsApp"


@dataclass
class AppRegistration:
    """An app registration with its credentials, its consented roles and its Exchange role."""

    client_id: str
    secrets: dict[str, float] = field(default_factory=dict)
    """Secret → when it expires (epoch seconds)."""
    certificates: list[str] = field(default_factory=list)
    """PEM certificates whose keys may sign a client assertion."""
    roles: set[str] = field(default_factory=set)
    """Application permissions an admin consented to."""
    exchange_role: str | None = None
    """The Exchange role (group) assigned to the app's service principal, if any."""


@dataclass
class Tenant:
    """One Entra tenant with Exchange Online. Change it through the methods (they keep the
    change log that delta rounds read); read it freely."""

    tenant_id: str = "00000000-0000-4000-8000-00000000000a"
    domain: str = "example.org"
    apps: dict[str, AppRegistration] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    """Group id → direct member ids (users and groups)."""
    mailboxes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """ExternalDirectoryObjectId → the Exchange mailbox (shared, room, equipment, user)."""
    permissions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Mailbox id → its permission entries (as Get-MailboxPermission returns them)."""
    token_lifetime: int = 3599
    latency: float = 0.0
    throttle: deque[tuple[int, int]] = field(default_factory=deque)
    max_concurrent: int = 4
    members_per_item: int = 500
    fail_page: int | None = None
    """Answer 500 to this page (1 = the first) of every paged read until cleared."""
    requests: Counter[str] = field(default_factory=Counter)
    """``"<METHOD> <path>"`` → how many times it was asked (tokens and pages included)."""
    range_filters: bool = True
    """False: ``ge``/``le`` answer 400 (a Graph that does not take them)."""
    latest_tokens: bool = True
    """False: ``$deltatoken=latest`` answers 400."""
    lost_by_ranges: set[str] = field(default_factory=set)
    """User ids a list by range of mail leaves out (a Graph whose filters misbehave)."""
    ranges_by_address: bool = True
    """False: a list by range of mail comes in the order the users were made, not by address."""
    on_list: Callable[[str | None], None] | None = None
    """Called with the ``$filter`` of each list of users as it starts (tests change the
    tenant in the middle of a read with it)."""
    overflows: Counter[str] = field(default_factory=Counter)
    """Service ("graph", "exchange") → requests refused for more than ``max_concurrent``."""

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.version = 0
        self.epoch = 0
        """Delta tokens of an older epoch are expired (:meth:`expire_tokens`)."""
        self._changed: dict[tuple[str, str], dict[str, int]] = {}
        """(kind, id) → property → the version it last changed at."""
        self._removed: dict[tuple[str, str], int] = {}
        self._member_log: dict[str, list[tuple[int, str]]] = {}
        """Group id → (version, member id) of every change of its membership."""
        self._rounds: dict[str, list[Any]] = {}
        """A paged answer's key → its items (a delta round's as JSON), for its next pages."""
        self._active: Counter[str] = Counter()
        self._mail_index: tuple[int, list[str], list[str]] = (-1, [], [])
        self.mail_version = 0
        """Moves when a user is added or deleted or changes mail (the index is rebuilt)."""
        self._views: dict[tuple[str, ...], dict[str, bytes]] = {}
        """Selected properties → user id → the user's JSON (:meth:`view`)."""
        self._listed: dict[str, list[bytes]] = {}
        """A list's key → its users' JSON, for its next pages."""
        self._touched: list[tuple[int, str, str]] = []
        """(version, kind, id) of every change of an object or its members, oldest first: a
        delta round since a version reads only the tail."""
        self._kind_version: Counter[str] = Counter()
        """Kind → the version of its last change (an object's, its members', a deletion)."""
        self._initial: dict[tuple[str, tuple[str, ...], int], tuple[int, list[bytes]]] = {}
        """(kind, selected, members per item) → the initial delta round's items as JSON, kept
        while nothing of that kind changes: 5,000 groups with their members are not built
        again for every full read."""

    # --- building the tenant (every change is logged for delta) -----------------------------

    def register_app(
        self,
        client_id: str | None = None,
        *,
        secret: str | None = None,
        secret_expires: float | None = None,
        certificate: str | None = None,
        roles: set[str] | None = None,
        exchange_role: str | None = "Exchange Recipient Administrator",
    ) -> AppRegistration:
        app = AppRegistration(
            client_id or str(uuid.uuid4()),
            roles=set(roles if roles is not None else {*USERS_ROLES, *GROUPS_ROLES, MANAGE_AS_APP}),
            exchange_role=exchange_role,
        )
        if secret:
            app.secrets[secret] = secret_expires or time.time() + 365 * 86400
        if certificate:
            app.certificates.append(certificate)
        self.apps[app.client_id] = app
        return app

    def add_user(
        self,
        mail: str | None,
        display_name: str = "",
        *,
        enabled: bool = True,
        guest: bool = False,
        aliases: list[str] = (),  # type: ignore[assignment]
        upn: str | None = None,
        immutable_id: str | None = None,
        user_id: str | None = None,
        **extra: Any,
    ) -> str:
        user_id = user_id or str(uuid.uuid4())
        addresses = ([f"SMTP:{mail}"] if mail else []) + [f"smtp:{a}" for a in aliases]
        user = {
            "id": user_id,
            "mail": mail,
            "displayName": display_name or (mail or user_id).split("@")[0],
            "userPrincipalName": upn or mail or f"{user_id}@{self.domain}",
            "accountEnabled": enabled,
            "userType": "Guest" if guest else "Member",
            "proxyAddresses": addresses,
            "onPremisesImmutableId": immutable_id,
            "mobilePhone": None,
            **extra,
        }
        with self.lock:
            self.version += 1
            self.users[user_id] = user
            self._changed[("user", user_id)] = {name: self.version for name in user}
            self._touch("user", user_id)
            self._forget_view(user_id)
            self.mail_version += 1
            self._removed.pop(("user", user_id), None)
        return user_id

    def update_user(self, user_id: str, **changes: Any) -> None:
        self._update("user", self.users[user_id], changes)

    def _update(self, kind: str, obj: dict[str, Any], changes: dict[str, Any]) -> None:
        """Change an object's properties, logging each one that changed for delta rounds."""
        with self.lock:
            self.version += 1
            log = self._changed.setdefault((kind, obj["id"]), {})
            for name, value in changes.items():
                if obj.get(name) != value:
                    obj[name] = value
                    log[name] = self.version
            self._touch(kind, obj["id"])
            if kind == "user":
                self._forget_view(obj["id"])
                if "mail" in changes:
                    self.mail_version += 1

    def delete_user(self, user_id: str) -> None:
        with self.lock:
            self.version += 1
            del self.users[user_id]
            self._kind_version["user"] = self.version
            self._forget_view(user_id)
            self.mail_version += 1
            self._changed.pop(("user", user_id), None)
            self._removed[("user", user_id)] = self.version
            for group_id, ids in self.members.items():
                if user_id in ids:
                    ids.remove(user_id)
                    self._member_log.setdefault(group_id, []).append((self.version, user_id))
                    self._touch("group", group_id)
            self.mailboxes.pop(user_id, None)

    def _touch(self, kind: str, object_id: str) -> None:
        """Logs a change of an object (or its members) at the current version."""
        self._touched.append((self.version, kind, object_id))
        self._kind_version[kind] = self.version

    def _forget_view(self, user_id: str) -> None:
        for cache in self._views.values():
            cache.pop(user_id, None)

    def add_group(
        self,
        display_name: str,
        mail: str | None = None,
        members: list[str] = (),  # type: ignore[assignment]
        *,
        unified: bool = False,
        security: bool = False,
        aliases: list[str] = (),  # type: ignore[assignment]
        group_id: str | None = None,
    ) -> str:
        group_id = group_id or str(uuid.uuid4())
        group = {
            "id": group_id,
            "displayName": display_name,
            "mail": mail,
            "mailEnabled": bool(mail),
            "securityEnabled": security or not mail,
            "groupTypes": ["Unified"] if unified else [],
            "proxyAddresses": ([f"SMTP:{mail}"] if mail else []) + [f"smtp:{a}" for a in aliases],
        }
        with self.lock:
            self.version += 1
            self.groups[group_id] = group
            self.members[group_id] = list(members)
            self._changed[("group", group_id)] = {name: self.version for name in group}
            self._touch("group", group_id)
            for member in members:
                self._member_log.setdefault(group_id, []).append((self.version, member))
        return group_id

    def update_group(self, group_id: str, **changes: Any) -> None:
        self._update("group", self.groups[group_id], changes)

    def set_members(self, group_id: str, members: list[str]) -> None:
        with self.lock:
            self.version += 1
            before = set(self.members[group_id])
            self.members[group_id] = list(members)
            for member in before ^ set(members):
                self._member_log.setdefault(group_id, []).append((self.version, member))
            self._touch("group", group_id)

    def delete_group(self, group_id: str) -> None:
        with self.lock:
            self.version += 1
            del self.groups[group_id]
            self._kind_version["group"] = self.version
            self.members.pop(group_id, None)
            self._changed.pop(("group", group_id), None)
            self._removed[("group", group_id)] = self.version

    def add_mailbox(
        self,
        mail: str,
        display_name: str = "",
        *,
        kind: str = "SharedMailbox",
        aliases: list[str] = (),  # type: ignore[assignment]
        enabled: bool = False,
    ) -> str:
        """A mailbox and the Entra user behind it (blocked, as new shared mailboxes are)."""
        user_id = self.add_user(mail, display_name, enabled=enabled, aliases=aliases)
        self.mailboxes[user_id] = {
            "ExternalDirectoryObjectId": user_id,
            "Identity": display_name or mail,
            "Name": display_name or mail,
            "DisplayName": display_name or mail,
            "PrimarySmtpAddress": mail,
            "UserPrincipalName": mail,
            "EmailAddresses": [f"SMTP:{mail}"]
            + [f"smtp:{a}" for a in aliases]
            + [f"SPO:SPO_{user_id}@SPO_{self.tenant_id}", f"X500:/o=ExchangeLabs/cn={user_id}"],
            "RecipientTypeDetails": kind,
            "AccountDisabled": not enabled,
            "Guid": str(uuid.uuid4()),
        }
        self.permissions[user_id] = [
            {
                "Identity": display_name or mail,
                "User": "NT AUTHORITY\\SELF",
                "AccessRights": ["FullAccess", "ReadPermission"],
                "IsInherited": False,
                "Deny": False,
                "InheritanceType": "All",
            }
        ]
        return user_id

    def grant(
        self, mailbox_id: str, user: str, rights: str = "FullAccess", *, deny: bool = False
    ) -> None:
        """A permission on a mailbox; ``user`` as Exchange names it (a UPN, a SID, ...)."""
        self.permissions[mailbox_id].append(
            {
                "Identity": self.mailboxes[mailbox_id]["Identity"],
                "User": user,
                "AccessRights": [rights],
                "IsInherited": False,
                "Deny": deny,
                "InheritanceType": "All",
            }
        )

    def revoke(self, mailbox_id: str, user: str) -> None:
        self.permissions[mailbox_id] = [
            p for p in self.permissions[mailbox_id] if p["User"] != user
        ]

    def expire_tokens(self) -> None:
        """Every delta token handed out so far is now expired (410 at its next use)."""
        with self.lock:
            self.epoch += 1

    def by_mail(self, low: str | None, high: str | None) -> list[str]:
        """The ids of the users whose mail (ignoring case) is ``ge low`` and ``le high``, by
        mail: an index, as Graph has, so that a list of ranges costs what Graph's would and
        not a scan of every user per range."""
        with self.lock:
            if self._mail_index[0] != self.mail_version:
                order = {user_id: n for n, user_id in enumerate(self.users)}
                keys = sorted(
                    (str(u["mail"]).lower(), order[i])
                    for i, u in self.users.items()
                    if u.get("mail")
                )
                ids = list(self.users)
                self._mail_index = (
                    self.mail_version,
                    [k for k, _ in keys],
                    [ids[n] for _, n in keys],
                )
            _, mails, ids = self._mail_index
            start = 0 if low is None else bisect.bisect_left(mails, low)
            end = len(mails) if high is None else bisect.bisect_right(mails, high)
            return ids[start:end]

    def view(self, select: set[str]) -> Callable[[str], bytes]:
        """A user (by id) as a list shows it with ``select``: its JSON, kept until the user
        changes (a page of 999 is then a join, not an encoding)."""
        names = _shown(select)
        cache = self._views.setdefault(names, {})
        users = self.users

        def shown(user_id: str) -> bytes:
            found = cache.get(user_id)
            if found is None:
                user = users[user_id]
                found = cache[user_id] = _json({k: user.get(k) for k in names})
            return found

        return shown

    def views(self, select: set[str], ids: list[str]) -> list[bytes]:
        """:meth:`view` of each of ``ids``: looked up all at once when every one is kept."""
        try:
            return list(map(self._views.get(_shown(select), {}).__getitem__, ids))
        except KeyError:
            return list(map(self.view(select), ids))

    def count(self, prefix: str) -> int:
        """How many requests whose ``"<METHOD> <path>"`` starts with ``prefix``."""
        return sum(n for key, n in self.requests.items() if key.startswith(prefix))

    # --- delta ------------------------------------------------------------------------------

    def delta_items(
        self, kind: str, select: set[str], since: int | None
    ) -> tuple[list[bytes], int]:
        """The items of a delta round since ``since`` (None: everything) as JSON, and its
        version."""
        with self.lock:
            key = (kind, tuple(sorted(select)), self.members_per_item)
            changed = self._kind_version[kind]
            cached = self._initial.get(key) if since is None else None
            if cached is not None and cached[0] == changed:
                return cached[1], self.version
            items = [_json(item) for item in self._delta_objects(kind, select, since)]
            if since is None:
                self._initial[key] = (changed, items)
            return items, self.version

    def _delta_objects(
        self, kind: str, select: set[str], since: int | None
    ) -> list[dict[str, Any]]:
        """A delta round's objects (called with the lock held)."""
        objects = self.users if kind == "user" else self.groups
        items: list[dict[str, Any]] = []
        if since is None:
            ids: Any = objects
        else:
            tail = self._touched[bisect.bisect_right(self._touched, (since, "~", "~")) :]
            ids = dict.fromkeys(i for _, k, i in tail if k == kind and i in objects)
        for object_id in ids:
            obj = objects[object_id]
            if since is None:
                item = {k: v for k, v in obj.items() if k in select or k == "id"}
            else:
                changed = self._changed.get((kind, object_id), {})
                names = [k for k, v in changed.items() if v > since and (k in select)]
                if not names:
                    item = None
                else:
                    item = {"id": object_id, **{k: obj.get(k) for k in names}}
            if kind == "group" and "members" in select:
                members = self._members_delta(object_id, since)
                if members:
                    item = item or {"id": object_id}
                    chunk = self.members_per_item
                    for start in range(0, len(members), chunk):
                        items.append({**item, "members@delta": members[start : start + chunk]})
                    continue
            if item is not None:
                items.append(item)
        if since is not None:
            for (removed_kind, object_id), at in self._removed.items():
                if removed_kind == kind and at > since:
                    items.append({"id": object_id, "@removed": {"reason": "deleted"}})
        return items

    def _members_delta(self, group_id: str, since: int | None) -> list[dict[str, Any]]:
        current = self.members.get(group_id, [])
        if since is None:
            return [self._member_ref(m) for m in current]
        touched = {m for at, m in self._member_log.get(group_id, ()) if at > since}
        present = set(current)
        return [
            self._member_ref(m)
            if m in present
            else {**self._member_ref(m), "@removed": {"reason": "deleted"}}
            for m in sorted(touched)
        ]

    def _member_ref(self, member_id: str) -> dict[str, Any]:
        kind = "group" if member_id in self.groups else "user"
        return {"@odata.type": f"#microsoft.graph.{kind}", "id": member_id}

    def start_round(self, items: list[Any], lists: bool = False) -> str:
        """A key for a paged answer's items (its next pages carry it). The oldest of more
        than ``KEPT_ROUNDS`` (``KEPT_LISTS`` lists of users) are forgotten: their links
        answer 400, as an expired skip token."""
        kept: dict[str, list[Any]] = self._listed if lists else self._rounds
        key = secrets.token_urlsafe(12)
        kept[key] = items
        while len(kept) > (KEPT_LISTS if lists else KEPT_ROUNDS):
            del kept[next(iter(kept))]
        return key


# --- the ASGI app ---------------------------------------------------------------------------


def create_app(tenant: Tenant) -> Starlette:
    signing_key = secrets.token_bytes(32)

    def graph_error(
        status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        return JSONResponse(
            {
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {
                        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "request-id": str(uuid.uuid4()),
                        "client-request-id": str(uuid.uuid4()),
                    },
                }
            },
            status_code=status,
            headers=headers,
        )

    def entra_error(status: int, error: str, code: int, text: str) -> JSONResponse:
        trace = str(uuid.uuid4())
        return JSONResponse(
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: "
                f"{uuid.uuid4()} Timestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ')}",
                "error_codes": [code],
                "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
                "trace_id": trace,
                "correlation_id": str(uuid.uuid4()),
            },
            status_code=status,
        )

    def known_tenant(name: str) -> bool:
        return name in (tenant.tenant_id, f"{tenant.domain}", "organizations") or name.endswith(
            ".onmicrosoft.com"
        )

    async def openid_configuration(request: Request) -> Response:
        name = request.path_params["tenant"]
        tenant.requests["GET /{tenant}/v2.0/.well-known/openid-configuration"] += 1
        if not known_tenant(name):
            return entra_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{tenant.tenant_id}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/{tenant.tenant_id}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tenant.tenant_id}/oauth2/v2.0/devicecode",
                "issuer": f"https://login.microsoftonline.com/{tenant.tenant_id}/v2.0",
                "jwks_uri": f"{base}/{tenant.tenant_id}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "tenant_region_scope": "EU",
            }
        )

    async def token(request: Request) -> Response:
        tenant.requests["POST /{tenant}/oauth2/v2.0/token"] += 1
        name = request.path_params["tenant"]
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if not known_tenant(name):
            return entra_error(400, "invalid_request", 90002, f"Tenant '{name}' not found.")
        if form.get("grant_type") != "client_credentials":
            return entra_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = str(form.get("client_id", ""))
        app = tenant.apps.get(client_id)
        if app is None:
            return entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.domain}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        scope = str(form.get("scope", "")).split()
        resource = scope[0].removesuffix("/.default") if len(scope) == 1 else ""
        if resource not in RESOURCES or not scope[0].endswith("/.default"):
            return entra_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(scope)} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the resource identifier.",
            )
        endpoint = f"{str(request.base_url).rstrip('/')}{request.url.path}"
        if "client_secret" in form:
            expires = app.secrets.get(str(form["client_secret"]))
            if expires is None:
                return entra_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{client_id}'.",
                )
            if expires < time.time():
                return entra_error(
                    401,
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{client_id}' are expired. Visit the "
                    "Azure portal to create new keys for your app.",
                )
        elif "client_assertion" in form:
            problem = _verify_assertion(str(form["client_assertion"]), app, endpoint)
            if problem:
                return entra_error(401, "invalid_client", 700027, problem)
        else:
            return entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
            "tid": tenant.tenant_id,
            "appid": client_id,
            "roles": sorted(app.roles),
            "iat": now,
            "nbf": now,
            "exp": now + tenant.token_lifetime,
        }
        access = jwt.encode(claims, signing_key, algorithm="HS256")
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": tenant.token_lifetime,
                "ext_expires_in": tenant.token_lifetime,
                "access_token": access,
            }
        )

    checked: dict[tuple[str, str], dict[str, Any]] = {}
    """(token, resource) → its claims, once its signature and audience were checked (a
    token's lifetime is checked at every use)."""

    def bearer(request: Request, resource: str) -> dict[str, Any] | JSONResponse:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        known = checked.get((header[7:], resource))
        if known is not None and known["exp"] > time.time():
            return known
        try:
            claims = jwt.decode(header[7:], signing_key, algorithms=["HS256"], audience=resource)
        except jwt.ExpiredSignatureError:
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        except jwt.InvalidAudienceError:
            return graph_error(401, "InvalidAuthenticationToken", "Invalid audience.")
        except jwt.PyJWTError:
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )
        if claims.get("tid") != tenant.tenant_id:
            return graph_error(
                401, "InvalidAuthenticationToken", "The token is for another tenant."
            )
        if len(checked) > 1000:
            checked.clear()
        checked[(header[7:], resource)] = claims
        return claims

    async def admitted(request: Request, service: str, key: str) -> Response | None:
        """Counts the request and answers a concurrency overflow or a queued throttle. A
        request is on its way from its arrival to its answer (the added latency included;
        what follows it here never waits)."""
        tenant.requests[key] += 1
        tenant._active[service] += 1
        try:
            if tenant._active[service] > tenant.max_concurrent:
                tenant.overflows[service] += 1
                return graph_error(
                    429,
                    "TooManyRequests",
                    "Too many requests are in progress for this application.",
                    {"Retry-After": "1"},
                )
            if tenant.latency:
                await asyncio.sleep(tenant.latency)
            if tenant.throttle:
                status, retry_after = tenant.throttle.popleft()
                code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
                return graph_error(
                    status,
                    code,
                    "Too many requests"
                    if status == 429
                    else "The service is temporarily unavailable.",
                    {"Retry-After": str(retry_after)},
                )
            return None
        finally:
            tenant._active[service] -= 1

    def page_of(
        request: Request,
        items: list[dict[str, Any]],
        offset: int,
        size: int,
        link: Callable[[int], str],
        extra: dict[str, Any],
        done: dict[str, Any],
    ) -> JSONResponse:
        page_number = offset // max(size, 1) + 1
        if tenant.fail_page is not None and page_number == tenant.fail_page:
            return graph_error(500, "UnknownError", "An internal server error occurred.")
        chunk = items[offset : offset + size]
        body: dict[str, Any] = {**extra, "value": chunk}
        if offset + size < len(items):
            body["@odata.nextLink"] = link(offset + size)
        else:
            body.update(done)
        return JSONResponse(body)

    def continued(
        params: Any, kept: dict[str, list[Any]]
    ) -> tuple[dict[str, Any], list[Any] | None]:
        """A next page's state (from its skip token) and its answer's items (None when the
        answer is forgotten, or the token is not one)."""
        state = _decode(params["$skiptoken"])
        return state, kept.get(state.get("r", ""))

    def joined_page(
        items: list[bytes],
        state: dict[str, Any],
        link: Callable[[int], str],
        context: str,
        done: dict[str, Any],
    ) -> Response:
        """The page of ``items`` (each one's JSON) at ``state``'s offset and size: joined, not
        encoded again. It ends in its nextLink, or ``done`` on the last page."""
        offset, size = state["o"], state["n"]
        if tenant.fail_page is not None and offset // max(size, 1) + 1 == tenant.fail_page:
            return graph_error(500, "UnknownError", "An internal server error occurred.")
        more = {"@odata.nextLink": link(offset + size)} if offset + size < len(items) else done
        head = _json({"@odata.context": f"{GRAPH}/v1.0/$metadata#{context}"})[:-1]
        tail = b"".join(b',"' + k.encode() + b'":' + _json(v) for k, v in more.items())
        value = b",".join(items[offset : offset + size])
        body = b"".join((head, b',"value":[', value, b"]", tail, b"}"))
        return Response(body, media_type="application/json")

    def page_size(request: Request, limit: int = MAX_PAGE, default: int = DEFAULT_PAGE) -> int:
        prefer = request.headers.get("prefer", "")
        found = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        top = request.query_params.get("$top")
        size = int(found.group(1)) if found else int(top) if top and top.isdigit() else default
        return max(1, min(size, limit))

    def selected(request: Request, allowed: frozenset[str]) -> set[str] | JSONResponse:
        select = {
            s.strip() for s in request.query_params.get("$select", "").split(",") if s.strip()
        }
        unknown = select - allowed - {"members"}
        if unknown:
            return graph_error(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{sorted(unknown)[0]}' on type 'microsoft.graph.{'user' if 'userType' in allowed else 'group'}'.",
            )
        return select or {"id", "displayName", "mail", "userPrincipalName"} & set(allowed)

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def refused_graph(request: Request, key: str, roles: set[str]) -> Response | None:
        """Why a Graph request is not answered (throttled, a bad token, a missing
        permission), or None."""
        refused = await admitted(request, "graph", key)
        if refused:
            return refused
        claims = bearer(request, GRAPH)
        if isinstance(claims, JSONResponse):
            return claims
        if not roles & set(claims["roles"]):
            return graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        return None

    async def delta(request: Request) -> Response:
        kind = "user" if request.url.path.endswith("/users/delta") else "group"
        need = USERS_ROLES if kind == "user" else GROUPS_ROLES
        refused = await refused_graph(request, f"GET /v1.0/{kind}s/delta", need)
        if refused:
            return refused
        if "$filter" in request.query_params:
            return graph_error(
                400,
                "Request_UnsupportedQuery",
                "Unsupported query: only filter by id is supported on delta.",
            )
        params = request.query_params
        path = f"{base(request)}/v1.0/{kind}s/delta"
        if "$skiptoken" in params:
            state, known = continued(params, tenant._rounds)
            if known is None:
                return graph_error(400, "Request_BadRequest", "The skip token is invalid.")
            return joined_page(
                known,
                state,
                _link(path, state),
                f"{kind}s(delta)",
                {
                    "@odata.deltaLink": f"{path}?$deltatoken="
                    + _encode({"v": state["v"], "s": state["s"], "e": state["e"]})
                },
            )
        if params.get("$deltatoken") == "latest" and not tenant.latest_tokens:
            return graph_error(400, "Request_BadRequest", "Invalid delta token: latest.")
        if params.get("$deltatoken") == "latest":
            with tenant.lock:
                version = tenant.version
            select = selected(request, USER_PROPERTIES if kind == "user" else GROUP_PROPERTIES)
            if isinstance(select, JSONResponse):
                return select
            return JSONResponse(
                {
                    "@odata.context": f"{GRAPH}/v1.0/$metadata#{kind}s(delta)",
                    "value": [],
                    "@odata.deltaLink": f"{path}?$deltatoken="
                    + _encode({"v": version, "s": sorted(select), "e": tenant.epoch}),
                }
            )
        if "$deltatoken" in params:
            state = _decode(params["$deltatoken"])
            if state.get("e") != tenant.epoch:
                return graph_error(
                    410,
                    "syncStateNotFound",
                    "The sync state generated by a previous call is invalid or has expired; "
                    "start over with a new delta query.",
                )
            since: int | None = state["v"]
            select = set(state["s"])
        else:
            since = None
            chosen = selected(request, USER_PROPERTIES if kind == "user" else GROUP_PROPERTIES)
            if isinstance(chosen, JSONResponse):
                return chosen
            select = chosen
        # a whole round is built in a thread: the loop answers the other requests meanwhile,
        # as Graph's servers would
        items, version = await asyncio.to_thread(tenant.delta_items, kind, select, since)
        state = {
            "r": tenant.start_round(items),
            "o": 0,
            "n": page_size(request),
            "v": version,
            "s": sorted(select),
            "e": tenant.epoch,
        }
        return joined_page(
            items,
            state,
            _link(path, state),
            f"{kind}s(delta)",
            {
                "@odata.deltaLink": f"{path}?$deltatoken="
                + _encode({"v": version, "s": sorted(select), "e": tenant.epoch})
            },
        )

    async def users(request: Request) -> Response:
        refused = await refused_graph(request, "GET /v1.0/users", USERS_ROLES)
        if refused:
            return refused
        params = request.query_params
        path = f"{base(request)}/v1.0/users"
        if "$skiptoken" in params:
            state, listed = continued(params, tenant._listed)
            if listed is None:
                return graph_error(400, "Request_BadRequest", "The skip token is invalid.")
            items = listed
        else:
            select = selected(request, USER_PROPERTIES)
            if isinstance(select, JSONResponse):
                return select
            matches = _user_filter(
                params.get("$filter"),
                request.headers.get("consistencylevel", "").lower() == "eventual"
                and params.get("$count") == "true",
                tenant.range_filters,
            )
            if isinstance(matches, str):
                return graph_error(400, "Request_UnsupportedQuery", matches)
            if tenant.on_list is not None:
                tenant.on_list(params.get("$filter"))
            span = _mail_span(params.get("$filter"))
            with tenant.lock:
                if span is None:
                    ids = [i for i, u in tenant.users.items() if matches(u)]
                else:  # the index holds the range: no clause is left to test
                    lost = tenant.lost_by_ranges
                    ids = tenant.by_mail(*span)
                    if not tenant.ranges_by_address:
                        made = {user_id: n for n, user_id in enumerate(tenant.users)}
                        ids = sorted(ids, key=made.__getitem__)
                    ids = [i for i in ids if i not in lost] if lost else ids
                items = tenant.views(select, ids)
            key = tenant.start_round(items, lists=True)
            state = {"r": key, "o": 0, "n": page_size(request)}
        return joined_page(items, state, _link(path, state), "users", {})

    async def organization(request: Request) -> Response:
        refused = await admitted(request, "graph", "GET /v1.0/organization")
        if refused:
            return refused
        claims = bearer(request, GRAPH)
        if isinstance(claims, JSONResponse):
            return claims
        return JSONResponse(
            {
                "value": [
                    {
                        "id": tenant.tenant_id,
                        "displayName": tenant.domain,
                        "verifiedDomains": [{"name": tenant.domain, "isDefault": True}],
                    }
                ]
            }
        )

    # --- Exchange ---------------------------------------------------------------------------

    def exchange_claims(request: Request) -> dict[str, Any] | JSONResponse:
        claims = bearer(request, EXCHANGE)
        if isinstance(claims, JSONResponse):
            return claims
        if request.path_params["tenant"] not in (tenant.tenant_id, tenant.domain):
            return graph_error(401, "Unauthorized", "The tenant in the URL is not the token's.")
        if MANAGE_AS_APP not in claims["roles"]:
            return graph_error(
                401,
                "Unauthorized",
                "The application does not have the Exchange.ManageAsApp permission (consent).",
            )
        app = tenant.apps.get(claims["appid"])
        if app is None or not app.exchange_role:
            return graph_error(
                403,
                "Forbidden",
                "The role assigned to the application isn't supported in this scenario: no "
                "Exchange role (e.g. Exchange Recipient Administrator) is assigned to the app.",
            )
        return claims

    def mailbox_by(identity: str) -> dict[str, Any] | None:
        wanted = identity.lower()
        for mailbox in tenant.mailboxes.values():
            if wanted in (
                mailbox["ExternalDirectoryObjectId"].lower(),
                mailbox["PrimarySmtpAddress"].lower(),
                mailbox["Identity"].lower(),
                mailbox["Guid"].lower(),
                mailbox["UserPrincipalName"].lower(),
            ):
                return mailbox
        return None

    def exchange_error(status: int, text: str) -> JSONResponse:
        return JSONResponse(
            {
                "error": {
                    "code": "BadRequest",
                    "message": text,
                    "details": [{"code": "Error", "message": text}],
                }
            },
            status_code=status,
        )

    def cmdlet_result(name: str, parameters: dict[str, Any]) -> list[dict[str, Any]] | JSONResponse:
        if name == "Get-Mailbox":
            identity = parameters.get("Identity")
            if identity:
                found = mailbox_by(str(identity))
                if found is None:
                    return exchange_error(
                        400,
                        f"|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object '{identity}' couldn't be found.",
                    )
                return [found]
            kinds = parameters.get("RecipientTypeDetails")
            wanted = {kinds} if isinstance(kinds, str) else set(kinds or [])
            wanted = {k.strip() for item in wanted for k in item.split(",")}
            with tenant.lock:
                return [
                    m
                    for m in tenant.mailboxes.values()
                    if not wanted or m["RecipientTypeDetails"] in wanted
                ]
        if name == "Get-MailboxPermission":
            identity = str(parameters.get("Identity", ""))
            found = mailbox_by(identity)
            if found is None:
                return exchange_error(
                    400,
                    f"|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object '{identity}' couldn't be found.",
                )
            return list(tenant.permissions.get(found["ExternalDirectoryObjectId"], []))
        return exchange_error(
            400, f"The term '{name}' is not recognized as a cmdlet available to this application."
        )

    async def invoke_command(request: Request) -> Response:
        refused = await admitted(request, "exchange", "POST /adminapi/beta/{tenant}/InvokeCommand")
        if refused:
            return refused
        claims = exchange_claims(request)
        if isinstance(claims, JSONResponse):
            return claims
        try:
            body = json.loads(await request.body())
            cmdlet = body["CmdletInput"]
            name, parameters = cmdlet["CmdletName"], cmdlet.get("Parameters", {})
        except (ValueError, KeyError, TypeError):
            return exchange_error(400, "The request body is not a CmdletInput.")
        path = f"{base(request)}{request.url.path}"
        if "$skiptoken" in request.query_params:
            state, known = continued(request.query_params, tenant._rounds)
            if known is None:
                return exchange_error(400, "The page link is no longer valid.")
            items = known
        else:
            result = cmdlet_result(name, parameters)
            if isinstance(result, JSONResponse):
                return result
            items = result
            state = {"r": tenant.start_round(items), "o": 0, "n": page_size(request, 1000)}
        return page_of(
            request,
            items,
            state["o"],
            state["n"],
            _link(path, state),
            {
                "@odata.context": f"{EXCHANGE}/adminapi/beta/{tenant.tenant_id}/$metadata#Collection(Exchange.GenericHashTable)"
            },
            {},
        )

    async def mailbox_list(request: Request) -> Response:
        refused = await admitted(request, "exchange", "GET /adminapi/beta/{tenant}/Mailbox")
        if refused:
            return refused
        claims = exchange_claims(request)
        if isinstance(claims, JSONResponse):
            return claims
        with tenant.lock:
            items = list(tenant.mailboxes.values())
        return JSONResponse({"value": items})

    async def mailbox_permission(request: Request) -> Response:
        refused = await admitted(
            request, "exchange", "GET /adminapi/beta/{tenant}/Mailbox/MailboxPermission"
        )
        if refused:
            return refused
        claims = exchange_claims(request)
        if isinstance(claims, JSONResponse):
            return claims
        identity = request.path_params["identity"]
        if request.query_params.get("isEncoded") == "true":
            identity = base64.b64decode(unquote(identity)).decode("utf-8")
        result = cmdlet_result("Get-MailboxPermission", {"Identity": identity})
        if isinstance(result, JSONResponse):
            return result
        return JSONResponse({"value": result})

    return Starlette(
        routes=[
            Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
            Route("/v1.0/users/delta", delta),
            Route("/v1.0/groups/delta", delta),
            Route("/v1.0/users", users),
            Route("/v1.0/organization", organization),
            Route("/adminapi/beta/{tenant}/InvokeCommand", invoke_command, methods=["POST"]),
            Route("/adminapi/beta/{tenant}/Mailbox", mailbox_list),
            Route(
                "/adminapi/beta/{tenant}/Mailbox('{identity}')/MailboxPermission",
                mailbox_permission,
            ),
        ]
    )


def _b64url(value: Any) -> str | None:
    """A thumbprint as base64url without padding (MSAL sends standard base64 with it)."""
    if not isinstance(value, str):
        return None
    return value.rstrip("=").replace("+", "-").replace("/", "_")


def _link(path: str, state: dict[str, Any]) -> Callable[[int], str]:
    """The nextLink of a paged read for the page starting at an offset."""
    return lambda offset: f"{path}?$skiptoken=" + _encode({**state, "o": offset})


def _shown(select: set[str]) -> tuple[str, ...]:
    """The properties a list of users shows for ``$select`` (``id`` always), in order."""
    return tuple(sorted(k for k in USER_PROPERTIES if k in select or k == "id"))


def _json(value: Any) -> bytes:
    """JSON as Graph's answers carry it (and as Starlette's JSONResponse writes it)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _encode(state: dict[str, Any]) -> str:
    return quote(
        base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()
    )


def _decode(token: str) -> dict[str, Any]:
    try:
        return dict(json.loads(base64.urlsafe_b64decode(unquote(token).encode())))
    except (ValueError, TypeError):
        return {}


def _verify_assertion(assertion: str, app: AppRegistration, endpoint: str) -> str | None:
    """Why a client assertion is refused (None: it is good)."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return "The client assertion is not a JWT."
    for pem in app.certificates:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        sha1 = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA1())).decode().rstrip("=")
        sha256 = (
            base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).decode().rstrip("=")
        )
        sent1, sent256 = _b64url(header.get("x5t")), _b64url(header.get("x5t#S256"))
        if sent1 not in (None, sha1) or sent256 not in (None, sha256):
            continue
        if not (header.get("x5t") or header.get("x5t#S256")):
            continue
        try:
            jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                # served over plain http (tests), MSAL (https only) names the https form
                audience=[endpoint, endpoint.replace("http://", "https://", 1)],
                issuer=app.client_id,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            return "The client assertion has expired."
        except jwt.InvalidAudienceError:
            return f"The client assertion's audience is not the token endpoint {endpoint}."
        except jwt.PyJWTError as error:
            return f"Client assertion contains an invalid signature. [Reason - {error}]"
        return None
    thumbprint = header.get("x5t#S256") or header.get("x5t") or "(none)"
    return (
        f"The certificate with identifier used to sign the client assertion is not registered on "
        f"application. [Reason - The key was not found., Thumbprint of key used by client: "
        f"'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph "
        f"to see configured keys for app Id '{app.client_id}'.]"
    )


_STRING = r"'(?:[^']|'')*'"
_CLAUSE = re.compile(
    rf"^\s*(?:(?P<fn>startswith|endswith)\((?P<fprop>\w+),\s*(?P<fval>{_STRING})\)"
    rf"|(?P<prop>\w+)\s+(?P<op>eq|ne|ge|le)\s+(?:(?P<sval>{_STRING})|(?P<bval>true|false|null))"
    rf"|(?P<iprop>\w+)\s+in\s+\((?P<ivals>\s*{_STRING}(?:\s*,\s*{_STRING})*)\s*\))\s*$",
    re.I,
)
_AND = re.compile(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", re.I)
"""``and`` outside string literals."""
RANGE_DEFAULT = {
    "mail": "gl",
    "givenName": "gl",
    "surname": "gl",
    "department": "gl",
    "jobTitle": "gl",
    "userPrincipalName": "l",
}
"""Properties whose ``ge``/``le`` work without advanced query parameters (Graph's table of
filters on directory objects: ``userPrincipalName`` takes ``le`` only); the others answer 400."""


_SPAN = re.compile(rf"^mail\s+(ge|le)\s+({_STRING})$", re.I)


def _mail_span(text: str | None) -> tuple[str | None, str | None] | None:
    """``(low, high)`` when ``text`` is only ``mail ge``/``mail le`` clauses (the index
    answers it), else None."""
    if not text:
        return None
    low = high = None
    for clause in _AND.split(text.strip()):
        found = _SPAN.match(clause.strip())
        if not found:
            return None
        value = _literal(found[2]).lower()
        if found[1].lower() == "ge":
            low = value if low is None else max(low, value)
        else:
            high = value if high is None else min(high, value)
    return low, high


def _literal(text: str) -> str:
    return text[1:-1].replace("''", "'")


def _user_filter(text: str | None, advanced: bool, ranges: bool = True) -> Any:
    """A predicate for ``$filter`` on users, or the error text Graph gives."""
    if not text:
        return lambda user: True
    tests: list[Any] = []
    for clause in _AND.split(text.strip()):
        found = _CLAUSE.match(clause)
        if not found:
            return f"Invalid filter clause: {clause!r}"
        fn, op = (found["fn"] or "").lower(), (found["op"] or "").lower()
        if (fn == "endswith" or op == "ne") and not advanced:
            return (
                "Unsupported or invalid query filter clause specified for property of resource "
                "'User'. Advanced queries (ne, not, endsWith) need the header ConsistencyLevel: "
                "eventual and $count=true."
            )
        if op in ("ge", "le") and (not ranges or op[0] not in RANGE_DEFAULT.get(found["prop"], "")):
            return (
                f"Unsupported or invalid query filter clause specified for property "
                f"'{found['prop']}' of resource 'User'."
            )
        if fn:
            prop, value = found["fprop"], _literal(found["fval"]).lower()
            tests.append(
                lambda u, p=prop, v=value, f=fn: (
                    isinstance(u.get(p), str)
                    and (
                        u[p].lower().startswith(v)
                        if f == "startswith"
                        else u[p].lower().endswith(v)
                    )
                )
            )
        elif found["iprop"]:
            prop = found["iprop"]
            values = {_literal(v).lower() for v in re.findall(_STRING, found["ivals"])}
            tests.append(lambda u, p=prop, v=values: str(u.get(p)).lower() in v)
        elif op == "ge":
            prop, bound = found["prop"], _literal(found["sval"] or "''").lower()
            tests.append(lambda u, p=prop, b=bound: (v := u.get(p)) is not None and v.lower() >= b)
        elif op == "le":
            prop, bound = found["prop"], _literal(found["sval"] or "''").lower()
            tests.append(lambda u, p=prop, b=bound: (v := u.get(p)) is not None and v.lower() <= b)
        else:
            prop = found["prop"]
            raw = found["bval"]
            expected = (
                {"true": True, "false": False, "null": None}[raw.lower()]
                if raw
                else _literal(found["sval"])
            )
            tests.append(
                lambda u, p=prop, v=expected, o=op: (
                    (
                        (str(u.get(p)).lower() == str(v).lower())
                        if isinstance(v, str)
                        else u.get(p) == v
                    )
                    == (o == "eq")
                )
            )
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:  # a range of addresses: 100,000 users a request
        first, second = tests
        return lambda user: first(user) and second(user)
    return lambda user: all(test(user) for test in tests)


def seed_tenant(
    tenant: Tenant,
    users: int,
    groups: int = 0,
    shared: int = 0,
    *,
    members_per_group: int = 20,
) -> list[str]:
    """A tenant of ``users`` mailbox users, ``groups`` mail-enabled groups of
    ``members_per_group`` members and ``shared`` shared mailboxes with two delegates each
    (for the bench and the demo). Returns the user ids."""
    ids = [
        tenant.add_user(
            f"user{n:06d}@{tenant.domain}",
            f"User {n:06d}",
            immutable_id=base64.b64encode(uuid.uuid5(uuid.NAMESPACE_OID, str(n)).bytes_le).decode(),
        )
        for n in range(users)
    ]
    cycle = itertools.cycle(ids) if ids else None
    for n in range(groups):
        members = [next(cycle) for _ in range(members_per_group)] if cycle else []
        tenant.add_group(f"Group {n:05d}", f"group{n:05d}@{tenant.domain}", members)
    for n in range(shared):
        mailbox = tenant.add_mailbox(f"shared{n:05d}@{tenant.domain}", f"Shared {n:05d}")
        for user_id in ids[2 * n : 2 * n + 2]:
            tenant.grant(mailbox, tenant.users[user_id]["userPrincipalName"])
    return ids
