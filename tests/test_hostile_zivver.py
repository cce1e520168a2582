"""Zivver's side of issue 22: answers that are cut, wrong-shaped, not Zivver's, or dripping.

Every scenario runs the headless CLI against the Zivver emulator over real HTTP, with a small
hostile server on loopback in between (fault injection) that forwards each request to the
emulator and rewrites the answers a test names. What is asserted is what an admin notices:
the exit code, the message, the report, the run's status and what Zivver holds.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Profile, ProfileFactory
from zsync_core.store import Store
from zsync_emulator import EmulatorServer

Answer = tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]
"""A rewritten answer: status, content type, body (and more headers)."""
Rewrite = Callable[[str, str, int, bytes], "Answer | str | None"]
"""(method, path, status, body) of the emulator's answer -> a new answer, "drip", or None."""


class HostileZivver:
    """A server on loopback in front of the emulator: forwards every request, and answers
    with what ``rewrite`` returns instead (or drips the answer, one byte at a time)."""

    def __init__(self, upstream: str, rewrite: Rewrite, drip_every: float = 0.3) -> None:
        self.upstream = upstream
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(upstream))
        self.rewrite = rewrite
        self.drip_every = drip_every
        self.dripped = 0
        self.stop = threading.Event()
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                answer = httpx.request(
                    self.command,
                    hostile.origin + self.path,
                    content=body,
                    headers=headers,
                    timeout=30,
                )
                path = urlsplit(self.path).path
                new = hostile.rewrite(self.command, path, answer.status_code, answer.content)
                if new == "drip":
                    hostile.dripped += 1
                    self._drip(answer.content)
                    return
                more: list[dict[str, str]] = []
                if new is None:
                    status = answer.status_code
                    kind = answer.headers.get("content-type", "application/json")
                    content = answer.content
                else:
                    assert isinstance(new, tuple)
                    status, kind, content, *more = new
                self.send_response(status)
                for header, value in (more[0] if more else {}).items():
                    self.send_header(header, value)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _drip(self, content: bytes) -> None:
                """A byte every ``drip_every`` seconds, never enough to trip a per-read
                timeout; gives up after 20 s (so that unfixed code fails, not hangs)."""
                self.send_response(200)
                self.send_header("Content-Type", "application/scim+json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.flush()
                ends = time.monotonic() + 20
                try:
                    for byte in content:
                        if time.monotonic() > ends or hostile.stop.is_set():
                            break
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(hostile.drip_every)
                except OSError:
                    pass  # the client gave up: what a bounded timeout does
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The SCIM base URL through this server."""
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}{urlsplit(self.upstream).path}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile(zivver: EmulatorServer) -> Iterator[Callable[[Rewrite], HostileZivver]]:
    made: list[HostileZivver] = []

    def make(rewrite: Rewrite) -> HostileZivver:
        server = HostileZivver(zivver.url, rewrite)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


PEOPLE = ["email,name,kind,active,aliases,delegates,id"] + [
    f"user{n}@example.org,User {n},personal,true,,,U{n}" for n in range(3)
]


def csv_profile(make_profile: ProfileFactory, tmp_path: Path, rows: list[str]) -> Profile:
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    profile = make_profile([{"name": "People", "type": "csv", "path": "people.csv"}])
    profile.data["sync"]["existing_sso_keys"] = "none"
    return profile.write()


def through(profile: Profile, server: HostileZivver, **target: Any) -> Profile:
    profile.data["target"].update(url=server.url, **target)
    return profile.write()


def last_status(profile: Profile) -> str:
    store = profile.store()
    try:
        return store.runs()[0].status.value
    finally:
        store.close()


def edit_list(kind: str, change: Callable[[list[dict]], None]) -> Rewrite:
    """Rewrite the emulator's list of ``kind`` (Users, Groups) with ``change``."""

    def rewrite(method: str, path: str, status: int, body: bytes) -> Answer | None:
        if method != "GET" or not path.endswith(f"/{kind}") or status != 200:
            return None
        data = json.loads(body)
        change(data["Resources"])
        return 200, "application/scim+json", json.dumps(data).encode()

    return rewrite


# --- defect 6: a wrong-shaped answer to a read ----------------------------------------------


def _replace_users(body: bytes) -> Rewrite:
    def rewrite(method: str, path: str, status: int, _body: bytes) -> Answer | None:
        if method == "GET" and path.endswith("/Users"):
            return 200, "application/scim+json", body
        return None

    return rewrite


WRONG_LISTS = {
    "a userName that is a number": b'{"Resources": [{"id": "u1", "userName": 5}], "totalResults": 1}',
    "Resources that is an object": b'{"Resources": {"id": "u1"}, "totalResults": 1}',
    "an item that is no object": b'{"Resources": [17], "totalResults": 1}',
    "no Resources and no totalResults": b"{}",
    "an empty body": b"",
    "nesting deeper than any decoder": b'{"Resources": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("body", WRONG_LISTS.values(), ids=WRONG_LISTS.keys())
def test_a_wrong_shaped_list_is_an_unreadable_answer_not_a_crash(
    body, zivver, make_profile, hostile, tmp_path, capsys
):
    profile = csv_profile(make_profile, tmp_path, PEOPLE)
    assert profile.run(capsys=capsys)[0] == 0
    before = json.dumps(zivver.org.users, sort_keys=True)
    server = hostile(_replace_users(body))
    through(profile, server)

    code, err, report = profile.run(capsys=capsys)

    assert code == 3, err
    assert f"Reading {server.url}/Users: the answer is not in Zivver's shape" in err
    assert "Nothing was changed" in err or "nothing was changed" in err
    assert report is not None and report["exit_code"] == 3 and report["status"] == "aborted"
    assert last_status(profile) == "aborted", "zsync status shows the run as failed"
    assert json.dumps(zivver.org.users, sort_keys=True) == before


def test_accounts_of_the_wrong_shape_are_held_and_the_rest_syncs(
    zivver, make_profile, hostile, tmp_path, capsys
):
    profile = csv_profile(make_profile, tmp_path, PEOPLE)
    assert profile.run(capsys=capsys)[0] == 0
    (tmp_path / "people.csv").write_text(
        "\n".join([*PEOPLE, "user3@example.org,User 3,personal,true,,,U3"]).replace(
            "User 0,", "User Zero,"
        )
        + "\n"
    )

    def odd_shapes(users: list[dict]) -> None:
        for user in users:
            if user["userName"] == "user0@example.org":
                user["name"] = "User 0"
            if user["userName"] == "user2@example.org":
                user["urn:ietf:params:scim:schemas:zivver:0.1:User"] = []

    through(profile, hostile(edit_list("Users", odd_shapes)))

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "user user0@example.org" in err and 'name is "User 0", not an object' in err
    assert "user user2@example.org" in err and "the zivver block is a list, not an object" in err
    assert {h["email"] for h in report["not_sent"]} == {"user0@example.org", "user2@example.org"}
    assert zivver.org.user_by_email("user0@example.org")["name"]["formatted"] == "User 0"
    assert zivver.org.user_by_email("user3@example.org") is not None, "the rest synced"
    assert last_status(profile) == "held"


# --- defect 6 and 10: a write's answer that is not Zivver's ------------------------------------


def test_a_create_answered_201_with_no_object_is_a_failed_change_that_may_exist(
    zivver, make_profile, hostile, tmp_path, capsys
):
    profile = csv_profile(make_profile, tmp_path, PEOPLE)

    def rewrite(method: str, path: str, status: int, body: bytes) -> Answer | None:
        if method == "POST" and status == 201 and b"user1@" in body:
            return 201, "application/scim+json", b'["created"]'
        return None

    server = hostile(rewrite)
    through(profile, server)

    code, err, report = profile.run(capsys=capsys)

    assert code == 1, err
    assert report is not None and report["status"] == "failed-changes"
    states = {c["email"]: c for c in report["changes"]}
    failed = states["user1@example.org"]
    assert failed["state"] == "failed", "journaled as failed, never left 'sending'"
    assert f"The answer from {server.url}/Users was not Zivver's" in failed["error"]
    assert "Zivver may have created the account" in failed["error"]
    assert "1 of 3 change(s) failed" in err
    assert {states[e]["state"] for e in states if e != "user1@example.org"} == {"succeeded"}
    assert last_status(profile) == "failed-changes"
    assert len(zivver.org.users) == 3, "Zivver did create it"

    server.rewrite = lambda *args: None
    code, err, report = profile.run(capsys=capsys)
    assert code == 0, err
    assert len(zivver.org.users) == 3, "the next run takes it over by its address"


def test_a_write_answered_200_with_a_proxys_html_page_is_a_failed_change(
    zivver, make_profile, hostile, tmp_path, capsys
):
    profile = csv_profile(make_profile, tmp_path, PEOPLE)
    assert profile.run(capsys=capsys)[0] == 0
    (tmp_path / "people.csv").write_text("\n".join(PEOPLE).replace("User 2,", "User Two,") + "\n")
    page = b"<html><body><h1>Session expired</h1>Please log in to the proxy.</body></html>"

    def rewrite(method: str, path: str, status: int, body: bytes) -> Answer | None:
        return (200, "text/html; charset=utf-8", page) if method == "PUT" else None

    server = hostile(rewrite)
    through(profile, server)

    code, err, report = profile.run(capsys=capsys)

    assert code == 1, err
    (change,) = report["changes"]
    assert change["state"] == "failed"
    assert "was not Zivver's (HTML (text/html) from a proxy?)" in change["error"]
    assert change["email"] in err and "was not Zivver's" in err


# --- defect 7: a group whose members cannot be read ------------------------------------------


def test_a_group_whose_members_are_missing_is_not_written_and_the_rest_syncs(
    zivver, make_profile, hostile, tmp_path, capsys
):
    desk = "desk@example.org,Desk,functional,true,,user0@example.org,F1"
    profile = csv_profile(make_profile, tmp_path, [*PEOPLE, desk])
    assert profile.run(capsys=capsys)[0] == 0
    nested = zivver.org.add_group("nested@example.org", "Nested")
    zivver.org.group_by_email("desk@example.org")["members"].append({"value": nested})
    # the directory adds a delegate and a user: a write of the desk's members would follow
    (tmp_path / "people.csv").write_text(
        "\n".join(
            [
                *PEOPLE,
                "user3@example.org,User 3,personal,true,,,U3",
                desk.replace("user0@example.org", "user0@example.org;user1@example.org"),
            ]
        )
        + "\n"
    )

    def no_members(groups: list[dict]) -> None:
        for group in groups:
            if group["externalId"] == "desk@example.org":
                del group["members"]

    server = hostile(edit_list("Groups", no_members))
    through(profile, server)

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "functional account desk@example.org" in err and "members is missing" in err
    members = {m["value"] for m in zivver.org.group_by_email("desk@example.org")["members"]}
    assert nested in members, "the nested functional account is still a member"
    assert zivver.org.delegates_of("desk@example.org") == {"user0@example.org"}
    assert zivver.org.user_by_email("user3@example.org") is not None, "the rest synced"
    assert [h["email"] for h in report["not_sent"]] == ["desk@example.org"]
    assert report["status"] == "held"


def test_members_that_are_not_a_list_are_not_read_as_none(
    zivver, make_profile, hostile, tmp_path, capsys
):
    desk = "desk@example.org,Desk,functional,true,,user0@example.org,F1"
    profile = csv_profile(make_profile, tmp_path, [*PEOPLE, desk])
    assert profile.run(capsys=capsys)[0] == 0
    (tmp_path / "people.csv").write_text("\n".join([*PEOPLE, desk.replace(",true,", ",false,")]))

    def odd_members(groups: list[dict]) -> None:
        for group in groups:
            group["members"] = {"value": group["members"][0]["value"]}

    through(profile, hostile(edit_list("Groups", odd_members)))

    code, err, _ = profile.run("--confirm", "suspend-functional", capsys=capsys)

    assert code == 2, err
    assert "members is an object, not a list" in err
    assert zivver.org.delegates_of("desk@example.org") == {"user0@example.org"}


# --- defect 10: active that is no boolean ----------------------------------------------------


def test_active_as_the_string_false_is_unreadable_for_that_account_not_active(
    zivver, make_profile, hostile, tmp_path, capsys
):
    profile = csv_profile(make_profile, tmp_path, PEOPLE)
    assert profile.run(capsys=capsys)[0] == 0
    zivver.org.user_by_email("user1@example.org")["active"] = False  # suspended elsewhere
    (tmp_path / "people.csv").write_text(
        "\n".join([*PEOPLE, "user3@example.org,User 3,personal,true,,,U3"]) + "\n"
    )

    def as_strings(users: list[dict]) -> None:
        for user in users:
            user["active"] = str(user["active"]).lower()

    through(profile, hostile(edit_list("Users", as_strings)))

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "user user1@example.org" in err and 'active is "false", not true or false' in err
    held = {h["email"] for h in report["not_sent"]}
    assert held == {"user0@example.org", "user1@example.org", "user2@example.org"}
    assert zivver.org.user_by_email("user3@example.org") is not None, "a new user is created"
    assert zivver.org.user_by_email("user1@example.org")["active"] is False


# --- defect 9: a server that drips its answer --------------------------------------------------


def test_a_zivver_that_drips_its_answer_is_cut_at_the_timeout(
    zivver, make_profile, hostile, tmp_path, capsys
):
    profile = csv_profile(make_profile, tmp_path, PEOPLE)
    assert profile.run(capsys=capsys)[0] == 0
    server = hostile(lambda method, path, status, body: "drip" if method == "GET" else None)
    through(profile, server, timeout_seconds=1, max_retries=1)

    started = time.monotonic()
    code, err, report = profile.run(capsys=capsys)
    took = time.monotonic() - started

    assert server.dripped >= 1
    assert took < 8, f"two attempts of 1 s each (and a back-off) took {took:.1f} s"
    assert code == 3, err
    assert f"{server.url}/Users sent no complete answer within target.timeout_seconds = 1 s" in err
    assert report is not None and report["status"] == "aborted"


def test_a_dripping_answer_to_a_create_is_cut_and_not_created_twice(
    zivver, make_profile, hostile, tmp_path, capsys
):
    profile = csv_profile(make_profile, tmp_path, PEOPLE)
    server = hostile(lambda method, path, status, body: "drip" if method == "POST" else None)
    through(profile, server, timeout_seconds=1, max_retries=1, concurrency=3)

    started = time.monotonic()
    code, err, _ = profile.run(capsys=capsys)
    took = time.monotonic() - started

    assert took < 10, f"took {took:.1f} s"
    assert code == 0, err
    assert len(zivver.org.users) == 3 and server.dripped == 3


# --- defect 8: the disk fills up in the middle of an update -----------------------------------


@contextmanager
def disk_full_after(mappings: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The state directory's disk fills up when the account mapping is written for the
    ``mappings + 1``-th time: that write and every later one fail as SQLite fails then."""
    import zsync_core.store as store_module

    original_write, original_remember = store_module.transaction, Store.remember_account
    state = {"remembered": 0, "full": False}

    @contextmanager
    def write(db: sqlite3.Connection, directory: Path) -> Iterator[sqlite3.Connection]:
        with original_write(db, directory) as connection:
            if state["full"]:
                raise sqlite3.OperationalError("database or disk is full")
            yield connection

    def remember(self: Store, *args: Any) -> None:
        state["remembered"] += 1
        if state["remembered"] > mappings:
            state["full"] = True
        original_remember(self, *args)

    monkeypatch.setattr(store_module, "transaction", write)
    monkeypatch.setattr(Store, "remember_account", remember)
    yield
    monkeypatch.setattr(store_module, "transaction", original_write)
    monkeypatch.setattr(Store, "remember_account", original_remember)


def test_a_disk_that_fills_up_after_five_creates_says_what_was_sent(
    zivver, make_profile, tmp_path, capsys, monkeypatch
):
    rows = ["email,name,kind,active,aliases,delegates,id"] + [
        f"user{n}@example.org,User {n},personal,true,,,U{n}" for n in range(8)
    ]
    profile = csv_profile(make_profile, tmp_path, rows)
    profile.data["target"]["concurrency"] = 1
    profile.write()

    with disk_full_after(5, monkeypatch):
        code, err, report = profile.run(capsys=capsys)

    assert len(zivver.org.users) == 6, "five creates remembered, the sixth sent when it filled"
    assert code == 1, err
    assert "Nothing was changed" not in err and "nothing was changed" not in err
    assert "Stopped after sending 6 change(s) to Zivver (6 succeeded, 0 failed)" in err
    assert "database or disk is full" in err
    assert "create-user user5@example.org" in err, "the one the store could not record"
    assert "2 change(s) were not sent" in err
    assert "run zsync again" in err
    assert report is not None and report["exit_code"] == 1

    code, err, _ = profile.run(capsys=capsys)
    assert code == 0, err
    names = sorted(u["userName"] for u in zivver.org.users.values())
    assert names == [f"user{n}@example.org" for n in range(8)], "resumed, nothing twice"


def test_no_confirmation_is_asked_for_a_change_that_is_not_sent(
    directory, zivver, make_profile, capsys
):
    """The leaver's deletion is guarded, but Zivver answers that account unreadably, so it is
    not sent: the run does not ask for --confirm delete-users for it."""
    from tests.conftest import ldap_source

    for uid in ("ann", "bob"):
        directory.user(uid)
    profile = make_profile([ldap_source(directory.slapd)], delete_users=True)
    assert profile.run(capsys=capsys)[0] == 0
    directory.delete(directory.user_dn("bob"))
    zivver.org.user_by_email("bob@example.org")["active"] = "false"

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "--confirm delete-users" not in err
    assert report["guards"] == []
    assert [h["email"] for h in report["not_sent"]] == ["bob@example.org"]
    assert zivver.org.user_by_email("bob@example.org") is not None


# --- an answer that unpacks without end ------------------------------------------------------


def _bomb(megabytes: int) -> bytes:
    """A gzip body of about ``megabytes`` MiB of spaces once unpacked (a few dozen KiB sent)."""
    return gzip.compress(b" " * (megabytes * 2**20), compresslevel=9)


def test_a_list_that_unpacks_past_its_bound_is_not_read(
    zivver, make_profile, hostile, tmp_path, capsys, monkeypatch
):
    from zsync_core.zivver import client

    monkeypatch.setattr(client, "MAX_LIST_BYTES", 4 * 2**20)  # 1 GiB in production
    profile = csv_profile(make_profile, tmp_path, PEOPLE)
    assert profile.run(capsys=capsys)[0] == 0
    before = json.dumps(zivver.org.users, sort_keys=True)

    def rewrite(method: str, path: str, status: int, body: bytes) -> Answer | None:
        if method == "GET" and path.endswith("/Users"):
            return 200, "application/scim+json", _bomb(16), {"Content-Encoding": "gzip"}
        return None

    server = hostile(rewrite)
    through(profile, server)
    code, err, report = profile.run(capsys=capsys)

    assert code == 3, err
    assert f"The answer from {server.url}/Users was larger than 4 MiB" in err
    assert report is not None and report["status"] == "aborted"
    assert json.dumps(zivver.org.users, sort_keys=True) == before


def test_a_write_answered_with_a_bomb_is_a_failed_change(
    zivver, make_profile, hostile, tmp_path, capsys
):
    profile = csv_profile(make_profile, tmp_path, PEOPLE)

    def rewrite(method: str, path: str, status: int, body: bytes) -> Answer | None:
        if method == "POST" and b"user1@" in body:
            return 201, "application/scim+json", _bomb(40), {"Content-Encoding": "gzip"}
        return None

    through(profile, hostile(rewrite))
    code, err, report = profile.run(capsys=capsys)

    assert code == 1, err
    failed = [c for c in report["changes"] if c["state"] == "failed"]
    assert [c["email"] for c in failed] == ["user1@example.org"]
    assert "was not Zivver's (larger than 16 MiB" in failed[0]["error"]
    assert "Zivver may have created the account" in failed[0]["error"]
    assert zivver.org.user_by_email("user2@example.org") is not None, "the rest synced"


def test_an_account_holding_half_a_utf16_pair_is_held_and_an_emoji_is_not(
    zivver, make_profile, hostile, tmp_path, capsys
):
    """A lone surrogate (JSON can carry "\\ud800") cannot be encoded again: a write that
    keeps it back would fail mid-apply. An emoji, escaped as a pair, is an ordinary text."""
    profile = csv_profile(make_profile, tmp_path, PEOPLE)
    assert profile.run(capsys=capsys)[0] == 0
    renamed = [
        row.replace("User 1,", "User One,").replace("User 2,", "User Two,") for row in PEOPLE
    ]
    (tmp_path / "people.csv").write_text("\n".join(renamed) + "\n")

    def nicknames(users: list[dict]) -> None:
        for user in users:
            if user["userName"] == "user1@example.org":
                user["nickName"] = "Half \ud800 pair"
            if user["userName"] == "user2@example.org":
                user["nickName"] = "Smile \U0001f600"  # written as \ud83d\ude00

    through(profile, hostile(edit_list("Users", nicknames)))

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "user user1@example.org (id " in err and "holds half of a UTF-16 pair" in err
    assert {h["email"] for h in report["not_sent"]} == {"user1@example.org"}
    assert zivver.org.user_by_email("user1@example.org")["name"]["formatted"] == "User 1"
    assert zivver.org.user_by_email("user2@example.org")["name"]["formatted"] == "User Two"
