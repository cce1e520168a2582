"""The emulator answers as the real Zivver does on the wire (zivver-wire.md), point by point,
over real HTTP: if it were kinder than Zivver, the rest of the suite could not see the harm."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import API_KEY
from zsync_emulator import EmulatorServer, Organization
from zsync_emulator.organization import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    PATCH_OP,
    SCIM_JSON,
    ZIVVER_GROUP,
    ZIVVER_USER,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def http(zivver):
    with httpx.Client(base_url=zivver.url, headers=AUTH) as client:
        yield client


def test_a_put_merges_at_the_top_level_but_replaces_a_block_it_carries(zivver, http):
    org = zivver.org
    ann = org.add_user(
        "ann@example.org",
        "Ann",
        sso_key="KEY",
        nick_name="annie",
        phone_numbers=["+31600000001"],
        external_account_id="EXT",
    )
    suspended = http.put(f"/Users/{ann}", json={"schemas": [CORE_USER], "active": False})
    assert suspended.status_code == 200
    assert org.sso_keys[ann] == "KEY", "no block sent: the key is kept"
    user = org.users[ann]
    assert user["nickName"] == "annie" and user["phoneNumbers"] == [{"value": "+31600000001"}]
    assert user[ZIVVER_USER]["ExternalAccountId"] == "EXT"
    assert user["active"] is False

    aliased = http.put(
        f"/Users/{ann}",
        json={"schemas": [CORE_USER, ZIVVER_USER], ZIVVER_USER: {"aliases": ["a@example.org"]}},
    )
    assert aliased.status_code == 200
    assert ann not in org.sso_keys, "the block was sent without the key: Zivver erased it"
    assert org.users[ann][ZIVVER_USER] == {"aliases": ["a@example.org"], "delegates": []}
    assert "SsoAccountKey" not in aliased.text, "the key is write-only"

    http.put(f"/Users/{ann}", json={"phoneNumbers": [{"value": "+31600000002"}]})
    assert org.users[ann]["phoneNumbers"] == [{"value": "+31600000002"}], "a sent list replaces"


def test_creates_of_an_address_that_exists(zivver, http):
    zivver.org.add_user("ann@example.org")
    user = http.post("/Users", json={"userName": "ann@example.org"})
    assert (user.status_code, user.content) == (409, b""), "409 with an empty body"
    group = http.post("/Groups", json={"externalId": "ann@example.org", "displayName": "A"})
    assert (group.status_code, group.text) == (400, "Account is outside the organization")


def test_per_item_errors_are_plain_text(zivver, http):
    org = zivver.org
    org.domains.append("example.org")
    org.guests.add("guest@example.org")
    bob = org.add_user("bob@example.org")

    def create(**extension: object) -> httpx.Response:
        return http.post(
            "/Users", json={"userName": "ann@example.org", ZIVVER_USER: dict(extension)}
        )

    cases = [
        (create(aliases=["b@elsewhere.com"]), "Error creating alias: Domain Not Owned"),
        (
            create(aliases=["guest@example.org"]),
            "Error creating alias: Alias is a guest: guest@example.org",
        ),
        (
            create(aliases=["bob@example.org"]),
            f"Error creating alias: Alias is already taken for {bob}",
        ),
        (
            http.post("/Users", json={"userName": "x@elsewhere.com"}),
            "Account is outside the organization",
        ),
        (
            http.post(
                "/Users", json={"userName": "d@example.org", ENTERPRISE_USER: {"division": "Nope"}}
            ),
            "Invalid division: Nope",
        ),
        (http.get("/Users/no-such-id"), "Unknown account with uuid: no-such-id"),
        (
            http.post("/Groups", json={"externalId": "g@example.org", "members": [{"value": "x"}]}),
            "Unknown in set",
        ),
    ]
    for response, text in cases:
        assert (response.status_code, response.text) == (400, text)
        assert response.headers["content-type"].startswith("text/plain")


def test_members_are_ids_of_users_or_groups(zivver, http):
    org = zivver.org
    ann = org.add_user("ann@example.org")
    board = org.add_group("board@example.org")
    desk = org.add_group("desk@example.org", member_ids=[ann, "dangling-id"])
    put = http.put(f"/Groups/{desk}", json={"members": [{"value": ann}, {"value": board}]})
    assert put.status_code == 200 and org.groups[desk]["members"] == [
        {"value": ann},
        {"value": board},
    ]
    refused = http.put(f"/Groups/{desk}", json={"members": [{"value": "dangling-id"}]})
    assert (refused.status_code, refused.text) == (400, "Error creating member: Member Not Found")
    ignored = http.put(f"/Groups/{desk}", json={"members": []})
    assert ignored.status_code == 200 and len(org.groups[desk]["members"]) == 2, "Zivver's bug"


def test_a_group_has_zivvers_shape_and_its_block_is_replaced_too(zivver, http):
    desk = zivver.org.add_group("desk@example.org", external_account_id="EXT", division="/")
    resource = http.get(f"/Groups/{desk}").json()
    assert resource["schemas"] == [CORE_GROUP, ZIVVER_GROUP, ENTERPRISE_USER]
    assert resource[ENTERPRISE_USER] == {"division": "/"}
    http.put(f"/Groups/{desk}", json={ZIVVER_GROUP: {"aliases": ["help@example.org"]}})
    assert zivver.org.groups[desk][ZIVVER_GROUP] == {"aliases": ["help@example.org"]}


def test_patch_content_types_and_answers(zivver, http):
    desk = zivver.org.add_group("desk@example.org")
    clear = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]}
    wrong_type = http.patch(f"/Groups/{desk}", json=clear)
    assert wrong_type.status_code == 415
    assert wrong_type.json() == {"code": 415, "message": "HTTP 415 Unsupported Media Type"}
    scim = {"Content-Type": SCIM_JSON}
    wrong_accept = http.patch(
        f"/Groups/{desk}", json=clear, headers=scim | {"Accept": "application/json"}
    )
    assert wrong_accept.status_code == 406 and wrong_accept.json()["code"] == 406
    request = http.build_request("PATCH", f"/Groups/{desk}", json=clear, headers=scim)
    del request.headers["Accept"]
    no_accept = http.send(request)
    assert no_accept.status_code == 200, "with no Accept it works, and answers 200"
    assert no_accept.json()["externalId"] == "desk@example.org"


def test_a_bad_key_is_dropwizard_json(zivver):
    answer = httpx.get(f"{zivver.url}/Users", headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401
    assert answer.json() == {
        "code": 401,
        "message": "Credentials are required to access this resource.",
    }


def test_a_list_is_every_resource_without_paging_fields(zivver, http):
    for number in range(3):
        zivver.org.add_user(f"u{number}@example.org")
    listed = http.get("/Users", params={"startIndex": 2, "count": 1}).json()
    assert set(listed) == {"Resources", "totalResults"}
    assert len(listed["Resources"]) == 3 and listed["totalResults"] == 3


def test_429_has_ratelimit_headers_and_no_retry_after_unless_asked():
    org = Organization(api_key=API_KEY, rate_limit=2, rate_window=5.0)
    with EmulatorServer(org) as server, httpx.Client(headers=AUTH) as http:
        answers = [http.get(f"{server.url}/Users") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        limited = answers[2]
        assert "Retry-After" not in limited.headers
        assert limited.headers["RateLimit-Limit"] == "2"
        assert limited.headers["RateLimit-Remaining"] == "0"
        assert 1 <= int(limited.headers["RateLimit-Reset"]) <= 5
        assert limited.json()["emptiedBucketDetails"] == {
            "limiterId": "scim-api",
            "budget": 2,
            "windowSeconds": 5.0,
        }
        org.retry_after = True
        assert "Retry-After" in http.get(f"{server.url}/Users").headers


def test_a_phone_number_not_in_e164_is_refused_as_the_stricter_side():
    """The capture holds only E.164 numbers; the evidence says nothing of another form."""
    org = Organization(api_key="k", rate_limit=None)
    with EmulatorServer(org) as server, httpx.Client(headers={"Authorization": "Bearer k"}) as http:
        user = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ann@example.org",
            "name": {"formatted": "Ann"},
            "phoneNumbers": [{"value": "06 1234 5678"}],
        }
        refused = http.post(f"{server.url}/Users", json=user)
        assert (refused.status_code, refused.text) == (400, "Invalid phone number: 06 1234 5678")
        user["phoneNumbers"] = [{"value": "+31612345678"}]
        assert http.post(f"{server.url}/Users", json=user).status_code == 201
