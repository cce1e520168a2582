"""Asking Graph and Exchange Online over httpx: paged reads, retries, explained refusals.

:class:`MicrosoftHttp` sends Graph's and Exchange's requests through the one HTTP engine
(:mod:`zsync_core.http`: ``Retry-After`` on 429/503, back-off on other 5xx and dropped
connections, an expired token renewed once), at most ``graph_concurrency`` /
``exchange_concurrency`` on their way per service, and turns Microsoft's error answers into a
:class:`SourceError` that says what to fix.

An answer is never trusted to say where to go next: a link in it (``@odata.nextLink``,
``@odata.deltaLink``) is followed only within the configured origins (scheme, host and
port), so the bearer token never leaves them. A request is bounded first byte to last
(``timeout_seconds``) and in size (:data:`MAX_PAGE_BYTES`), and a chain of pages that comes
back to a link it followed is a read that cannot end. Each of these ends the read as
incomplete: nothing is changed and nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...errors import SourceError
from ...http import Connections, Engine, Gate, Policy, TooBig, Unanswered
from ..m365_config import Microsoft365SourceConfig
from .signin import EXCHANGE, GRAPH, SignIn, origin

BACKOFF = 1.0
"""Seconds before the first retry of a 5xx or a dropped connection (then doubling)."""
RETRIED = frozenset({429, *range(500, 600)})
"""Throttling (429, and 503 with ``Retry-After``) and every other 5xx: asked again."""
MAX_RETRY_AFTER = 300.0
"""A Retry-After longer than this is an outage, not throttling: the read fails."""
MAX_PAGE_BYTES = 64 * 2**20
"""The most one answer may hold once decoded (64 MiB). A real page is far smaller: 999 users
with the selected properties are about 1 MB (the bench's 100,000 users are 30 MB in 100
pages), a page of 999 groups with their ``members@delta`` or of 1000 mailbox permissions a few
MB. Anything near this is no page Graph or Exchange sends, and reading on would only eat the
server's memory."""

PERMISSIONS_HELP = (
    "In the Entra admin center, App registrations → {app} → API permissions: add Microsoft "
    "Graph → Application permissions → User.Read.All and GroupMember.Read.All, then "
    "'Grant admin consent' (README: 'Microsoft 365: the app registration')."
)
EXCHANGE_PERMISSION_HELP = (
    "Add Office 365 Exchange Online → Application permissions → Exchange.ManageAsApp to the "
    "app registration {app} and grant admin consent (README: 'Microsoft 365: the app "
    "registration'), or set shared_mailboxes = false."
)
EXCHANGE_ROLE_HELP = (
    "Assign an Exchange role to the app {app}: Entra admin center → Roles and admins → "
    "Exchange Recipient Administrator → Add assignments → the app (or a custom Exchange role "
    "group with View-Only Recipients), then wait up to an hour; or set shared_mailboxes = false."
)


