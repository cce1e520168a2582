"""The one HTTP engine Zivver's client and Microsoft's (Graph, Exchange) send through.

:class:`Engine` sends one request and its retries: each attempt is bounded first byte to
last (httpx's own timeout is per read, which a server sending a byte now and then never
reaches) and in size; 429 and the policy's 5xx are retried after ``Retry-After`` or
``RateLimit-Reset`` when the server names a wait, else with jittered back-off; a dropped
connection or a time-out is retried the same way, a certificate that cannot be verified
never is. What it cannot do is the caller's to explain: the engine returns the last answer
(a refusal, or a retried status after the last retry) or raises :class:`Unanswered`.

Pacing is a policy the caller gives: :class:`Gate` (at most N requests on their way) or
the Zivver client's sliding window. A caller that signs its requests gives ``authorize``,
called once a slot is free (a wait must not outlive a token) and again with ``renew`` when
``expired`` says the server refused the token as expired (once per request).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

LONGEST_WAIT = 300.0
"""The longest wait a server may name that a run waits out (longer: an outage, no retry)."""

LOST = frozenset({502, 503, 504})
"""Statuses a gateway sends when the request may have reached the server all the same."""


def retry_after(
    response: httpx.Response, headers: tuple[str, ...] = ("Retry-After",)
) -> float | None:
    """Seconds to wait from the first of ``headers`` that holds a number of seconds or an
    HTTP date; None when none does."""
    for header in headers:
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            continue
    return None


def backoff(base: float, attempt: int, cap: float = 30.0) -> float:
    """The wait before retry ``attempt`` (0 for the first): doubling from ``base`` up to
    ``cap``, jittered by ±25 % so that clients that failed together do not return together."""
    return min(cap, base * 2**attempt) * (0.75 + random.random() / 2)


def certificate_problem(error: BaseException) -> bool:
    """Whether a transport error is a TLS certificate that could not be verified."""
    text = str(error)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower()


@dataclass(frozen=True, slots=True)
class Policy:
    """How one service is retried."""

    max_retries: int
    """Retries after the first attempt."""
    backoff: float
    """Seconds before the first retry when the server names no wait (then doubling)."""
    timeout: float
    """Seconds for one attempt, first byte to last."""
    statuses: frozenset[int]
    """Statuses worth asking again."""
    wait_headers: tuple[str, ...] = ("Retry-After",)
    """Where the server names how long to wait, first found first."""
    longest_wait: float = LONGEST_WAIT
    """A named wait longer than this is an outage, not throttling: no retry."""


class Pacing(Protocol):
    """When a request may go: a slot per request, and what a 429 changes."""

    def slot(self) -> AbstractAsyncContextManager[Any]: ...

    def throttled(self, seconds: float) -> float:
        """The server said 429 and to wait ``seconds``: how long this request waits before
        its retry (a pacer that holds every request back answers 0)."""
        ...


class Gate:
    """At most ``n`` requests on their way at once; a 429 waits what the server asked."""

    def __init__(self, n: int) -> None:
        self._semaphore = asyncio.Semaphore(n)

    def slot(self) -> AbstractAsyncContextManager[Any]:
        return self._semaphore

    def throttled(self, seconds: float) -> float:
        return seconds


class Connections:
    """HTTP clients of one keep-alive connection each, one per request in flight.

    One pool per request rather than one pool for all of them: httpcore's pool scans every
    connection several times per request (quadratic in the connections), which at 16 in
    flight cost more CPU than the rest of the request. ``shared``: use that client for
    everything (a test's).
    """

    def __init__(
        self, timeout: float, verify: Any, shared: httpx.AsyncClient | None = None
    ) -> None:
        self._timeout = timeout
        self._verify = verify
        self._shared = shared
        self._idle: list[httpx.AsyncClient] = []
        self._owned: list[httpx.AsyncClient] = []

    @asynccontextmanager
    async def one(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._shared is not None:
            yield self._shared
            return
        http = self._idle.pop() if self._idle else None
        if http is None:
            http = httpx.AsyncClient(
                timeout=self._timeout,
                verify=self._verify,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            self._owned.append(http)
        try:
            yield http
        finally:
            self._idle.append(http)

    async def aclose(self) -> None:
        for http in self._owned:
            await http.aclose()
        self._owned.clear()
        self._idle.clear()


class TooBig(Exception):
    """An answer went past its bound: it was not read."""

    def __init__(self, url: str, limit: int, response: httpx.Response) -> None:
        super().__init__(url)
        self.url = url
        self.limit = limit
        self.status = response.status_code
        self.headers = response.headers


class Unanswered(Exception):
    """No answer to read after the retries: the last attempt timed out (``timed_out``) or its
    connection failed (``error``), or the certificate could not be verified (``certificate``)."""

    def __init__(self, url: str, error: BaseException, attempts: int) -> None:
        super().__init__(str(error))
        self.url = url
        self.error = error
        self.attempts = attempts
        self.timed_out = isinstance(error, TimeoutError | httpx.TimeoutException)
        self.certificate = certificate_problem(error)

    def said(self) -> str:
        """The transport's own words (its class when it has none)."""
        name = type(self.error).__name__
        return f"{name}: {self.error}" if str(self.error) else name


@dataclass(slots=True)
class Answer:
    """The last answer to a request (after retries), or what ``before_retry`` found."""

    response: httpx.Response | None
    content: bytes = b""
    attempts: int = 1
    found: Any = None
    """What ``before_retry`` returned: the request had taken effect before its answer was lost."""

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code


@dataclass
class Engine:
    """Sends requests under one :class:`Policy`, :class:`Pacing` and set of connections."""

    policy: Policy
    pacing: Pacing
    connections: Connections
    sent: int = 0
    """Attempts sent, retries included."""
    throttled: int = 0
    """429s received."""

    async def send(
        self,
        method: str,
        url: str,
        *,
        limit: int,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        authorize: Callable[[bool], Awaitable[Mapping[str, str]]] | None = None,
        expired: Callable[[httpx.Response, bytes], bool] | None = None,
        before_retry: Callable[[], Awaitable[Any]] | None = None,
    ) -> Answer:
        """One request, retried as the policy says; its whole answer read (at most ``limit``
        bytes, decoded).

        ``before_retry`` runs before a retry that follows a lost answer (a dropped connection,
        a time-out or a gateway's 502-504: the request may have taken effect); when it returns
        something, that is the :attr:`Answer.found` and nothing is sent again.

        Raises:
            Unanswered: no answer after the retries, or a certificate that cannot be verified.
            TooBig: an answer larger than ``limit``.
        """
        policy = self.policy
        attempt = 0
        lost = renew = renewed = False
        while True:
            attempt += 1
            if lost and before_retry is not None:
                found = await before_retry()
                if found is not None:
                    return Answer(None, attempts=attempt, found=found)
            try:
                async with self.pacing.slot():
                    send = dict(headers or {})
                    if authorize is not None:  # once a slot is free: a wait must not outlive it
                        send.update(await authorize(renew))
                        renew = False
                    self.sent += 1
                    async with self.connections.one() as http, asyncio.timeout(policy.timeout):
                        response, content = await exchange(
                            http, method, url, limit, params=params, headers=send, json=json
                        )
            except (httpx.TransportError, TimeoutError) as error:
                if certificate_problem(error) or attempt > policy.max_retries:
                    raise Unanswered(url, error, attempt) from None
                lost = True
                await asyncio.sleep(backoff(policy.backoff, attempt - 1))
                continue
            status = response.status_code
            if expired is not None and not renewed and expired(response, content):
                renewed = renew = True
                attempt -= 1  # a renewed token is not a retry
                continue
            if status not in policy.statuses or attempt > policy.max_retries:
                return Answer(response, content, attempt)
            wait = retry_after(response, policy.wait_headers)
            if wait is not None and wait > policy.longest_wait:
                return Answer(response, content, attempt)
            lost = status in LOST
            delay = wait if wait is not None else backoff(policy.backoff, attempt - 1)
            if status == 429:
                self.throttled += 1
                delay = self.pacing.throttled(delay)
            if delay:
                await asyncio.sleep(delay)


async def exchange(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    limit: int,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
) -> tuple[httpx.Response, bytes]:
    """One request and its whole answer, decoded, read no further than ``limit`` bytes.

    Raises:
        TooBig: the answer (as announced, or as it unpacks) is larger than ``limit``.
    """
    async with http.stream(method, url, json=json, params=params, headers=headers) as response:
        declared = response.headers.get("Content-Length", "")
        size = int(declared) if declared.isdigit() else 0
        chunks: list[bytes] = []
        if size <= limit:
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    break
                chunks.append(chunk)
        if size > limit:
            raise TooBig(url, limit, response)
        return response, b"".join(chunks)
