"""Microsoft 365 source: Entra ID users and groups (Graph), Exchange Online shared mailboxes.

A read is three chains of pages run side by side: users, groups (with their members) and,
when ``shared_mailboxes`` is on, Exchange's shared mailboxes with each one's permissions.
Users and groups are read through Graph's delta query. The first read (and one at least
every ``full_read_days``, after a delta link expired, when the settings changed, or on
request) lists everything and ends with a delta link per kind; later reads send the links
and get only what changed. What the directory holds is kept in the store as a mirror next to
the links, so a daily run maps the whole directory while Graph sends it only a few pages.

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
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Config, Microsoft365SourceConfig
from ..errors import SourceError
from ..model import Notice, StepEvent
from . import Emit, SourceResult
from .m365_map import NOT_PEOPLE, SHARED, Options, map_tenant
from .microsoft import EXCHANGE_SCOPE, GRAPH_SCOPE, DeltaExpired, MicrosoftHttp, SignIn

if TYPE_CHECKING:
    from ..store import DeltaState, MirrorUpdate, Store

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


@dataclass(slots=True)
class _Read:
    """What one chain of delta pages brought: objects by id (None: removed) and the new link."""

    objects: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    added: dict[str, set[str]] = field(default_factory=dict)
    """Group id → members added (initial read: all its members)."""
    dropped: dict[str, set[str]] = field(default_factory=dict)
    link: str | None = None
    full: bool = True


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

    # --- the read ---------------------------------------------------------------------------

    async def load(self, emit: Emit) -> SourceResult:
        step = f"{self.name}: sign in to {self.config.tenant_id}"
        emit(StepEvent(step, step, "running"))
        try:
            sign_in = SignIn(self.config, self.profile)
            await sign_in.token(GRAPH_SCOPE)
            if self.config.shared_mailboxes:
                await sign_in.token(EXCHANGE_SCOPE)
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
        notices: list[Notice] = []
        if why_full and state is not None:
            notices.append(Notice("info", f"Source {self.name!r}: full read ({why_full})."))

        def read(links: dict[str, str]) -> Any:
            return _all(
                self._users(http, emit, links.get("user")),
                self._chain(http, emit, "group", links.get("group"))
                if self._groups_needed
                else _nothing(),
                self._mailboxes(http, emit) if self.config.shared_mailboxes else _nothing(),
            )

        try:
            users, groups, exchange = await read(links)
        except DeltaExpired as expired:
            if not links:
                raise
            notices.append(Notice("warning", str(expired)))
            links = {}
            users, groups, exchange = await read(links)
        self.full = not links
        users, groups = users or _Read(), groups or _Read()
        step = f"{self.name}: map accounts"
        emit(StepEvent(step, step, "running"))
        mirror_users = self._merge("user", users)
        mirror_groups = self._merge("group", groups)
        mailboxes, permissions = exchange if exchange else (None, None)
        result = map_tenant(mirror_users, mirror_groups, self._options(), mailboxes, permissions)
        result.notices[:0] = notices
        if self.store is not None:
            self.store.save_mirror(
                self.name, self._update(state, users, groups, mirror_users, mirror_groups)
            )
        emit(StepEvent(step, step, "done", len(result.accounts), len(result.accounts)))
        return result

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

    # --- the chains -------------------------------------------------------------------------

    async def _users(self, http: MicrosoftHttp, emit: Emit, link: str | None) -> _Read:
        """Every user, also when only groups or mailboxes are read: their members and
        delegates are users."""
        if self.config.user_filter is None:
            return await self._chain(http, emit, "user", link)
        # Graph's delta query cannot filter: a filtered read lists the users whole every time
        step = f"{self.name}: read users ({self.config.user_filter})"
        read = _Read()
        emit(StepEvent(step, step, "running"))
        params = {
            "$select": ",".join(USER_SELECT),
            "$filter": self.config.user_filter,
            "$top": str(PAGE),
            "$count": "true",
        }
        try:
            async for page in http.pages(
                "read users",
                f"{self.config.graph_url}/v1.0/users",
                scope=GRAPH_SCOPE,
                params=params,
                headers={"ConsistencyLevel": "eventual"},
            ):
                for item in page.get("value", ()):
                    read.objects[item["id"]] = item
                emit(StepEvent(step, step, "running", len(read.objects)))
        except SourceError as error:
            emit(StepEvent(step, step, "failed", detail=str(error)))
            raise
        emit(StepEvent(step, step, "done", len(read.objects), len(read.objects)))
        return read

    async def _chain(self, http: MicrosoftHttp, emit: Emit, kind: str, link: str | None) -> _Read:
        """One delta round of ``kind`` (users or groups): everything when ``link`` is None."""
        plural = f"{kind}s"
        step = f"{self.name}: read {plural}" + ("" if link is None else " (changes)")
        read = _Read(full=link is None)
        emit(StepEvent(step, step, "running"))
        select = USER_SELECT if kind == "user" else GROUP_SELECT
        url = link or f"{self.config.graph_url}/v1.0/{plural}/delta"
        params = None if link else {"$select": ",".join(select)}
        seen = 0
        try:
            async for page in http.pages(
                f"read {plural}",
                url,
                scope=GRAPH_SCOPE,
                params=params,
                headers={"Prefer": f"odata.maxpagesize={PAGE}"},
            ):
                for item in page.get("value", ()):
                    seen += 1
                    self._take(read, item)
                if "@odata.deltaLink" in page:
                    read.link = page["@odata.deltaLink"]
                emit(StepEvent(step, step, "running", seen))
        except DeltaExpired:
            raise
        except SourceError as error:
            emit(StepEvent(step, step, "failed", detail=str(error)))
            raise
        if read.link is None:
            message = (
                f"Source {self.name!r}: read {plural}: Graph's last page had no @odata.deltaLink; "
                "the read is treated as incomplete and nothing was changed."
            )
            emit(StepEvent(step, step, "failed", detail=message))
            raise SourceError(message)
        emit(StepEvent(step, step, "done", seen, seen))
        return read

    @staticmethod
    def _take(read: _Read, item: dict[str, Any]) -> None:
        object_id = item.get("id")
        if not object_id:
            return
        if "@removed" in item:
            read.objects[object_id] = None
            read.added.pop(object_id, None)
            read.dropped.pop(object_id, None)
            return
        members = item.pop("members@delta", None)
        known = read.objects.get(object_id)
        read.objects[object_id] = {**known, **item} if known else item
        for member in members or ():
            member_id = member.get("id")
            if not member_id:
                continue
            if "@removed" in member:
                read.dropped.setdefault(object_id, set()).add(member_id)
                read.added.get(object_id, set()).discard(member_id)
            else:
                read.added.setdefault(object_id, set()).add(member_id)
                read.dropped.get(object_id, set()).discard(member_id)

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
                scope=EXCHANGE_SCOPE,
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
            gate = asyncio.Semaphore(self.config.exchange_concurrency)

            async def permissions_of(mailbox: dict[str, Any]) -> None:
                identity = mailbox.get("PrimarySmtpAddress") or mailbox.get(
                    "ExternalDirectoryObjectId"
                )
                found: list[dict[str, Any]] = []
                async with gate:
                    async for page in http.pages(
                        f"read the permissions of {identity} (Get-MailboxPermission)",
                        url,
                        scope=EXCHANGE_SCOPE,
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

    # --- the mirror -------------------------------------------------------------------------

    def _merge(self, kind: str, read: _Read) -> dict[str, dict[str, Any]]:
        """The directory's ``kind`` objects now: the mirror with the read's changes applied
        (a full read replaces it)."""
        if read.full or self.store is None:
            mirror: dict[str, dict[str, Any]] = {}
        else:
            mirror = self.store.mirror(self.name, kind)
        for object_id, item in read.objects.items():
            if item is None:
                mirror.pop(object_id, None)
                continue
            known = mirror.get(object_id)
            mirror[object_id] = {**known, **item} if known else dict(item)
        if kind == "group":
            for group_id in set(read.added) | set(read.dropped):
                group = mirror.get(group_id)
                if group is None:
                    continue
                members = set(group.get("members", ())) if not read.full else set()
                members |= read.added.get(group_id, set())
                members -= read.dropped.get(group_id, set())
                group["members"] = sorted(members)
            for group in mirror.values():
                group.setdefault("members", [])
        return mirror

    def _update(
        self,
        state: DeltaState | None,
        users: _Read,
        groups: _Read,
        mirror_users: dict[str, dict[str, Any]],
        mirror_groups: dict[str, dict[str, Any]],
    ) -> MirrorUpdate:
        """What the store keeps of this read: the objects it touched as they are now, and
        the new links (the time of the full read moves only with a full read)."""
        from ..store import DeltaState, MirrorUpdate

        links = {}
        if users.link:
            links["user"] = users.link
        if groups.link:
            links["group"] = groups.link
        upserts: dict[str, dict[str, dict[str, Any]]] = {}
        removed: dict[str, set[str]] = {}
        for kind, read, mirror in (("user", users, mirror_users), ("group", groups, mirror_groups)):
            if kind == "user" and self.config.user_filter is not None:
                continue  # read whole each time: nothing to keep
            if read.full:
                upserts[kind] = mirror
                continue
            touched = {*read.objects, *read.added, *read.dropped}
            upserts[kind] = {i: mirror[i] for i in touched if i in mirror}
            removed[kind] = {i for i in touched if i not in mirror}
        return MirrorUpdate(
            DeltaState(
                self._settings(),
                links,
                time.time() if self.full or state is None else state.full_read_at,
            ),
            upserts,
            removed,
            frozenset(kind for kind, read in (("user", users), ("group", groups)) if read.full),
        )


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
        await sign_in.token(GRAPH_SCOPE)
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
                    scope=GRAPH_SCOPE,
                    params={"$select": "id", "$deltatoken": "latest"},
                )
                found.append(Probe(what, True, f"{needs} consented"))
            except SourceError as error:
                found.append(Probe(what, False, str(error)))
        if source.shared_mailboxes:
            try:
                await sign_in.token(EXCHANGE_SCOPE)
                await http.request(
                    "read mailboxes (Get-Mailbox)",
                    f"{source.exchange_url}/adminapi/beta/{source.tenant_id}/InvokeCommand",
                    scope=EXCHANGE_SCOPE,
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
