"""Graph's users and groups: the directory pages build, delta chains, reads by id and filter.

A page is taken into a :class:`Directory` in the order Graph sent it (the mirror's pages
first, then this read's): a delta page's item carries only what changed, ``@removed`` for a
deletion and, for a group, ``members@delta`` with the members added and removed. A user
without a mail is not kept: it is never an account nor a delegate.

Each read function takes the :class:`Reader` of the read in progress (the source's settings,
its HTTP, where its progress and notices go) and reports its step as it goes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from ...errors import SourceError
from ...model import Emit, Notice, StepEvent
from ..m365_config import Microsoft365SourceConfig
from .http import DeltaExpired, MicrosoftHttp, side_by_side
from .map import Options, Person, person
from .signin import GRAPH

USER_SELECT = (
    "id",
    "mail",
    "displayName",
    "userPrincipalName",
    "accountEnabled",
    "userType",
    "proxyAddresses",
    "onPremisesImmutableId",
    "mobilePhone",
)
GROUP_SELECT = (
    "id",
    "displayName",
    "mail",
    "mailEnabled",
    "groupTypes",
    "proxyAddresses",
    "members",
)
PAGE = 999
"""Graph's largest page (``$top``, ``Prefer: odata.maxpagesize``)."""
IN_LIMIT = 15
"""Ids per ``id in (…)`` filter."""
WORK_SLICE = 100
"""Users worked out between two looks at the network (about 0.5 ms)."""


@dataclass(slots=True)
class Directory:
    """Users or groups as the pages taken so far give them: objects by id, and each group's
    member ids. Pages are taken in the order Graph sent them (the mirror's log first)."""

    kind: str
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    persons: dict[str, Person] = field(default_factory=dict)
    """Users worked out while their pages arrived (:meth:`work_out`); a change drops one."""

    def take_page(self, page: dict[str, Any]) -> int:
        """Takes a page's objects in; returns how many it held."""
        items = page.get("value", ())
        for item in items:
            self.take(item)
        return len(items)

    def take(self, item: dict[str, Any]) -> None:
        """Takes one object (or its change, or its removal) in."""
        object_id = item.get("id")
        if not object_id:
            return
        self.persons.pop(object_id, None)
        if "@removed" in item:
            self.objects.pop(object_id, None)
            self.members.pop(object_id, None)
            return
        changes = item.pop("members@delta", None)
        known = self.objects.get(object_id)
        if known is None:
            known = self.objects[object_id] = item
        else:
            known.update(item)
        if self.kind == "user":
            if not known.get("mail"):
                # no mailbox: never an account nor a delegate, and a full read (which lists
                # users by mail) does not see it either
                del self.objects[object_id]
            return
        if changes:
            members = self.members.setdefault(object_id, set())
            for member in changes:
                member_id = member.get("id")
                if not member_id:
                    continue
                if "@removed" in member:
                    members.discard(member_id)
                else:
                    members.add(member_id)

    async def work_out(self, page: dict[str, Any], options: Options) -> None:
        """The persons a page of users makes, worked out now (while the next pages are on
        their way) instead of all at once after the last: a few at a time, so that pages
        arriving meanwhile are taken off the wire (and their requests' slots freed) without
        waiting for the whole page's mapping."""
        items = page.get("value", ())
        objects, persons = self.objects, self.persons
        for start in range(0, len(items), WORK_SLICE):
            for item in items[start : start + WORK_SLICE]:
                object_id = item.get("id")
                user = objects.get(object_id) if object_id else None
                if user is not None:
                    persons[object_id] = person(object_id, user, options)
            await asyncio.sleep(0)

    def groups(self) -> dict[str, dict[str, Any]]:
        """The groups with their ``members`` as the mapping reads them."""
        for group_id, group in self.objects.items():
            group["members"] = sorted(self.members.get(group_id, ()))
        return self.objects


