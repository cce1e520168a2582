"""Reading search result entries without ldap3's general decoding and formatting.

ldap3 turns every received entry into nested ASN.1 structures, then into two dicts
(``raw_attributes`` and schema-formatted ``attributes``, both case-insensitive), calling its
configuration lookup for every value. The sync reads only raw bytes, so at 100,000 entries
that work is most of the load time (about 4,000 entries/s on one core).

:class:`FastSearchStrategy` is ldap3's synchronous strategy with one difference: a
``searchResEntry`` is parsed here, straight from its BER bytes, into
``{"type", "dn", "raw_attributes", "attributes", "lowered"}`` (the two attribute dicts
are the same dict of lower-cased names to lists of bytes). Everything else (bind, StartTLS, search done with its
paging cookie, referrals, notices of disconnection) and any entry this parser does not take
(a ranged attribute such as ``member;range=0-1499``, which ldap3's auto-range handles) goes
through ldap3 unchanged.
"""

from __future__ import annotations

from typing import Any

from ldap3 import DIGEST_MD5
from ldap3.core.exceptions import (
    LDAPExceptionError,
    LDAPSocketReceiveError,
    communication_exception_factory,
)
from ldap3.strategy.base import RESPONSE_COMPLETE, SESSION_TERMINATED_BY_SERVER
from ldap3.strategy.sync import SyncStrategy
from ldap3.utils.asn1 import decode_message_fast

SEARCH_RESULT_ENTRY = 0x64  # [APPLICATION 4], constructed
MORE = ("searchResEntry", "searchResRef", "intermediateResponse")
RECEIVE_SIZE = 1 << 18
LOWERED = "lowered"
"""Set in the entries parsed here: their attribute names are lower-cased already."""


def _length(data: bytes, index: int) -> tuple[int, int]:
    """The length of the element whose tag is at ``index``, and where its contents start."""
    size = data[index + 1]
    if size < 0x80:
        return size, index + 2
    count = size & 0x7F
    return int.from_bytes(data[index + 2 : index + 2 + count], "big"), index + 2 + count


_NAMES: dict[bytes, str] = {}
"""Attribute names as received, lower-cased: a handful of them, seen 100,000 times each."""


def parse_search_entry(data: bytes) -> tuple[int, dict[str, Any]] | None:
    """(message id, entry) from one LDAPMessage, or None when it is not a plain entry.

    The lengths met once per attribute or value are read inline (a call to :func:`_length`
    for each would double the cost): a short form is one byte below 0x80; a long form is
    0x80 + the count of bytes that follow.
    """
    try:
        if data[0] != 0x30:
            return None
        index = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
        if data[index] != 0x02:
            return None
        size = data[index + 1]
        index += 2
        message_id = int.from_bytes(data[index : index + size], "big")
        index += size
        if data[index] != SEARCH_RESULT_ENTRY:
            return None
        size = data[index + 1]
        index += 2 if size < 0x80 else 2 + (size & 0x7F)
        size, index = _length(data, index)  # objectName
        dn = data[index : index + size].decode("utf-8")
        size, index = _length(data, index + size)  # attributes
        end = index + size
        attributes: dict[str, list[bytes]] = {}
        names = _NAMES
        while index < end:
            size = data[index + 1]  # one PartialAttribute: its type and values follow
            index += 2 if size < 0x80 else 2 + (size & 0x7F)
            size = data[index + 1]  # its type
            if size >= 0x80:
                return None  # an attribute name of 128 bytes or more: ldap3 decodes it
            index += 2
            raw_name = data[index : index + size]
            name = names.get(raw_name)
            if name is None:
                name = raw_name.decode("ascii").lower()
                if ";range=" in name:
                    return None
                if len(names) < 1000:
                    names[raw_name] = name
            index += size
            size = data[index + 1]  # the SET of values
            if size < 0x80:
                index += 2
            else:
                count = size & 0x7F
                size = int.from_bytes(data[index + 2 : index + 2 + count], "big")
                index += 2 + count
            values_end = index + size
            values = []
            while index < values_end:
                size = data[index + 1]
                if size < 0x80:
                    index += 2
                else:
                    count = size & 0x7F
                    size = int.from_bytes(data[index + 2 : index + 2 + count], "big")
                    index += 2 + count
                values.append(data[index : index + size])
                index += size
            attributes[name] = values
            index = values_end
    except (IndexError, UnicodeDecodeError):
        return None  # not what we expected: ldap3 decodes it (and reports what is wrong)
    return message_id, {
        "type": "searchResEntry",
        "dn": dn,
        "raw_attributes": attributes,
        "attributes": attributes,
        LOWERED: True,
    }


