"""Pure SCIM pieces for Zivver: parse resources and lists, explain errors (bodies: requests.py).

Functional accounts are SCIM Groups whose members (by user id) are the delegates; the
``SsoAccountKey`` is write-only. See zivver-api.md, section (h).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..addresses import normalize_address
from ..model import NO_ADDRESSES, Kept, Kind, ZivverAccount, address_set

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ZIVVER_USER = "urn:ietf:params:scim:schemas:zivver:0.1:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ZIVVER_GROUP = "urn:ietf:params:scim:schemas:zivver:0.1:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"
NO_DIVISION = "/"


_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def read_list(content: bytes, each: Callable[[Any], None]) -> dict[str, Any]:
    """Read a SCIM ListResponse, handing each resource to ``each`` as soon as it is decoded.

    Zivver answers a list with every account at once; decoding all of them into dicts before
    turning them into accounts would hold about 2 KB per account at the same time. Returns
    the other top-level members, with ``Resources`` replaced by how many there were.

    Raises:
        ValueError: the content is not a JSON object.
    """
    text = content.decode("utf-8")
    index = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text[index] != "{":
        raise ValueError("not a JSON object")
    top: dict[str, Any] = {}
    index = _skip(text, index + 1)
    if text[index] == "}":
        return top
    while True:
        key, index = _DECODER.raw_decode(text, index)
        index = _skip(text, index)
        if text[index] != ":":
            raise ValueError(f"':' expected at {index}")
        index = _skip(text, index + 1)
        if key == "Resources" and text[index] == "[":
            count, index = _each_item(text, _skip(text, index + 1), each)
            top[key] = count
        else:
            top[key], index = _DECODER.raw_decode(text, index)
        index = _skip(text, index)
        if text[index] == "}":
            return top
        if text[index] != ",":
            raise ValueError(f"',' or '}}' expected at {index}")
        index = _skip(text, index + 1)


def _skip(text: str, index: int) -> int:
    return _SPACE.match(text, index).end()  # type: ignore[union-attr]


def _each_item(text: str, index: int, each: Callable[[Any], None]) -> tuple[int, int]:
    count = 0
    if text[index] == "]":
        return count, index + 1
    while True:
        item, index = _DECODER.raw_decode(text, index)
        each(item)
        count += 1
        index = _skip(text, index)
        if text[index] == "]":
            return count, index + 1
        if text[index] != ",":
            raise ValueError(f"',' or ']' expected at {index}")
        index = _skip(text, index + 1)


def _addresses(values: Any) -> frozenset[str]:
    if not values:
        return NO_ADDRESSES
    found = set()
    for value in values or []:
        text = value.get("value") if isinstance(value, dict) else value
        address = normalize_address(text if isinstance(text, str) else None)
        if address:
            found.add(address)
    return address_set(found)


def _division(resource: dict[str, Any]) -> str | None:
    value = (resource.get(ENTERPRISE_USER) or {}).get("division")
    return None if value in (None, "", NO_DIVISION) else str(value)


READ_ONLY = frozenset({"id", "meta", "schemas"})
USER_MANAGED: dict[str, frozenset[str] | None] = {
    "userName": None,
    "active": None,
    "name": frozenset({"formatted"}),
    ENTERPRISE_USER: frozenset({"division"}),
    ZIVVER_USER: frozenset({"aliases", "delegates", "SsoAccountKey"}),
}
"""What zsync manages of a User: whole attributes (None) or these keys of a complex one."""
GROUP_MANAGED: dict[str, frozenset[str] | None] = {
    "externalId": None,
    "displayName": None,
    "members": None,
    ENTERPRISE_USER: frozenset({"division"}),
    ZIVVER_GROUP: frozenset({"aliases"}),
}
_EMPTY: tuple[Any, ...] = (None, "", [], {})


def kept_of(resource: dict[str, Any], managed: dict[str, frozenset[str] | None]) -> Kept | None:
    """What of ``resource`` zsync does not manage and must send back unchanged when it sends
    the attribute it sits in (see :data:`zsync_core.model.Kept`); None when there is nothing."""
    kept: Kept | None = None
    for key, value in resource.items():
        if key in READ_ONLY:
            continue
        if key in managed:
            keys = managed[key]
            if keys is None or not isinstance(value, dict) or value.keys() <= keys:
                continue
            value = {k: v for k, v in value.items() if k not in keys and v not in _EMPTY}
        if value in _EMPTY:
            continue
        if kept is None:
            kept = {}
        kept[key] = value
    return kept


_USUAL_USER_KEYS = frozenset(USER_MANAGED) | READ_ONLY | {"phoneNumbers"}
_NAME_KEYS: frozenset[str] = USER_MANAGED["name"] or frozenset()
_ENTERPRISE_KEYS: frozenset[str] = USER_MANAGED[ENTERPRISE_USER] or frozenset()
_ZIVVER_USER_KEYS: frozenset[str] = USER_MANAGED[ZIVVER_USER] or frozenset()


def parse_user(resource: dict[str, Any]) -> ZivverAccount | None:
    email = normalize_address(resource.get("userName"))
    if email is None or not resource.get("id"):
        return None
    extension = resource.get(ZIVVER_USER) or {}
    name = resource.get("name") or {}
    enterprise = resource.get(ENTERPRISE_USER) or {}
    division = enterprise.get("division")
    # the usual user has nothing zsync must keep: say so without building anything
    # (this runs 100,000 times a daily run)
    usual = (
        resource.keys() <= _USUAL_USER_KEYS
        and not resource.get("phoneNumbers")
        and name.keys() <= _NAME_KEYS
        and enterprise.keys() <= _ENTERPRISE_KEYS
        and extension.keys() <= _ZIVVER_USER_KEYS
    )
    return ZivverAccount(  # positional: 100,000 users a run
        Kind.PERSONAL,
        str(resource["id"]),
        email,
        name.get("formatted") or resource.get("displayName") or resource.get("nickName") or "",
        bool(resource.get("active", True)),
        _addresses(extension.get("aliases")),
        _addresses(extension.get("delegates")),
        None if division in (None, "", NO_DIVISION) else str(division),
        None if usual else kept_of(resource, USER_MANAGED),
    )


def parse_group(
    resource: dict[str, Any], emails_by_user_id: dict[str, str]
) -> ZivverAccount | None:
    """A functional account. Members that are no user (other groups, the group itself, ids
    that resolve to nothing) cannot be delegates; they are kept in ``other_members``."""
    email = normalize_address(resource.get("externalId"))
    group_id = resource.get("id")
    if email is None or not group_id:
        return None
    delegates: set[str] = set()
    others: list[str] = []
    for member in resource.get("members") or []:
        value = member.get("value") if isinstance(member, dict) else None
        if not isinstance(value, str) or not value:
            continue
        address = emails_by_user_id.get(value)
        if address is not None and value != group_id:
            delegates.add(address)
        elif value not in others:
            others.append(value)
    found = address_set(delegates)
    return ZivverAccount(
        kind=Kind.FUNCTIONAL,
        zivver_id=str(group_id),
        email=email,
        display_name=resource.get("displayName") or "",
        active=bool(found),
        aliases=_addresses((resource.get(ZIVVER_GROUP) or {}).get("aliases")),
        delegates=found,
        division=_division(resource),
        kept=kept_of(resource, GROUP_MANAGED),
        other_members=tuple(others),
    )


# --- errors ----------------------------------------------------------------------------------


def error_text(body: bytes | str) -> str:
    """Zivver's own message from an error body (SCIM ``detail``, ``message``, or plain text)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(data, dict):
        for key in ("detail", "message", "error", "title"):
            if isinstance(data.get(key), str):
                return data[key].strip()
    return text.strip()[:500]


