"""An LDAP directory that cuts, lies, drips or answers malformed never causes a change.

The size limit runs on a real slapd with its default limits, bound as the service account
(as a real directory would be read); the rest is a scripted server on loopback
(tests/ldap_hostile.py), and the entry parser is compared with ldap3's strict decoder on
mutated messages. Every run ends with exit 3, a message that says what the server did, and
no account suspended.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldap3.protocol.rfc4511 import LDAPMessage
from pyasn1.codec.ber import decoder

from tests.conftest import ldap_source
from tests.ldap_hostile import ScriptedLdap, entry, message, result, tlv
from zsync_core.sources.ldap_fast import MalformedMessage, parse_search_entry

GUIDS = {n: uuid.uuid4() for n in range(40)}


def person(message_id: int, number: int) -> bytes:
    mail = f"user{number:03}@example.org"
    return entry(
        message_id,
        f"CN=user{number:03},OU=Staff,DC=example,DC=org",
        {
            "objectGUID": [GUIDS[number].bytes_le],
            "mail": [mail.encode()],
            "displayName": [f"User {number:03}".encode()],
            "userAccountControl": [b"512"],
        },
    )


def seed_zivver(zivver, count: int) -> None:
    for number in range(count):
        zivver.org.add_user(f"user{number:03}@example.org", f"User {number:03}")


def active(zivver) -> int:
    return sum(1 for user in zivver.org.users.values() if user["active"])


def hostile_profile(make_profile, server: ScriptedLdap, **extra):
    source = {**ldap_source(server), "url": server.url, "timeout_seconds": 2, **extra}  # type: ignore[arg-type]
    return make_profile([source])


# --- a real slapd with its default limits -----------------------------------------------------


def test_a_read_cut_by_the_directory_size_limit_suspends_nobody(
    directory, zivver, make_profile, capsys
):
    """slapd's default limit (500 entries) against 505 users read in pages of 300, bound as the
    service account: the last page comes with sizeLimitExceeded and 200 of its 205 entries."""
    for number in range(505):
        directory.user(f"user{number:03}")
        zivver.org.add_user(f"user{number:03}@example.org", f"User{number:03}")
    profile = make_profile([ldap_source(directory.slapd, page_size=300)])

    code, err, report = profile.run("--confirm", "suspend-users", capsys=capsys)

    assert code == 3, err
    assert "stopped by the server's size limit after 500 entries (sizeLimitExceeded" in err, err
    assert 'limits dn.exact="cn=svc-zivver,dc=example,dc=org" size=unlimited' in err
    assert "the read is incomplete, so nothing is synced from it" in err
    assert active(zivver) == 505
    assert "Task completed successfully" not in err


def test_with_the_limit_raised_for_the_service_account_all_505_are_read(
    tmp_path, zivver, make_profile, capsys
):
    from tests.servers import Directory, Slapd

    slapd = Slapd(tmp_path / "unlimited", unlimited_service=True).start()
    try:
        directory = Directory(slapd)
        for number in range(505):
            directory.user(f"user{number:03}")
        profile = make_profile([ldap_source(slapd, page_size=300)])
        code, err, report = profile.run(capsys=capsys)
    finally:
        slapd.stop()
    assert code == 0, err
    assert active(zivver) == 505


# --- a scripted server ------------------------------------------------------------------------


def test_a_search_ended_by_another_kind_of_answer_is_incomplete(zivver, make_profile, capsys):
    """A modifyResponse carrying the search's message id is not the end of the search."""
    seed_zivver(zivver, 30)

    def script(message_id: int, search: int):
        if search == 1:
            yield from (person(message_id, n) for n in range(29))
            yield result(message_id, op=0x67)  # modifyResponse, success
        else:
            yield result(message_id)

    server = ScriptedLdap(script)
    code, err, _ = hostile_profile(make_profile, server).run(
        "--confirm", "suspend-users", capsys=capsys
    )

    assert code == 3, err
    assert "ended with a modifyResponse answer instead of the end of the search" in err, err
    assert active(zivver) == 30


def test_a_paging_cookie_that_comes_back_ends_the_read(zivver, make_profile, capsys):
    seed_zivver(zivver, 3)

    def script(message_id: int, search: int):
        yield person(message_id, 0)
        yield result(message_id, cookie=b"same-cookie")

    server = ScriptedLdap(script)
    code, err, _ = hostile_profile(make_profile, server).run(capsys=capsys)

    assert code == 3, err
    assert "sent a paging cookie it had sent before, after 2 entries" in err, err
    assert server.searches == 2
    assert active(zivver) == 3