@dataclass(slots=True)
class Reader:
    """One read's means: the source's settings, its HTTP, where its progress and its
    notices go."""

    config: Microsoft365SourceConfig
    http: MicrosoftHttp
    emit: Emit
    notices: list[Notice]
    """What the chains had to say, for the result."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def users_url(self) -> str:
        return f"{self.config.graph_url}/v1.0/users"


async def chain(
    reader: Reader,
    kind: str,
    link: str | None,
    into: Directory,
    pages: list[bytes],
    *,
    label: str | None = None,
) -> str:
    """One delta round of ``kind`` (users or groups), everything when ``link`` is None;
    returns the new delta link."""
    http, emit = reader.http, reader.emit
    plural = f"{kind}s"
    step = f"{reader.name}: read {plural}" + (
        f" ({label})" if label else "" if link is None else " (changes)"
    )
    emit(StepEvent(step, step, "running"))
    select = USER_SELECT if kind == "user" else GROUP_SELECT
    url = link or f"{reader.config.graph_url}/v1.0/{plural}/delta"
    params = None if link else {"$select": ",".join(select)}
    seen = 0
    new_link: str | None = None
    try:
        async for page in http.pages(
            f"read {plural}",
            url,
            scope=GRAPH,
            params=params,
            headers={"Prefer": f"odata.maxpagesize={PAGE}"},
            keep=pages,
        ):
            if "@odata.deltaLink" in page:  # checked before anything of the page is taken
                new_link = http.follow(
                    f"read {plural}", "@odata.deltaLink", page["@odata.deltaLink"], GRAPH
                )
            seen += into.take_page(page)
            emit(StepEvent(step, step, "running", seen))
    except DeltaExpired:
        raise
    except SourceError as error:
        emit(StepEvent(step, step, "failed", detail=str(error)))
        raise
    if new_link is None:
        message = (
            f"Source {reader.name!r}: read {plural}: Graph's last page had no @odata.deltaLink; "
            "the read is treated as incomplete and nothing was changed."
        )
        emit(StepEvent(step, step, "failed", detail=message))
        raise SourceError(message)
    emit(StepEvent(step, step, "done", seen, seen))
    return new_link


async def complete(reader: Reader, users: Directory, pages: list[bytes]) -> None:
    """Users a delta page named without the rest of their properties (Graph may send only
    what changed: a user who just got a mail is new to the mirror), read whole; a page of
    them joins the kept ones. One not found is gone."""
    partial = [i for i, user in users.objects.items() if "userPrincipalName" not in user]
    if not partial:
        return
    found = await by_id(reader, "read changed users", partial)
    known = {user.get("id") for user in found}
    page = {
        "value": found
        + [{"id": i, "@removed": {"reason": "deleted"}} for i in partial if i not in known]
    }
    pages.append(json.dumps(page, separators=(",", ":")).encode())
    users.take_page(page)


async def by_id(reader: Reader, what: str, ids: list[str]) -> list[dict[str, Any]]:
    """The users of ``ids`` that exist (``IN_LIMIT`` a request, side by side)."""
    found: list[dict[str, Any]] = []

    async def read(chunk: list[str]) -> None:
        quoted = ",".join(f"'{quote(i)}'" for i in chunk)
        async for page in reader.http.pages(
            what,
            reader.users_url,
            scope=GRAPH,
            params={"$select": ",".join(USER_SELECT), "$filter": f"id in ({quoted})"},
        ):
            found.extend(page.get("value", ()))

    await side_by_side(*(read(ids[i : i + IN_LIMIT]) for i in range(0, len(ids), IN_LIMIT)))
    return found


async def filtered(reader: Reader, users: Directory) -> None:
    """The users ``user_filter`` selects (Graph's delta query cannot filter: they are listed
    whole every time, and kept nowhere)."""
    emit = reader.emit
    step = f"{reader.name}: read users ({reader.config.user_filter})"
    emit(StepEvent(step, step, "running"))
    params = {
        "$select": ",".join(USER_SELECT),
        "$filter": str(reader.config.user_filter),
        "$top": str(PAGE),
        "$count": "true",
    }
    seen = 0
    try:
        async for page in reader.http.pages(
            "read users",
            reader.users_url,
            scope=GRAPH,
            params=params,
            headers={"ConsistencyLevel": "eventual"},
        ):
            seen += users.take_page(page)
            emit(StepEvent(step, step, "running", seen))
    except SourceError as error:
        emit(StepEvent(step, step, "failed", detail=str(error)))
        raise
    emit(StepEvent(step, step, "done", seen, seen))


def quote(value: str) -> str:
    """A string as an OData literal's inside (a quote doubled)."""
    return value.replace("'", "''")
