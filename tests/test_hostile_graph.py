"""Microsoft 365 answers that lie, loop, drip or swell: the headless run against the Graph
emulator behind a small hostile reverse proxy on loopback (fault injection: the emulator
itself behaves as Graph does), and a second loopback server that records whether anything
reached it.

Each test asserts what an admin would see: the exit code and message, what Zivver holds,
whether the stored delta state moved, and that no token left the configured origin.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import zsync_core.sources.m365.http as graph_http
from tests.conftest import m365_source
from zsync_emulator.server import LoopbackServer, MicrosoftServer
from zsync_emulator.tls import Tls

Page = dict[str, Any]
Rewrite = Callable[[str, Page], Page | None]
"""(path with query, page) → the page to answer instead, or None to answer it as it is."""


class Recorder:
    """A server that should never be reached: it records each request (with its
    Authorization header) and answers an empty Graph page."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.seen: list[tuple[str, str, str | None, bytes]] = []
        """(method, path, Authorization, body) of each request that came."""
        self.server = LoopbackServer(self, tls=tls)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = (await receive()).get("body", b"")
        self.seen.append((scope["method"], scope["path"], headers.get("authorization"), body))
        body = json.dumps({"value": [], "@odata.deltaLink": f"{self.base}/v1.0/x"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @property
    def base(self) -> str:
        return self.server.base


class Hostile:
    """A reverse proxy in front of the Microsoft 365 emulator (the profile's graph_url and
    exchange_url), rewriting the emulator's links to its own origin as an honest proxy
    would, then applying ``rewrite`` to Graph's pages; ``drip`` sends a matching answer's
    body one byte every ``drip[1]`` seconds (for at most ``drip[2]`` seconds, so that code
    without a whole-request deadline ends too, only late)."""

    def __init__(self, upstream: MicrosoftServer, tls: Tls) -> None:
        self.upstream = upstream.base
        self.ca_file = str(upstream.ca_file)
        self.rewrite: Rewrite | None = None
        self.drip: tuple[str, float, float] | None = None
        self.chunked: set[str] = set()
        """Paths whose answer goes without a Content-Length, in pieces."""
        self.server = LoopbackServer(self, tls=(str(tls.certificate), str(tls.key)))

    @property
    def base(self) -> str:
        return self.server.base

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        query = scope["query_string"].decode()
        path = scope["raw_path"].decode() + (f"?{query}" if query else "")
        headers = [
            (k.decode(), v.decode())
            for k, v in scope["headers"]
            if k.lower() not in (b"host", b"content-length", b"accept-encoding")
        ]
        page: Page | None = None
        if self.rewrite is not None:
            page = self.rewrite(path, {})  # a page the proxy makes up itself (a loop)
        if page is None:
            async with httpx.AsyncClient(
                verify=ssl.create_default_context(cafile=self.ca_file)
            ) as client:
                answer = await client.request(
                    scope["method"], self.upstream + path, headers=headers, content=body
                )
            status = answer.status_code
            content = answer.content.replace(self.upstream.encode(), self.base.encode())
            if status == 200 and self.rewrite is not None:
                changed = self.rewrite(path, json.loads(content))
                if changed is not None:
                    content = json.dumps(changed).encode()
        else:
            status, content = 200, json.dumps(page).encode()
        out = [(b"content-type", b"application/json")]
        chunked = any(p in path for p in self.chunked)
        if not chunked:
            out.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        if self.drip is not None and self.drip[0] in path:
            _, every, at_most = self.drip
            self.drip = None  # one answer drips
            until = time.monotonic() + at_most
            while len(content) > 1 and time.monotonic() < until:
                await send({"type": "http.response.body", "body": content[:1], "more_body": True})
                content = content[1:]
                await asyncio.sleep(every)
        if chunked:
            for start in range(0, len(content), 65536):
                piece = content[start : start + 65536]
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"" if chunked else content})


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    found = Recorder()
    with found.server:
        yield found


@pytest.fixture
def tls_recorder(loopback_tls: Tls) -> Iterator[Recorder]:
    """A recorder over TLS (its certificate trusted through the profile's ca_file): MSAL
    goes only to https URLs."""
    found = Recorder(tls=(str(loopback_tls.certificate), str(loopback_tls.key)))
    with found.server:
        yield found


@pytest.fixture
def hostile(microsoft: MicrosoftServer, loopback_tls: Tls) -> Iterator[Hostile]:
    proxy = Hostile(microsoft, loopback_tls)
    with proxy.server:
        yield proxy


def through(hostile: Hostile, microsoft: MicrosoftServer, **extra: Any) -> dict[str, Any]:
    """A source that signs in at the emulator and reads Graph through the proxy."""
    return {
        **m365_source(microsoft, **extra),
        "graph_url": hostile.base,
        "exchange_url": hostile.base,
    }


def staff(tenant: Any, count: int = 3) -> list[str]:
    return [tenant.add_user(f"user{n}@example.org", f"User {n}") for n in range(count)]