_KNOWN: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"Alias is already taken for (?P<other>\S+)", re.I),
        "An alias is already used by another Zivver account ({other}). Merge that account into this "
        "one by hand in the Zivver WebApp, or remove the alias in the directory.",
    ),
    (
        re.compile(r"Alias is a guest:?\s*(?P<other>\S*)", re.I),
        "The alias {other} has a guest account in Zivver. Merge the guest account into this account "
        "in the Zivver WebApp (or remove the alias in the directory).",
    ),
    (
        re.compile(r"Domain Not Owned", re.I),
        "An alias is in a domain your Zivver organization has not claimed. Claim the domain on "
        "Zivver's Domains page, or add it to sync.domains only once it is claimed.",
    ),
    (
        re.compile(r"Unknown in set|Member Not Found", re.I),
        "A delegate (member) of this functional account is not a Zivver account (deleted "
        "elsewhere?); the next run reads Zivver again and plans it anew.",
    ),
    (
        re.compile(r"Account is outside the organization", re.I),
        "Zivver says the address is outside your organization: its domain is not claimed (adopt it "
        "on the Domains page), or the account is personal in one place and functional in the other.",
    ),
    (
        re.compile(r"Invalid division:?\s*(?P<other>.*)", re.I),
        "Zivver does not know the division {other}. Create that organizational unit in Zivver or fix "
        "the directory attribute.",
    ),
    (
        re.compile(r"Unknown account with uuid:?\s*(?P<other>\S*)", re.I),
        "Zivver no longer has the account {other} (deleted elsewhere?); the next run plans it again.",
    ),
]


