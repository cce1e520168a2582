"""The tenant behind the Microsoft 365 emulator: Entra's users, groups and app registrations,
Exchange's mailboxes and permissions, and the change log that delta rounds read.

Change it through the methods (they keep the log); read it freely. The knobs that make it a
harder witness live here too: ``latency`` seconds added to every Graph and Exchange request;
``throttle`` a queue of ``(status, retry_after)`` answered to the next requests (429/503 with
``Retry-After``); ``max_concurrent`` requests at once per app and service (4), beyond which
it answers 429 with ``Retry-After: 1``; ``fail_page`` answers 500 to the nth page of a paged
read; ``requests`` counts what was asked, ``overflows`` what was refused for concurrency;
``on_list`` runs as a list of users starts; ``range_filters`` and ``latest_tokens`` off stand
for a Graph that refuses ``ge``/``le`` or ``$deltatoken=latest``; ``lost_by_ranges`` for one
whose address ranges lose users, ``ranges_by_address`` off for one that lists a range in no
address order.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import delta

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
        self.changed_at: dict[tuple[str, str], dict[str, int]] = {}
        """(kind, id) → property → the version it last changed at."""
        self.removed_at: dict[tuple[str, str], int] = {}
        """(kind, id) → the version it was deleted at."""
        self.member_log: dict[str, list[tuple[int, str]]] = {}
        """Group id → (version, member id) of every change of its membership."""
        self.rounds: dict[str, list[Any]] = {}
        """A paged answer's key → its items (a delta round's as JSON), for its next pages."""
        self.active: Counter[str] = Counter()
        """Service ("graph", "exchange") → requests on their way now."""
        self._mail_index: tuple[int, list[str], list[str]] = (-1, [], [])
        self.mail_version = 0
        """Moves when a user is added or deleted or changes mail (the index is rebuilt)."""
        self._views: dict[tuple[str, ...], dict[str, bytes]] = {}
        """Selected properties → user id → the user's JSON (:meth:`view`)."""
        self.listed: dict[str, list[bytes]] = {}
        """A list's key → its users' JSON, for its next pages."""
        self.touched: list[tuple[int, str, str]] = []
        """(version, kind, id) of every change of an object or its members, oldest first: a
        delta round since a version reads only the tail."""
        self.kind_version: Counter[str] = Counter()
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
            self.changed_at[("user", user_id)] = {name: self.version for name in user}
            self._touch("user", user_id)
            self._forget_view(user_id)
            self.mail_version += 1
            self.removed_at.pop(("user", user_id), None)
        return user_id

    def update_user(self, user_id: str, **changes: Any) -> None:
        self._update("user", self.users[user_id], changes)

    def _update(self, kind: str, obj: dict[str, Any], changes: dict[str, Any]) -> None:
        """Change an object's properties, logging each one that changed for delta rounds."""
        with self.lock:
            self.version += 1
            log = self.changed_at.setdefault((kind, obj["id"]), {})
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
            self.kind_version["user"] = self.version
            self._forget_view(user_id)
            self.mail_version += 1
            self.changed_at.pop(("user", user_id), None)
            self.removed_at[("user", user_id)] = self.version
            for group_id, ids in self.members.items():
                if user_id in ids:
                    ids.remove(user_id)
                    self.member_log.setdefault(group_id, []).append((self.version, user_id))
                    self._touch("group", group_id)
            self.mailboxes.pop(user_id, None)

    def _touch(self, kind: str, object_id: str) -> None:
        """Logs a change of an object (or its members) at the current version."""
        self.touched.append((self.version, kind, object_id))
        self.kind_version[kind] = self.version

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
            self.changed_at[("group", group_id)] = {name: self.version for name in group}
            self._touch("group", group_id)
            for member in members:
                self.member_log.setdefault(group_id, []).append((self.version, member))
        return group_id

    def update_group(self, group_id: str, **changes: Any) -> None:
        self._update("group", self.groups[group_id], changes)

    def set_members(self, group_id: str, members: list[str]) -> None:
        with self.lock:
            self.version += 1
            before = set(self.members[group_id])
            self.members[group_id] = list(members)
            for member in before ^ set(members):
                self.member_log.setdefault(group_id, []).append((self.version, member))
            self._touch("group", group_id)

    def delete_group(self, group_id: str) -> None:
        with self.lock:
            self.version += 1
            del self.groups[group_id]
            self.kind_version["group"] = self.version
            self.members.pop(group_id, None)
            self.changed_at.pop(("group", group_id), None)
            self.removed_at[("group", group_id)] = self.version

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
                found = cache[user_id] = to_json({k: user.get(k) for k in names})
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

    # --- paged answers ----------------------------------------------------------------------

    def delta_items(
        self, kind: str, select: set[str], since: int | None
    ) -> tuple[list[bytes], int]:
        """The items of a delta round since ``since`` (None: everything) as JSON, and its
        version."""
        with self.lock:
            key = (kind, tuple(sorted(select)), self.members_per_item)
            changed = self.kind_version[kind]
            cached = self._initial.get(key) if since is None else None
            if cached is not None and cached[0] == changed:
                return cached[1], self.version
            items = [to_json(item) for item in delta.round_objects(self, kind, select, since)]
            if since is None:
                self._initial[key] = (changed, items)
            return items, self.version

    def start_round(self, items: list[Any], lists: bool = False) -> str:
        """A key for a paged answer's items (its next pages carry it). The oldest of more
        than ``KEPT_ROUNDS`` (``KEPT_LISTS`` lists of users) are forgotten: their links
        answer 400, as an expired skip token."""
        kept: dict[str, list[Any]] = self.listed if lists else self.rounds
        key = secrets.token_urlsafe(12)
        kept[key] = items
        while len(kept) > (KEPT_LISTS if lists else KEPT_ROUNDS):
            del kept[next(iter(kept))]
        return key


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


def _shown(select: set[str]) -> tuple[str, ...]:
    """The properties a list of users shows for ``$select`` (``id`` always), in order."""
    return tuple(sorted(k for k in USER_PROPERTIES if k in select or k == "id"))


def to_json(value: Any) -> bytes:
    """JSON as Graph's answers carry it (and as Starlette's JSONResponse writes it)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
