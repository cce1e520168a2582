"""A Zivver-compatible SCIM server that behaves as the real one does on the wire.

It follows ../shared/docs/zivver-wire.md (what Zivver's own Cloud Sync, its capture of a real
organization, the HelloID connector and a customer's module show). It is a witness, not a
friend: where the evidence is silent it takes the stricter behaviour, marked *(silent)*.

Resources and writes:
- Functional accounts are Groups; members are ids of users **or groups**; groups have no
  ``active`` flag. Seeded groups may hold their own id and ids of no account.
- ``SsoAccountKey`` is write-only: stored apart (``sso_keys``), never returned.
- PUT merges at the top level (an attribute left out is kept) but **replaces a complex
  attribute that is sent**: the zivver user block sent without ``SsoAccountKey`` erases the
  key; ``ExternalAccountId`` left out of a sent block is gone; ``phoneNumbers`` sent replaces
  the list. The enterprise block and ``name`` are replaced the same way *(silent: the
  evidence names the zivver block only)*.
- Unknown attributes in a body are refused with 400 *(silent)*.
- A phone number sent that is not E.164 (``+`` and 7 to 15 digits, as every one in the
  capture) is refused with 400 ``Invalid phone number: …`` *(silent)*.
- POST /Users: new users are always active; an address that exists answers **409 with an
  empty body**. POST /Groups whose address exists (as anything) answers 400
  ``Account is outside the organization``; an unknown member 400 ``Unknown in set``.
- PUT of a group with an unknown member: 400 ``Error creating member: Member Not Found``;
  ``members: []`` in a PUT is ignored (Zivver's known bug). A rename onto an address that
  exists answers 409 with an empty body *(silent)*.
- PATCH (Groups only; path ``members``: add, remove, replace) needs ``Content-Type:
  application/scim+json`` (else 415) and, when an Accept is sent, one that admits it (else
  406); it answers **200** with the group. Other PATCHes answer 400 *(silent)*.
- ``GET``/``PUT``/``PATCH``/``DELETE`` of an unknown id: 400 ``Unknown account with uuid: …``.
  DELETE answers 204 *(silent: its status was never seen)*.
- Divisions: ``/`` means none; an unknown one is refused with ``Invalid division: NAME``.
- Aliases: outside the claimed domains ``Error creating alias: Domain Not Owned``; a guest's
  address ``Error creating alias: Alias is a guest: …``; another account's address
  ``Error creating alias: Alias is already taken for <id>``. A primary address outside the
  claimed domains: ``Account is outside the organization``.

Answers:
- Per-item errors are plain text (status 400), the whole body being the message; 401, 404 of
  a path, 406, 415 and 429 are Dropwizard JSON ``{"code": N, "message": "…"}`` (the 401 and
  404 texts are Dropwizard's defaults *(silent)*).
- A list is exactly ``{"Resources": [...], "totalResults": N}``: every resource, whatever
  ``startIndex``/``count`` say; ``filter=attr eq "value"`` works on ``userName`` and
  ``externalId``.
- Past the organization's budget (default 50 requests per 10 s, counted for every client of
  the API key, so another client can use it up) it answers 429 with Zivver's body and the
  ``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` headers of the draft its
  body refers to, and **no Retry-After** (``retry_after=True`` adds one).

The state lives in :class:`Organization`; tests and the demo read it directly.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .organization import (
    ENTERPRISE_USER,
    GROUP_ATTRIBUTES,
    PATCH_OP,
    SCIM_JSON,
    USER_ATTRIBUTES,
    ZIVVER_GROUP,
    ZIVVER_GROUP_KEYS,
    ZIVVER_USER,
    ZIVVER_USER_KEYS,
    Organization,
    new_group,
    new_user,
)

_FILTER = re.compile(r'^\s*(\w+)\s+eq\s+"([^"]*)"\s*$', re.I)


class ScimError(Exception):
    """A refusal: ``text`` is the plain-text body (Zivver's per-item errors), or with
    ``dropwizard`` the message of a ``{"code", "message"}`` JSON body."""

    def __init__(self, status: int, text: str, dropwizard: bool = False) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.dropwizard = dropwizard

    def response(self) -> Response:
        if self.dropwizard:
            return _dropwizard(self.status, self.text)
        return PlainTextResponse(self.text, status_code=self.status)


def _dropwizard(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


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
            return PlainTextResponse("injected fault", status_code=int(fault.kind))
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


def _too_many(org: Organization, wait: float) -> Response:
    reset = str(max(1, math.ceil(wait)))
    headers = {
        "RateLimit-Limit": str(org.rate_limit),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": reset,
    }
    if org.retry_after:
        headers["Retry-After"] = reset
    body = {
        "code": 429,
        "message": "Too Many Requests",
        "emptiedBucketDetails": {
            "limiterId": "scim-api",
            "budget": org.rate_limit,
            "windowSeconds": org.rate_window,
        },
        "reference": "https://tools.ietf.org/html/draft-polli-ratelimit-headers-02",
    }
    return JSONResponse(body, status_code=429, headers=headers)


def _accepts_scim(accept: str | None) -> bool:
    if accept is None:
        return True
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in (SCIM_JSON, "application/*", "*/*"):
            return True
    return False


async def _dispatch(org: Organization, request: Request) -> Response:
    if request.headers.get("authorization", "") != f"Bearer {org.api_key}":
        return _dropwizard(401, "Credentials are required to access this resource.")
    wait = org.admit()
    if wait is not None:
        return _too_many(org, wait)
    kind = request.path_params["kind"]
    if kind not in ("Users", "Groups"):
        return _dropwizard(404, "HTTP 404 Not Found")
    resource_id = request.path_params.get("resource_id")
    method = request.method
    if method == "PATCH":
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != SCIM_JSON:
            return _dropwizard(415, "HTTP 415 Unsupported Media Type")
        if not _accepts_scim(request.headers.get("accept")):
            return _dropwizard(406, "HTTP 406 Not Acceptable")
    body: Any = None
    if method in ("POST", "PUT", "PATCH"):
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _dropwizard(400, "Unable to process JSON")
        if not isinstance(body, dict):
            return _dropwizard(400, "Unable to process JSON")
    try:
        with org.lock:
            return _handle(org, kind, method, resource_id, body, dict(request.query_params))
    except ScimError as error:
        return error.response()


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
            return _list(store, query)
        if kind == "Users":
            created = _create_user(org, body)
            if created is None:
                return Response(status_code=409)  # Zivver: an address that exists, no body
            return _json(created, 201)
        return _json(_create_group(org, body), 201)
    if resource_id not in store:
        raise ScimError(400, f"Unknown account with uuid: {resource_id}")
    if method == "GET":
        return _json(store[resource_id])  # SsoAccountKey lives apart, in org.sso_keys
    if method == "DELETE":
        del store[resource_id]
        org.sso_keys.pop(resource_id, None)
        return Response(status_code=204)
    if method == "PUT":
        if kind == "Users":
            updated = _put_user(org, resource_id, body)
            return Response(status_code=409) if updated is None else _json(updated)
        updated = _put_group(org, resource_id, body)
        return Response(status_code=409) if updated is None else _json(updated)
    if kind != "Groups":
        raise ScimError(400, "PATCH is only supported for Groups")
    return _json(_patch_group(org, resource_id, body))


def _json(data: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, media_type=SCIM_JSON)


def _list(store: dict[str, dict[str, Any]], query: dict[str, str]) -> Response:
    resources = list(store.values())
    if "filter" in query:
        match = _FILTER.match(query["filter"])
        if not match or match.group(1) not in ("userName", "externalId"):
            raise ScimError(400, f"Unsupported filter: {query['filter']}")
        attribute, value = match.group(1), match.group(2).lower()
        resources = [r for r in resources if str(r.get(attribute, "")).lower() == value]
    # like Zivver: every resource in one answer, whatever startIndex/count say, no paging fields
    return _json({"Resources": resources, "totalResults": len(resources)})


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str) or "@" not in value:
        raise ScimError(400, f"{what} must be an e-mail address")
    return value.strip().lower()


def _addresses(value: Any, what: str) -> list[str]:
    if not isinstance(value, list):
        raise ScimError(400, f"{what} must be a list of e-mail addresses")
    return [_address(item, what) for item in value]


def _block(body: dict[str, Any], urn: str, keys: frozenset[str]) -> dict[str, Any] | None:
    block = body.get(urn)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ScimError(400, f"{urn} must be an object")
    unknown = sorted(set(block) - keys)
    if unknown:  # (silent) what the real service does with keys it does not know
        raise ScimError(400, f"Unrecognized field {unknown[0]!r} in {urn}")
    return block


def _known_attributes(body: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise ScimError(400, f"Unrecognized field {unknown[0]!r}")


def _check_addresses(
    org: Organization, primary: str, aliases: list[str], own_id: str | None
) -> None:
    if not org.claimed(primary):
        raise ScimError(400, "Account is outside the organization")
    for alias in aliases:
        if not org.claimed(alias):
            raise ScimError(400, "Error creating alias: Domain Not Owned")
        if alias in org.guests:
            raise ScimError(400, f"Error creating alias: Alias is a guest: {alias}")
        owner = org.address_owner(alias)
        if owner is not None and owner != own_id:
            raise ScimError(400, f"Error creating alias: Alias is already taken for {owner}")


def _enterprise(org: Organization, body: dict[str, Any]) -> dict[str, Any] | None:
    block = _block(body, ENTERPRISE_USER, frozenset({"division"}))
    if block is not None and "division" in block and block["division"] not in org.divisions:
        raise ScimError(400, f"Invalid division: {block['division']}")
    return block


E164 = re.compile(r"\+[1-9][0-9]{6,14}")
"""A number as the capture shows every one Zivver holds (``+316…``)."""


def _phone_numbers(value: Any) -> list[dict[str, Any]]:
    """*(silent)* The capture shows only E.164 values and no error for another form: the
    emulator takes the stricter side and refuses a value that is not E.164."""
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and isinstance(item.get("value"), str) for item in value
    ):
        raise ScimError(400, 'phoneNumbers must be a list of {"value": "+31…"}')
    for item in value:
        if not E164.fullmatch(item["value"]):
            raise ScimError(400, f"Invalid phone number: {item['value']}")
    return [dict(item) for item in value]


def _create_user(org: Organization, body: dict[str, Any]) -> dict[str, Any] | None:
    _known_attributes(body, USER_ATTRIBUTES)
    email = _address(body.get("userName"), "userName")
    if org.address_owner(email) is not None:
        return None
    extension = _block(body, ZIVVER_USER, ZIVVER_USER_KEYS) or {}
    aliases = _addresses(extension.get("aliases", []), "alias")
    _check_addresses(org, email, aliases, None)
    enterprise = _enterprise(org, body)
    user_id = org.new_id()
    name = (body.get("name") or {}).get("formatted") or email
    delegates = _addresses(extension.get("delegates", []), "delegate")
    user = new_user(user_id, email, name, True, aliases, delegates, "/")  # always active
    if enterprise is not None:
        user[ENTERPRISE_USER] = dict(enterprise)
    if "ExternalAccountId" in extension:
        user[ZIVVER_USER]["ExternalAccountId"] = extension["ExternalAccountId"]
    if "nickName" in body:
        user["nickName"] = body["nickName"]
    if "phoneNumbers" in body:
        user["phoneNumbers"] = _phone_numbers(body["phoneNumbers"])
    org.users[user_id] = user
    if extension.get("SsoAccountKey"):
        org.sso_keys[user_id] = str(extension["SsoAccountKey"])
    return user


def _put_user(org: Organization, user_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Top-level merge; a complex attribute that is sent replaces the one Zivver has."""
    _known_attributes(body, USER_ATTRIBUTES)
    user = org.users[user_id]
    email = _address(body["userName"], "userName") if "userName" in body else user["userName"]
    owner = org.address_owner(email)
    if owner not in (None, user_id):
        return None
    extension = _block(body, ZIVVER_USER, ZIVVER_USER_KEYS)
    aliases = (
        _addresses(extension.get("aliases", []), "alias")
        if extension is not None
        else user[ZIVVER_USER].get("aliases", [])
    )
    _check_addresses(org, email, aliases if extension is not None else [], user_id)
    enterprise = _enterprise(org, body)
    phones = _phone_numbers(body["phoneNumbers"]) if "phoneNumbers" in body else None
    # every check passed: apply
    user["userName"] = email
    if "name" in body:
        name = body["name"] if isinstance(body["name"], dict) else {}
        user["name"] = {**name, "formatted": name.get("formatted") or email}
    if "active" in body:
        user["active"] = bool(body["active"])
    for attribute in ("nickName", "displayName"):
        if attribute in body:
            user[attribute] = body[attribute]
    if phones is not None:
        user["phoneNumbers"] = phones
    if enterprise is not None:
        user[ENTERPRISE_USER] = dict(enterprise)
    if extension is not None:
        block: dict[str, Any] = {
            "aliases": aliases,
            "delegates": _addresses(extension.get("delegates", []), "delegate"),
        }
        if "ExternalAccountId" in extension:
            block["ExternalAccountId"] = extension["ExternalAccountId"]
        user[ZIVVER_USER] = block
        if extension.get("SsoAccountKey"):
            org.sso_keys[user_id] = str(extension["SsoAccountKey"])
        else:  # the block was replaced: a key left out of it is erased (HI, CS mock)
            org.sso_keys.pop(user_id, None)
    return user


def _members(org: Organization, value: Any, unknown: str) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise ScimError(400, "members must be a list")
    members: list[dict[str, str]] = []
    for member in value:
        member_id = member.get("value") if isinstance(member, dict) else None
        if member_id not in org.users and member_id not in org.groups:
            raise ScimError(400, unknown)
        if {"value": member_id} not in members:
            members.append({"value": member_id})
    return members


def _create_group(org: Organization, body: dict[str, Any]) -> dict[str, Any]:
    _known_attributes(body, GROUP_ATTRIBUTES)
    email = _address(body.get("externalId"), "externalId")
    if org.address_owner(email) is not None:
        raise ScimError(400, "Account is outside the organization")
    extension = _block(body, ZIVVER_GROUP, ZIVVER_GROUP_KEYS) or {}
    aliases = _addresses(extension.get("aliases", []), "alias")
    _check_addresses(org, email, aliases, None)
    enterprise = _enterprise(org, body)
    members = _members(org, body.get("members", []), "Unknown in set")
    group_id = org.new_id()
    group = new_group(group_id, email, body.get("displayName") or email, [], aliases)
    group["members"] = members
    if enterprise is not None:
        group[ENTERPRISE_USER] = dict(enterprise)
    if "ExternalAccountId" in extension:
        group[ZIVVER_GROUP]["ExternalAccountId"] = extension["ExternalAccountId"]
    org.groups[group_id] = group
    return group


def _put_group(org: Organization, group_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
    _known_attributes(body, GROUP_ATTRIBUTES)
    group = org.groups[group_id]
    email = (
        _address(body["externalId"], "externalId") if "externalId" in body else group["externalId"]
    )
    owner = org.address_owner(email)
    if owner not in (None, group_id):
        return None
    extension = _block(body, ZIVVER_GROUP, ZIVVER_GROUP_KEYS)
    aliases = (
        _addresses(extension.get("aliases", []), "alias")
        if extension is not None
        else group[ZIVVER_GROUP].get("aliases", [])
    )
    _check_addresses(org, email, aliases if extension is not None else [], group_id)
    enterprise = _enterprise(org, body)
    members = (
        _members(org, body["members"], "Error creating member: Member Not Found")
        if "members" in body
        else []
    )
    group["externalId"] = email
    if "displayName" in body:
        group["displayName"] = body["displayName"]
    if extension is not None:
        block: dict[str, Any] = {"aliases": aliases}
        if "ExternalAccountId" in extension:
            block["ExternalAccountId"] = extension["ExternalAccountId"]
        group[ZIVVER_GROUP] = block
    if enterprise is not None:
        group[ENTERPRISE_USER] = dict(enterprise)
    if members:  # Zivver's known bug: an empty members list in a PUT is ignored
        group["members"] = members
    return group


def _patch_group(org: Organization, group_id: str, body: dict[str, Any]) -> dict[str, Any]:
    group = org.groups[group_id]
    operations = body.get("Operations")
    if PATCH_OP not in (body.get("schemas") or []) or not isinstance(operations, list):
        raise ScimError(400, "A PATCH body must be a PatchOp with Operations")
    members = list(group["members"])
    for operation in operations:
        op = str(operation.get("op", "")).lower() if isinstance(operation, dict) else ""
        if operation.get("path") != "members":  # (silent) other paths
            raise ScimError(400, f"Unsupported PATCH path {operation.get('path')!r}")
        if op == "remove" and "value" not in operation:
            members = []
        elif op == "remove":
            gone = {m["value"] for m in _members(org, operation["value"], "Member Not Found")}
            members = [m for m in members if m["value"] not in gone]
        elif op == "replace":
            members = _members(
                org, operation.get("value"), "Error creating member: Member Not Found"
            )
        elif op == "add":
            added = _members(org, operation.get("value"), "Error creating member: Member Not Found")
            members += [m for m in added if m not in members]
        else:
            raise ScimError(400, f"Unsupported PATCH op {op!r}")
    group["members"] = members
    return group
