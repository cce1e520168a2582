"""Microsoft 365 source: Entra ID users and groups (Graph), Exchange Online shared mailboxes.

A read is three chains of pages run side by side: users, groups (with their members) and,
when ``shared_mailboxes`` is on, Exchange's shared mailboxes with each one's permissions.
The first read (and one at least every ``full_read_days``, after a delta link expired, when
the settings changed, or on request) lists everything and ends with a delta link per kind;
later reads send the links and get only what changed. A full read lists the users in ranges
of addresses side by side (:meth:`Microsoft365Source._all_users`) and the groups through
their delta query. What the directory holds is kept in the store as a mirror next to the
links: the pages as Graph sent them, replayed in order, so a daily run maps the whole
directory while Graph sends it only a few pages. Users without a mail are not kept: they are
never accounts nor delegates.

A read is all or nothing: a page that cannot be read (after the retries) fails the source,
nothing is planned, and neither the mirror nor the links move (they are written in one
transaction after every page has arrived). Mapping is in :mod:`.m365_map`; signing in and
HTTP in :mod:`.microsoft`.

    source = Microsoft365Source(source_config, profile, store=store)
    result = await source.load(emit)
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import string
import time
from collections.abc import Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Config, Microsoft365SourceConfig
from ..errors import SourceError
from ..model import Notice, StepEvent
from . import Emit, SourceResult
from .m365_map import NOT_PEOPLE, SHARED, Options, Person, map_tenant, person
from .microsoft import (
    EXCHANGE,
    GRAPH,
    BadRequest,
    DeltaExpired,
    MicrosoftHttp,
    SignIn,
    origin,
)

if TYPE_CHECKING:
    from ..store import DeltaState, Store

USER_SELECT = (
    "id",
    "mail",
    "displayName",
    "userPrincipalName",
    "accountEnabled",
    "userType",
    "proxyAddresses",
    "onPremisesImmutableId",
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
EXCHANGE_PAGE = 1000
_ID = re.compile(rb'"id"\s*:\s*"([^"\\]+)"')
"""An object's id in a page's bytes (ids hold no quote nor backslash)."""
USER_IDS = "user ids"
"""The mirror's kind of page that holds the ids of its users, one a line (replaced at every
read: what :meth:`Microsoft365Source._verify` compares a full read with)."""
IN_LIMIT = 15
"""Ids per ``id in (…)`` filter."""
WORK_SLICE = 100
"""Users worked out between two looks at the network (about 0.5 ms)."""
CROWDED = 3
"""A first page whose addresses share this many more letters at their start than its span's
ends do is crowded (:func:`_refined`): 999 addresses under three letters are no names."""
MAX_CUTS = 31
"""The most spans a crowded one is cut into, less one."""
FIRST_BOUNDS = ("c", "f", "j", "l", "n", "r", "t")
"""Where a first full read splits the users by mail (later ones split where the last read's
addresses fall)."""


@dataclass(slots=True)
class _Directory:
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
class _Fresh:
    """What this read brought: the pages to keep (in replay order) and the new links."""

    pages: dict[str, list[bytes]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    exchange: tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]] | None = None
    bounds: list[str] | None = None
    """Where the next full read splits the users, when worked out while the last request
    was on its way (:meth:`Microsoft365Source._bounds`)."""


class Microsoft365Source:
    def __init__(
        self,
        source: Microsoft365SourceConfig,
        config: Config,
        *,
        store: Store | None = None,
        full_read: bool = False,
    ) -> None:
        self.config = source
        self.profile = config
        self.name = source.name
        self.store = store
        """Where the mirror and the delta links live; None: read everything, keep nothing
        (``zsync check``)."""
        self.full_read = full_read
        self.requests = 0
        """Graph and Exchange requests the last load sent (the bench reports them)."""
        self.full = True
        """Whether the last load read everything (False: a delta read)."""
        self._notices: list[Notice] = []
        """What the chains had to say, for the result."""

    # --- the read ---------------------------------------------------------------------------

    async def load(self, emit: Emit) -> SourceResult:
        step = f"{self.name}: sign in to {self.config.tenant_id}"
        emit(StepEvent(step, step, "running"))
        try:
            sign_in = SignIn(self.config, self.profile)
            await sign_in.token(GRAPH)
            if self.config.shared_mailboxes:
                await sign_in.token(EXCHANGE)
        except SourceError as error:
            emit(StepEvent(step, step, "failed", detail=str(error)))
            raise
        emit(StepEvent(step, step, "done", 1, 1))
        http = MicrosoftHttp(self.config, sign_in)
        try:
            return await self._load(http, emit)
        finally:
            self.requests = http.requests
            await http.aclose()
            sign_in.close()

    async def _load(self, http: MicrosoftHttp, emit: Emit) -> SourceResult:
        state = self.store.delta_state(self.name) if self.store else None
        why_full = self._why_full(state)
        links = {} if why_full or state is None else dict(state.links)
        hints = state.hints if state is not None else {}
        notices = self._notices = []
        if why_full and state is not None:
            notices.append(Notice("info", f"Source {self.name!r}: full read ({why_full})."))
        stray = sorted({link for link in links.values() if origin(link) != self._graph_origin})
        if stray:
            # kept by an older zsync from an answer that pointed elsewhere: never followed
            notices.append(
                Notice(
                    "warning",
                    f"Source {self.name!r}: the stored delta link leads to "
                    f"{', '.join(str(origin(link) or '?') for link in stray)}, outside graph_url's "
                    f"origin {self._graph_origin}; it is not followed and everything is read "
                    "again.",
                )
            )
            links = {}
        users, groups = _Directory("user"), _Directory("group")
        replayed: tuple[int, int] | None = None
        """Users and groups the mirror held before this read's changes (a delta read)."""
        if links:
            try:
                await self._replay(users, groups)
                replayed = (len(users.objects), len(groups.objects))
            except (ValueError, TypeError, AttributeError) as unreadable:
                # the store's copy is damaged: Graph still has the directory
                notices.append(
                    Notice(
                        "warning",
                        f"Source {self.name!r}: the local mirror in the state directory could "
                        f"not be read ({unreadable}); everything is read again.",
                    )
                )
                links = {}
                replayed = None
                users, groups = _Directory("user"), _Directory("group")
        try:
            fresh = await self._read(http, emit, links, users, groups, hints)
        except DeltaExpired as expired:
            if not links:
                raise
            notices.append(Notice("warning", str(expired)))
            links = {}
            replayed = None
            users, groups = _Directory("user"), _Directory("group")
            fresh = await self._read(http, emit, links, users, groups, hints)
        self.full = not links
        step = f"{self.name}: map accounts"
        emit(StepEvent(step, step, "running"))
        update = None
        if self.store is not None:
            from ..store import DeltaState, MirrorUpdate

            pages, replace = dict(fresh.pages), {"user", "group"} if self.full else set()
            if "user" in pages:  # the users are mirrored: their ids beside them
                pages[USER_IDS], replace = ["\n".join(users.objects).encode()], replace | {USER_IDS}
            update = MirrorUpdate(
                DeltaState(
                    self._settings(),
                    fresh.links,
                    time.time() if self.full or state is None else state.full_read_at,
                    {"user_bounds": self._bounds(users) if fresh.bounds is None else fresh.bounds},
                ),
                pages,
                frozenset(replace),
            )
        mailboxes, permissions = fresh.exchange if fresh.exchange else (None, None)
        # in a thread, as the replay (a third of a second at 100,000 users)
        result = await asyncio.to_thread(
            map_tenant,
            users.objects,
            groups.groups(),
            self._options(),
            mailboxes,
            permissions,
            users.persons,
        )
        if self.store is not None and update is not None:
            shrunk = self._shrunk(len(result.accounts), replayed, users, groups)
            if shrunk:
                notices.append(Notice("warning", shrunk))
            else:
                # in a thread (SQLite lets go of the GIL while it writes): 100,000 users are
                # 30 MB of pages
                await asyncio.to_thread(self.store.save_mirror, self.name, update)
        result.notices[:0] = notices
        emit(StepEvent(step, step, "done", len(result.accounts), len(result.accounts)))
        return result

    @property
    def _graph_origin(self) -> str | None:
        return origin(self.config.graph_url)

    def _shrunk(
        self,
        accounts: int,
        replayed: tuple[int, int] | None,
        users: _Directory,
        groups: _Directory,
    ) -> str | None:
        """Why this read must not move the mirror and the links: it has far fewer accounts
        than the last good run, the very rule by which the session refuses the read
        (``sync.shrink_guard_percent``). Kept as they were, the next run asks Graph for the
        same changes again: a change Graph sent by mistake is not built into the mirror for
        good, and a real drop is seen again until the admin accepts it. None: keep the read."""
        assert self.store is not None
        before = self.store.last_good_counts().get(self.name)
        share = self.profile.sync.shrink_guard_percent
        if not before or (before - accounts) * 100 <= share * before:
            return None
        drop = (before - accounts) * 100 / before
        changes = ""
        if replayed is not None:
            gone_users = replayed[0] - len(users.objects)
            gone_groups = replayed[1] - len(groups.objects)
            changes = (
                f" The changes Graph sent since the last run take {max(gone_users, 0)} users "
                f"with a mailbox and {max(gone_groups, 0)} groups out of the directory."
            )
        return (
            f"Source {self.name!r}: this read has {accounts} accounts against {before} at the "
            f"last good run, {drop:.0f} % fewer (sync.shrink_guard_percent = {share:g}).{changes} "
            "The local mirror and the delta links were left as they were: the next run asks "
            "Graph for the same changes again, and nothing is changed until you decide. Check "
            "the directory (Entra admin center → Users and Groups: were these accounts "
            "deleted, did they lose their mailbox or licence?). If they were not, this read is "
            "wrong: run again later, or with --full-read to read the whole directory anew. If "
            "the drop is intended, run once with sync.shrink_guard_percent raised above "
            f"{drop:.0f} (in the profile, or for this run in the TUI's options), then set it "
            "back."
        )

    def _mirrored_ids(self) -> set[str]:
        """The ids of the mirror's users: kept beside its pages (50 ms at 100,000 users);
        for a mirror written before they were, a scan of its pages' bytes (0.2 s), which
        names removed users too (a look-up at most)."""
        if self.store is None:
            return set()
        kept = self.store.mirror_pages(self.name, USER_IDS)
        if kept:
            return set(kept[0].decode(errors="replace").split("\n")) - {""}
        return {
            found.decode()
            for body in self.store.mirror_pages(self.name, "user")
            for found in _ID.findall(body)
        }

    async def _replay(self, users: _Directory, groups: _Directory) -> None:
        """The mirror: every page kept since the last full read, taken in again in order. In
        a thread: at 100,000 users that is over half a second of decoding, which on the
        event loop would hold the TUI's keys and the reading of Zivver (the store itself is
        read here, in the loop's thread, which its connection belongs to)."""
        assert self.store is not None
        for directory in (users, groups):
            pages = self.store.mirror_pages(self.name, directory.kind)
            await asyncio.to_thread(_take_all, directory, pages)

    async def _read(
        self,
        http: MicrosoftHttp,
        emit: Emit,
        links: dict[str, str],
        users: _Directory,
        groups: _Directory,
        hints: dict[str, Any],
    ) -> _Fresh:
        """The three chains side by side, into ``users`` and ``groups``."""
        fresh = _Fresh()
        mirrored = self.config.user_filter is None

        async def read_users() -> None:
            if not mirrored:
                await self._filtered(http, emit, users)  # read whole, kept nowhere
                return
            pages = fresh.pages["user"] = []
            link = links.get("user")
            if link is None:
                link, before, fresh.bounds = await self._all_users(http, emit, users, pages, hints)
                await self._complete(http, users, pages)
                await self._verify(http, users, pages, before)
            else:
                link = await self._chain(http, emit, "user", link, users, pages)
                await self._complete(http, users, pages)
            fresh.links["user"] = link

        async def read_groups() -> None:
            pages = fresh.pages["group"] = []
            link = await self._chain(http, emit, "group", links.get("group"), groups, pages)
            fresh.links["group"] = link

        async def read_mailboxes() -> None:
            fresh.exchange = await self._mailboxes(http, emit)

        await _all(
            read_users(),
            read_groups() if self._groups_needed else _nothing(),
            read_mailboxes() if self.config.shared_mailboxes else _nothing(),
        )
        return fresh

    @property
    def _groups_needed(self) -> bool:
        return self.config.groups or bool(self.config.scope_group) or self.config.shared_mailboxes

    def _why_full(self, state: DeltaState | None) -> str | None:
        if state is None:
            return "the first read"
        if self.full_read:
            return "asked for"
        if state.settings != self._settings():
            return "the source's settings changed since the last read"
        age = time.time() - state.full_read_at
        if age > self.config.full_read_days * 86400:
            return f"the last full read was {age / 86400:.1f} days ago (full_read_days)"
        return None

    def _settings(self) -> str:
        return json.dumps(
            {
                "users": USER_SELECT,
                "groups": GROUP_SELECT if self._groups_needed else None,
                "filter": self.config.user_filter,
                "graph": self.config.graph_url,
                "tenant": self.config.tenant_id,
            },
            sort_keys=True,
        )

    def _options(self) -> Options:
        c = self.config
        return Options(c.name, c.sso_key, c.users, c.groups, c.microsoft365_groups, c.scope_group)

    def _bounds(self, users: _Directory) -> list[str]:
        """Where the next full read splits the users (by mail) so that each range is a few
        whole pages: ``2 × graph_concurrency`` ranges at most, none for a single page."""
        if self.config.user_filter is not None:
            return []
        mails = sorted(str(u["mail"]).lower() for u in users.objects.values())
        pages = math.ceil(len(mails) / PAGE)
        if pages <= 1:
            return []
        ranges = min(pages, 2 * self.config.graph_concurrency)
        # a little room below whole pages (the directory grows before the next full read),
        # never more ranges than asked for
        size = max(math.ceil(len(mails) / ranges), int(math.ceil(pages / ranges) * PAGE * 0.97))
        return [mails[i] for i in range(size, len(mails), size)]

    # --- the chains -------------------------------------------------------------------------

    async def _all_users(
        self,
        http: MicrosoftHttp,
        emit: Emit,
        users: _Directory,
        pages: list[bytes],
        hints: dict[str, Any],
    ) -> tuple[str, set[str], list[str] | None]:
        """Every user with a mail, in ranges of addresses read side by side; returns the delta
        link to follow from now on, the ids of the users the mirror had (the store still
        holds the last read's: it is written after this one) and where the next full read
        splits them, both found while the last request is on its way (the split from the
        users read by then: it only has to fall near whole pages).

        The link is asked for first (``$deltatoken=latest``: changes are tracked from the
        moment the ranges start) and followed once the ranges are in: whatever changed while
        they were read (a user whose new address moved it into a range already read) comes
        with it. Each range is ``mail le a``, ``mail ge a and mail le b``, …, ``mail ge z``:
        together they hold every address, whatever its letters (a user on a boundary is in
        two and taken once). The ranges are cut where the last read's addresses fell; a first
        read cuts them by a fixed alphabet, and again where a range's first page shows its
        addresses crowded under one start (:func:`_refined`)."""
        url = f"{self.config.graph_url}/v1.0/users"
        select = ",".join(USER_SELECT)
        step = f"{self.name}: read users"
        emit(StepEvent(step, step, "running"))
        try:
            try:
                start = await http.request(
                    "read users (start tracking changes)",
                    f"{url}/delta",
                    scope=GRAPH,
                    params={"$select": select, "$deltatoken": "latest"},
                )
            except BadRequest as refused:
                # a Graph that cannot track from now: the users' delta query, one page after
                # the other, as before ranges
                self._notices.append(Notice("warning", f"{refused} Read through delta instead."))
                emit(StepEvent(step, step, "done", 0, 0))
                whole = await self._chain(http, emit, "user", None, users, pages)
                return whole, self._mirrored_ids(), None
            link = start.get("@odata.deltaLink")
            if not isinstance(link, str):
                raise SourceError(
                    f"Source {self.name!r}: read users: Graph answered $deltatoken=latest "
                    "without an @odata.deltaLink; nothing was changed."
                )
            link = http.follow("read users", "@odata.deltaLink", link, GRAPH)
            learned = [str(b) for b in hints.get("user_bounds") or ()]
            spans = _spans(learned or list(FIRST_BOUNDS))
            options = self._options()
            kept: list[list[bytes]] = []
            """Each span's pages, in the order the spans were started."""

            async def read_range(span: Span, refine: bool) -> None:
                """One span's pages; with ``refine`` (a first read: no last read to cut the
                spans by), a span whose first page is crowded is cut and read as spans of
                its own instead (:func:`_refined`)."""
                params = {"$select": select, "$top": str(PAGE)}
                where = _where(span)
                if where:
                    params["$filter"] = where
                keep: list[bytes] = []
                kept.append(keep)
                cuts: list[str] = []
                async with aclosing(
                    http.pages("read users", url, scope=GRAPH, params=params, keep=keep)
                ) as listed:
                    async for page in listed:
                        users.take_page(page)
                        await users.work_out(page, options)
                        # users on a boundary or listed again by a cut span count once
                        emit(StepEvent(step, step, "running", len(users.objects)))
                        if refine and "@odata.nextLink" in page:
                            mails = [str(u.get("mail") or "") for u in page.get("value", ())]
                            cuts = _refined(mails, span, 2 * self.config.graph_concurrency)
                            if cuts:
                                break  # its next page, already asked for, is cancelled
                        refine = False
                if cuts:
                    await _all(*(read_range(sub, False) for sub in _spans(cuts, *span)))

            try:
                await _all(*(read_range(span, not learned) for span in spans))
            except BadRequest as refused:
                # a Graph that will not list users by ranges of mail: one list of them all
                self._notices.append(
                    Notice("warning", f"{refused} Listed the users in one range instead.")
                )
                kept.clear()
                await read_range((None, None), False)
        except SourceError as error:
            emit(StepEvent(step, step, "failed", detail=str(error)))
            raise
        for keep in kept:
            pages += keep
        seen = len(users.objects)
        emit(StepEvent(step, step, "done", seen, seen))
        catch_up = asyncio.ensure_future(
            self._chain(
                http, emit, "user", link, users, pages, label="changes while the users were read"
            )
        )
        await asyncio.sleep(0)  # its request goes out first
        try:
            before = self._mirrored_ids()
            await asyncio.sleep(0)  # two short holds of the event loop rather than one long
            bounds = self._bounds(users)
        except BaseException:
            catch_up.cancel()
            await asyncio.gather(catch_up, return_exceptions=True)
            raise
        return await catch_up, before, bounds

    async def _filtered(self, http: MicrosoftHttp, emit: Emit, users: _Directory) -> None:
        """The users ``user_filter`` selects (Graph's delta query cannot filter: they are
        listed whole every time)."""
        step = f"{self.name}: read users ({self.config.user_filter})"
        emit(StepEvent(step, step, "running"))
        params = {
            "$select": ",".join(USER_SELECT),
            "$filter": str(self.config.user_filter),
            "$top": str(PAGE),
            "$count": "true",
        }
        seen = 0
        try:
            async for page in http.pages(
                "read users",
                f"{self.config.graph_url}/v1.0/users",
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

    async def _chain(
        self,
        http: MicrosoftHttp,
        emit: Emit,
        kind: str,
        link: str | None,
        into: _Directory,
        pages: list[bytes],
        *,
        label: str | None = None,
    ) -> str:
        """One delta round of ``kind`` (users or groups), everything when ``link`` is None;
        returns the new delta link."""
        plural = f"{kind}s"
        step = f"{self.name}: read {plural}" + (
            f" ({label})" if label else "" if link is None else " (changes)"
        )
        emit(StepEvent(step, step, "running"))
        select = USER_SELECT if kind == "user" else GROUP_SELECT
        url = link or f"{self.config.graph_url}/v1.0/{plural}/delta"
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
                f"Source {self.name!r}: read {plural}: Graph's last page had no @odata.deltaLink; "
                "the read is treated as incomplete and nothing was changed."
            )
            emit(StepEvent(step, step, "failed", detail=message))
            raise SourceError(message)
        emit(StepEvent(step, step, "done", seen, seen))
        return new_link

    async def _complete(self, http: MicrosoftHttp, users: _Directory, pages: list[bytes]) -> None:
        """Users a delta page named without the rest of their properties (Graph may send
        only what changed: a user who just got a mail is new to the mirror), read whole; a
        page of them joins the kept ones. One not found is gone."""
        partial = [i for i, user in users.objects.items() if "userPrincipalName" not in user]
        if not partial:
            return
        found = await self._by_id(http, "read changed users", partial)
        known = {user.get("id") for user in found}
        page = {
            "value": found
            + [{"id": i, "@removed": {"reason": "deleted"}} for i in partial if i not in known]
        }
        pages.append(json.dumps(page, separators=(",", ":")).encode())
        users.take_page(page)

    async def _verify(
        self, http: MicrosoftHttp, users: _Directory, pages: list[bytes], before: set[str]
    ) -> None:
        """After a full read by ranges: every user the mirror had that no range listed is
        looked up by id. Most are gone (deleted, or without a mail now); one that is still
        there with a mail was lost by the split (Graph's address filters did not hold what
        they should): it is taken in, and the admin is told. A split read can so lose no one
        the last read had."""
        missing = sorted(before - users.objects.keys())
        if not missing:
            return
        lost = [u for u in await self._by_id(http, "look up users", missing) if u.get("mail")]
        if not lost:
            return
        page = {"value": lost}
        pages.append(json.dumps(page, separators=(",", ":")).encode())
        users.take_page(page)
        self._notices.append(
            Notice(
                "warning",
                f"Source {self.name!r}: {len(lost)} users with a mailbox were in no range of the "
                "full read by address (Graph's address filters did not hold them); they were read "
                "one by one and are synced. Please report this with Graph's region "
                f"({self.config.graph_url}).",
            )
        )

    async def _by_id(self, http: MicrosoftHttp, what: str, ids: list[str]) -> list[dict[str, Any]]:
        """The users of ``ids`` that exist (``IN_LIMIT`` a request, side by side)."""
        found: list[dict[str, Any]] = []

        async def read(chunk: list[str]) -> None:
            quoted = ",".join(f"'{_quote(i)}'" for i in chunk)
            async for page in http.pages(
                what,
                f"{self.config.graph_url}/v1.0/users",
                scope=GRAPH,
                params={"$select": ",".join(USER_SELECT), "$filter": f"id in ({quoted})"},
            ):
                found.extend(page.get("value", ()))

        await _all(*(read(ids[i : i + IN_LIMIT]) for i in range(0, len(ids), IN_LIMIT)))
        return found

    async def _mailboxes(
        self, http: MicrosoftHttp, emit: Emit
    ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """Exchange's shared, room and equipment mailboxes, and each shared one's permissions."""
        step = f"{self.name}: read shared mailboxes"
        emit(StepEvent(step, step, "running"))
        url = f"{self.config.exchange_url}/adminapi/beta/{self.config.tenant_id}/InvokeCommand"
        prefer = {"Prefer": f"odata.maxpagesize={EXCHANGE_PAGE}"}
        mailboxes: list[dict[str, Any]] = []
        permissions: dict[str, list[dict[str, Any]]] = {}
        try:
            async for page in http.pages(
                "read mailboxes (Get-Mailbox)",
                url,
                scope=EXCHANGE,
                headers=prefer,
                body=_cmdlet(
                    "Get-Mailbox",
                    RecipientTypeDetails=sorted(NOT_PEOPLE - {"SchedulingMailbox"}),
                    ResultSize="Unlimited",
                ),
            ):
                mailboxes += page.get("value", ())
                emit(StepEvent(step, step, "running", len(mailboxes)))
            shared = [m for m in mailboxes if m.get("RecipientTypeDetails") == SHARED]

            async def permissions_of(mailbox: dict[str, Any]) -> None:
                identity = mailbox.get("PrimarySmtpAddress") or mailbox.get(
                    "ExternalDirectoryObjectId"
                )
                found: list[dict[str, Any]] = []
                async for page in http.pages(
                    f"read the permissions of {identity} (Get-MailboxPermission)",
                    url,
                    scope=EXCHANGE,
                    headers=prefer,
                    body=_cmdlet("Get-MailboxPermission", Identity=identity),
                ):
                    found += page.get("value", ())
                permissions[str(mailbox.get("ExternalDirectoryObjectId"))] = found
                emit(StepEvent(step, step, "running", len(permissions), len(shared), "permissions"))

            await _all(*(permissions_of(m) for m in shared))
        except SourceError as error:
            emit(StepEvent(step, step, "failed", detail=str(error)))
            raise
        emit(StepEvent(step, step, "done", len(shared), len(shared)))
        return mailboxes, permissions


@dataclass(frozen=True, slots=True)
class Probe:
    """One thing ``zsync check`` tried, in the order an admin sets them up."""

    what: str
    ok: bool
    message: str


async def probe(source: Microsoft365SourceConfig, config: Config) -> list[Probe]:
    """Sign in, then each permission the source needs, one by one (one small request each):
    what ``zsync check`` shows before it reads the source."""
    found: list[Probe] = []
    try:
        sign_in = SignIn(source, config)
        await sign_in.token(GRAPH)
    except SourceError as error:
        return [Probe("sign in", False, str(error))]
    kind = "certificate" if source.certificate_file else "client secret"
    found.append(Probe("sign in", True, f"app {source.client_id} signed in with its {kind}"))
    http = MicrosoftHttp(source, sign_in)
    try:
        for what, plural, needs in (
            ("Graph users", "users", "User.Read.All"),
            ("Graph groups", "groups", "GroupMember.Read.All"),
        ):
            try:
                await http.request(
                    f"read {plural}",
                    f"{source.graph_url}/v1.0/{plural}/delta",
                    scope=GRAPH,
                    params={"$select": "id", "$deltatoken": "latest"},
                )
                found.append(Probe(what, True, f"{needs} consented"))
            except SourceError as error:
                found.append(Probe(what, False, str(error)))
        if source.shared_mailboxes:
            try:
                await sign_in.token(EXCHANGE)
                await http.request(
                    "read mailboxes (Get-Mailbox)",
                    f"{source.exchange_url}/adminapi/beta/{source.tenant_id}/InvokeCommand",
                    scope=EXCHANGE,
                    headers={"Prefer": "odata.maxpagesize=1"},
                    body=_cmdlet("Get-Mailbox", RecipientTypeDetails=[SHARED], ResultSize=1),
                )
                found.append(
                    Probe(
                        "Exchange Online",
                        True,
                        "Exchange.ManageAsApp consented, an Exchange role assigned",
                    )
                )
            except SourceError as error:
                found.append(Probe("Exchange Online", False, str(error)))
    finally:
        await http.aclose()
        sign_in.close()
    return found


def _take_all(directory: _Directory, pages: list[bytes]) -> None:
    """A kind's pages of the mirror taken in, in order (what
    :meth:`Microsoft365Source._replay` runs in its thread)."""
    for body in pages:
        directory.take_page(json.loads(body))


async def _all(*steps: Any) -> list[Any]:
    """Each step's result, run side by side. When one fails, the others are cancelled (and
    awaited) before its error goes on: nothing keeps reading after the read has failed."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _nothing() -> Any:
    return None


def _cmdlet(name: str, **parameters: Any) -> dict[str, Any]:
    return {"CmdletInput": {"CmdletName": name, "Parameters": parameters}}


def _quote(value: str) -> str:
    """A string as an OData literal's inside (a quote doubled)."""
    return value.replace("'", "''")


Span = tuple[str | None, str | None]
"""A range of addresses: ``mail ge`` its low end and ``mail le`` its high end (None: open)."""


def _spans(bounds: list[str], low: str | None = None, high: str | None = None) -> list[Span]:
    """``low`` to ``high`` cut at ``bounds``: together the spans hold every address in it,
    whatever its letters (each address is ``le`` or ``ge`` any boundary; one on a boundary is
    in two). No bounds: the span itself."""
    inside = sorted({b.lower() for b in bounds if _within(b.lower(), low, high)})
    points = [low, *inside, high]
    return list(zip(points, points[1:], strict=False))


def _within(value: str, low: str | None, high: str | None) -> bool:
    """Whether ``value`` (lower-case) lies strictly between the ends, which Graph compares
    ignoring case."""
    return (low is None or value > low.lower()) and (high is None or value < high.lower())


def _where(span: Span) -> str | None:
    """A span as Graph's ``$filter`` (None: every user)."""
    low, high = span
    clauses = [f"mail ge '{_quote(low)}'"] if low is not None else []
    clauses += [f"mail le '{_quote(high)}'"] if high is not None else []
    return " and ".join(clauses) or None


def _ranges(bounds: list[str]) -> list[str | None]:
    """``$filter``s that split the users at ``bounds`` and together hold every user with a
    mail."""
    return [_where(span) for span in _spans(bounds)]


def _refined(mails: list[str], span: Span, parts: int) -> list[str]:
    """Where to cut a span whose first page listed ``mails`` (as Graph listed them, with more
    to come) when that page shows them crowded under one long start (student numbers,
    ``user000123``): a fixed alphabet splits such addresses into one long chain. [] when
    they are not crowded: the span is read as it is.

    A page in address order is the span's lowest addresses: the rest lies beyond its last
    one, in the blocks of addresses that start beside each of its starts (``user001`` …
    ``user009``, ``user01`` … ``user09``, ``user1`` … ``user9`` after ``user000998``), cut
    there. Any other page is a sample of the span: cut at its quantiles. Either way the cuts
    only choose where the spans meet; every address of the span is still in one of them."""
    listed = [m.lower() for m in mails if m]
    found = sorted(listed)
    if len(found) < 2 or found[0] == found[-1]:
        return []
    start = os.path.commonprefix([found[0], found[-1]])
    low, high = span
    own = os.path.commonprefix([low.lower(), high.lower()]) if low and high else ""
    if len(start) < len(own) + CROWDED:
        return []
    if listed != found:
        cuts = [found[len(found) * i // parts] for i in range(1, parts)]
    else:
        last = found[-1]
        letters = _alphabet(m[len(start)] for m in found if len(m) > len(start))
        cuts = [last]
        for depth in range(len(start) + 1, 0, -1):
            cuts += [last[: depth - 1] + c for c in letters if c > last[depth - 1]]
    inside = sorted({c for c in cuts if _within(c, low, high)})
    if len(inside) > MAX_CUTS:
        inside = [inside[len(inside) * i // MAX_CUTS] for i in range(MAX_CUTS)]
    return inside


def _alphabet(seen: Iterable[str]) -> list[str]:
    """The letters an address may have where ``seen`` were: those, and all the digits or all
    the letters a to z when any of them was seen."""
    letters = set(seen)
    if letters & set(string.digits):
        letters |= set(string.digits)
    if letters & set(string.ascii_lowercase):
        letters |= set(string.ascii_lowercase)
    return sorted(letters)
