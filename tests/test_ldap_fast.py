"""The entry parser that replaces ldap3's decoding for search results (real slapd tests cover the rest)."""

from __future__ import annotations

from zsync_core.sources.ldap_fast import parse_search_entry


def tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def entry(message_id: int, dn: str, attributes: dict[str, list[bytes]], op: int = 0x64) -> bytes:
    partials = b"".join(
        tlv(0x30, tlv(0x04, name.encode()) + tlv(0x31, b"".join(tlv(0x04, v) for v in values)))
        for name, values in attributes.items()
    )
    body = tlv(0x04, dn.encode()) + tlv(0x30, partials)
    return tlv(0x30, tlv(0x02, message_id.to_bytes(2, "big")) + tlv(op, body))


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
    assert parse_search_entry(entry(7, "cn=x", {"mail": [b"x"]})[:-3]) is None, "truncated"


def test_guid_text_is_what_uuid_says():
    import uuid

    from zsync_core.sources.ldap import guid_text

    for _ in range(200):
        value = uuid.uuid4().bytes_le
        assert guid_text(value) == str(uuid.UUID(bytes_le=value))
