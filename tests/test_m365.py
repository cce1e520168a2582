"""The Microsoft 365 source against the Graph and Exchange emulator over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import M365_CLIENT, m365_source
from zsync_core.config import parse_config
from zsync_core.errors import ConfigError, SourceError
from zsync_core.model import Kind, SourceAccount
from zsync_core.sources import SourceResult, make_source
from zsync_core.sources.m365 import USER_IDS, Microsoft365Source
from zsync_core.store import Store
from zsync_emulator.microsoft import Tenant
from zsync_emulator.server import MicrosoftServer
from zsync_emulator.tls import Tls


def source_for(
    tmp_path: Path, server: MicrosoftServer, store: Store | None = None, **extra: Any
) -> Microsoft365Source:
    config = parse_config(
        {"target": {"api_key_env": "UNUSED"}, "sources": [m365_source(server, **extra)]},
        tmp_path / "zsync.toml",
    )
    source = make_source(config.sources[0], config, store=store)
    assert isinstance(source, Microsoft365Source)
    return source


def load(source: Microsoft365Source) -> SourceResult:
    return asyncio.run(source.load(lambda event: None))


def by_email(result: SourceResult) -> dict[str, SourceAccount]:
    return {account.email: account for account in result.accounts}


def small_tenant(tenant: Tenant) -> dict[str, str]:
    ids = {
        "ann": tenant.add_user(
            "ann@example.org",
            "Ann Smith",
            aliases=["a.smith@example.org"],
            immutable_id=base64.b64encode(
                uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").bytes_le
            ).decode(),
        ),
        "bob": tenant.add_user("bob@example.org", "Bob", upn="bob.jones@example.onmicrosoft.com"),
        "cat": tenant.add_user("cat@example.org", "Cat", enabled=False),
        "guest": tenant.add_user("visitor@partner.example", "Visitor", guest=True),
        "nomail": tenant.add_user(None, "Service principal-ish"),
    }
    inner = tenant.add_group("Inner", None, [ids["bob"]], security=True)
    ids["sales"] = tenant.add_group("Sales", "sales@example.org", [ids["ann"], inner, ids["cat"]])
    ids["box"] = tenant.add_mailbox(
        "helpdesk@example.org", "Help Desk", aliases=["support@example.org"]
    )
    tenant.grant(ids["box"], "bob.jones@example.onmicrosoft.com")  # the UPN, not the address
    tenant.grant(ids["box"], "cat@example.org")  # disabled: no delegated access
    tenant.grant(ids["box"], "ann@example.org", "ReadPermission")  # not FullAccess
    tenant.grant(ids["box"], "S-1-5-21-1004336348-1177238915-682003330-512")  # orphaned SID
    ids["room"] = tenant.add_mailbox("room1@example.org", "Room 1", kind="RoomMailbox")
    return ids


def test_a_tenant_reads_as_personal_and_functional_accounts(tmp_path, microsoft):
    tenant = microsoft.tenant
    ids = small_tenant(tenant)
    # an older shared mailbox whose Entra account is still enabled, put in a group by mistake
    old = tenant.add_mailbox("old-desk@example.org", "Old Desk", enabled=True)
    tenant.set_members(ids["sales"], [*tenant.members[ids["sales"]], old])

    result = load(source_for(tmp_path, microsoft, shared_mailboxes=True))

    accounts = by_email(result)
    assert set(accounts) == {
        "ann@example.org",
        "bob@example.org",
        "cat@example.org",
        "sales@example.org",
        "helpdesk@example.org",
        "old-desk@example.org",
    }, "no guests, no user without mail, no room; the shared mailbox's user is no person"
    ann = accounts["ann@example.org"]
    assert (ann.kind, ann.source_id, ann.sso_key) == (Kind.PERSONAL, ids["ann"], ids["ann"])
    assert ann.aliases == {"a.smith@example.org"}
    assert accounts["cat@example.org"].active is False
    sales = accounts["sales@example.org"]
    assert sales.kind is Kind.FUNCTIONAL
    assert sales.delegates == {"ann@example.org", "bob@example.org"}, (
        "nested, active members only; a shared mailbox is nobody's delegate"
    )
    assert accounts["old-desk@example.org"].kind is Kind.FUNCTIONAL
    helpdesk = accounts["helpdesk@example.org"]
    assert (helpdesk.kind, helpdesk.source_id) == (Kind.FUNCTIONAL, ids["box"])
    assert helpdesk.active is True, "a shared mailbox's blocked Entra account does not disable it"
    assert helpdesk.aliases == {"support@example.org"}, "SPO: and X500: are no addresses"
    assert helpdesk.delegates == {"bob@example.org"}


def test_the_on_premises_guid_preset_decodes_the_immutable_id(tmp_path, microsoft):
    small_tenant(microsoft.tenant)

    result = load(source_for(tmp_path, microsoft, sso_key="on-premises-guid"))

    accounts = by_email(result)
    assert accounts["ann@example.org"].sso_key == "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert accounts["bob@example.org"].sso_key is None
    assert any("onPremisesImmutableId" in n.message for n in result.notices)


def test_a_delta_run_reads_only_changes_and_agrees_with_a_full_read(tmp_path, microsoft):
    tenant = microsoft.tenant
    ids = small_tenant(tenant)
    store = Store.open(tmp_path / "state")
    first = source_for(tmp_path, microsoft, store, shared_mailboxes=True)
    load(first)
    assert first.full

    rng = random.Random(7)
    users = [ids["ann"], ids["bob"], ids["cat"]]
    for n in range(40):
        users.append(tenant.add_user(f"new{n}@example.org", f"New {n}"))
    tenant.update_user(
        ids["ann"], displayName="Ann Jansen", proxyAddresses=["SMTP:ann@example.org"]
    )
    tenant.update_user(ids["bob"], accountEnabled=False)
    gone = tenant.users[users[5]]["mail"]
    tenant.delete_user(users[5])
    tenant.set_members(ids["sales"], [users[3], users[4], users[6]])
    tenant.add_group("Late", "late@example.org", rng.sample(users[6:], 5))
    tenant.grant(ids["box"], "new7@example.org")
    before = tenant.count("GET /v1.0/users/delta")

    delta = source_for(tmp_path, microsoft, store, shared_mailboxes=True)
    changed = load(delta)

    assert not delta.full
    assert tenant.count("GET /v1.0/users/delta") - before == 1, "one page of changes"
    full = load(source_for(tmp_path, microsoft, None, shared_mailboxes=True))
    assert sorted(changed.accounts) == sorted(full.accounts)
    accounts = by_email(changed)
    assert accounts["ann@example.org"].display_name == "Ann Jansen"
    assert accounts["ann@example.org"].aliases == frozenset()
    assert accounts["bob@example.org"].active is False
    assert gone not in accounts
    assert accounts["helpdesk@example.org"].delegates == {"new7@example.org"}


AWKWARD = [
    "amy@example.org",
    "Bert.Upper@Example.org",
    "0800-desk@example.org",
    "o'brien@example.org",
    "émile@example.org",
    "_svc-mail@example.org",
    "~tilde@example.org",
    "zoë@example.org",
    "c@example.org",
    "t@example.org",
]
"""Addresses a split of users by mail could lose: case, digits, quotes, letters outside
ASCII, punctuation at either end of the alphabet, and ones right at a boundary."""


ADDRESS_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)


@settings(max_examples=300, deadline=None)
@given(bounds=st.lists(ADDRESS_TEXT, max_size=9), mails=st.lists(ADDRESS_TEXT, max_size=20))
def test_the_ranges_of_a_split_read_hold_every_address_whatever_its_letters(bounds, mails):
    """As the emulator (standing for Graph) reads the filters: quotes, case, any letter."""
    from zsync_core.sources.m365.ranges import spans, where
    from zsync_emulator.microsoft.filters import user_filter

    tests = [user_filter(where(span), advanced=False) for span in spans(bounds)]
    assert not any(isinstance(t, str) for t in tests), "Graph takes every range's filter"
    for mail in mails:
        user = {"mail": f"{mail}@example.org"}
        assert any(t(user) for t in tests), f"{user['mail']!r} is in no range"


@pytest.mark.parametrize("by_address", [True, False], ids=["lowest first", "any order"])
def test_a_first_read_of_crowded_addresses_misses_nobody_and_the_next_is_split_where_they_fell(
    tmp_path, microsoft, monkeypatch, by_address
):
    tenant = microsoft.tenant
    tenant.ranges_by_address = by_address
    rng = random.Random(5)
    numbers = rng.sample(range(2_010_000, 2_100_000), 300)  # student numbers: one start
    expected = {tenant.add_user(f"s{n}@uni.example"): f"s{n}@uni.example" for n in numbers}
    for mail in AWKWARD:
        expected[tenant.add_user(mail)] = mail.lower()
    starts: list[str | None] = []
    tenant.on_list = starts.append
    small_pages(monkeypatch, 20)  # 310 users: 16 pages, 15 of them behind 'mail ge r …'
    store = Store.open(tmp_path / "state")

    first = source_for(tmp_path, microsoft, store, graph_concurrency=3)
    result = load(first)

    assert {a.source_id: a.email for a in result.accounts} == expected
    assert len(starts) == 8, "a first read lists the ranges of the fixed alphabet"
    assert tenant.overflows["graph"] == 0
    weekly = Microsoft365Source(first.config, first.profile, store=store, full_read=True)
    starts.clear()
    again = load(weekly)
    assert sorted(again.accounts) == sorted(result.accounts)
    assert len(starts) == 6, "a later read cuts where the addresses fell"


def small_pages(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    from zsync_core.sources.m365 import graph, ranges

    monkeypatch.setattr(graph, "PAGE", size)
    monkeypatch.setattr(ranges, "PAGE", size)


def test_a_full_read_splits_the_users_by_address_and_misses_nobody(
    tmp_path, microsoft, monkeypatch
):
    tenant = microsoft.tenant
    tenant.latency = 0.02  # requests overlap: the source must keep to graph_concurrency
    expected = {tenant.add_user(mail, mail.split("@")[0]): mail.lower() for mail in AWKWARD}
    rng = random.Random(11)
    for n in range(60):
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        expected[tenant.add_user(f"{name}{n}@example.org")] = f"{name}{n}@example.org"
    tenant.add_user(None, "No mailbox")
    small_pages(monkeypatch, 4)  # 70 users are 18 pages: the next full read splits in 6
    store = Store.open(tmp_path / "state")

    first = source_for(tmp_path, microsoft, store, graph_concurrency=3)
    result = load(first)

    assert {a.source_id: a.email for a in result.accounts} == expected
    assert tenant.count("GET /v1.0/users") >= 8, "one list per range of the first split"
    assert tenant.overflows["graph"] == 0, "never more than graph_concurrency at once"
    bounds = store.space.data("Microsoft 365")["hints"]["user_bounds"]
    assert len(bounds) == 5, "2 × graph_concurrency ranges, where the addresses fall"

    before = tenant.count("GET /v1.0/users")
    weekly = Microsoft365Source(first.config, first.profile, store=store, full_read=True)
    again = load(weekly)

    assert weekly.full
    assert {a.source_id: a.email for a in again.accounts} == expected, (
        "users on a boundary are in two ranges and taken once"
    )
    assert tenant.count("GET /v1.0/users") - before >= 18, "every page of every range"
    assert tenant.overflows["graph"] == 0
    # the mirror holds this read's pages only: a delta run on it sees the same directory
    daily = load(source_for(tmp_path, microsoft, store, graph_concurrency=3))
    assert sorted(daily.accounts) == sorted(again.accounts)


@pytest.mark.parametrize(
    ("knob", "said"),
    [
        ("range_filters", "Listed the users in one range instead."),
        ("latest_tokens", "Read through delta instead."),
    ],
)
def test_a_graph_that_refuses_to_split_the_read_is_read_whole_with_a_warning(
    tmp_path, microsoft, knob, said
):
    tenant = microsoft.tenant
    expected = {tenant.add_user(mail, mail.split("@")[0]): mail.lower() for mail in AWKWARD}
    setattr(tenant, knob, False)
    store = Store.open(tmp_path / "state")

    result = load(source_for(tmp_path, microsoft, store))

    assert {a.source_id: a.email for a in result.accounts} == expected
    warnings = [n.message for n in result.notices if n.level == "warning"]
    assert len(warnings) == 1 and said in warnings[0] and "400" in warnings[0]
    assert "user_filter" not in warnings[0], "no user_filter was set"
    tenant.update_user(next(iter(expected)), displayName="Changed")
    again = load(source_for(tmp_path, microsoft, store))
    assert "Changed" in {a.display_name for a in again.accounts}, "the next run reads the changes"


@pytest.mark.parametrize("ids_kept", [True, False], ids=["ids kept", "older mirror"])
def test_a_user_the_ranges_lose_is_found_by_id_against_the_mirror_and_the_admin_is_told(
    tmp_path, microsoft, ids_kept
):
    tenant = microsoft.tenant
    expected = {tenant.add_user(mail, mail.split("@")[0]): mail.lower() for mail in AWKWARD}
    gone = tenant.add_user("gone@example.org", "Gone")
    store = Store.open(tmp_path / "state")
    first = source_for(tmp_path, microsoft, store)
    load(first)
    assert len(store.space.blobs(first.name, USER_IDS)) == 1
    if not ids_kept:  # as a mirror written before the ids were kept: its pages are scanned
        store.db.execute("DELETE FROM source_blobs WHERE kind = ?", (USER_IDS,))
    tenant.delete_user(gone)
    lost = next(iter(expected))
    tenant.lost_by_ranges = {lost}  # Graph's ranges misbehave from now on

    weekly = Microsoft365Source(first.config, first.profile, store=store, full_read=True)
    result = load(weekly)

    assert {a.source_id: a.email for a in result.accounts} == expected, (
        "the lost user is there; the deleted one is not"
    )
    warnings = [n.message for n in result.notices if n.level == "warning"]
    assert len(warnings) == 1 and "1 users with a mailbox were in no range" in warnings[0]
    daily = load(source_for(tmp_path, microsoft, store))
    assert sorted(daily.accounts) == sorted(result.accounts), "the mirror keeps what was found"


def test_a_user_whose_new_address_moves_it_into_a_range_already_read_is_not_lost(
    tmp_path, microsoft
):
    tenant = microsoft.tenant
    amy = tenant.add_user("amy@example.org", "Amy")
    tom = tenant.add_user("tom@example.org", "Tom Thumb", aliases=["thumb@example.org"])
    kim = tenant.add_user("kim@example.org", "Kim")

    def meanwhile(where: str | None) -> None:
        # the last range starts; every range before it has been read (one at a time)
        if where == "mail ge 't'":
            tenant.update_user(tom, mail="abe@example.org", proxyAddresses=["SMTP:abe@example.org"])
            tenant.delete_user(kim)
            tenant.update_user(amy, displayName="Amy Renamed", accountEnabled=False)

    tenant.on_list = meanwhile
    source = source_for(tmp_path, microsoft, Store.open(tmp_path / "state"), graph_concurrency=1)

    result = load(source)

    accounts = {a.source_id: a for a in result.accounts}
    assert set(accounts) == {amy, tom}, "Tom is in no range any more; Kim was read, then deleted"
    assert accounts[tom].email == "abe@example.org"
    assert accounts[tom].display_name == "Tom Thumb", (
        "the change named only the address: the rest of Tom was read whole"
    )
    assert accounts[tom].aliases == frozenset()
    assert (accounts[amy].display_name, accounts[amy].active) == ("Amy Renamed", False), (
        "read before the change, then changed: the change wins"
    )


def test_a_user_who_gets_a_mailbox_is_read_whole_and_one_who_loses_it_leaves(tmp_path, microsoft):
    tenant = microsoft.tenant
    late = tenant.add_user(None, "Late Comer", upn="late.comer@example.onmicrosoft.com")
    leaving = tenant.add_user("leaving@example.org", "Leaving")
    tenant.add_user("stays@example.org", "Stays")
    store = Store.open(tmp_path / "state")
    assert {a.email for a in load(source_for(tmp_path, microsoft, store)).accounts} == {
        "leaving@example.org",
        "stays@example.org",
    }

    tenant.update_user(late, mail="late@example.org", proxyAddresses=["SMTP:late@example.org"])
    tenant.update_user(leaving, mail=None, proxyAddresses=[])
    delta = source_for(tmp_path, microsoft, store)
    result = load(delta)

    assert not delta.full
    accounts = by_email(result)
    assert set(accounts) == {"late@example.org", "stays@example.org"}
    assert (accounts["late@example.org"].source_id, accounts["late@example.org"].display_name) == (
        late,
        "Late Comer",
    )
    assert load(source_for(tmp_path, microsoft, store)).accounts == result.accounts, (
        "the page read whole is kept with the mirror"
    )


@pytest.mark.parametrize(
    ("graph_url", "exchange_url", "expected"),
    [
        (
            "https://graph.microsoft.com",
            "https://outlook.office365.com",
            ("https://graph.microsoft.com/.default", "https://outlook.office365.com/.default"),
        ),
        (  # US Government (GCC High)
            "https://graph.microsoft.us",
            "https://outlook.office365.us",
            ("https://graph.microsoft.us/.default", "https://outlook.office365.us/.default"),
        ),
        (  # operated by 21Vianet
            "https://microsoftgraph.chinacloudapi.cn/",
            "https://partner.outlook.cn",
            (
                "https://microsoftgraph.chinacloudapi.cn/.default",
                "https://partner.outlook.cn/.default",
            ),
        ),
        (  # a reverse proxy (or the emulator) in front of the public cloud
            "https://graph-proxy.example.org:8443",
            "https://127.0.0.1:8123",
            ("https://graph.microsoft.com/.default", "https://outlook.office365.com/.default"),
        ),
    ],
)
def test_a_national_cloud_signs_in_for_its_own_graph_and_exchange(
    tmp_path, graph_url, exchange_url, expected
):
    from zsync_core.sources.m365.signin import EXCHANGE, GRAPH, scopes

    source = {
        "name": "M365",
        "type": "microsoft365",
        "tenant_id": "t",
        "client_id": "c",
        "client_secret_env": "M365_SECRET",
        "graph_url": graph_url,
        "exchange_url": exchange_url,
    }
    config = parse_config(
        {"target": {"api_key_env": "UNUSED"}, "sources": [source]}, tmp_path / "zsync.toml"
    )
    found = scopes(config.sources[0])  # type: ignore[arg-type]
    assert (found[GRAPH], found[EXCHANGE]) == expected


def test_a_damaged_mirror_is_read_again_from_graph_with_a_warning(tmp_path, microsoft):
    tenant = microsoft.tenant
    small_tenant(tenant)
    store = Store.open(tmp_path / "state")
    before = load(source_for(tmp_path, microsoft, store))
    store.db.execute("UPDATE source_blobs SET body = ? WHERE kind = 'user'", (b"\x00garbage",))

    again = source_for(tmp_path, microsoft, store)
    result = load(again)

    assert again.full
    assert sorted(result.accounts) == sorted(before.accounts)
    assert any("local mirror" in n.message and n.level == "warning" for n in result.notices)
    later = load(source_for(tmp_path, microsoft, store))
    assert all("local mirror" not in n.message for n in later.notices), "a good mirror again"


def test_an_expired_delta_link_reads_everything_again(tmp_path, microsoft):
    tenant = microsoft.tenant
    small_tenant(tenant)
    store = Store.open(tmp_path / "state")
    load(source_for(tmp_path, microsoft, store))
    tenant.expire_tokens()
    tenant.add_user("dan@example.org", "Dan")

    source = source_for(tmp_path, microsoft, store)
    result = load(source)

    assert source.full
    assert "dan@example.org" in by_email(result)
    assert any("expired" in n.message for n in result.notices)
    assert not source_for(tmp_path, microsoft, store).full_read
    again = source_for(tmp_path, microsoft, store)
    load(again)
    assert not again.full, "the new links work again"


def test_a_page_that_fails_half_way_is_an_incomplete_read_and_keeps_the_link(tmp_path, microsoft):
    tenant = microsoft.tenant
    for n in range(250):
        tenant.add_user(f"user{n:03}@example.org")
    store = Store.open(tmp_path / "state")
    load(source_for(tmp_path, microsoft, store))
    link = store.space.data("Microsoft 365")
    for n in range(150):
        tenant.update_user(next(iter(tenant.users)), displayName=f"Changed {n}")
    for n in range(1500):
        tenant.add_user(f"late{n:04}@example.org")
    tenant.fail_page = 2

    with pytest.raises(SourceError, match="incomplete"):
        load(source_for(tmp_path, microsoft, store, max_retries=1))

    assert store.space.data("Microsoft 365") == link, "the link is not advanced"
    tenant.fail_page = None
    result = load(source_for(tmp_path, microsoft, store))
    assert len(result.accounts) == 1750, "the next run catches up on every change"


def test_throttling_is_waited_out(tmp_path, microsoft):
    tenant = microsoft.tenant
    small_tenant(tenant)
    tenant.throttle.extend([(429, 1), (503, 0)])

    result = load(source_for(tmp_path, microsoft, shared_mailboxes=True))

    assert "helpdesk@example.org" in by_email(result)
    assert not tenant.throttle


def test_throttling_past_the_retries_fails_the_read(tmp_path, microsoft):
    microsoft.tenant.throttle.extend([(429, 0)] * 3)

    with pytest.raises(SourceError, match="429.*incomplete"):
        load(source_for(tmp_path, microsoft, max_retries=1))


def test_a_token_that_expires_during_the_read_is_renewed(tmp_path, microsoft, monkeypatch):
    tenant = microsoft.tenant
    for n in range(30):
        tenant.add_user(f"user{n:03}@example.org")
    tenant.token_lifetime = 2  # whole seconds: a new token lasts one at least
    tenant.latency = 0.4  # ten pages of three, one after the other: the read outlives a token
    small_pages(monkeypatch, 3)

    result = load(source_for(tmp_path, microsoft))

    assert len(result.accounts) == 30
    assert tenant.count("POST /{tenant}/oauth2/v2.0/token") >= 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_secret_env": "WRONG_SECRET"}, "client secret is wrong"),
        ({"client_id": "99999999-2222-4333-8444-555555555555"}, "no such application"),
        ({"tenant_id": "nobody.example"}, "tenant 'nobody.example'"),
    ],
)
def test_sign_in_refusals_say_what_to_fix(tmp_path, microsoft, monkeypatch, change, expected):
    monkeypatch.setenv("WRONG_SECRET", "not-the-secret")

    with pytest.raises(SourceError, match=expected):
        load(source_for(tmp_path, microsoft, **change))


def test_an_expired_secret_says_to_make_a_new_one(tmp_path, microsoft):
    microsoft.tenant.apps[M365_CLIENT].secrets = {"m365-client-secret~value": 1.0}

    with pytest.raises(SourceError, match="has expired.*Certificates & secrets"):
        load(source_for(tmp_path, microsoft))


def test_when_one_chain_fails_the_others_stop_before_the_error_is_told(
    tmp_path, microsoft, monkeypatch
):
    tenant = microsoft.tenant
    for n in range(40):
        tenant.add_user(f"{'abcdefghijklmnopqrstuvwxyz'[n % 26]}{n}@example.org")
    tenant.apps[M365_CLIENT].roles = {"User.Read.All"}  # the groups' chain is refused
    tenant.latency = 0.1  # the ranges of users are on their way when it is
    small_pages(monkeypatch, 2)
    source = source_for(tmp_path, microsoft, Store.open(tmp_path / "state"))

    async def run() -> list[asyncio.Task[Any]]:
        with pytest.raises(SourceError, match="GroupMember.Read.All"):
            await source.load(lambda event: None)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert asyncio.run(run()) == [], "no range (nor a page asked for ahead) still reading"
    assert tenant.count("GET /v1.0/users") >= 1, "the users were being read"


def test_missing_consents_and_exchange_role_are_named(tmp_path, microsoft):
    app = microsoft.tenant.apps[M365_CLIENT]
    app.roles = {"Exchange.ManageAsApp"}
    with pytest.raises(SourceError, match="403.*User.Read.All and GroupMember.Read.All"):
        load(source_for(tmp_path, microsoft))
    app.roles = {"User.Read.All", "GroupMember.Read.All"}
    with pytest.raises(SourceError, match="Exchange.ManageAsApp"):
        load(source_for(tmp_path, microsoft, shared_mailboxes=True))
    app.roles.add("Exchange.ManageAsApp")
    app.exchange_role = None
    with pytest.raises(SourceError, match="Exchange Recipient Administrator"):
        load(source_for(tmp_path, microsoft, shared_mailboxes=True))


def test_a_certificate_signs_in_as_pem_pfx_or_encrypted_pem(
    tmp_path, microsoft, app_certificate, monkeypatch
):
    small_tenant(microsoft.tenant)
    monkeypatch.setenv("CERT_PASSWORD", "pfx-password")
    pem = {"client_secret_env": None, "certificate_file": str(app_certificate["pem"])}
    for credential in (
        pem,
        {
            **pem,
            "certificate_file": str(app_certificate["pfx"]),
            "certificate_password_env": "CERT_PASSWORD",
        },
        {
            **pem,
            "certificate_file": str(app_certificate["encrypted"]),
            "certificate_password_env": "CERT_PASSWORD",
        },
    ):
        extra = {k: v for k, v in credential.items() if v is not None}
        data = m365_source(microsoft, **extra)
        del data["client_secret_env"]
        config = parse_config(
            {"target": {"api_key_env": "X"}, "sources": [data]}, tmp_path / "p.toml"
        )
        result = load(make_source(config.sources[0], config))  # type: ignore[arg-type]
        assert "ann@example.org" in by_email(result), credential


def test_an_unregistered_certificate_or_a_missing_password_is_explained(
    tmp_path, microsoft, app_certificate
):
    data = m365_source(microsoft, certificate_file=str(app_certificate["encrypted"]))
    del data["client_secret_env"]
    config = parse_config({"target": {"api_key_env": "X"}, "sources": [data]}, tmp_path / "p.toml")
    with pytest.raises(ConfigError, match="certificate_password"):
        load(make_source(config.sources[0], config))  # type: ignore[arg-type]

    microsoft.tenant.apps[M365_CLIENT].certificates.clear()
    data["certificate_file"] = str(app_certificate["pem"])
    config = parse_config({"target": {"api_key_env": "X"}, "sources": [data]}, tmp_path / "p.toml")
    with pytest.raises(SourceError, match="refused the certificate.*not registered"):
        load(make_source(config.sources[0], config))  # type: ignore[arg-type]


def test_tls_endpoints_are_trusted_through_ca_file(tmp_path, certificate, monkeypatch):
    monkeypatch.setenv("M365_SECRET", "secret")
    tenant = Tenant()
    tenant.register_app(M365_CLIENT, secret="secret")
    tenant.add_user("ann@example.org")
    tls = Tls(certificate[0], certificate[0], certificate[1])  # self-signed: its own CA
    with MicrosoftServer(tenant, tls=tls) as server:
        result = load(source_for(tmp_path, server, ca_file=str(certificate[0])))
        assert "ann@example.org" in by_email(result)
        with pytest.raises(
            SourceError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"
        ):
            load(source_for(tmp_path, server, ca_file=None))


def test_a_scope_group_limits_users_to_its_transitive_members(tmp_path, microsoft):
    tenant = microsoft.tenant
    ids = small_tenant(tenant)
    zivver_users = tenant.add_group("Zivver users", "zivver-users@example.org", [ids["sales"]])

    result = load(source_for(tmp_path, microsoft, scope_group=zivver_users, groups=False))

    assert {a.email for a in result.accounts} == {
        "ann@example.org",
        "bob@example.org",
        "cat@example.org",
    }


def test_a_user_filter_reads_users_whole_with_graphs_advanced_query(tmp_path, microsoft):
    tenant = microsoft.tenant
    small_tenant(tenant)
    store = Store.open(tmp_path / "state")

    result = load(
        source_for(
            tmp_path,
            microsoft,
            store,
            user_filter="endswith(mail,'@example.org')",
            groups=False,
            shared_mailboxes=True,
        )
    )

    assert {a.email for a in result.accounts} == {
        "ann@example.org",
        "bob@example.org",
        "cat@example.org",
        "helpdesk@example.org",
    }
    with pytest.raises(SourceError, match="user_filter"):
        load(source_for(tmp_path, microsoft, user_filter="mail gt 'a'", groups=False))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"graph_url": "http://graph.example.org"}, "Microsoft 365 is served over https only"),
        ({"authority_url": "http://127.0.0.1:8080"}, "Microsoft 365 is served over https only"),
        ({"certificate_file": "/etc/zsync/m365.pem"}, "exactly one credential"),
        ({"sso_key": "objectGUID"}, "sources[0] (Microsoft 365).sso_key"),
        ({"shared_mailbox": True}, "Did you mean 'shared_mailboxes'"),
    ],
)
def test_profile_mistakes_are_named(tmp_path, microsoft, change, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"target": {"api_key_env": "X"}, "sources": [m365_source(microsoft, **change)]},
            tmp_path / "zsync.toml",
        )
    assert message in str(caught.value)
