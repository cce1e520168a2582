"""LDAP entries to accounts, on plain dicts: no slapd (tests/test_headless_ldap.py reads a real one).

An entry is what a search returns: lower-cased attribute names to lists of raw bytes.
"""

from __future__ import annotations

import uuid

from zsync_core.model import Kind
from zsync_core.sources.ldap import PRESETS
from zsync_core.sources.ldap_map import Mapper, map_entries

AD = PRESETS["active-directory"].attributes
OPENLDAP = PRESETS["openldap"].attributes
STAFF = "ou=staff,dc=example,dc=org"


def ad_user(name: str, *, guid: uuid.UUID | None = None, **extra: list[bytes]) -> dict:
    entry = {
        "objectguid": [(guid or uuid.uuid5(uuid.NAMESPACE_DNS, name)).bytes_le],
        "mail": [f"{name}@example.org".encode()],
        "displayname": [name.title().encode()],
        "useraccountcontrol": [b"512"],
    }
    entry.update(extra)
    return entry


def dn(name: str) -> str:
    return f"cn={name},{STAFF}"


def by_email(result) -> dict:
    return {a.email: a for a in result.accounts}


def test_an_ad_user_becomes_a_personal_account_keyed_by_its_guid():
    guid = uuid.uuid4()
    entry = ad_user(
        "ann",
        guid=guid,
        proxyaddresses=[
            b"SMTP:ann@example.org",  # the primary address again: not an alias
            b"smtp:a.smith@Example.org",
            b"X500:/o=Example/cn=ann",  # not an address
            b"sip:ann@example.org",
        ],
        extensionattribute1=[b"ignored"],
    )

    result = map_entries({dn("ann"): entry}, {}, AD, source="AD")

    [ann] = result.accounts
    assert ann.kind is Kind.PERSONAL and ann.source == "AD" and ann.entry == dn("ann")
    assert ann.source_id == str(guid) and ann.sso_key == str(guid)
    assert ann.display_name == "Ann" and ann.active
    assert ann.aliases == frozenset({"a.smith@example.org"})
    assert result.notices == [] and not result.unreadable_ids


def test_a_disabled_account_is_inactive_and_a_shared_mailbox_is_a_live_functional_account():
    users = {
        dn("gone"): ad_user("gone", useraccountcontrol=[b"514"]),  # bit 2: disabled
        dn("info"): ad_user("info", useraccountcontrol=[b"514"], msexchrecipienttypedetails=[b"4"]),
    }

    accounts = by_email(map_entries(users, {}, AD))

    assert accounts["gone@example.org"].kind is Kind.PERSONAL
    assert not accounts["gone@example.org"].active
    info = accounts["info@example.org"]
    assert info.kind is Kind.FUNCTIONAL and info.active, "shared mailboxes are disabled users"
    assert info.sso_key is None, "a functional account has no SSO key"


def test_delegates_are_the_active_users_a_mailbox_names_wherever_they_come_in_the_read():
    mapper = Mapper("AD", AD)
    mapper.users(
        {
            dn("info"): ad_user(
                "info",
                msexchrecipienttypedetails=[b"4"],
                msexchdelegatelistlink=[
                    dn("Bob").upper().encode(),  # DNs are matched without case
                    dn("gone").encode(),
                    b"cn=nobody,dc=example,dc=org",
                ],
            )
        }
    )
    mapper.users(  # a later page
        {dn("bob"): ad_user("bob"), dn("gone"): ad_user("gone", useraccountcontrol=[b"2"])}
    )

    result = mapper.finish({})

    assert by_email(result)["info@example.org"].delegates == frozenset({"bob@example.org"})


