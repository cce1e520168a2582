"""The entry parser that replaces ldap3's decoding for search results (real slapd tests cover the rest)."""

from __future__ import annotations

import pytest

from tests.ldap_hostile import entry
from zsync_core.sources.ldap_fast import MalformedMessage, parse_search_entry


def test_an_entry_with_long_values_and_many_attributes_is_read_exactly():
    photo = bytes(range(256)) * 300  # a value longer than 64 KiB: three-byte lengths
    members = [f"cn=user{n},ou=Staff,dc=example,dc=org".encode() for n in range(400)]
    data = entry(
        300,
        "CN=Zoë,OU=Staff,DC=example,DC=org",
        {"thumbnailPhoto": [photo], "member": members, "mail": [b"zoe@example.org"], "empty": []},
    )

    message_id, parsed = parse_search_entry(data)

    assert message_id == 300
    assert parsed["dn"] == "CN=Zoë,OU=Staff,DC=example,DC=org"
    assert parsed["raw_attributes"] == {
        "thumbnailphoto": [photo],
        "member": members,
        "mail": [b"zoe@example.org"],
        "empty": [],
    }


def test_what_it_does_not_take_is_left_to_ldap3():
    ranged = entry(7, "cn=big,dc=example,dc=org", {"member;range=0-1499": [b"cn=a"]})
    done = entry(7, "", {}, op=0x65)  # searchResDone
    assert parse_search_entry(ranged) is None, "AD's ranged attributes: ldap3's auto-range"
    assert parse_search_entry(done) is None
    truncated = entry(7, "cn=x", {"mail": [b"x"]})[:-3]
    with pytest.raises(MalformedMessage):  # an entry that does not decode stops the read
        parse_search_entry(truncated)


def test_guid_text_is_what_uuid_says():
    import uuid

    from zsync_core.sources.ldap_map import guid_text

    for _ in range(200):
        value = uuid.uuid4().bytes_le
        assert guid_text(value) == str(uuid.UUID(bytes_le=value))


def test_the_ldap3_internals_ldap_fast_relies_on_are_still_there():
    """ldap_fast subclasses ldap3's SyncStrategy and rebinds Connection methods: if ldap3
    changes any of this, this test fails and names what moved (the pin is exact)."""
    import inspect
    from importlib.metadata import version

    import ldap3
    from ldap3.strategy import base
    from ldap3.strategy.sync import SyncStrategy
    from ldap3.utils import asn1

    from zsync_core.sources.ldap_fast import FastSearchStrategy, use_fast_search

    assert version("ldap3") == "2.9.1", "ldap_fast was checked against ldap3 2.9.1 only"
    for name in ("RESPONSE_COMPLETE", "SESSION_TERMINATED_BY_SERVER"):
        assert hasattr(base, name), f"ldap3.strategy.base.{name}"
    assert callable(asn1.decode_message_fast)
    for name in ("receiving", "_get_response", "decode_response_fast", "close"):
        assert callable(getattr(SyncStrategy, name, None)), f"SyncStrategy.{name}"
    assert list(inspect.signature(SyncStrategy._get_response).parameters) == [
        "self",
        "message_id",
        "timeout",
    ]
    server = ldap3.Server("127.0.0.1", port=1, get_info=ldap3.NONE)
    connection = ldap3.Connection(server, read_only=True, raise_exceptions=False)
    rebound = ("send", "open", "get_response", "post_send_single_response", "post_send_search")
    for name in rebound:
        method = getattr(connection, name)
        assert method.__self__ is connection.strategy, f"Connection.{name} is its strategy's"
    for name in ("empty_attributes", "sasl_mechanism", "_digest_md5_kis", "socket", "last_error"):
        assert hasattr(connection, name), f"Connection.{name}"
    use_fast_search(connection)
    assert isinstance(connection.strategy, FastSearchStrategy)
    assert all(getattr(connection, n).__self__ is connection.strategy for n in rebound)