class FastSearchStrategy(SyncStrategy):  # type: ignore[misc]
    """ldap3's synchronous strategy; search result entries are parsed by :func:`parse_search_entry`,
    and messages are received in large reads."""

    def receiving(self) -> list[bytes]:
        """The complete LDAP messages the server has sent, as ldap3's ``receiving`` returns them
        (it reads until its buffer ends on a message boundary), from reads of
        ``RECEIVE_SIZE`` bytes: ldap3's 4 KB reads, each re-copying its buffer, cost more than
        the parsing at 100,000 entries. SASL-signed connections keep ldap3's own loop."""
        connection = self.connection
        if connection.sasl_mechanism == DIGEST_MD5 and connection._digest_md5_kis:
            return super().receiving()  # type: ignore[no-any-return]
        messages: list[bytes] = []
        pending = b""
        while True:
            try:
                data = connection.socket.recv(RECEIVE_SIZE)
            except (OSError, AttributeError) as error:
                connection.last_error = f"error receiving data: {error}"
                try:
                    self.close()
                except (OSError, LDAPExceptionError):
                    pass
                raise communication_exception_factory(
                    LDAPSocketReceiveError, type(error)(str(error))
                )(connection.last_error) from error
            if not data:
                return messages  # the server closed the connection
            buffer = pending + data if pending else data
            index, end = 0, len(buffer)
            while end - index > 2:
                first = buffer[index + 1]
                if first < 0x80:
                    length = first + 2
                else:
                    count = first & 0x7F
                    if end - index < 2 + count:
                        break
                    length = (
                        2 + count + int.from_bytes(buffer[index + 2 : index + 2 + count], "big")
                    )
                if end - index < length:
                    break
                messages.append(buffer[index : index + length])
                index += length
            pending = buffer[index:]
            if not pending:
                return messages

    def _get_response(self, message_id: int, timeout: int) -> Any:
        responses: list[Any] = []
        while True:
            received = self.receiving()
            if not received:
                return SESSION_TERMINATED_BY_SERVER
            for message in received:
                if not message:
                    continue
                parsed = parse_search_entry(message)
                if parsed is not None and parsed[0] == message_id:
                    responses.append(parsed[1])
                    continue
                ldap_message = decode_message_fast(message)
                response = self.decode_response_fast(ldap_message)
                received_id = int(ldap_message["messageID"])
                if received_id == message_id:
                    responses.append(response)
                    if response["type"] not in MORE:
                        responses.append(RESPONSE_COMPLETE)
                        return responses
                elif received_id == 0 and response.get("responseName") == "1.3.6.1.4.1.1466.20036":
                    return SESSION_TERMINATED_BY_SERVER  # notice of disconnection
                else:
                    self.connection.last_error = f"unexpected LDAP message id {received_id}"
                    raise LDAPSocketReceiveError(self.connection.last_error)


def use_fast_search(connection: Any) -> None:
    """Give a not-yet-opened synchronous ldap3 connection the fast entry parser.

    ldap3's Connection binds its strategy's methods to itself when it is made, so those are
    bound again to the new strategy. Attribute names come lower-cased, so ldap3 must not add
    the requested (mixed-case) names as empty lists for the attributes an entry lacks.
    """
    connection.empty_attributes = False
    strategy = FastSearchStrategy(connection)
    connection.strategy = strategy
    connection.send = strategy.send
    connection.open = strategy.open
    connection.get_response = strategy.get_response
    connection.post_send_single_response = strategy.post_send_single_response
    connection.post_send_search = strategy.post_send_search
