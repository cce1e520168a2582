"""Pure SCIM pieces for Zivver: parse resources and lists, explain errors (bodies: requests.py).

Functional accounts are SCIM Groups whose members (by user id) are the delegates; the
``SsoAccountKey`` is write-only. See zivver-api.md, section (h).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..addresses import normalize_address
from ..http import LONGEST_WAIT
from ..model import NO_ADDRESSES, NO_DIVISION, Kept, Kind, ZivverAccount, address_set
from ..output import inert

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ZIVVER_USER = "urn:ietf:params:scim:schemas:zivver:0.1:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ZIVVER_GROUP = "urn:ietf:params:scim:schemas:zivver:0.1:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"


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


class Unreadable(ValueError):
    """Zivver's answer, or an account in it, is not in Zivver's shape; the text says what is
    wrong, in words an admin can pass on to Zivver support."""


def _addresses(values: Any, where: str, wrong: list[str]) -> frozenset[str]:
    """The addresses of a list of strings or ``{"value": …}``; what is no list (or an item
    that is neither) goes to ``wrong``: an unknown list is never read as empty."""
    if values is None or (type(values) is list and not values):  # most accounts: none
        return NO_ADDRESSES
    if not isinstance(values, list):
        wrong.append(f"{where} is {shape_of(values)}, not a list")
        return NO_ADDRESSES
    found = set()
    for value in values:
        text = value.get("value") if isinstance(value, dict) else value
        if not isinstance(text, str):
            wrong.append(f"{where} holds {shape_of(value)}, not an address")
            continue
        address = normalize_address(text)
        if address:
            found.add(address)
    return address_set(found) if found else NO_ADDRESSES


def _block(resource: dict[str, Any], key: str, wrong: list[str]) -> dict[str, Any]:
    """A complex attribute (``name``, a schema block); {} when absent, else it must be an object."""
    value = resource.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        wrong.append(f"{_short(key)} is {shape_of(value)}, not an object")
        return {}
    return value


def shape_of(value: Any) -> str:
    """What a JSON value is, in a few words (for messages; never the whole value)."""
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value[:40] + ("…" if len(value) > 40 else ""))
    return "an object" if isinstance(value, dict) else "a list"


def _inert(text: str) -> str:
    """An id or header from the answer as a message may carry it: at most 80 characters, its
    control characters escaped (:func:`~zsync_core.output.inert`)."""
    return inert(text[:80])


def _short(key: str) -> str:
    return {ENTERPRISE_USER: "the enterprise block", ZIVVER_USER: "the zivver block"}.get(
        key, "the zivver block" if key == ZIVVER_GROUP else key
    )


def _identity(resource: dict[str, Any], kind: str, address_key: str) -> tuple[str, str | None]:
    """The id and the address of a resource; without them it is no account zsync can know.

    Raises:
        Unreadable: the id or the address attribute is missing or not a string.
    """
    resource_id = resource.get("id")
    if not isinstance(resource_id, str) or not resource_id:
        raise Unreadable(f"a {kind} has id {shape_of(resource_id)}, not a string")
    text = resource.get(address_key)
    if not isinstance(text, str):
        raise Unreadable(
            f"the {kind} with id {_inert(resource_id)} has {address_key} {shape_of(text)}, "
            "not an address"
        )
    return resource_id, normalize_address(text)


ESCAPED_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
"""Half of a UTF-16 pair written as a JSON escape with no other half beside it (a pair is an
emoji, as an escaping writer sends it): almost never there, and then each account of the
page is looked at."""


def escapes_a_lone_surrogate(body: bytes) -> bool:
    """Whether a JSON text holds an escaped lone surrogate (a find for each ``\\u`` first:
    the regex alone takes half a second over 12 MiB; this, 30 ms over 37 MiB)."""
    at = body.find(b"\\u")
    while at != -1:
        if body[at + 2 : at + 3] in (b"d", b"D") and ESCAPED_SURROGATE.match(body, at):
            return True
        at = body.find(b"\\u", at + 2)
    return False


def holds_a_lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a lone surrogate in any of its texts (a pair, once
    decoded, is one character)."""
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, dict):
        return any(holds_a_lone_surrogate(k) or holds_a_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_a_lone_surrogate(item) for item in value)
    return False


def unaddressed(resource: dict[str, Any], key: str) -> str:
    """An account whose address is no usable address, described for a warning (inert)."""
    kind = "user" if key == "userName" else "functional account"
    return f"the {kind} with id {_inert(str(resource.get('id')))} ({key} {shape_of(resource.get(key))})"


def _unreadable(
    wrong: list[str], what: str, unreadable: dict[str, str] | None, resource_id: str
) -> None:
    """Record what is wrong with one account (or, with nobody to record it, refuse it)."""
    text = f"{what}: {'; '.join(wrong)}"
    if unreadable is None:
        raise Unreadable(text)
    unreadable[resource_id] = text


def _division(enterprise: dict[str, Any]) -> str | None:
    value = enterprise.get("division")
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