class MicrosoftHttp:
    """Paged reads from Graph and Exchange with retries, tokens and explained errors."""

    def __init__(self, source: Microsoft365SourceConfig, sign_in: SignIn) -> None:
        self.source = source
        self.sign_in = sign_in
        self.connections = Connections(source.timeout_seconds, sign_in.context)
        self.origins = {GRAPH: origin(source.graph_url), EXCHANGE: origin(source.exchange_url)}
        """Service → the only origin its requests (and so its token) may go to."""
        policy = Policy(
            max_retries=source.max_retries,
            backoff=BACKOFF,
            timeout=source.timeout_seconds,
            statuses=RETRIED,
            longest_wait=MAX_RETRY_AFTER,
        )
        self._engines = {
            GRAPH: Engine(policy, Gate(source.graph_concurrency), self.connections),
            EXCHANGE: Engine(policy, Gate(source.exchange_concurrency), self.connections),
        }
        """Per service: at most this many requests on their way, more would be throttled."""

    @property
    def requests(self) -> int:
        """Requests sent, retries included."""
        return sum(engine.sent for engine in self._engines.values())

    async def aclose(self) -> None:
        await self.connections.aclose()

    async def pages(
        self,
        what: str,
        url: str,
        *,
        scope: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        keep: list[bytes] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each page of a paged read, following ``@odata.nextLink`` as is to the end;
        ``keep`` gets each page's body as it came (what the mirror stores).

        Raises:
            SourceError: a page could not be read (after the retries), a link leaves the
                service's origin, or the chain comes back to a link it followed: the read
                is incomplete.
        """
        followed = {str(httpx.URL(url, params=params))}
        read = 0

        def next_page(link: object) -> str:
            """The link to the next page, if it may be followed."""
            link = self.follow(what, "@odata.nextLink", link, scope)
            if link in followed:
                raise SourceError(
                    f"Source {self.source.name!r}: {what}: page {read} of {_host(url)} links "
                    f"back to a page already read ({_short(link)}): the pages go round in a "
                    "loop and would never end. The read is incomplete, so nothing was changed "
                    "and nothing was stored; run again later, and if it repeats, report it to "
                    "Microsoft with the time of the run."
                )
            followed.add(link)
            return link

        async def fetch(at: str, first: bool) -> bytes:
            return await self._fetch(
                what, at, scope=scope, params=params if first else None, headers=headers, body=body
            )

        # the next page is asked for as soon as its link is found in this one's last bytes,
        # before this one is decoded: decoding 999 users overlaps the next round trip
        pending: asyncio.Future[bytes] | None = asyncio.ensure_future(fetch(url, True))
        try:
            while pending is not None:
                content = await pending
                pending = None
                read += 1
                ahead = _next_link(content)
                if ahead is not None:
                    pending = asyncio.ensure_future(fetch(next_page(ahead), False))
                    await asyncio.sleep(0)  # let it send before this page is decoded
                page = self._decode(what, url, content)
                following = page.get("@odata.nextLink")
                if following != ahead:  # not where it was looked for: follow what was decoded
                    if pending is not None:
                        pending.cancel()
                    pending = None
                    if following is not None:
                        pending = asyncio.ensure_future(fetch(next_page(following), False))
                if keep is not None:
                    keep.append(content)
                yield page
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)

    async def request(
        self,
        what: str,
        url: str,
        *,
        scope: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One request's JSON answer (retried as :meth:`_fetch` says)."""
        content = await self._fetch(
            what, url, scope=scope, params=params, headers=headers, body=body
        )
        return self._decode(what, url, content)

    def follow(self, what: str, name: str, link: object, scope: str) -> str:
        """``link`` (an answer's ``name``, e.g. ``@odata.deltaLink``) if zsync may follow it
        with the token of ``scope``: an absolute URL at that service's configured origin.

        Raises:
            SourceError: anything else; the read is incomplete (the link is neither followed
                nor kept, so no token reaches another host and no stored link leads there).
        """
        expected = self.origins[scope]
        found = origin(link) if isinstance(link, str) else None
        if found is not None and found == expected:
            assert isinstance(link, str)
            return link
        key = "graph_url" if scope == GRAPH else "exchange_url"
        shown = found or (f"{link[:80]!r}" if isinstance(link, str) else type(link).__name__)
        raise SourceError(
            f"Source {self.source.name!r}: {what}: the answer's {name} leads to {shown}, "
            f"outside the configured origin {expected} ({key}). zsync did not follow it and "
            "sent it no token; the read is incomplete, so nothing was changed and nothing was "
            f"stored. Check {key} (the cloud the tenant lives in) and whether a proxy between "
            "this server and Microsoft rewrites the answers, then run again."
        )

    def _decode(self, what: str, url: str, content: bytes) -> dict[str, Any]:
        try:
            page = json.loads(content)
        except ValueError:
            page = None
        if not isinstance(page, dict):
            raise SourceError(
                f"Source {self.source.name!r}: {what}: {_host(url)} answered 200 with "
                "something that is not a JSON object; nothing was changed."
            )
        return page

    async def _fetch(
        self,
        what: str,
        url: str,
        *,
        scope: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> bytes:
        """One request's body, sent through the engine with the token of ``scope`` (renewed
        once when the service says it expired); every refusal explained.

        Raises:
            DeltaExpired: the service no longer knows the delta link (410).
            BadRequest: the service refused the request as such (400).
            SourceError: no answer, or any other refusal, after the retries.
        """
        self.follow(what, "URL", url, scope)  # never a token outside the service's origin

        async def authorize(renew: bool) -> dict[str, str]:
            return {"Authorization": f"Bearer {await self.sign_in.token(scope, renew=renew)}"}

        name, limit = self.source.name, self.source.timeout_seconds
        try:
            answer = await self._engines[scope].send(
                "GET" if body is None else "POST",
                url,
                limit=MAX_PAGE_BYTES,
                params=params,
                headers={"Accept": "application/json", **(headers or {})},
                json=body,
                authorize=authorize,
                expired=_expired,
            )
        except TooBig:
            raise SourceError(
                f"Source {name!r}: {what}: {_host(url)} sent an answer of more than "
                f"{MAX_PAGE_BYTES // 2**20} MiB, far more than any page of Graph or Exchange "
                "holds; it was not read. The read is incomplete, so nothing was changed; check "
                "whether a proxy between this server and Microsoft alters the answers, then run "
                "again."
            ) from None
        except Unanswered as error:
            if error.certificate:
                raise SourceError(
                    f"Source {name!r}: {what}: the TLS certificate of {_host(url)} could not be "
                    f"verified ({error.error}). Behind a TLS-inspecting proxy, set ca_file to its "
                    "CA bundle; nothing was changed."
                ) from None
            if error.timed_out:
                raise SourceError(
                    f"Source {name!r}: {what}: {_host(url)} did not send its whole answer within "
                    f"timeout_seconds = {limit:g} s (first byte to last), {error.attempts} "
                    "attempts. The read is incomplete, so nothing was changed; check the network "
                    "and any proxy, or raise timeout_seconds if the service is only slow."
                ) from None
            raise SourceError(
                f"Source {name!r}: {what}: no answer from {_host(url)} after {error.attempts} "
                f"attempts ({error.error!r}). Check the network, any proxy and ca_file; nothing "
                "was changed."
            ) from None
        response, content = answer.response, answer.content
        assert response is not None
        status = response.status_code
        if status == 200:
            return content
        said = _error_of(response, content)
        if status == 410:
            raise DeltaExpired(
                f"Source {name!r}: {what}: the delta link has expired ({said.code or status}); "
                "everything is read again."
            )
        if status in RETRIED:
            raise SourceError(
                f"Source {name!r}: {what}: {_host(url)} answered {status} {said.code or ''} "
                f"{said.message!r} after {answer.attempts} attempts; the read is incomplete, so "
                "nothing was changed. Run again later."
            )
        refusal = BadRequest if status == 400 else SourceError
        raise refusal(self.explain(what, url, status, said))

    def explain(self, what: str, url: str, status: int, error: _Error) -> str:
        app = self.source.client_id
        head = f"Source {self.source.name!r}: {what}: {_host(url)} answered {status}"
        said = f"{error.code}: {error.message}" if error.code else error.message
        exchange = "/adminapi/" in url
        if exchange and status == 401:
            return f"{head} ({said}). {EXCHANGE_PERMISSION_HELP.format(app=app)}"
        if exchange and status == 403:
            return f"{head} ({said}). {EXCHANGE_ROLE_HELP.format(app=app)}"
        if status == 403 or error.code == "Authorization_RequestDenied":
            return (
                f"{head} ({said}): the app lacks a permission. {PERMISSIONS_HELP.format(app=app)}"
            )
        if status == 401:
            return f"{head} ({said}). Check tenant_id, and that graph_url is the cloud the app lives in."
        if status == 400 and "filter" in error.message.lower() and self.source.user_filter:
            return f"{head} ({said}). Check user_filter."
        return f"{head} ({said}). Nothing was changed."


class DeltaExpired(SourceError):
    """Graph no longer knows a delta link (410): the source reads everything instead."""


class BadRequest(SourceError):
    """The service refused the request as such (400): asking again will not help."""


@dataclass(frozen=True, slots=True)
class _Error:
    code: str
    message: str


def _expired(response: httpx.Response, content: bytes) -> bool:
    """Whether the service refused the token because it expired (a new one may do)."""
    return response.status_code == 401 and "expired" in _error_of(response, content).message.lower()


def _error_of(response: httpx.Response, content: bytes) -> _Error:
    """Graph's ``{"error": {"code", "message"}}``, or the text Exchange or a proxy sent."""
    try:
        data = json.loads(content)
    except ValueError:
        text = content.decode(response.charset_encoding or "utf-8", errors="replace")
        return _Error("", text.strip()[:300] or response.reason_phrase)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return _Error(str(error.get("code") or ""), str(error.get("message") or "").strip())
    return _Error("", json.dumps(data)[:300])


_NEXT_LINK = re.compile(rb'"@odata\.nextLink"\s*:\s*("(?:[^"\\]|\\.)*")')


def _next_link(content: bytes) -> str | None:
    """The ``@odata.nextLink`` of a page, found in its last bytes (where Graph and Exchange
    put it) without decoding the page; None when not there."""
    found = _NEXT_LINK.search(content, max(0, len(content) - 4096))
    if found is None:
        return None
    link = json.loads(found.group(1))
    return link if isinstance(link, str) else None


def _short(url: str) -> str:
    """A link as a message shows it: its origin and path (its query is a long opaque token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def side_by_side(*steps: Awaitable[Any]) -> list[Any]:
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