def test_a_server_that_drips_is_cut_off_at_the_timeout(zivver, make_profile, capsys):
    """One byte every 0.4 s never trips a per-read timeout of 2 s; the whole answer must
    come within timeout_seconds."""
    seed_zivver(zivver, 2)

    def script(message_id: int, search: int):
        for byte in person(message_id, 0) + result(message_id):
            yield bytes([byte])
            yield 0.4

    server = ScriptedLdap(script)
    started = time.monotonic()
    code, err, _ = hostile_profile(make_profile, server).run(capsys=capsys)

    assert time.monotonic() - started < 20, "the run ended near its timeout, not at the drip's end"
    assert code == 3, err
    assert "the answer was not complete within 2 s (timeout_seconds)" in err
    assert active(zivver) == 2


@pytest.mark.parametrize("how", ["silent", "drip"])
def test_a_bind_that_never_completes_is_cut_off_at_the_timeout(how, zivver, make_profile, capsys):
    seed_zivver(zivver, 2)

    def bind(message_id: int):
        if how == "silent":
            yield 30.0
            return
        for byte in result(message_id, op=0x61):
            yield 0.4
            yield bytes([byte])

    server = ScriptedLdap(lambda *_: iter(()), bind=bind)
    started = time.monotonic()
    code, err, _ = hostile_profile(make_profile, server).run(capsys=capsys)

    assert time.monotonic() - started < 12, "the run ended near its timeout"
    assert code == 3, err
    assert "bind" in err and "2 s" in err, err
    assert active(zivver) == 2


def test_an_announced_length_of_two_gigabytes_is_refused_at_once(zivver, make_profile, capsys):
    seed_zivver(zivver, 2)

    def script(message_id: int, search: int):
        yield bytes([0x30, 0x84]) + (2 << 30).to_bytes(4, "big") + b"\x02\x01"
        yield 5.0

    server = ScriptedLdap(script)
    code, err, _ = hostile_profile(make_profile, server).run(capsys=capsys)

    assert code == 3, err
    assert "announced a message of 2,147,483,648 bytes" in err, err
    assert active(zivver) == 2


def test_a_page_far_larger_than_asked_for_is_refused(zivver, make_profile, capsys):
    """page_size 7: a server streaming 10,001 entries into one page does not honour paging."""
    seed_zivver(zivver, 2)

    def script(message_id: int, search: int):
        yield b"".join(person(message_id, 0) for _ in range(10_001))
        yield result(message_id)

    server = ScriptedLdap(script)
    code, err, _ = hostile_profile(make_profile, server).run(capsys=capsys)

    assert code == 3, err
    assert "sent more than 10,000 entries in one page" in err, err
    assert active(zivver) == 2


def test_an_entry_whose_inner_length_overruns_is_refused(zivver, make_profile, capsys):
    """The mail value claims more bytes than its attribute holds: a lax decoder drops the
    attribute (and the account with it); the read must stop instead."""
    seed_zivver(zivver, 3)
    mail = b"user001@example.org"

    def broken(message_id: int) -> bytes:
        good = person(message_id, 1)
        at = good.index(mail) - 1
        return good[:at] + bytes([len(mail) + 20]) + good[at + 1 :]

    def script(message_id: int, search: int):
        if search == 1:
            yield person(message_id, 0)
            yield broken(message_id)
            yield person(message_id, 2)
        yield result(message_id)

    server = ScriptedLdap(script)
    code, err, _ = hostile_profile(make_profile, server).run(
        "--confirm", "suspend-users", capsys=capsys
    )

    assert code == 3, err
    assert "search entry" in err and "encoding is broken" in err, err
    assert active(zivver) == 3


# --- the entry parser against ldap3's strict decoder ------------------------------------------

SEEDS = [
    person(3, 1),
    entry(
        300,
        "CN=Zoë Ångström,OU=Staff,DC=example,DC=org",
        {
            "thumbnailPhoto": [bytes(range(256)) * 3],
            "member": [f"cn=user{n},ou=Staff,dc=example,dc=org".encode() for n in range(40)],
            "mail": [b"zoe@example.org"],
            "proxyAddresses": [b"SMTP:zoe@example.org", b"smtp:z@example.org"],
            "empty": [],
        },
    ),
    entry(70000, "", {}),
    entry(9, "cn=big,dc=example,dc=org", {"member;range=0-1499": [b"cn=a"]}),
    result(12, cookie=b"\x01\x02"),
    person(5, 2)[:-1] + b"",  # framed short
]


def strict(data: bytes):
    """What ldap3's pyasn1 decoder makes of a message: (id, dn, attributes) for an entry,
    "other" for another message, None when it refuses the bytes."""
    try:
        decoded, rest = decoder.decode(data, asn1Spec=LDAPMessage())
    except Exception:  # noqa: BLE001 (any refusal)
        return None
    if rest:
        return None
    if decoded["protocolOp"].getName() != "searchResEntry":
        return "other"
    body = decoded["protocolOp"].getComponent()
    attributes: dict[str, list[bytes]] = {}
    for attribute in body["attributes"]:
        attributes[bytes(attribute["type"]).decode("latin-1").lower()] = [
            bytes(v) for v in attribute["vals"]
        ]
    return int(decoded["messageID"]), bytes(body["object"]), attributes


