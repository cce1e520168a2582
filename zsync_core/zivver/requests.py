"""Every request zsync sends to change Zivver, built from plain data (sans-IO).

``build(change, current, ids)`` turns one planned change, the account as Zivver returned it
and the ids zsync knows into the requests that carry it out: method, path, headers, body.
Nothing here sends; ``apply.py`` sends, checks and journals. scim2-client's
``_prepare_*_request`` functions are the model.

What Zivver does with a write (zivver-wire.md) decides what goes into a body:

- PUT merges at the top level, so a PUT carries what changes plus the core attributes zsync
  knows exactly from what Zivver returned: a user's ``userName``, ``name`` and ``active``, a
  group's ``externalId`` and ``displayName``. Zivver, merging, takes an unchanged value as no
  change; a server with RFC 7644 semantics (PUT replaces) needs them, and without ``active``
  would re-enable a suspended user on a rename. The blocks (enterprise, zivver) are sent only
  when something in them changes.
- A complex attribute that is sent (``name``, the enterprise block, the zivver blocks)
  replaces what Zivver has, so it is rebuilt from what Zivver returned (``ZivverAccount.kept``:
  ``ExternalAccountId`` and any key zsync does not manage) plus the change.
- The user block also holds the write-only ``SsoAccountKey``: sent without it, Zivver erases
  the key. The block is only built when the change says which key Zivver has
  (``Change.sso_key``); otherwise the change is not sendable.
- Members are ids. Members that are no user (other functional accounts, the group itself)
  are sent back unchanged; ids that resolve to no account are left out, since Zivver refuses
  them ("Error creating member: Member Not Found"), and the result says so.
- A PUT with ``members: []`` changes nothing in Zivver: clearing is a PATCH ``remove``.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from ..model import NO_DIVISION, SSO_KEY, Action, Change, Kind, ZivverAccount
from .scim import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    PATCH_OP,
    SCIM_JSON,
    ZIVVER_GROUP,
    ZIVVER_USER,
)

PATCH_HEADERS: Mapping[str, str] = {"Content-Type": SCIM_JSON, "Accept": SCIM_JSON}
"""Zivver answers a PATCH without them with 415 / 406."""

USER_BLOCK_FIELDS = frozenset({"aliases", "delegates", SSO_KEY})


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to Zivver's SCIM API (``path`` is relative to the base URL)."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ids:
    """The Zivver ids a request may refer to."""

    users: Mapping[str, str]
    """User id by address (created and renamed users included)."""
    groups: Set[str] = frozenset()
    """Ids of functional accounts (a group may be a member of another)."""


@dataclass(frozen=True, slots=True)
class Built:
    """The requests that carry out one change, in order, and what the admin should know."""

    requests: tuple[Request, ...]
    notes: tuple[str, ...] = ()


class NotSendable(Exception):
    """The change cannot be sent without losing something; the message says what and why."""


def build(change: Change, current: ZivverAccount | None, ids: Ids) -> Built:
    """The requests for ``change``; ``current`` is the account as Zivver returned it (None
    for a create).

    Raises:
        NotSendable: a delegate has no Zivver id yet, or the user block would have to be sent
            without the SsoAccountKey Zivver has.
    """
    action = change.action
    if action is Action.CREATE_USER:
        return Built((create_user(change),))
    if action is Action.CREATE_FUNCTIONAL:
        members, missing = _user_ids(change.desired.delegates, ids)
        notes = (
            (f"delegates without a Zivver user were left out: {', '.join(missing)}",)
            if missing
            else ()
        )
        return Built((create_group(change, members),), notes)
    if current is None or change.zivver_id is None:
        raise NotSendable(f"{change.email}: zsync has no Zivver account to change")
    if action is Action.DELETE_USER:
        return Built((Request("DELETE", f"/Users/{change.zivver_id}"),))
    if action is Action.DELETE_FUNCTIONAL:
        return Built((Request("DELETE", f"/Groups/{change.zivver_id}"),))
    if current.kind is Kind.PERSONAL:
        return Built((update_user(change, current),))
    return update_group(change, current, ids)


def create_user(change: Change) -> Request:
    """POST /Users: the whole account; Zivver makes a new user active whatever is sent."""
    desired = change.desired
    extension: dict[str, Any] = {
        "aliases": sorted(desired.aliases),
        "delegates": sorted(desired.delegates),
    }
    if change.sso_key:
        extension["SsoAccountKey"] = change.sso_key
    body = {
        "schemas": [CORE_USER, ENTERPRISE_USER, ZIVVER_USER],
        "userName": desired.email,
        "name": {"formatted": desired.display_name or desired.email},
        "active": True,
        ENTERPRISE_USER: {"division": desired.division or NO_DIVISION},
        ZIVVER_USER: extension,
    }
    if desired.phone:
        body["phoneNumbers"] = [{"value": desired.phone}]  # as Zivver stores one: no type
    return Request("POST", "/Users", body)


def create_group(change: Change, member_ids: list[str]) -> Request:
    """POST /Groups: a functional account with its delegates (as user ids) and division."""
    desired = change.desired
    schemas = [CORE_GROUP, ZIVVER_GROUP]
    body: dict[str, Any] = {
        "schemas": schemas,
        "externalId": desired.email,
        "displayName": desired.display_name or desired.email,
        ZIVVER_GROUP: {"aliases": sorted(desired.aliases)},
    }
    if desired.division:
        schemas.append(ENTERPRISE_USER)
        body[ENTERPRISE_USER] = {"division": desired.division}
    if member_ids:
        body["members"] = [{"value": member_id} for member_id in member_ids]
    return Request("POST", "/Groups", body)


def update_user(change: Change, current: ZivverAccount) -> Request:
    """PUT /Users/{id} with what changes; the blocks it sends rebuilt around what Zivver has.

    Raises:
        NotSendable: the user block would be sent without the SsoAccountKey Zivver has.
    """
    desired, fields = change.desired, change.fields
    kept = current.kept or {}
    schemas = [CORE_USER]
    body: dict[str, Any] = {
        "schemas": schemas,
        "userName": desired.email,
        "name": {**kept.get("name", {}), "formatted": desired.display_name or desired.email},
        "active": desired.active,
    }
    if "division" in fields:
        schemas.append(ENTERPRISE_USER)
        body[ENTERPRISE_USER] = {
            **kept.get(ENTERPRISE_USER, {}),
            "division": desired.division or NO_DIVISION,
        }
    if "phone" in fields and desired.phone:
        # the list is replaced whole: the managed (first) number changes, the others stay
        # as they are, with whatever else Zivver holds of them
        numbers = kept.get("phoneNumbers") or [{}]
        others = [n for n in numbers[1:] if isinstance(n, dict) and n.get("value") != desired.phone]
        first = numbers[0] if isinstance(numbers[0], dict) else {}
        body["phoneNumbers"] = [{**first, "value": desired.phone}, *others]
    if fields & USER_BLOCK_FIELDS:
        if change.sso_key is None:
            raise NotSendable(
                f"Not sent: the aliases and delegates of {change.email} travel with its "
                "SsoAccountKey, which zsync does not know; Zivver would erase it. Set "
                "sync.existing_sso_keys in the profile."
            )
        extension: dict[str, Any] = {
            **kept.get(ZIVVER_USER, {}),
            "aliases": sorted(desired.aliases),
            "delegates": sorted(desired.delegates),
        }
        if change.sso_key:
            extension["SsoAccountKey"] = change.sso_key
        schemas.append(ZIVVER_USER)
        body[ZIVVER_USER] = extension
    return Request("PUT", f"/Users/{change.zivver_id}", body)


def update_group(change: Change, current: ZivverAccount, ids: Ids) -> Built:
    """PUT /Groups/{id} for what changes besides the delegates; the delegates in the PUT, or by
    PATCH when only they change or when none are left (Zivver ignores an empty list in a PUT).

    Raises:
        NotSendable: a delegate has no Zivver id yet (sending a shorter list would take access
            away from people who should keep it).
    """
    desired, fields = change.desired, change.fields
    path = f"/Groups/{change.zivver_id}"
    kept = current.kept or {}
    schemas = [CORE_GROUP]
    body: dict[str, Any] = {
        "schemas": schemas,
        "externalId": desired.email,
        "displayName": desired.display_name or current.display_name or desired.email,
    }
    if "aliases" in fields:
        schemas.append(ZIVVER_GROUP)
        body[ZIVVER_GROUP] = {**kept.get(ZIVVER_GROUP, {}), "aliases": sorted(desired.aliases)}
    if "division" in fields:
        schemas.append(ENTERPRISE_USER)
        body[ENTERPRISE_USER] = {
            **kept.get(ENTERPRISE_USER, {}),
            "division": desired.division or NO_DIVISION,
        }
    others = fields - {"delegates"}
    if "delegates" not in fields:
        return Built((Request("PUT", path, body),))
    members, missing = _user_ids(desired.delegates, ids)
    if missing:
        raise NotSendable(
            f"Not sent: delegate(s) {', '.join(missing)} have no Zivver account yet (their own "
            "change failed or was held), so the delegates are left as they are. The next run retries."
        )
    kept_members = [m for m in current.other_members if m in ids.groups or m == current.zivver_id]
    dangling = [m for m in current.other_members if m not in kept_members]
    notes: tuple[str, ...] = ()
    shown_kept = [m for m in kept_members if m != current.zivver_id]
    if shown_kept:
        notes += (f"members that are no user were kept: {', '.join(shown_kept)}",)
    if dangling:
        notes += (
            "members that are no Zivver account were left out (Zivver refuses them): "
            + ", ".join(dangling),
        )
    member_ids = members + kept_members
    if not member_ids:
        clear = _patch(path, {"op": "remove", "path": "members"})
        if others:
            return Built((Request("PUT", path, body), clear), notes)
        return Built((clear,), notes)
    value = [{"value": member_id} for member_id in member_ids]
    if not others:
        return Built((_patch(path, {"op": "replace", "path": "members", "value": value}),), notes)
    body["members"] = value
    return Built((Request("PUT", path, body),), notes)


def _patch(path: str, operation: dict[str, Any]) -> Request:
    return Request("PATCH", path, {"schemas": [PATCH_OP], "Operations": [operation]}, PATCH_HEADERS)


def _user_ids(addresses: frozenset[str], ids: Ids) -> tuple[list[str], list[str]]:
    found: list[str] = []
    missing: list[str] = []
    for address in sorted(addresses):
        user_id = ids.users.get(address)
        if user_id:
            found.append(user_id)
        else:
            missing.append(address)
    return sorted(found), missing
