"""The thin async I/O layer to Zivver's SCIM API, on an injected ``httpx.AsyncClient``.

Paces itself to Zivver's rate limit (a sliding window, default 50 requests / 10 s) and
sends through the one HTTP engine (:mod:`zsync_core.http`), which retries 429 / 5xx /
time-outs / dropped connections with back-off honouring ``Retry-After``; before re-sending
a create whose answer was lost it looks the account up, so a retry never creates a duplicate.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ..errors import TargetError
from ..http import Connections, Engine, Policy, TooBig, Unanswered, retry_after
from ..model import ZivverAccount
from ..output import inert
from . import scim
from .requests import Request

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


T = TypeVar("T")


class Pacer:
    """Admit at most ``budget`` requests in any ``window`` seconds (a sliding window).

    A request holds its place from admission until its answer has come back, and only then
    starts its ``window``. Zivver counts a request when it arrives, which is somewhere in
    between, so however long a request takes on the way, Zivver never sees more than
    ``budget`` in one window (a 429 costs a retry and the admitted rate).
    """

    def __init__(self, budget: int, window: float, margin: float = 0.05) -> None:
        self.limit = budget
        """The configured budget; :attr:`budget` is what is used now (lower after a 429)."""
        self.budget = budget
        self.window = window + margin
        self._changed_at = 0.0
        self.finished: deque[float] = deque()
        """When the answers of the last requests came back (in order)."""
        self.in_flight = 0
        self.paused_until = 0.0
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def wait(self) -> None:
        """Wait for a place; every ``wait`` must be followed by one :meth:`release`."""
        loop = asyncio.get_running_loop()  # a session may span event loops (asyncio.run twice)
        lock = self._locks.get(loop)
        if lock is None:
            self._locks = {loop: (lock := asyncio.Lock())}
        async with lock:
            while True:
                now = time.monotonic()
                if now < self.paused_until:
                    await asyncio.sleep(self.paused_until - now)
                    continue
                while self.finished and now - self.finished[0] >= self.window:
                    self.finished.popleft()
                if self.in_flight + len(self.finished) < self.budget:
                    self.in_flight += 1
                    return
                if self.finished:
                    await asyncio.sleep(self.finished[0] + self.window - now)
                else:  # every place is taken by a request still on its way
                    await asyncio.sleep(0.005)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """A place for one request, from admission until its answer has come back."""
        await self.wait()
        try:
            yield
        finally:
            self.release()

    def throttled(self, seconds: float) -> float:
        """A 429: every request waits (:meth:`pause`), so this one needs no wait of its own."""
        self.pause(seconds)
        return 0.0

    def release(self) -> None:
        self.in_flight -= 1
        now = time.monotonic()
        self.finished.append(now)
        if self.budget < self.limit and now - self._changed_at >= self.window:
            self.budget += max(1, self.limit // 10)  # a window without a 429: speed up again
            self.budget = min(self.budget, self.limit)
            self._changed_at = now

    def pause(self, seconds: float) -> None:
        """Zivver said 429: nobody sends until ``seconds`` have passed, and then slower.

        The budget is the organization's, shared by every client of its API key, so a 429
        despite the pace means someone else spends it: zsync halves its own share, and wins it
        back a little every window without a 429.
        """
        now = time.monotonic()
        self.paused_until = max(self.paused_until, now + seconds)
        if now - self._changed_at >= min(seconds, self.window) or self.budget == self.limit:
            self.budget = max(1, self.budget // 2)
        self._changed_at = now


@dataclass(slots=True)
class RequestResult:
    """What happened to one request (after retries)."""

    ok: bool
    status: int | None
    request: dict[str, Any]
    response: dict[str, Any] | None
    attempts: int
    error: str | None = None
    body: Any = None


class ZivverClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        rate_limit_requests: int = 50,
        rate_limit_window_seconds: float = 10.0,
        max_retries: int = 5,
        timeout_seconds: float = 30.0,
        verify: bool | str | ssl.SSLContext = True,
        backoff_seconds: float = 0.5,
        pacer: Pacer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout_seconds
        if isinstance(verify, str):  # a CA bundle
            verify = ssl.create_default_context(cafile=verify)
        elif verify is True:  # made once: every connection shares it (each reads the CA store)
            verify = httpx.create_ssl_context(verify=True)
        self._connections = Connections(timeout_seconds, verify, shared=http)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/scim+json, application/json",
        }
        self.pacer = pacer or Pacer(rate_limit_requests, rate_limit_window_seconds)
        self.engine = Engine(
            Policy(
                max_retries=max_retries,
                backoff=backoff_seconds,
                timeout=timeout_seconds,
                statuses=RETRY_STATUSES,
                wait_headers=RETRY_HEADERS,
            ),
            self.pacer,
            self._connections,
        )
        self.unreadable: dict[str, str] = {}
        """Accounts of the last :meth:`read_organization` that Zivver answered in a shape
        that cannot be read whole: their id and what is wrong."""
        self.unaddressed: list[str] = []
        """Accounts whose address is no address zsync can use (never touched), described."""

    @property
    def requests_sent(self) -> int:
        return self.engine.sent

    @property
    def rate_limited(self) -> int:
        return self.engine.throttled

    async def aclose(self) -> None:
        await self._connections.aclose()

    async def send(
        self,
        request: Request,
        *,
        params: Mapping[str, Any] | None = None,
        before_retry: Callable[[], Awaitable[RequestResult | None]] | None = None,
        raw_body: bool = False,
    ) -> RequestResult:
        """Send one request through the engine; never raises for HTTP errors.

        ``before_retry`` runs before a retry that follows a lost answer; if it returns a
        RequestResult (the create did happen), that is the result. With ``raw_body`` a successful
        answer's body is left as bytes (for :func:`scim.read_list`) and not kept in ``response``.
        """
        method, body = request.method, request.body
        url = f"{self.base_url}{request.path}"
        journal = {"method": method, "url": url, "body": body}
        try:
            answer = await self.engine.send(
                method,
                url,
                limit=MAX_LIST_BYTES if raw_body else MAX_ANSWER_BYTES,
                params=params,
                headers={**self._headers, **request.headers},
                json=body,
                before_retry=before_retry,
            )
        except TooBig as error:
            return RequestResult(False, error.status, journal, None, 1, _too_big(method, error))
        except Unanswered as error:
            if error.certificate:  # retrying cannot help
                said = _certificate_text(self.base_url, error.error)
                return RequestResult(False, None, journal, None, error.attempts, said)
            if error.timed_out:
                said = (
                    f"{url} sent no complete answer within target.timeout_seconds = "
                    f"{self._timeout:g} s"
                )
            else:
                said = error.said()
            explained = scim.explain(None, said, error.attempts)
            return RequestResult(False, None, journal, None, error.attempts, explained)
        if answer.found is not None:
            found: RequestResult = answer.found
            found.attempts = answer.attempts
            found.request = journal
            return found
        assert answer.response is not None
        listing = url if method == "GET" and request.path in COLLECTIONS else None
        return _outcome(
            journal, answer.response, answer.content, answer.attempts, raw_body, listing
        )

    # --- reading the organization --------------------------------------------------------------

    async def list_resources(
        self,
        kind: str,
        parse: Callable[[dict[str, Any]], T | None],
        on_page: Callable[[int, int | None], None] | None = None,
    ) -> list[T]:
        """Every User or Group, parsed one by one.

        Zivver answers the first request, sent without paging parameters (as Zivver's own
        Cloud Sync does), with every account. A server that pages is asked for the next page
        until ``totalResults`` are in. Resources are de-duplicated by id, so a server that
        ignores ``startIndex`` neither duplicates accounts nor loops; a page that brings
        nothing new before the total is reached is an incomplete read.

        Raises:
            TargetError: Zivver is unreachable, refuses the key, answers nonsense, or its list
                stops short of its own ``totalResults``.
        """
        items: list[T] = []
        ids: set[str] = set()
        params: dict[str, Any] | None = None
        url = f"{self.base_url}/{kind}"
        halves = [False]
        """Whether this page holds an escaped surrogate (almost never: then each is looked at)."""

        def each(resource: Any) -> None:
            if not isinstance(resource, dict):
                raise scim.Unreadable(f"an item of Resources is {scim.shape_of(resource)}")
            resource_id = resource.get("id")
            if str(resource_id) in ids:
                return
            parsed = parse(resource)
            ids.add(str(resource_id))
            if parsed is not None:
                items.append(parsed)
                if halves[0] and scim.holds_a_lone_surrogate(resource):
                    # no encoding can send it back: a write that keeps it would fail
                    what = "user" if kind == "Users" else "functional account"
                    address = getattr(parsed, "email", "?")
                    self.unreadable[str(resource_id)] = (
                        f"{what} {address} (id {inert(str(resource_id)[:80])}): a text in it "
                        "holds half of a UTF-16 pair, which no write can send back"
                    )

        while True:
            known = len(ids)
            outcome = await self.send(Request("GET", f"/{kind}"), params=params, raw_body=True)
            if not outcome.ok:
                raise TargetError(f"Reading {kind} from Zivver at {url} failed: {outcome.error}")
            try:  # in a thread: 100,000 accounts are a second of decoding, which on the
                # event loop would hold the TUI's keys and the sources read meanwhile
                if not outcome.body:
                    raise scim.Unreadable("the answer was empty")
                halves[0] = scim.escapes_a_lone_surrogate(outcome.body)
                data = await asyncio.to_thread(scim.read_list, outcome.body, each)
                page = data.get("Resources")
                total = data.get("totalResults")
                if type(total) is not int:
                    raise scim.Unreadable(
                        f"totalResults is {scim.shape_of(total)}, so zsync cannot tell whether "
                        "the list is complete"
                    )
                if type(page) is not int and not (page is None and total == 0):
                    raise scim.Unreadable(
                        "Resources is missing" if page is None else "Resources is not a list"
                    )
            except scim.Unreadable as error:
                raise TargetError(_unreadable_text(url, str(error))) from error
            except (ValueError, IndexError, RecursionError) as error:
                raise TargetError(
                    _unreadable_text(url, f"it is not a SCIM list in JSON ({error})")
                ) from error
            if on_page:
                on_page(len(ids), total)
            if len(ids) >= total:
                return items
            if len(ids) == known:
                raise TargetError(
                    f"Reading {kind} from {self.base_url}: the list stopped at {len(ids)} of the "
                    f"{total} accounts it announced (a page brought nothing new), so the read is "
                    "incomplete and nothing is suspended. Try again later; if it repeats, tell "
                    "Zivver support."
                )
            params = {"startIndex": len(ids) + 1, "count": 1000}

    async def read_organization(
        self, on_page: Callable[[str, int, int | None], None] | None = None
    ) -> tuple[list[ZivverAccount], dict[str, str]]:
        """All accounts (users and functional accounts) and the user ids by address.

        Accounts Zivver answered in a shape that cannot be read whole are among them, and in
        :attr:`unreadable` (id: what is wrong): nothing may be written to them this run.

        Raises:
            TargetError: as :meth:`list_resources` says.
        """
        unreadable: dict[str, str] = {}
        self.unreadable = unreadable
        unaddressed: list[str] = []
        self.unaddressed = unaddressed

        def noted(resource: dict[str, Any], account: ZivverAccount | None, key: str) -> Any:
            if account is None:  # never touched, but not unseen: said
                unaddressed.append(scim.unaddressed(resource, key))
            return account

        users = await self.list_resources(
            "Users",
            lambda resource: noted(resource, scim.parse_user(resource, unreadable), "userName"),
            (lambda d, t: on_page("Users", d, t)) if on_page else None,
        )
        emails_by_id = {u.zivver_id: u.email for u in users}
        groups = await self.list_resources(
            "Groups",
            lambda resource: noted(
                resource, scim.parse_group(resource, emails_by_id, unreadable), "externalId"
            ),
            (lambda d, t: on_page("Groups", d, t)) if on_page else None,
        )
        return users + groups, {u.email: u.zivver_id for u in users}

    async def find(self, kind: str, attribute: str, value: str) -> dict[str, Any] | None:
        """Look one resource up by a filter (used before re-sending a create)."""
        outcome = await self.send(
            Request("GET", f"/{kind}"), params={"filter": f'{attribute} eq "{value}"'}
        )
        resources = outcome.body.get("Resources") if isinstance(outcome.body, dict) else None
        if outcome.ok and isinstance(resources, list):
            for resource in resources:
                if not isinstance(resource, dict) or not resource.get("id"):
                    continue
                if str(resource.get(attribute, "")).lower() == value.lower():
                    return resource
        return None


RETRY_HEADERS = ("Retry-After", "RateLimit-Reset")
"""How long Zivver asks to wait: ``Retry-After``, else ``RateLimit-Reset`` (seconds until the
window resets, draft-polli-ratelimit-headers, which Zivver's 429 refers to)."""


MAX_LIST_BYTES = 2**30
"""The largest list answer read (decoded): 100,000 accounts are about 65 MB of JSON (an
account with an alias is 655 bytes), so this leaves room for organizations 15 times larger
and still bounds a compressed answer that unpacks without end."""
MAX_ANSWER_BYTES = 16 * 2**20
"""The largest answer to anything but a list: one account, or an error."""


def _too_big(method: str, error: TooBig) -> str:
    what = f"larger than {error.limit // 2**20} MiB, more than Zivver sends"
    if method != "GET":
        return scim.not_zivvers(method, error.url, error.status, error.headers, None, what)
    return (
        f"The answer from {error.url} was {what} (HTTP {error.status}); it was not read, "
        "so nothing was changed from it. Check that no proxy between zsync and Zivver alters "
        "its answers; if it repeats, tell Zivver support."
    )


COLLECTIONS = ("/Users", "/Groups")
"""What a GET lists (a 404 for one says the URL is no SCIM base: :func:`scim.explain`)."""


def _certificate_text(url: str, error: BaseException) -> str:
    return (
        f"The TLS certificate of {url} could not be verified ({error}). If Zivver is reached through a "
        "TLS-inspecting proxy, set target.ca_file to its CA bundle; never switch verify_tls off in production."
    )


def _outcome(
    request: dict[str, Any],
    response: httpx.Response,
    content: bytes,
    attempts: int,
    raw_body: bool = False,
    listing: str | None = None,
) -> RequestResult:
    ok = response.status_code in (200, 201, 204)
    if raw_body and ok:
        return RequestResult(
            True,
            response.status_code,
            request,
            {"status": response.status_code},
            attempts,
            body=content,
        )
    body: Any = None
    if content:
        try:  # from the bytes: response.json() would first copy 100,000 accounts into a str
            body = json.loads(content)
        except (ValueError, RecursionError):
            body = content[:2000].decode(response.encoding or "utf-8", "replace")
    error = None
    if not ok:
        wait = retry_after(response, RETRY_HEADERS) if response.status_code == 429 else None
        error = scim.explain(response.status_code, content, attempts, listing, wait)
    elif request["method"] != "GET":
        error = _not_zivvers(request["method"], request["url"], response, content, body)
    return RequestResult(
        ok=error is None,
        status=response.status_code,
        request=request,
        response={"status": response.status_code, "body": body},
        attempts=attempts,
        error=error,
        body=body,
    )


def _not_zivvers(
    method: str, url: str, response: httpx.Response, content: bytes, body: Any
) -> str | None:
    """Why a write's successful status cannot be believed, or None when the answer is Zivver's.

    Zivver answers a create or a PUT with the account (a JSON object with its id), a PATCH
    with the group or nothing, a DELETE with nothing. Anything else came from something that
    is not Zivver (a proxy's page), or is an answer zsync cannot read: the change is not
    known to be done, so it is a failed change, never a success.
    """
    if not content and method in ("PATCH", "DELETE"):
        return None
    if isinstance(body, dict) and (method not in ("POST", "PUT") or body.get("id")):
        return None
    return scim.not_zivvers(method, url, response.status_code, response.headers, body)


def _unreadable_text(url: str, what: str) -> str:
    return (
        f"Reading {url}: the answer is not in Zivver's shape ({what}), so nothing can be "
        f"planned from it. Check that target.url is Zivver's SCIM base URL ({scim.SCIM_BASE} for "
        "Zivver's cloud) and that no proxy between zsync and Zivver changes its answers; if it "
        "repeats, tell Zivver support."
    )