def reframe(data: bytes) -> bytes:
    """The mutant as receiving() hands it over: one message, its outer length its own size."""
    if len(data) < 2:
        return data
    first = data[1]
    inner = data[2:] if first < 0x80 else data[2 + (first & 0x7F) :]
    return tlv(data[0], inner)


@st.composite
def mutants(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate", "length"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "length" and len(data) > at + 1:
            data[at + 1] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x84, 0x85, 0xFF]))
    return bytes(reframe(bytes(data)) if draw(st.booleans()) else bytes(data))


EXAMPLES = int(os.environ.get("ZSYNC_FUZZ_EXAMPLES", "2000"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutants())
def test_every_entry_the_parser_takes_is_what_ldap3_decodes(data):
    """An entry is either parsed to exactly what ldap3's strict decoder reads, or refused;
    what the parser leaves to ldap3 (another message, a ranged attribute) is no broken entry.
    ZSYNC_FUZZ_EXAMPLES=200000 runs it longer."""
    reference = strict(data)
    try:
        parsed = parse_search_entry(data)
    except MalformedMessage:
        return  # refusing is always safe: the read stops, nothing is synced from it
    if parsed is None:
        if op_tag(data) == 0x64:  # an entry left to ldap3 (a ranged attribute): well formed
            assert isinstance(reference, tuple), f"left to ldap3, broken: {data.hex()}"
        return
    assert isinstance(reference, tuple), f"taken, but ldap3 refuses it: {data.hex()}"
    message_id, found = parsed
    assert (message_id, found["dn"].encode(), found["raw_attributes"]) == reference


def op_tag(data: bytes) -> int | None:
    """The tag after the message id, as the parser finds it."""
    header = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
    return data[header + 2 + data[header + 1]]


def test_the_seeds_are_read_as_ldap3_reads_them():
    for seed in SEEDS[:3]:
        message_id, found = parse_search_entry(seed)
        assert (message_id, found["dn"].encode(), found["raw_attributes"]) == strict(seed)
    assert parse_search_entry(SEEDS[3]) is None, "a ranged attribute: ldap3's auto-range"
    assert parse_search_entry(SEEDS[4]) is None, "searchResDone: ldap3's"
    with pytest.raises(MalformedMessage):
        parse_search_entry(SEEDS[5])


# --- entries that cannot be used -------------------------------------------------------------


def test_an_entry_with_no_id_and_no_usable_address_blocks_removals(
    directory, zivver, make_profile, capsys
):
    """It may be the leaver, renamed with a typo: with no objectGUID nothing says who it is,
    so nobody is suspended this run (as for a CSV row or a Microsoft 365 object)."""
    for number in range(20):
        directory.user(f"user{number:03}")
    profile = make_profile([ldap_source(directory.slapd)])
    assert profile.run(capsys=capsys)[0] == 0
    directory.delete(directory.user_dn("user019"))
    directory.conn.add(
        "cn=mystery,ou=Staff,dc=example,dc=org",
        ["top", "person", "organizationalPerson", "user"],
        {"cn": "mystery", "sn": "m", "mail": "user019 at example.org", "userAccountControl": 512},
    )

    code, err, report = profile.run("--confirm", "suspend-users", capsys=capsys)

    assert code == 2, err
    assert "cn=mystery,ou=staff,dc=example,dc=org: mail 'user019 at example.org'" in err
    assert "1 source entry could not be read, neither address nor id" in err
    assert report["removals_not_planned"] == ["user019@example.org"]
    notices = [n["message"] for n in report["notices"]]
    assert any(
        "1 suspension(s) or deletion(s) were not planned (user019@example.org)" in n
        for n in notices
    )
    assert "1 source entry skipped as unusable" in err
    assert report["attention"][0].startswith("1 source entry skipped as unusable")
    assert report["attention"][1].startswith("no suspension or deletion was planned")
    assert active(zivver) == 20, "user019 is not suspended while an unknown entry could be them"


def test_sigterm_ends_the_ldap_reader_too(zivver, make_profile, tmp_path):
    """systemd stops a run with SIGTERM: the process reading the directory must not live on,
    waiting on a stalled server."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    def script(message_id: int, search: int):
        yield person(message_id, 0)[:10]
        yield 120.0

    server = ScriptedLdap(script)
    profile = hostile_profile(make_profile, server, timeout_seconds=300)
    zsync = str(Path(sys.executable).parent / "zsync")
    run = subprocess.Popen(
        [zsync, "--headless", "--config", str(profile.path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == run.pid:
                found.append(int(stat.parent.name))
        return found

    deadline = time.monotonic() + 30
    while server.searches == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.searches == 1, "the reader is searching"
    reader = children()
    assert reader, "the reader runs in a process of its own"
    run.send_signal(signal.SIGTERM)
    run.wait(10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in reader) and time.monotonic() < deadline:
        for pid in reader:  # reap it if it is ours to reap (it is not: init adopts it)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.1)
    alive = [
        pid
        for pid in reader
        if Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    ]
    assert not alive, "the LDAP reader outlived the zsync run that was stopped"


# --- ranged values and referrals --------------------------------------------------------------

GROUP_GUIDS = [uuid.uuid4() for _ in range(21)]


def desk(message_id: int, number: int, attribute: str = "member", members=range(4)) -> bytes:
    """A mail-enabled group of users 0-3 (or ``members``, under ``attribute``)."""
    return entry(
        message_id,
        f"CN=desk{number},OU=Groups,DC=example,DC=org",
        {
            "objectGUID": [GROUP_GUIDS[number].bytes_le],
            "mail": [f"desk{number}@example.org".encode()],
            "displayName": [f"Desk {number}".encode()],
            attribute: [f"CN=user{n:03},OU=Staff,DC=example,DC=org".encode() for n in members],
        },
    )


def ranged_directory(state: dict):
    """Users 0-3; 21 groups (disabling one is under the 5 % threshold); desk0 as
    ``state["first"]`` says, and each follow-up base search answered by ``state["rest"]``."""

    def script(message_id: int, search: int):
        kind = state["order"].pop(0) if state["order"] else "follow-up"
        if kind == "users":
            yield from (person(message_id, n) for n in range(4))
        elif kind == "groups":
            yield desk(message_id, 0, *state["first"]) if state["first"] else desk(message_id, 0)
            yield from (desk(message_id, g) for g in range(1, 21))
        else:
            yield from state["rest"](message_id)
        if kind != "follow-up" or state.get("done", True):
            yield result(message_id, code=state.get("code", 0) if kind == "follow-up" else 0)

    return script


@pytest.mark.parametrize(
    "first, rest, code",
    [
        (("member;range=0-1", range(2)), lambda m: [], 51),  # the follow-up: busy
        (("member;range=0-1", range(2)), lambda m: [], 0),  # the follow-up: nothing
        (("member;range=0-0", range(1)), lambda m: [], 0),  # 0-0: one value, then nothing
        (("member;range=0-1", range(2)), lambda m: [desk(m, 0, "member", range(2, 4))], 0),
    ],
    ids=["busy", "empty", "zero-zero", "no-next-range"],
)
def test_members_read_in_ranges_are_read_whole_or_the_read_is_incomplete(
    first, rest, code, zivver, make_profile, capsys
):
    """AD sends a group of many members as member;range=0-1499 and the rest on request. A
    follow-up that fails or gives no next range must not leave the group with the first
    range only: its other delegates would be removed, or the group disabled, with exit 0."""
    state: dict = {"first": None, "order": ["users", "groups"], "rest": rest, "code": code}
    profile = hostile_profile(make_profile, ScriptedLdap(ranged_directory(state)))
    assert profile.run(capsys=capsys)[0] == 0
    state.update(first=first, order=["users", "groups"])

    code, err, _ = profile.run(capsys=capsys)

    assert code == 3, err
    assert "has more member values than" in err and "reading the rest failed" in err
    assert len(zivver.org.delegates_of("desk0@example.org")) == 4


def test_members_read_in_ranges_are_all_delegates(zivver, make_profile, capsys):
    state: dict = {"first": ("member;range=0-1", range(2)), "order": ["users", "groups"]}
    state["rest"] = lambda m: [desk(m, 0, "member;range=2-*", range(2, 4))]
    profile = hostile_profile(make_profile, ScriptedLdap(ranged_directory(state)))

    code, err, _ = profile.run(capsys=capsys)

    assert code == 0, err
    assert zivver.org.delegates_of("desk0@example.org") == {
        f"user{n:03}@example.org" for n in range(4)
    }


def test_a_referral_into_base_dn_is_an_incomplete_read(zivver, make_profile, capsys):
    """Part of the staff lives on another server: its people are not leavers."""
    seed_zivver(zivver, 4)

    def script(message_id: int, search: int):
        if search == 1:
            yield from (person(message_id, n) for n in range(3))
            uri = b"ldap://other.example.org/OU=Remote,OU=Staff,DC=example,DC=org"
            yield message(message_id, tlv(0x73, tlv(0x04, uri)))  # searchResRef
        yield result(message_id)

    server = ScriptedLdap(script)
    code, err, _ = hostile_profile(make_profile, server, base_dn="DC=example,DC=org").run(
        "--confirm", "suspend-users", capsys=capsys
    )

    assert code == 3, err
    assert "referred part of it to another server" in err
    assert active(zivver) == 4
