"""Microsoft 365 source: Entra ID users and groups (Graph), Exchange Online shared mailboxes.

A read is three chains of pages run side by side: users, groups (with their members) and,
when ``shared_mailboxes`` is on, Exchange's shared mailboxes with each one's permissions.
The first read (and one at least every ``full_read_days``, after a delta link expired, when
the settings changed, or on request) lists everything and ends with a delta link per kind;
later reads send the links and get only what changed. A full read lists the users in ranges
of addresses side by side and the groups through their delta query. What the directory
holds is kept in the store as a mirror next to the links, replayed before a delta read's
changes, so a daily run maps the whole directory while Graph sends it only a few pages.

A read is all or nothing: a page that cannot be read (after the retries) fails the source,
nothing is planned, and neither the mirror nor the links move (they are written in one
transaction after every page has arrived).

The rooms, each read in a sitting:

- :mod:`.signin`: MSAL, the credential (secret or certificate), where a token may go;
- :mod:`.http`: Graph's and Exchange's requests, paged, retried and explained;
- :mod:`.graph`: the directory pages build, delta chains, users read by id or by filter;
- :mod:`.ranges`: a full read of the users by ranges of addresses side by side;
- :mod:`.exchange`: shared mailboxes and their permissions;
- :mod:`.mirror`: what is kept between runs;
- :mod:`.map`: users, groups and mailboxes to accounts (pure functions);
- this module: the source itself (which read, the three chains, the mapping, the mirror
  written) and ``zsync check``'s :func:`probe`.

    source = Microsoft365Source(source_config, profile, store=store)
    result = await source.load(emit)
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...config import Config
from ...errors import SourceError
from ...model import Emit, Notice, StepEvent
from .. import SourceResult
from ..m365_config import Microsoft365SourceConfig
from .exchange import cmdlet, invoke_url, mailboxes
from .graph import GROUP_SELECT, PAGE, USER_SELECT, Directory, Reader, chain, complete, filtered
from .http import DeltaExpired, MicrosoftHttp, side_by_side
from .map import SHARED, Options, map_tenant
from .mirror import USER_IDS, Mirror
from .ranges import all_users, next_bounds, verify
from .signin import EXCHANGE, GRAPH, SignIn, origin

if TYPE_CHECKING:
    from ...store import Store
    from .mirror import DeltaState

__all__ = [
    "GROUP_SELECT",
    "PAGE",
    "USER_IDS",
    "USER_SELECT",
    "Microsoft365Source",
    "Probe",
    "probe",
]


@dataclass(slots=True)
class _Fresh:
    """What this read brought: the pages to keep (in replay order) and the new links."""

    pages: dict[str, list[bytes]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    exchange: tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]] | None = None
    bounds: list[str] | None = None
    """Where the next full read splits the users, when worked out while the last request
    was on its way (:func:`.ranges.all_users`)."""


class Microsoft365Source:
    """A Microsoft 365 tenant as a directory source."""

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

    async def load(self, emit: Emit) -> SourceResult:
        """Signs in, reads the tenant (everything, or the changes since the last read) and
        maps it to accounts; the mirror and the links move when the read is complete."""
        step = f"{self.name}: sign in to {self.config.tenant_id}"
        emit(StepEvent(step, step, "running"))
        sign_in = None
        try:
            sign_in = SignIn(self.config, self.profile)
            await sign_in.token(GRAPH)
            if self.config.shared_mailboxes:
                await sign_in.token(EXCHANGE)
        except SourceError as error:
            emit(StepEvent(step, step, "failed", detail=str(error)))
            if sign_in is not None:  # its connection would stay open until the process ends
                sign_in.close()
            raise
        emit(StepEvent(step, step, "done"))  # nothing to count
        http = MicrosoftHttp(self.config, sign_in)
        try:
            return await self._load(Reader(self.config, http, emit, []))
        finally:
            self.requests = http.requests
            await http.aclose()
            sign_in.close()

    async def _load(self, reader: Reader) -> SourceResult:
        mirror = Mirror(self.store, self.name) if self.store is not None else None
        state = mirror.state() if mirror else None
        why_full = self._why_full(state)
        links = {} if why_full or state is None else dict(state.links)
        hints = state.hints if state is not None else {}
        notices = reader.notices
        if why_full and state is not None:
            notices.append(Notice("info", f"Source {self.name!r}: full read ({why_full})."))
        graph_origin = origin(self.config.graph_url)
        stray = sorted({link for link in links.values() if origin(link) != graph_origin})
        if stray:
            # kept by an older zsync from an answer that pointed elsewhere: never followed
            notices.append(
                Notice(
                    "warning",
                    f"Source {self.name!r}: the stored delta link leads to "
                    f"{', '.join(str(origin(link) or '?') for link in stray)}, outside graph_url's "
                    f"origin {graph_origin}; it is not followed and everything is read again.",
                )
            )
            links = {}
        users, groups = Directory("user"), Directory("group")
        replayed: tuple[int, int] | None = None
        """Users and groups the mirror held before this read's changes (a delta read)."""
        if links and mirror is not None:
            try:
                await mirror.replay(users, groups)
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
                users, groups = Directory("user"), Directory("group")
        learned = [str(b) for b in hints.get("user_bounds") or ()]
        try:
            fresh = await self._read(reader, mirror, links, users, groups, learned)
        except DeltaExpired as expired:
            if not links:
                raise
            notices.append(Notice("warning", str(expired)))
            links = {}
            replayed = None
            users, groups = Directory("user"), Directory("group")
            fresh = await self._read(reader, mirror, links, users, groups, learned)
        self.full = not links
        step = f"{self.name}: map accounts"
        reader.emit(StepEvent(step, step, "running"))
        update = None
        if mirror is not None:
            update = mirror.update(
                settings=self._settings(),
                pages=fresh.pages,
                links=fresh.links,
                full=self.full,
                state=state,
                bounds=next_bounds(users, self.config) if fresh.bounds is None else fresh.bounds,
                users=users,
            )
        mailboxes_read, permissions = fresh.exchange if fresh.exchange else (None, None)
        # in a thread, as the replay (a third of a second at 100,000 users)
        result = await asyncio.to_thread(
            map_tenant,
            users.objects,
            groups.groups(),
            self._options(),
            mailboxes_read,
            permissions,
            users.persons,
        )
        if mirror is not None and update is not None:
            shrunk = mirror.shrunk(self.profile, len(result.accounts), replayed, users, groups)
            if shrunk:
                notices.append(Notice("warning", shrunk))
            else:
                await mirror.save(update)
        result.notices[:0] = notices
        reader.emit(StepEvent(step, step, "done", len(result.accounts), len(result.accounts)))
        return result

    async def _read(
        self,
        reader: Reader,
        mirror: Mirror | None,
        links: dict[str, str],
        users: Directory,
        groups: Directory,
        learned: list[str],
    ) -> _Fresh:
        """The three chains side by side, into ``users`` and ``groups``."""
        fresh = _Fresh()

        async def read_users() -> None:
            if self.config.user_filter is not None:
                await filtered(reader, users)  # read whole, kept nowhere
                return
            pages = fresh.pages["user"] = []
            link = links.get("user")
            if link is None:
                link, before, fresh.bounds = await all_users(
                    reader,
                    users,
                    pages,
                    learned,
                    mirror.user_ids if mirror is not None else set,
                    self._options(),
                )
                await complete(reader, users, pages)
                await verify(reader, users, pages, before)
            else:
                link = await chain(reader, "user", link, users, pages)
                await complete(reader, users, pages)
            fresh.links["user"] = link

        async def read_groups() -> None:
            pages = fresh.pages["group"] = []
            link = await chain(reader, "group", links.get("group"), groups, pages)
            fresh.links["group"] = link

        async def read_mailboxes() -> None:
            fresh.exchange = await mailboxes(reader)

        await side_by_side(
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


async def _nothing() -> None:
    return None


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
    sign_in = None
    try:
        sign_in = SignIn(source, config)
        await sign_in.token(GRAPH)
    except SourceError as error:
        if sign_in is not None:
            sign_in.close()
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
                    invoke_url(source),
                    scope=EXCHANGE,
                    headers={"Prefer": "odata.maxpagesize=1"},
                    body=cmdlet("Get-Mailbox", RecipientTypeDetails=[SHARED], ResultSize=1),
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