def test_a_group_s_nested_members_are_flattened_and_a_cycle_is_cut():
    team, inner = "cn=team,ou=groups,dc=example,dc=org", "cn=inner,ou=groups,dc=example,dc=org"
    users = {dn(n): ad_user(n) for n in ("ann", "bob", "cat")}
    groups = {
        team: {
            "objectguid": [uuid.uuid4().bytes_le],
            "mail": [b"team@example.org"],
            "member": [dn("ann").encode(), inner.encode()],
        }
    }
    nested = {inner: {"member": [dn("bob").encode(), team.encode()]}}
    mapper = Mapper("AD", AD)
    mapper.users(users)
    assert mapper.unknown_members(groups), "inner is no user: a nested search is needed"

    result = mapper.finish(groups, nested)

    group = by_email(result)["team@example.org"]
    assert group.kind is Kind.FUNCTIONAL and group.display_name == "team@example.org"
    assert group.delegates == frozenset({"ann@example.org", "bob@example.org"})


def test_an_entry_without_a_valid_address_is_skipped_with_an_error_and_protected():
    users = {dn("bad"): ad_user("bad", mail=[b"not an address"]), dn("ok"): ad_user("ok")}

    result = map_entries(users, {}, AD, source="AD")

    assert [a.email for a in result.accounts] == ["ok@example.org"]
    [bad] = result.unusable
    assert bad.text() == (
        f"Source 'AD', {dn('bad')}: mail 'not an address' is not a valid address; entry skipped."
    )
    assert result.unreadable_ids == {str(uuid.uuid5(uuid.NAMESPACE_DNS, "bad"))}, (
        "never suspended for being unreadable"
    )


def test_openldap_entries_use_entry_uuid_and_fall_back_to_cn_for_the_name():
    entry = {
        "entryuuid": [b"6a1f1b1e-0000-4000-8000-000000000001"],
        "mail": [b" Dee@Example.ORG "],
        "cn": [b"Dee Jansen"],
        "ou": [b"/Finance"],
    }
    attributes = OPENLDAP.model_copy(update={"division": "ou"})

    [dee] = map_entries({dn("dee"): entry}, {}, attributes).accounts

    assert dee.email == "dee@example.org" and dee.display_name == "Dee Jansen"
    assert dee.source_id == dee.sso_key == "6a1f1b1e-0000-4000-8000-000000000001"
    assert dee.active, "no disabled attribute in the preset: active"
    assert dee.division == "/Finance"


def test_an_entry_without_its_id_attribute_is_keyed_by_its_dn():
    entry = {"mail": [b"eve@example.org"]}

    [eve] = map_entries({dn("eve"): entry}, {}, OPENLDAP).accounts

    assert eve.source_id == f"dn:{dn('eve')}" and eve.sso_key is None
    assert eve.display_name == "eve@example.org"


def test_an_object_guid_that_is_not_16_bytes_makes_the_entry_unusable_not_an_id():
    broken = ad_user("bob")
    broken["objectguid"] = [b"short"]

    result = map_entries({dn("ann"): ad_user("ann"), dn("bob"): broken}, {}, AD, source="AD")

    assert list(by_email(result)) == ["ann@example.org"]
    [bad] = result.unusable
    assert (
        bad.where == dn("bob") and bad.reason == "its objectguid is 5 bytes, not the 16 of a GUID"
    )
    assert bad.address == "bob@example.org", "its address is left alone this run"


def test_one_dn_read_twice_with_different_ids_blocks_removals():
    mapper = Mapper("AD", AD)
    mapper.users({dn("ann"): ad_user("ann")})
    mapper.users({dn("ann"): ad_user("ann", guid=uuid.uuid4())})
    result = mapper.finish({})

    assert [a.email for a in result.accounts] == ["ann@example.org"]
    assert "came twice in the read, with different ids" in result.unusable[0].reason
    assert result.unidentified == 1, "which account it is, is unknown: removals are unsafe"


def test_one_dn_read_twice_alike_is_one_account_and_no_problem():
    mapper = Mapper("AD", AD)
    mapper.users({dn("ann"): ad_user("ann")})
    mapper.users({dn("ann"): ad_user("ann")})
    result = mapper.finish({})

    assert [a.email for a in result.accounts] == ["ann@example.org"]
    assert result.unusable == [] and result.unidentified == 0
