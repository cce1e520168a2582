"""The state of an emulated Zivver organization: its users and functional accounts (SCIM
resources as Zivver answers them), its claimed domains and divisions, its API budget and the
faults a test injects. Tests and the demo read and seed it directly; :mod:`.app` serves it.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ZIVVER_USER = "urn:ietf:params:scim:schemas:zivver:0.1:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ZIVVER_GROUP = "urn:ietf:params:scim:schemas:zivver:0.1:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"

USER_ATTRIBUTES = frozenset(
    {
        "schemas",
        "id",
        "meta",
        "userName",
        "name",
        "displayName",
        "nickName",
        "active",
        "phoneNumbers",
        ENTERPRISE_USER,
        ZIVVER_USER,
    }
)
GROUP_ATTRIBUTES = frozenset(
    {"schemas", "id", "meta", "externalId", "displayName", "members", ENTERPRISE_USER, ZIVVER_GROUP}
)
ZIVVER_USER_KEYS = frozenset({"SsoAccountKey", "aliases", "delegates", "ExternalAccountId"})
ZIVVER_GROUP_KEYS = frozenset({"aliases", "ExternalAccountId"})
READ_ONLY = frozenset({"schemas", "id", "meta"})


@dataclass
class Fault:
    """One injected fault for the next request with ``method`` (any method when empty).

    ``kind``: an HTTP status code as text ("503") answered instead of handling the request;
    "slow-after" handles the request, then waits ``seconds`` before answering (the client
    times out after Zivver did the work); "drop-after" handles it, then cuts the answer off
    mid-body.
    """

    kind: str
    method: str = ""
    seconds: float = 0.0


@dataclass
class Organization:
    """The emulated Zivver organization (thread-safe enough for one server)."""

    api_key: str
    domains: list[str] = field(default_factory=list)
    """Claimed domains; empty = every domain is claimed."""
    divisions: set[str] = field(default_factory=lambda: {"/"})
    guests: set[str] = field(default_factory=set)
    rate_limit: int | None = 50
    rate_window: float = 10.0
    retry_after: bool = False
    """Send ``Retry-After`` with a 429 (no capture of the real service shows one)."""
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    sso_keys: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every request, for tests and benchmarks."""
    faults: list[Fault] = field(default_factory=list)
    """Faults to inject, in order, into the requests they match (for fault-injection tests)."""
    latency: float = 0.0
    """Seconds every request waits before it is handled (a slow Zivver)."""
    new_id: Callable[[], str] = field(default_factory=lambda: random_id)
    """Makes resource ids (tests and the demo's screenshots use a counter)."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    _arrivals: deque[float] = field(default_factory=deque)

    # --- helpers used by tests and the demo ---------------------------------------------------

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if u["userName"] == email.lower()), None)

    def group_by_email(self, email: str) -> dict[str, Any] | None:
        return next((g for g in self.groups.values() if g["externalId"] == email.lower()), None)

    def add_user(
        self,
        email: str,
        name: str = "",
        active: bool = True,
        aliases: list[str] | None = None,
        *,
        sso_key: str | None = None,
        division: str = "/",
        nick_name: str | None = None,
        phone_numbers: list[str] | None = None,
        external_account_id: str | None = None,
        enterprise: dict[str, Any] | None = None,
    ) -> str:
        """Seed a user as another tool (or an admin) left it; nothing is validated."""
        with self.lock:
            user_id = self.new_id()
            user = new_user(user_id, email, name or email, active, aliases or [], [], division)
            if nick_name is not None:
                user["nickName"] = nick_name
            if phone_numbers is not None:
                user["phoneNumbers"] = [{"value": number} for number in phone_numbers]
            if external_account_id is not None:
                user[ZIVVER_USER]["ExternalAccountId"] = external_account_id
            if enterprise is not None:
                user[ENTERPRISE_USER] = dict(enterprise)
            self.users[user_id] = user
            if sso_key:
                self.sso_keys[user_id] = sso_key
            return user_id

    def add_group(
        self,
        email: str,
        name: str = "",
        member_ids: list[str] | None = None,
        *,
        aliases: list[str] | None = None,
        division: str = "/",
        external_account_id: str | None = None,
    ) -> str:
        """Seed a functional account; members may be users, groups or ids of no account."""
        with self.lock:
            group_id = self.new_id()
            group = new_group(group_id, email, name or email, member_ids or [], aliases or [])
            group[ENTERPRISE_USER]["division"] = division
            if external_account_id is not None:
                group[ZIVVER_GROUP]["ExternalAccountId"] = external_account_id
            self.groups[group_id] = group
            return group_id

    def delegates_of(self, email: str) -> set[str]:
        group = self.group_by_email(email)
        if group is None:
            return set()
        return {
            self.users[m["value"]]["userName"] for m in group["members"] if m["value"] in self.users
        }

    def snapshot(self) -> dict[str, Any]:
        """Every resource and key as it is now (a deep copy), to compare before and after."""
        with self.lock:
            return copy.deepcopy(
                {"users": self.users, "groups": self.groups, "sso_keys": self.sso_keys}
            )

    # --- rules ----------------------------------------------------------------------------------

    def admit(self) -> float | None:
        """Count a request against the budget: None when admitted, else the seconds until
        the window frees a place."""
        if not self.rate_limit:
            return None
        now = time.monotonic()
        with self.lock:
            while self._arrivals and now - self._arrivals[0] >= self.rate_window:
                self._arrivals.popleft()
            if len(self._arrivals) >= self.rate_limit:
                return self._arrivals[0] + self.rate_window - now
            self._arrivals.append(now)
            return None

    def next_fault(self, method: str) -> Fault | None:
        with self.lock:
            for index, fault in enumerate(self.faults):
                if not fault.method or fault.method == method:
                    return self.faults.pop(index)
        return None

    def claimed(self, address: str) -> bool:
        return not self.domains or address.rpartition("@")[2] in self.domains

    def address_owner(self, address: str) -> str | None:
        for resource_id, user in self.users.items():
            if user["userName"] == address or address in user[ZIVVER_USER].get("aliases", []):
                return resource_id
        for resource_id, group in self.groups.items():
            if group["externalId"] == address or address in group[ZIVVER_GROUP].get("aliases", []):
                return resource_id
        return None


def random_id() -> str:
    return str(uuid.uuid4())


def new_user(
    user_id: str,
    email: str,
    name: str,
    active: bool,
    aliases: list[str],
    delegates: list[str],
    division: str,
) -> dict[str, Any]:
    """A user as Zivver returns it (the CS capture's shape)."""
    return {
        "schemas": [CORE_USER, ENTERPRISE_USER, ZIVVER_USER],
        "id": user_id,
        "userName": email.lower(),
        "name": {"formatted": name},
        "active": active,
        "phoneNumbers": [],
        "meta": {
            "created": time.strftime("%Y-%m-%d"),
            "location": f"/scim/v2/Users/{user_id}",
            "resourceType": "User",
        },
        ENTERPRISE_USER: {"division": division},
        ZIVVER_USER: {"aliases": aliases, "delegates": delegates},
    }


def new_group(
    group_id: str, email: str, name: str, member_ids: list[str], aliases: list[str]
) -> dict[str, Any]:
    """A functional account as Zivver returns it (the enterprise *User* schema included)."""
    return {
        "schemas": [CORE_GROUP, ZIVVER_GROUP, ENTERPRISE_USER],
        "id": group_id,
        "externalId": email.lower(),
        "displayName": name,
        "members": [{"value": m} for m in member_ids],
        "meta": {
            "created": time.strftime("%Y-%m-%d"),
            "location": f"/scim/v2/Groups/{group_id}",
            "resourceType": "Group",
        },
        ENTERPRISE_USER: {"division": "/"},
        ZIVVER_GROUP: {"aliases": aliases},
    }