RETRIED = "the change is retried on the next run"
"""How an explanation of a failed change ends when trying again later may work (``zsync
check``, which sends no change, says something else there)."""


SCIM_BASE = "https://app.zivver.com/api/scim/v2"


def explain(
    status: int | None, body: bytes | str, attempts: int = 1, listing: str | None = None
) -> str:
    """An explanation of a failed request an admin can act on, with Zivver's own words.
    ``listing``: the URL of the list (Users, Groups) the request read, if it read one."""
    said = error_text(body) if body else ""
    quoted = f' Zivver said: "{said}".' if said else ""
    if status == 404 and listing:
        # no such list: the URL is no SCIM base (no account is unknown)
        base, _, kind = listing.rpartition("/")
        return (
            f"{base} has no /{kind} (HTTP 404): target.url must be Zivver's SCIM base URL, "
            f"which ends in /api/scim/v2 ({SCIM_BASE} for Zivver's cloud). Correct target.url "
            "in the profile." + quoted
        )
    for pattern, message in _KNOWN:
        match = pattern.search(said)
        if match:
            return message.format(**{k: v.strip() for k, v in match.groupdict().items()}) + quoted
    if status == 401:
        return (
            "Zivver refused the API key (HTTP 401: You are not authorized to use the Zivver API). "
            "Check that the key is complete, has no extra spaces, was not revoked, and that the "
            "admin who created it still exists." + quoted
        )
    if status == 403:
        return (
            "The API key may not do this (HTTP 403); it must belong to a full administrator."
            + quoted
        )
    if status == 409:
        return (
            "Zivver already has an account with this address (HTTP 409): it may be a guest "
            "account, or one zsync cannot see. Find it in the Zivver WebApp; the next run matches "
            "it by address if it is in the organization." + quoted
        )
    if status == 415 or status == 406:
        return (
            f"Zivver refused the request's content type (HTTP {status}). This is a bug in zsync; "
            "please report it with the request shown in the change's details." + quoted
        )
    if status == 429:
        return (
            f"Zivver kept rate-limiting the requests (HTTP 429) after {attempts} attempts; {RETRIED}. "
            "Lower target.rate_limit_requests if this repeats." + quoted
        )
    if status is not None and status >= 500:
        return (
            f"Zivver had a server error (HTTP {status}) after {attempts} attempts; {RETRIED}."
            + quoted
        )
    if status in (400, 404) and said.lower().startswith(("not found", "resource")):
        return (
            "Zivver does not know this account (deleted elsewhere?); the next run plans it again."
            + quoted
        )
    if status is None:
        return f"No answer from Zivver after {attempts} attempts ({said}); {RETRIED}."
    return f"Zivver rejected the change (HTTP {status})." + quoted
