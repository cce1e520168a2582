"""A Zivver-compatible SCIM server, with Zivver's quirks (zivver-api.md, section h).

- functional accounts are Groups; members are user ids; no ``active`` flag;
- ``SsoAccountKey`` is write-only (stored, never returned);
- PATCH needs ``Content-Type`` and ``Accept`` of ``application/scim+json`` (415 / 406);
- an empty ``members`` list in a PUT is silently ignored;
- ``GET /Users`` returns every user at once, ignoring paging parameters;
- a missing id answers 400; PUT accepts partial bodies;
- past the request budget (default 50 per 10 s) it answers 429 with Zivver's body;
- alias taken / alias is a guest / outside organization / invalid division errors.

The state lives in :class:`Organization`; tests and the demo read it directly.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ZIVVER_USER = "urn:ietf:params:scim:schemas:zivver:0.1:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ZIVVER_GROUP = "urn:ietf:params:scim:schemas:zivver:0.1:Group"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_JSON = "application/scim+json"
_FILTER = re.compile(r'^\s*(\w+)\s+eq\s+"([^"]*)"\s*$', re.I)


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
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    sso_keys: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every request, for tests and benchmarks."""
    faults: list[Fault] = field(default_factory=list)
    """Faults to inject, in order, into the requests they match (for fault-injection tests)."""
    latency: float = 0.0
    """Seconds every request waits before it is handled (a slow Zivver)."""
    new_id: Callable[[], str] = field(default_factory=lambda: _random_id)
    """Makes resource ids (tests and the demo's screenshots use a counter)."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    _arrivals: deque[float] = field(default_factory=deque)

    # --- helpers used by tests and the demo ---------------------------------------------------

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if u["userName"] == email.lower()), None)

    def group_by_email(self, email: str) -> dict[str, Any] | None:
        return next((g for g in self.groups.values() if g["externalId"] == email.lower()), None)

    def add_user(
        self, email: str, name: str = "", active: bool = True, aliases: list[str] | None = None
    ) -> str:
        with self.lock:
            user_id = self.new_id()
            self.users[user_id] = _new_user(
                user_id, email, name or email, active, aliases or [], [], "/"
            )
            return user_id

    def add_group(self, email: str, name: str = "", member_ids: list[str] | None = None) -> str:
        with self.lock:
            group_id = self.new_id()
            self.groups[group_id] = _new_group(group_id, email, name or email, member_ids or [], [])
            return group_id

    def delegates_of(self, email: str) -> set[str]:
        group = self.group_by_email(email)
        if group is None:
            return set()
        return {
            self.users[m["value"]]["userName"] for m in group["members"] if m["value"] in self.users
        }

    # --- rules ----------------------------------------------------------------------------------

    def admit(self) -> bool:
        if not self.rate_limit:
            return True
        now = time.monotonic()
        with self.lock:
            while self._arrivals and now - self._arrivals[0] >= self.rate_window:
                self._arrivals.popleft()
            if len(self._arrivals) >= self.rate_limit:
                return False
            self._arrivals.append(now)
            return True

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
            if user["userName"] == address or address in user[ZIVVER_USER]["aliases"]:
                return resource_id
        for resource_id, group in self.groups.items():
            if group["externalId"] == address or address in group[ZIVVER_GROUP]["aliases"]:
                return resource_id
        return None


def _random_id() -> str:
    return str(uuid.uuid4())


def _new_user(
    user_id: str,
    email: str,
    name: str,
    active: bool,
    aliases: list[str],
    delegates: list[str],
    division: str,
) -> dict[str, Any]:
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


def _new_group(
    group_id: str, email: str, name: str, member_ids: list[str], aliases: list[str]
) -> dict[str, Any]:
    return {
        "schemas": [CORE_GROUP, ZIVVER_GROUP],
        "id": group_id,
        "externalId": email.lower(),
        "displayName": name,
        "members": [{"value": m} for m in member_ids],
        "meta": {"location": f"/scim/v2/Groups/{group_id}", "resourceType": "Group"},
        ENTERPRISE_USER: {"division": "/"},
        ZIVVER_GROUP: {"aliases": aliases},
    }


class ScimError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Truncated(Response):
    """Sends the headers and half the body of ``inner``, then drops the connection."""

    def __init__(self, inner: Response) -> None:
        super().__init__(
            content=inner.body, status_code=inner.status_code, media_type=inner.media_type
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": True,
            }
        )
        raise ConnectionAbortedError("injected: connection dropped mid-response")


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse(
        {"schemas": [ERROR], "status": str(status), "detail": detail},
        status_code=status,
        media_type=SCIM_JSON,
    )


def create_app(org: Organization) -> Starlette:
    """The ASGI app serving ``org`` under ``/api/scim/v2`` (and ``/scim/v2``)."""

    async def guarded(request: Request) -> Response:
        path = request.url.path
        method = request.method
        if org.latency:
            await asyncio.sleep(org.latency)
        fault = org.next_fault(method)
        if fault is not None and fault.kind.isdigit():
            with org.lock:
                org.requests.append((method, path, int(fault.kind)))
            return _error(int(fault.kind), "injected fault")
        response = await _dispatch(org, request)
        with org.lock:
            org.requests.append((method, path, response.status_code))
        if fault is not None and fault.kind == "slow-after":
            await asyncio.sleep(fault.seconds)
        elif fault is not None and fault.kind == "drop-after":
            response = _Truncated(response)
        return response

    routes = []
    for prefix in ("/api/scim/v2", "/scim/v2"):
        routes += [
            Route(prefix + "/{kind:str}", guarded, methods=["GET", "POST"]),
            Route(
                prefix + "/{kind:str}/{resource_id:str}",
                guarded,
                methods=["GET", "PUT", "PATCH", "DELETE"],
            ),
        ]
    return Starlette(routes=routes)


async def _dispatch(org: Organization, request: Request) -> Response:
    if request.headers.get("authorization", "") != f"Bearer {org.api_key}":
        return _error(
            401, "You are not authorized to use the Zivver API. Did you enter the correct API-key?"
        )
    if not org.admit():
        return JSONResponse(
            {
                "code": 429,
                "message": "Too Many Requests",
                "emptiedBucketDetails": {
                    "limiterId": "scim-api",
                    "budget": org.rate_limit,
                    "windowSeconds": org.rate_window,
                },
                "reference": "https://docs.zivver.com/ratelimit-headers",
            },
            status_code=429,
            headers={"Retry-After": "1"},
        )
    kind = request.path_params["kind"]
    if kind not in ("Users", "Groups"):
        return _error(404, f"Unknown resource type {kind}")
    resource_id = request.path_params.get("resource_id")
    method = request.method
    if method == "PATCH":
        if request.headers.get("content-type", "").split(";")[0].strip() != SCIM_JSON:
            return _error(
                415, "Unsupported Media Type: PATCH requires Content-Type application/scim+json"
            )
        if SCIM_JSON not in request.headers.get("accept", ""):
            return _error(406, "Not Acceptable: PATCH requires Accept application/scim+json")
    body: Any = None
    if method in ("POST", "PUT", "PATCH"):
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object")
    try:
        with org.lock:
            return _handle(org, kind, method, resource_id, body, dict(request.query_params))
    except ScimError as error:
        return _error(error.status, error.detail)


def _handle(
    org: Organization,
    kind: str,
    method: str,
    resource_id: str | None,
    body: Any,
    query: dict[str, str],
) -> Response:
    store = org.users if kind == "Users" else org.groups
    if resource_id is None:
        if method == "GET":
            return _list(org, kind, store, query)
        return _json(_create_user(org, body) if kind == "Users" else _create_group(org, body), 201)
    if resource_id not in store:
        raise ScimError(400, f"Unknown account with uuid: {resource_id}")
    if method == "GET":
        return _json(store[resource_id])  # SsoAccountKey lives apart, in org.sso_keys
    if method == "DELETE":
        del store[resource_id]
        org.sso_keys.pop(resource_id, None)
        if kind == "Users":
            for group in org.groups.values():
                group["members"] = [m for m in group["members"] if m["value"] != resource_id]
        return Response(status_code=204)
    if method == "PUT":
        return _json(
            _put_user(org, resource_id, body)
            if kind == "Users"
            else _put_group(org, resource_id, body)
        )
    if kind != "Groups":
        raise ScimError(400, "PATCH is only supported for Groups")
    _patch_group(org, resource_id, body)
    return Response(status_code=204)


def _json(data: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, media_type=SCIM_JSON)


def _list(
    org: Organization, kind: str, store: dict[str, dict[str, Any]], query: dict[str, str]
) -> Response:
    resources = list(store.values())
    if "filter" in query:
        match = _FILTER.match(query["filter"])
        if not match:
            raise ScimError(400, f"Unsupported filter: {query['filter']}")
        attribute, value = match.group(1), match.group(2).lower()
        resources = [r for r in resources if str(r.get(attribute, "")).lower() == value]
    # like Zivver: every resource in one response, whatever startIndex/count say
    return _json({"schemas": [LIST], "totalResults": len(resources), "Resources": resources})


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str) or "@" not in value:
        raise ScimError(400, f"{what} must be an e-mail address")
    return value.strip().lower()


def _check_addresses(
    org: Organization, primary: str, aliases: list[str], own_id: str | None
) -> None:
    if not org.claimed(primary):
        raise ScimError(400, "Account is outside the organization")
    for alias in aliases:
        if not org.claimed(alias):
            raise ScimError(400, "Account is outside the organization")
        if alias in org.guests:
            raise ScimError(400, f"Error creating alias: Alias is a guest: {alias}")
        owner = org.address_owner(alias)
        if owner is not None and owner != own_id:
            raise ScimError(400, f"Error creating alias: Alias is already taken for {owner}")


def _division(org: Organization, body: dict[str, Any], current: str) -> str:
    division = (body.get(ENTERPRISE_USER) or {}).get("division", current)
    if division not in org.divisions:
        raise ScimError(400, f"Invalid division: {division}")
    return str(division)


def _create_user(org: Organization, body: dict[str, Any]) -> dict[str, Any]:
    email = _address(body.get("userName"), "userName")
    if org.address_owner(email) is not None:
        existing = org.address_owner(email)
        kind = "functional account" if existing in org.groups else "user"
        raise ScimError(409, f"An account with userName {email} already exists ({kind} {existing})")
    extension = body.get(ZIVVER_USER) or {}
    aliases = [_address(a, "alias") for a in extension.get("aliases") or []]
    _check_addresses(org, email, aliases, None)
    division = _division(org, body, "/")
    user_id = org.new_id()
    name = (body.get("name") or {}).get("formatted") or email
    delegates = [_address(d, "delegate") for d in extension.get("delegates") or []]
    org.users[user_id] = _new_user(
        user_id, email, name, True, aliases, delegates, division
    )  # Zivver: new users are active
    if extension.get("SsoAccountKey"):
        org.sso_keys[user_id] = str(extension["SsoAccountKey"])
    return org.users[user_id]


def _put_user(org: Organization, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
    user = org.users[user_id]
    email = _address(body["userName"], "userName") if "userName" in body else user["userName"]
    owner = org.address_owner(email)
    if owner not in (None, user_id):
        raise ScimError(409, f"An account with userName {email} already exists ({owner})")
    extension = body.get(ZIVVER_USER) or {}
    aliases = (
        [_address(a, "alias") for a in extension["aliases"]]
        if "aliases" in extension
        else user[ZIVVER_USER]["aliases"]
    )
    _check_addresses(org, email, aliases, user_id)
    user[ENTERPRISE_USER]["division"] = _division(org, body, user[ENTERPRISE_USER]["division"])
    user["userName"] = email
    if "name" in body:
        user["name"] = {"formatted": (body["name"] or {}).get("formatted") or email}
    if "active" in body:
        user["active"] = bool(body["active"])
    user[ZIVVER_USER]["aliases"] = aliases
    if "delegates" in extension:
        user[ZIVVER_USER]["delegates"] = [_address(d, "delegate") for d in extension["delegates"]]
    if extension.get("SsoAccountKey"):
        org.sso_keys[user_id] = str(extension["SsoAccountKey"])
    return user


def _members(org: Organization, value: Any) -> list[dict[str, str]]:
    members = []
    for member in value or []:
        member_id = member.get("value") if isinstance(member, dict) else None
        if member_id not in org.users:
            raise ScimError(400, f"Unknown account with uuid: {member_id}")
        members.append({"value": member_id})
    return members


def _create_group(org: Organization, body: dict[str, Any]) -> dict[str, Any]:
    email = _address(body.get("externalId"), "externalId")
    if org.address_owner(email) is not None:
        raise ScimError(409, f"An account with externalId {email} already exists")
    aliases = [_address(a, "alias") for a in (body.get(ZIVVER_GROUP) or {}).get("aliases") or []]
    _check_addresses(org, email, aliases, None)
    group_id = org.new_id()
    group = _new_group(group_id, email, body.get("displayName") or email, [], aliases)
    group["members"] = _members(org, body.get("members"))
    org.groups[group_id] = group
    return group


def _put_group(org: Organization, group_id: str, body: dict[str, Any]) -> dict[str, Any]:
    group = org.groups[group_id]
    email = (
        _address(body["externalId"], "externalId") if "externalId" in body else group["externalId"]
    )
    owner = org.address_owner(email)
    if owner not in (None, group_id):
        raise ScimError(409, f"An account with externalId {email} already exists ({owner})")
    extension = body.get(ZIVVER_GROUP) or {}
    aliases = (
        [_address(a, "alias") for a in extension["aliases"]]
        if "aliases" in extension
        else group[ZIVVER_GROUP]["aliases"]
    )
    _check_addresses(org, email, aliases, group_id)
    group["externalId"] = email
    group["displayName"] = body.get("displayName", group["displayName"])
    group[ZIVVER_GROUP]["aliases"] = aliases
    members = _members(org, body.get("members"))
    if members:  # Zivver's quirk: an empty members list in a PUT is ignored
        group["members"] = members
    return group


def _patch_group(org: Organization, group_id: str, body: dict[str, Any]) -> None:
    group = org.groups[group_id]
    for operation in body.get("Operations") or []:
        op = str(operation.get("op", "")).lower()
        if operation.get("path") != "members":
            raise ScimError(400, f"Unsupported PATCH path {operation.get('path')!r}")
        if op == "remove":
            group["members"] = []
        elif op == "replace":
            group["members"] = _members(org, operation.get("value"))
        elif op == "add":
            current = {m["value"] for m in group["members"]}
            group["members"] += [
                m for m in _members(org, operation.get("value")) if m["value"] not in current
            ]
        else:
            raise ScimError(400, f"Unsupported PATCH op {op!r}")