def users_delta(path: str) -> bool:
    return path.startswith("/v1.0/users/delta") and "deltatoken=latest" not in path


def test_a_foreign_next_link_gets_no_token_and_the_read_is_incomplete(
    microsoft, hostile, recorder, zivver, make_profile, capsys
):
    tenant = microsoft.tenant
    ids = staff(tenant)
    profile = make_profile([through(hostile, microsoft)])
    assert profile.run(capsys=capsys)[0] == 0
    before = profile.store().space.data("Microsoft 365")
    tenant.add_user("new@example.org", "New")
    tenant.delete_user(ids[0])

    def foreign_next(path: str, page: Page) -> Page | None:
        if not page or not users_delta(path):
            return None
        page.pop("@odata.deltaLink", None)
        page["@odata.nextLink"] = f"{recorder.base}/v1.0/users/delta?$skiptoken=stolen"
        return page

    hostile.rewrite = foreign_next
    code, err, _report = profile.run("--confirm", "suspend-users", capsys=capsys)

    assert code == 3, err
    assert recorder.seen == [], "nothing, least of all the token, reached the other host"
    assert f"@odata.nextLink leads to {recorder.base}" in err
    assert f"outside the configured origin {hostile.base} (graph_url)" in err
    assert "sent it no token" in err and "Check graph_url" in err
    org = zivver.org
    assert org.user_by_email("new@example.org") is None, "nothing was changed"
    assert org.user_by_email("user0@example.org")["active"] is True
    assert profile.store().space.data("Microsoft 365") == before, "nothing was stored"


def test_a_foreign_delta_link_is_not_stored_nor_ever_followed(
    microsoft, hostile, recorder, zivver, make_profile, capsys
):
    tenant = microsoft.tenant
    staff(tenant)
    profile = make_profile([through(hostile, microsoft)])
    assert profile.run(capsys=capsys)[0] == 0
    before = profile.store().space.data("Microsoft 365")
    tenant.add_user("new@example.org", "New")

    def foreign_delta(path: str, page: Page) -> Page | None:
        if not page or not users_delta(path) or "@odata.deltaLink" not in page:
            return None
        page["@odata.deltaLink"] = f"{recorder.base}/v1.0/users/delta?$deltatoken=stolen"
        return page

    hostile.rewrite = foreign_delta
    code, err, _report = profile.run(capsys=capsys)

    assert code == 3, err
    assert f"@odata.deltaLink leads to {recorder.base}" in err
    assert profile.store().space.data("Microsoft 365") == before, "the link was not stored"
    assert zivver.org.user_by_email("new@example.org") is None
    hostile.rewrite = None
    code, err, _report = profile.run(capsys=capsys)
    assert code == 0, err
    assert zivver.org.user_by_email("new@example.org") is not None, "the next run catches up"
    assert recorder.seen == [], "no request ever went to the rewritten link"


def test_an_answer_that_drips_ends_the_run_at_the_timeout(
    microsoft, hostile, zivver, make_profile, capsys
):
    staff(microsoft.tenant)
    profile = make_profile([through(hostile, microsoft, timeout_seconds=2, max_retries=0)])
    # one byte every 1.5 s: each read of httpx's per-read timeout (2 s) gets its byte
    hostile.drip = ("/v1.0/groups/delta", 1.5, 30.0)

    started = time.monotonic()
    code, err, report = profile.run(capsys=capsys)
    took = time.monotonic() - started

    assert code == 3, err
    assert took < 12, f"the run took {took:.1f} s against timeout_seconds = 2"
    assert f"{hostile.base} did not send its whole answer within timeout_seconds = 2 s" in err
    assert zivver.org.users == {}, "nothing was changed"
    assert report is not None and report["exit_code"] == 3


def test_a_chain_of_pages_that_loops_ends_as_an_incomplete_read(
    microsoft, hostile, zivver, make_profile, capsys
):
    staff(microsoft.tenant)
    profile = make_profile([through(hostile, microsoft)])
    loop = "/v1.0/groups/delta?$skiptoken=round"
    answered = {"loop": 0}

    def looping(path: str, page: Page) -> Page | None:
        if path == loop:  # the proxy's own page: it links to itself
            answered["loop"] += 1
            if answered["loop"] > 30:  # code that never notices ends anyway (and fails below)
                return {"value": [], "@odata.deltaLink": f"{hostile.base}/v1.0/groups/delta?x"}
            return {"value": [], "@odata.nextLink": f"{hostile.base}{loop}"}
        if page and path.startswith("/v1.0/groups/delta?%24select"):
            page.pop("@odata.deltaLink", None)
            page["@odata.nextLink"] = f"{hostile.base}{loop}"
            return page
        return None

    hostile.rewrite = looping
    code, err, _report = profile.run(capsys=capsys)

    assert code == 3, err
    assert answered["loop"] == 1, "the loop was seen on its first turn"
    assert "links back to a page already read" in err and "loop" in err
    assert f"{hostile.base}/v1.0/groups/delta?…" in err
    assert zivver.org.users == {}, "nothing was changed"


