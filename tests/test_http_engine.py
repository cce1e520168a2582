"""The one HTTP engine both clients send through, against a real server on loopback that
answers what each test needs."""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import API_KEY
from zsync_core.http import Connections, Engine, Gate, Policy
from zsync_core.zivver.client import ZivverClient
from zsync_core.zivver.requests import Request as ZivverRequest
from zsync_emulator.server import LoopbackServer


class Scripted:
    """A server that answers each request with the next of ``answers`` (the last repeats)."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.seen: list[dict[str, str]] = []
        app = Starlette(routes=[Route("/{path:path}", self.answer, methods=["GET", "POST"])])
        self.server = LoopbackServer(app)

    async def answer(self, request: Request) -> Response:
        self.seen.append(dict(request.headers))
        status, headers = self.answers[min(len(self.seen), len(self.answers)) - 1]
        return JSONResponse({"id": "1", "Resources": []}, status_code=status, headers=headers)

    def __enter__(self) -> Scripted:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def engine(**policy: object) -> Engine:
    options = {"max_retries": 3, "backoff": 0.01, "timeout": 5.0, "statuses": frozenset({429, 503})}
    return Engine(Policy(**options | policy), Gate(4), Connections(5.0, True))  # type: ignore[arg-type]


def test_a_wait_longer_than_the_policy_allows_is_an_outage_and_not_waited_for():
    """Zivver's client as Graph's: a 429 asking for an hour ends the retries at once (and the
    change fails with Zivver's answer) instead of holding the run."""
    with Scripted((429, {"Retry-After": "3600"})) as server:

        async def go():
            client = ZivverClient(server.server.base, API_KEY, backoff_seconds=0.01)
            try:
                return await client.send(ZivverRequest("POST", "/Users", {}))
            finally:
                await client.aclose()

        result = asyncio.run(asyncio.wait_for(go(), 20))
    assert not result.ok and result.status == 429
    assert len(server.seen) == 1, "asked once: no retry after an outage-length wait"
    assert result.error is not None
    assert "asked to wait 3,600 s, longer than zsync waits within a run (300 s)" in result.error
    assert "attempts" not in result.error, "no 'after 1 attempts': it was not retried"


def test_a_short_named_wait_is_waited_and_retried():
    with Scripted((503, {"Retry-After": "0"}), (503, {"Retry-After": "0"}), (200, {})) as server:
        answer = asyncio.run(engine().send("GET", f"{server.server.base}/x", limit=2**20))
    assert answer.status == 200 and answer.attempts == 3


def test_a_token_refused_as_expired_is_renewed_once_without_counting_as_a_retry():
    renewals = []

    async def authorize(renew: bool) -> dict[str, str]:
        renewals.append(renew)
        return {"Authorization": f"Bearer {'new' if renew else 'old'}"}

    with Scripted((401, {}), (401, {}), (200, {})) as server:
        answer = asyncio.run(
            engine(max_retries=0).send(
                "GET",
                f"{server.server.base}/x",
                limit=2**20,
                authorize=authorize,
                expired=lambda response, content: response.status_code == 401,
            )
        )
    assert renewals == [False, True], "renewed once, then the refusal stands"
    assert answer.status == 401 and answer.attempts == 1
    assert [seen["authorization"] for seen in server.seen] == ["Bearer old", "Bearer new"]


@pytest.mark.parametrize("retries", [0, 2])
def test_retries_stop_after_the_policy_and_the_last_answer_is_returned(retries):
    with Scripted((503, {})) as server:
        answer = asyncio.run(
            engine(max_retries=retries).send("GET", f"{server.server.base}/x", limit=2**20)
        )
    assert answer.status == 503 and answer.attempts == retries + 1 == len(server.seen)
