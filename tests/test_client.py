"""The Zivver client against the emulator over HTTP, with faults injected in between."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import API_KEY
from zsync_core.zivver import scim
from zsync_core.zivver.client import ZivverClient
from zsync_core.zivver.requests import PATCH_HEADERS, Request
from zsync_emulator import EmulatorServer, Organization

Fault = Callable[[httpx.Request], str | None]


class FaultyTransport(httpx.AsyncBaseTransport):
    """Forwards to the real server, except when ``fault`` says otherwise for a request."""

    def __init__(self, fault: Fault) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.fault = fault

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        what = self.fault(request)
        if what == "timeout-before":
            raise httpx.ConnectTimeout("injected: connect timed out")
        if what and what.isdigit():
            return httpx.Response(int(what), text="injected upstream error", request=request)
        response = await self.inner.handle_async_request(request)
        if what == "lose-answer":  # the server did the work, the answer never arrives
            await response.aread()
            raise httpx.ReadTimeout("injected: answer lost")
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def client_for(server: EmulatorServer, fault: Fault | None = None, **options) -> ZivverClient:
    transport = FaultyTransport(fault or (lambda request: None))
    http = httpx.AsyncClient(transport=transport, timeout=5)
    return ZivverClient(server.url, API_KEY, http=http, backoff_seconds=0.01, **options)


def user(email: str, **extension) -> dict:
    return {
        "schemas": [scim.CORE_USER, scim.ZIVVER_USER],
        "userName": email,
        "name": {"formatted": email},
        scim.ZIVVER_USER: {"aliases": [], "delegates": [], **extension},
    }


def group(email: str, member_ids: list[str]) -> dict:
    body = {"schemas": [scim.CORE_GROUP], "externalId": email, "displayName": email}
    return body | ({"members": [{"value": m} for m in member_ids]} if member_ids else {})


CLEAR_MEMBERS = {"schemas": [scim.PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]}


async def test_create_read_and_patch_with_zivvers_content_types(zivver):
    client = client_for(zivver)
    created = await client.send(Request("POST", "/Users", user("ann@example.org")))
    assert created.status == 201
    desk = await client.send(
        Request("POST", "/Groups", group("desk@example.org", [created.body["id"]]))
    )
    cleared = await client.send(
        Request("PATCH", f"/Groups/{desk.body['id']}", CLEAR_MEMBERS, PATCH_HEADERS)
    )
    assert cleared.ok and cleared.status == 200, "Zivver answers a PATCH with 200"
    accounts, user_ids = await client.read_organization()
    assert {a.email: a.active for a in accounts} == {
        "ann@example.org": True,
        "desk@example.org": False,
    }
    assert user_ids == {"ann@example.org": created.body["id"]}


async def test_the_emulator_enforces_zivvers_patch_content_types(zivver):
    group_id = zivver.org.add_group("desk@example.org")
    async with httpx.AsyncClient() as http:
        response = await http.patch(
            f"{zivver.url}/Groups/{group_id}",
            json=CLEAR_MEMBERS,
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 415


async def test_an_empty_members_put_is_ignored_like_zivver(zivver):
    member = zivver.org.add_user("ann@example.org")
    group_id = zivver.org.add_group("desk@example.org", member_ids=[member])
    client = client_for(zivver)
    body = group("desk@example.org", []) | {"members": []}
    assert (await client.send(Request("PUT", f"/Groups/{group_id}", body))).ok
    assert zivver.org.delegates_of("desk@example.org") == {"ann@example.org"}


async def test_a_lost_answer_to_a_create_does_not_create_a_duplicate(zivver):
    lost = []

    def fault(request: httpx.Request) -> str | None:
        if request.method == "POST" and not lost:
            lost.append(request)
            return "lose-answer"
        return None

    client = client_for(zivver, fault)
    outcome = await client.send(
        Request("POST", "/Users", user("ann@example.org")),
        before_retry=lambda: _found(client, "ann@example.org"),
    )
    assert outcome.ok and outcome.body["userName"] == "ann@example.org"
    assert len(zivver.org.users) == 1
    assert [m for m, _p, s in zivver.org.requests if m == "POST"] == ["POST"]


async def _found(client: ZivverClient, email: str):
    from zsync_core.zivver.client import RequestResult

    resource = await client.find("Users", "userName", email)
    return (
        RequestResult(True, 200, {}, {"status": 200, "body": resource}, 1, body=resource)
        if resource
        else None
    )


async def test_bursts_of_502_and_503_are_retried(zivver):
    statuses = iter(["502", "503", "500", None])
    client = client_for(zivver, lambda request: next(statuses))
    outcome = await client.send(Request("POST", "/Users", user("ann@example.org")))
    assert outcome.ok and outcome.attempts == 4
    assert len(zivver.org.users) == 1


async def test_a_server_error_that_persists_is_explained(zivver):
    client = client_for(zivver, lambda request: "503", max_retries=2)
    outcome = await client.send(Request("POST", "/Users", user("ann@example.org")))
    assert not outcome.ok and outcome.attempts == 3
    assert "Zivver had a server error (HTTP 503) after 3 attempts" in outcome.error


async def test_a_429_storm_is_waited_out_by_its_ratelimit_reset():
    """Zivver sends no Retry-After: the client waits by RateLimit-Reset."""
    org = Organization(api_key=API_KEY, rate_limit=5, rate_window=1.0)
    with EmulatorServer(org) as server:
        client = client_for(server, rate_limit_requests=1000, max_retries=10)
        start = time.monotonic()
        for number in range(12):
            outcome = await client.send(Request("POST", "/Users", user(f"u{number}@example.org")))
            assert outcome.ok, outcome.error
        assert client.rate_limited > 0
        assert len(org.users) == 12
        assert time.monotonic() - start >= 1.0


async def test_pacing_stays_within_the_budget_so_zivver_never_says_429():
    org = Organization(api_key=API_KEY, rate_limit=10, rate_window=1.0)
    with EmulatorServer(org) as server:
        client = client_for(server, rate_limit_requests=10, rate_limit_window_seconds=1.0)
        for number in range(25):
            assert (await client.send(Request("POST", "/Users", user(f"u{number}@example.org")))).ok
        assert client.rate_limited == 0
        assert [s for _m, _p, s in org.requests if s == 429] == []


async def test_concurrent_requests_on_a_slow_line_still_never_meet_a_429():
    """Zivver counts a request when it arrives; a slow, uneven line must not push two windows together."""
    org = Organization(api_key=API_KEY, rate_limit=10, rate_window=1.0, latency=0.15)
    with EmulatorServer(org) as server:
        client = client_for(server, rate_limit_requests=10, rate_limit_window_seconds=1.0)

        async def create(number: int) -> bool:
            return (await client.send(Request("POST", "/Users", user(f"c{number}@example.org")))).ok

        assert all(await asyncio.gather(*(create(n) for n in range(35))))
        assert client.rate_limited == 0
        assert [s for _m, _p, s in org.requests if s == 429] == []
        assert len(org.users) == 35


@pytest.mark.parametrize(
    ("setup", "body", "expected"),
    [
        (
            lambda org: org.add_user("bob@example.org"),
            {"aliases": ["bob@example.org"]},
            "An alias is already used by another Zivver account",
        ),
        (
            lambda org: org.guests.add("guest@example.org"),
            {"aliases": ["guest@example.org"]},
            "has a guest account in Zivver",
        ),
        (
            lambda org: org.domains.append("example.org"),
            {"email": "ann@elsewhere.com"},
            "outside your organization",
        ),
        (lambda org: None, {"division": "Sales"}, "division Sales does not exist in Zivver"),
    ],
)
async def test_zivvers_error_texts_become_explanations(zivver, setup, body, expected):
    setup(zivver.org)
    client = client_for(zivver)
    payload = user(body.get("email", "ann@example.org"), aliases=body.get("aliases", []))
    if "division" in body:
        payload[scim.ENTERPRISE_USER] = {"division": body["division"]}
    outcome = await client.send(Request("POST", "/Users", payload))
    assert not outcome.ok and outcome.status == 400
    assert expected in outcome.error
    assert "Zivver said:" in outcome.error


async def test_reading_follows_paging_when_a_server_pages(zivver):
    pages = []

    def fault(request: httpx.Request) -> str | None:
        pages.append(str(request.url))
        return None

    for number in range(3):
        zivver.org.add_user(f"u{number}@example.org")
    client = client_for(zivver, fault)
    resources = await client.list_resources("Users", lambda resource: resource)
    assert len(resources) == 3 and len(pages) == 1, "Zivver returns everything at once: one request"


async def test_a_dead_target_is_a_clear_error():
    client = ZivverClient(
        "http://127.0.0.1:9/api/scim/v2", API_KEY, max_retries=1, backoff_seconds=0.01
    )
    outcome = await client.send(Request("GET", "/Users"))
    await client.aclose()
    assert not outcome.ok and outcome.status is None
    assert "No answer from Zivver after 2 attempts (ConnectError" in outcome.error


async def test_an_untrusted_zivver_certificate_is_refused_clearly_and_a_ca_file_fixes_it(
    certificate,
):
    org = Organization(api_key=API_KEY, rate_limit=None)
    with EmulatorServer(org, tls=(str(certificate[0]), str(certificate[1]))) as server:
        assert server.url.startswith("https://")
        client = ZivverClient(server.url, API_KEY, max_retries=3, backoff_seconds=0.01)
        outcome = await client.send(Request("GET", "/Users"))
        await client.aclose()
        assert not outcome.ok and outcome.attempts == 1, "a certificate problem is not retried"
        assert f"The TLS certificate of {server.url} could not be verified" in outcome.error
        assert "target.ca_file" in outcome.error
        trusted = ZivverClient(server.url, API_KEY, verify=str(certificate[0]))
        assert (await trusted.send(Request("GET", "/Users"))).ok
        await trusted.aclose()


async def test_sending_requests_looks_up_no_module(zivver):
    """httpcore imports sniffio on every request: were it missing, each request would search
    sys.path for it (about 1 ms a request, a third of an update's CPU)."""
    import sys

    class CountingFinder:
        searches = 0

        def find_spec(self, *args: object) -> None:
            CountingFinder.searches += 1

    client = ZivverClient(zivver.url, API_KEY, rate_limit_requests=10_000)
    created = [
        await client.send(Request("POST", "/Users", user(f"u{n}@example.org"))) for n in range(8)
    ]
    finder = CountingFinder()
    sys.meta_path.insert(0, finder)
    try:

        async def update(outcome) -> int:
            body = user(outcome.body["userName"])
            return (await client.send(Request("PUT", f"/Users/{outcome.body['id']}", body))).status

        for _ in range(5):
            assert await asyncio.gather(*(update(o) for o in created)) == [200] * 8
    finally:
        sys.meta_path.remove(finder)
        await client.aclose()
    assert CountingFinder.searches == 0, "a module was looked up while sending"


def _paging_server(users: int, honour_start: bool) -> httpx.MockTransport:
    """A misbehaving server (fault injection): pages of 2, honouring startIndex or not."""
    resources = [
        {"id": f"u{n}", "userName": f"u{n}@example.org", "active": True} for n in range(users)
    ]

    def handle(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("startIndex", 1)) if honour_start else 1
        page = resources[start - 1 : start + 1]
        return httpx.Response(200, json={"Resources": page, "totalResults": users})

    return httpx.MockTransport(handle)


async def test_a_server_that_pages_is_read_to_the_end_without_duplicates():
    http = httpx.AsyncClient(transport=_paging_server(5, honour_start=True))
    client = ZivverClient("http://zivver.test/api/scim/v2", API_KEY, http=http)
    users = await client.list_resources("Users", scim.parse_user)
    assert sorted(u.email for u in users) == [f"u{n}@example.org" for n in range(5)]


async def test_a_server_that_ignores_start_index_is_an_incomplete_read_not_a_loop():
    from zsync_core.errors import TargetError

    http = httpx.AsyncClient(transport=_paging_server(5, honour_start=False))
    client = ZivverClient("http://zivver.test/api/scim/v2", API_KEY, http=http)
    with pytest.raises(TargetError, match="stopped at 2 of the 5 accounts it announced"):
        await client.list_resources("Users", scim.parse_user)