def test_a_page_past_the_size_ceiling_is_not_read(
    microsoft, hostile, zivver, make_profile, capsys, monkeypatch
):
    staff(microsoft.tenant)
    monkeypatch.setattr(graph_http, "MAX_PAGE_BYTES", 2**20)
    profile = make_profile([through(hostile, microsoft)])
    hostile.chunked.add("/v1.0/groups/delta")  # no Content-Length to go by: counted as it comes

    def swollen(path: str, page: Page) -> Page | None:
        if page and path.startswith("/v1.0/groups/delta"):
            page["padding"] = "x" * (3 * 2**20)
            return page
        return None

    hostile.rewrite = swollen
    code, err, _report = profile.run(capsys=capsys)

    assert code == 3, err
    assert f"{hostile.base} sent an answer of more than 1 MiB" in err
    assert zivver.org.users == {}


def test_a_refused_shrunk_delta_leaves_the_mirror_and_link_for_the_admin_to_decide(
    microsoft, zivver, make_profile, capsys
):
    tenant = microsoft.tenant
    ids = staff(tenant, 10)
    profile = make_profile([m365_source(microsoft)])
    assert profile.run(capsys=capsys)[0] == 0
    store = profile.store()
    before = store.space.data("Microsoft 365")
    pages = store.space.blobs("Microsoft 365", "user")
    for user_id in ids[:6]:
        tenant.delete_user(user_id)

    for _day in range(2):  # refused, and refused again for the same reason the next day
        code, err, _report = profile.run("--confirm", "suspend-users", capsys=capsys)
        assert code == 3, err
        assert store.space.data("Microsoft 365") == before, "the link stays"
        assert store.space.blobs("Microsoft 365", "user") == pages, "the mirror stays"
        assert all(u["active"] for u in zivver.org.users.values())
        assert "this read has 4 accounts against 10 at the last good run, 60 % fewer" in err
        assert "take 6 users with a mailbox and 0 groups out of the directory" in err
        assert "--full-read" in err
        assert "sync.shrink_guard_percent raised above 60" in err

    profile.data["sync"]["shrink_guard_percent"] = 70  # the admin says the drop is real
    profile.write()
    code, err, report = profile.run("--confirm", "suspend-users", capsys=capsys)
    assert code == 0, err
    assert report["summary"] == {"suspend-user": 6}
    profile.data["sync"]["shrink_guard_percent"] = 50
    profile.write()
    code, err, report = profile.run(capsys=capsys)
    assert (code, report["summary"]) == (0, {}), err
    assert store.space.data("Microsoft 365") != before, "a good read moves the link on"


def test_a_token_endpoint_elsewhere_gets_no_client_secret(
    microsoft, hostile, tls_recorder, zivver, make_profile, capsys
):
    staff(microsoft.tenant)
    # the sign-in goes through the proxy too, whose OpenID configuration names another host
    source = {**through(hostile, microsoft), "authority_url": hostile.base}
    profile = make_profile([source])  # the recorder's CA is the emulator's: ca_file trusts it
    elsewhere_base = tls_recorder.base

    def elsewhere(path: str, page: Page) -> Page | None:
        if page and path.endswith("/.well-known/openid-configuration"):
            page["token_endpoint"] = page["token_endpoint"].replace(hostile.base, elsewhere_base)
            return page
        return None

    hostile.rewrite = elsewhere
    code, err, _report = profile.run(capsys=capsys)

    assert code == 3, err
    assert tls_recorder.seen == [], "the client secret went nowhere else"
    assert f"sends zsync to '{elsewhere_base}', outside authority_url's origin" in err
    assert "sent it no credential" in err
    assert zivver.org.users == {}


def test_a_delta_link_stored_elsewhere_by_an_older_zsync_is_dropped_for_a_full_read(
    microsoft, recorder, zivver, make_profile, capsys
):
    tenant = microsoft.tenant
    staff(tenant)
    profile = make_profile([m365_source(microsoft)])
    assert profile.run(capsys=capsys)[0] == 0
    store = profile.store()
    links = store.space.data("Microsoft 365")["links"]
    stray = {kind: link.replace(microsoft.base, recorder.base) for kind, link in links.items()}
    with store.db:  # what a rewritten deltaLink left in the store before links were checked
        store.db.execute(
            "UPDATE source_state SET data = json_set(data, '$.links', json(?))",
            (json.dumps(stray),),
        )
    tenant.add_user("new@example.org", "New")

    code, err, _report = profile.run(capsys=capsys)

    assert code == 0, err
    assert recorder.seen == [], "the stored link was never followed"
    assert f"the stored delta link leads to {recorder.base}" in err
    assert "everything is read again" in err
    assert zivver.org.user_by_email("new@example.org") is not None
    assert store.space.data("Microsoft 365")["links"]["user"].startswith(microsoft.base)