def parse_user(
    resource: dict[str, Any], unreadable: dict[str, str] | None = None
) -> ZivverAccount | None:
    """A personal account; None when its userName is no usable address (never touched).

    What cannot be read as Zivver writes it (``active`` that is not true or false, a block
    that is not an object, aliases that are not a list) is never guessed: the account goes
    into ``unreadable`` (its id, what is wrong) so that nothing is written to it, or, when no
    ``unreadable`` is given, :class:`Unreadable` is raised.

    Raises:
        Unreadable: the user has no id or userName (or see above).
    """
    user_id, email = _identity(resource, "user", "userName")
    if email is None:
        return None
    wrong: list[str] = []
    extension = resource.get(ZIVVER_USER)
    name = resource.get("name")
    enterprise = resource.get(ENTERPRISE_USER)
    if type(extension) is not dict or type(name) is not dict or type(enterprise) is not dict:
        extension = _block(resource, ZIVVER_USER, wrong)  # the usual user has all three
        name = _block(resource, "name", wrong)
        enterprise = _block(resource, ENTERPRISE_USER, wrong)
    active = resource.get("active")
    if type(active) is not bool:
        wrong.append(
            "active is missing"
            if "active" not in resource
            else f"active is {shape_of(active)}, not true or false"
        )
    aliases = _addresses(extension.get("aliases"), "aliases", wrong)
    delegates = _addresses(extension.get("delegates"), "delegates", wrong)
    if wrong:
        _unreadable(wrong, f"user {email} (id {_inert(user_id)})", unreadable, user_id)
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
    display = name.get("formatted") or resource.get("displayName") or resource.get("nickName")
    return ZivverAccount(  # positional: 100,000 users a run
        Kind.PERSONAL,
        user_id,
        email,
        display if isinstance(display, str) else "",
        active is not False,  # unreadable (held) when it is no boolean
        aliases,
        delegates,
        None if division in (None, "", NO_DIVISION) else str(division),
        None if usual else kept_of(resource, USER_MANAGED),
    )


def parse_group(
    resource: dict[str, Any],
    emails_by_user_id: dict[str, str],
    unreadable: dict[str, str] | None = None,
) -> ZivverAccount | None:
    """A functional account. Members that are no user (other groups, the group itself, ids
    that resolve to nothing) cannot be delegates; they are kept in ``other_members``.

    Zivver always answers ``members`` as a list (``[]`` when there are none). Missing, or not
    a list, or with an item that is no ``{"value": id}``, the members are unknown, not none: a
    write would remove the ones zsync cannot see (a nested functional account), so the group
    goes into ``unreadable`` as :func:`parse_user` says.

    Raises:
        Unreadable: the group has no id or externalId (or see above).
    """
    group_id, email = _identity(resource, "functional account", "externalId")
    if email is None:
        return None
    wrong: list[str] = []
    delegates: set[str] = set()
    others: list[str] = []
    members = resource.get("members")
    if not isinstance(members, list):
        wrong.append(
            "members is missing"
            if members is None
            else f"members is {shape_of(members)}, not a list"
        )
        members = []
    for member in members:
        value = member.get("value") if isinstance(member, dict) else None
        if not isinstance(value, str) or not value:
            wrong.append(f'a member is {shape_of(member)}, not {{"value": id}}')
            continue
        address = emails_by_user_id.get(value)
        if address is not None and value != group_id:
            delegates.add(address)
        elif value not in others:
            others.append(value)
    block = _block(resource, ZIVVER_GROUP, wrong)
    enterprise = _block(resource, ENTERPRISE_USER, wrong)
    aliases = _addresses(block.get("aliases"), "aliases", wrong)
    display = resource.get("displayName")
    if wrong:
        what = f"functional account {email} (id {_inert(group_id)})"
        _unreadable(wrong, what, unreadable, group_id)
    found = address_set(delegates)
    return ZivverAccount(
        kind=Kind.FUNCTIONAL,
        zivver_id=group_id,
        email=email,
        display_name=display if isinstance(display, str) else "",
        active=bool(found),
        aliases=aliases,
        delegates=found,
        division=_division(enterprise),
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
        "division {other} does not exist in Zivver: create it in the Zivver WebApp or fix the "
        "mapping (the source's ou_mapping, its division attribute or column); this change "
        "failed alone.",
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
    status: int | None,
    body: bytes | str,
    attempts: int = 1,
    listing: str | None = None,
    wait: float | None = None,
) -> str:
    """An explanation of a failed request an admin can act on, with Zivver's own words.
    ``listing``: the URL of the list (Users, Groups) the request read, if it read one;
    ``wait``: how long a 429 asked to wait."""
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
    if status == 429 and wait is not None and wait > LONGEST_WAIT:
        return (
            f"Zivver rate-limited the request (HTTP 429) and asked to wait {wait:,.0f} s, "
            f"longer than zsync waits within a run ({LONGEST_WAIT:.0f} s); {RETRIED}. Another "
            "client may be spending the organization's budget." + quoted
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


def not_zivvers(
    method: str,
    url: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    what: str | None = None,
) -> str:
    """Why a write answered with a success status but no Zivver answer counts as failed, and
    what the admin should do (a create that Zivver may have done is said to be so). ``what``
    says what was wrong with the answer when its body says nothing (it was not read)."""
    kind = _inert(headers.get("content-type", "").split(";")[0].strip() or "no content type")
    if what is not None:
        pass
    elif isinstance(body, str) and (kind == "text/html" or body.lstrip()[:1] == "<"):
        what = f"HTML ({kind}) from a proxy?"
    elif isinstance(body, str):
        what = f"{kind}, not JSON"
    elif body is None:
        what = "an empty answer"
    elif not isinstance(body, dict):
        what = f"JSON {shape_of(body)} instead of the account"
    else:
        what = "a JSON object without the account's id"
    text = (
        f"The answer from {url} was not Zivver's ({what}), so the change is not known to be done."
    )
    if method == "POST":
        text += (
            f" It came with HTTP {status}, so Zivver may have created the account: the next "
            "run reads Zivver and takes an account with this address over instead of creating it "
            "again (look it up in the Zivver WebApp if it does not)."
        )
    else:
        text += " The next run reads Zivver again and sends what is still to do."
    return (
        text + " If this repeats, check the proxy between zsync and Zivver, and that target.url "
        "is Zivver's SCIM base URL."
    )
