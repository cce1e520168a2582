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

import time
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
MAX_MESSAGE_BYTES = 256 << 20
"""The longest LDAP message accepted. zsync asks for no photos or certificates: its largest
entry is a group with all its members (a million members of 100 bytes is 100 MB). A longer
announced length is a broken or hostile server, and waiting for it would hold that memory."""
MAX_ANSWER_BYTES = 1 << 30
"""The most bytes one answer (a search page) may take."""
PAGE_CEILING_FACTOR = 10
MIN_PAGE_CEILING = 10_000
"""A page may hold ten times ``page_size`` entries, or 10,000: a server that honours paging
sends ``page_size`` (or its own smaller cap); one that ignores it and streams millions of
entries in one page would hold gigabytes before the read could end."""
LOWERED = "lowered"
"""Set in the entries parsed here: their attribute names are lower-cased already."""


_NAMES: dict[bytes, str] = {}
"""Attribute names as received, lower-cased: a handful of them, seen 100,000 times each."""


class MalformedMessage(LDAPSocketReceiveError):  # type: ignore[misc]
    """The server sent bytes that are no LDAP message, or a search entry whose encoding breaks
    RFC 4511 (a length that runs past its parent, a tag out of place). The read stops: the
    entry cannot be trusted, and a lax decoder would drop the attributes it misreads."""


def _long_length(data: bytes, index: int) -> tuple[int, int]:
    """The long-form length whose first byte is at ``index`` (0x80 + the count of bytes that
    follow), and where the contents start. RFC 4511 allows definite lengths only, and no
    length zsync accepts needs more than four bytes."""
    count = data[index] & 0x7F
    if count == 0 or count > 4:
        raise IndexError  # indefinite, or 4 GiB and more: refused below
    start = index + 1 + count
    if start > len(data):
        raise IndexError
    return int.from_bytes(data[index + 1 : start], "big"), start


def parse_search_entry(data: bytes) -> tuple[int, dict[str, Any]] | None:
    """(message id, entry) from one LDAPMessage; None when it is another message (ldap3
    decodes those) or an entry only ldap3 takes (a ranged attribute such as
    ``member;range=0-1499``, which its auto-range follows; a name that is not ASCII; a DN that
    is not UTF-8; an attribute listed twice), after its encoding was checked whole.

    ``data`` is one message as :meth:`FastSearchStrategy.receiving` framed it. Every element
    of an entry is checked: its tag, a definite length, and that it ends inside its parent
    (each attribute's values end exactly where the attribute does). The lengths met once per
    attribute or value are read inline (a call for each would double the cost).

    Raises:
        MalformedMessage: no LDAP message, or a search entry that does not decode.
    """
    end = len(data)
    try:
        if data[0] != 0x30:
            raise IndexError
        size = data[1]
        size, index = (size, 2) if size < 0x80 else _long_length(data, 1)
        if index + size != end or data[index] != 0x02:
            raise IndexError
        size = data[index + 1]
        if not 0 < size <= 4 or data[index + 2] & 0x80:  # an id is 0 to 2**31 - 1
            raise IndexError
        index += 2
        message_id = int.from_bytes(data[index : index + size], "big")
        index += size
        if data[index] != SEARCH_RESULT_ENTRY:
            return None
    except IndexError:
        raise MalformedMessage("the server sent bytes that are no LDAP message") from None
    defer = False
    try:
        size = data[index + 1]
        size, index = (size, index + 2) if size < 0x80 else _long_length(data, index + 1)
        op_end = index + size
        if op_end > end or data[index] != 0x04:  # objectName
            raise IndexError
        size = data[index + 1]
        size, index = (size, index + 2) if size < 0x80 else _long_length(data, index + 1)
        if index + size > op_end:
            raise IndexError
        raw_dn = data[index : index + size]
        index += size
        if data[index] != 0x30:  # attributes: a SEQUENCE that ends with the entry
            raise IndexError
        size = data[index + 1]
        size, index = (size, index + 2) if size < 0x80 else _long_length(data, index + 1)
        if index + size != op_end:
            raise IndexError
        attributes: dict[str, list[bytes]] = {}
        names = _NAMES
        while index < op_end:
            # one PartialAttribute (0x30): its type (0x04) and the SET (0x31) of its values,
            # which ends the attribute. Most have short lengths: checked in a few comparisons
            size = data[index + 1]
            name_size = data[index + 3]
            if (
                size < 0x80
                and name_size < 0x80
                and data[index] == 0x30
                and data[index + 2] == 0x04
                and data[index + 4 + name_size] == 0x31
                and data[index + 5 + name_size] == size - 4 - name_size
            ):
                attribute_end = index + 2 + size
                if attribute_end > op_end:
                    raise IndexError
                raw_name = data[index + 4 : index + 4 + name_size]
                index += 6 + name_size
            else:
                if data[index] != 0x30:
                    raise IndexError
                size, index = (size, index + 2) if size < 0x80 else _long_length(data, index + 1)
                attribute_end = index + size
                if attribute_end > op_end or data[index] != 0x04:
                    raise IndexError
                size = data[index + 1]
                size, index = (size, index + 2) if size < 0x80 else _long_length(data, index + 1)
                if index + size > attribute_end:
                    raise IndexError
                raw_name = data[index : index + size]
                index += size
                if data[index] != 0x31:
                    raise IndexError
                size = data[index + 1]
                size, index = (size, index + 2) if size < 0x80 else _long_length(data, index + 1)
                if index + size != attribute_end:
                    raise IndexError
            values = []
            while index < attribute_end:  # a value that runs past the end is caught below
                if data[index] != 0x04:
                    raise IndexError
                size = data[index + 1]
                if size < 0x80:
                    index += 2
                else:
                    size, index = _long_length(data, index + 1)
                values.append(data[index : index + size])
                index += size
            if index != attribute_end:
                raise IndexError
            name = names.get(raw_name)
            if name is None:
                try:
                    name = raw_name.decode("ascii").lower()
                except UnicodeDecodeError:
                    defer = True
                    continue
                if ";range=" in name:
                    defer = True
                elif len(names) < 1000:
                    names[raw_name] = name
            if name in attributes:
                defer = True
            attributes[name] = values
        if op_end != end:  # controls ([0] SEQUENCE), which end the message
            if data[op_end] != 0xA0:
                raise IndexError
            size = data[op_end + 1]
            size, index = (size, op_end + 2) if size < 0x80 else _long_length(data, op_end + 1)
            if index + size != end:
                raise IndexError
    except IndexError:
        raise MalformedMessage(
            f"the server sent a search entry (message {message_id}) whose encoding is broken"
        ) from None
    try:
        dn = raw_dn.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if defer:
        return None
    return message_id, {
        "type": "searchResEntry",
        "dn": dn,
        "raw_attributes": attributes,
        "attributes": attributes,
        LOWERED: True,
    }


class FastSearchStrategy(SyncStrategy):  # type: ignore[misc]
    """ldap3's synchronous strategy; search result entries are parsed by :func:`parse_search_entry`,
    messages are received in large reads, and each answer (one search page, a bind) is bounded:
    complete within the connection's ``receive_timeout`` from the request to its last byte
    (a server that sends a byte a second never trips a per-read timeout), at most
    ``max_messages`` messages and :data:`MAX_ANSWER_BYTES` bytes."""

    max_messages = 1 << 62
    """The most messages one answer may hold (:func:`use_fast_search` sets it from the page size)."""

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self._deadline = 0.0
        self._received_messages = 0
        self._received_bytes = 0

    def _recv(self) -> bytes:
        connection = self.connection
        timeout = connection.receive_timeout
        try:
            if timeout:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the answer was not complete within {timeout:g} s")
                connection.socket.settimeout(remaining)
            return connection.socket.recv(RECEIVE_SIZE)  # type: ignore[no-any-return]
        except (OSError, AttributeError) as error:
            if isinstance(error, TimeoutError) and timeout:
                error = TimeoutError(
                    f"the answer was not complete within {timeout:g} s (timeout_seconds): "
                    "the server stalls or sends too slowly"
                )
            connection.last_error = f"error receiving data: {error}"
            try:
                self.close()
            except (OSError, LDAPExceptionError):
                pass
            raise communication_exception_factory(LDAPSocketReceiveError, type(error)(str(error)))(
                connection.last_error
            ) from error

    def receiving(self) -> list[bytes]:
        """The complete LDAP messages the server has sent, as ldap3's ``receiving`` returns them
        (it reads until its buffer ends on a message boundary), from reads of
        ``RECEIVE_SIZE`` bytes: ldap3's 4 KB reads, each re-copying its buffer, cost more than
        the parsing at 100,000 entries. A message longer than a read is gathered in pieces and
        joined once it is whole (joining at every read would copy it over and over).
        SASL-signed connections keep ldap3's own loop.

        Raises:
            LDAPSocketReceiveError: the answer broke a bound (time, size), or the connection failed.
        """
        connection = self.connection
        if connection.sasl_mechanism == DIGEST_MD5 and connection._digest_md5_kis:
            return super().receiving()  # type: ignore[no-any-return]
        messages: list[bytes] = []
        pieces: list[bytes] = []  # the start of a message still incomplete, as it came
        have = need = 0
        while True:
            data = self._recv()
            if not data:
                return messages  # the server closed the connection
            self._received_bytes += len(data)
            if self._received_bytes > MAX_ANSWER_BYTES:
                raise self._refuse(
                    f"the server sent more than {MAX_ANSWER_BYTES >> 20} MiB in one answer"
                )
            if pieces:
                pieces.append(data)
                have += len(data)
                if have < need:
                    continue
                buffer = b"".join(pieces)
                pieces.clear()
            else:
                buffer = data
            index, end = 0, len(buffer)
            need = 2
            framed = len(messages)
            while end - index >= 2:
                first = buffer[index + 1]
                if first < 0x80:
                    length = first + 2
                else:
                    count = first & 0x7F
                    if end - index < 2 + count:
                        need = 2 + count
                        break
                    declared = int.from_bytes(buffer[index + 2 : index + 2 + count], "big")
                    if declared > MAX_MESSAGE_BYTES:
                        raise self._refuse(
                            f"the server announced a message of {declared:,} bytes, more than "
                            f"the {MAX_MESSAGE_BYTES >> 20} MiB zsync accepts"
                        )
                    length = 2 + count + declared
                if end - index < length:
                    need = length
                    break
                messages.append(buffer[index : index + length])
                index += length
            self._received_messages += len(messages) - framed
            if self._received_messages > self.max_messages:
                raise self._refuse(
                    f"the server sent more than {self.max_messages:,} entries in one page: it "
                    "does not honour the page size (page_size)"
                )
            if index == end:
                return messages
            pieces.append(buffer[index:])
            have = end - index

    def _refuse(self, why: str) -> LDAPSocketReceiveError:
        self.connection.last_error = why
        try:
            self.close()
        except (OSError, LDAPExceptionError):
            pass
        return LDAPSocketReceiveError(why)

    def _get_response(self, message_id: int, timeout: int) -> Any:
        self._deadline = time.monotonic() + (self.connection.receive_timeout or 0)
        self._received_messages = self._received_bytes = 0
        try:
            return self._responses(message_id)
        finally:
            socket = self.connection.socket
            if socket is not None and self.connection.receive_timeout:
                socket.settimeout(self.connection.receive_timeout)

    def _responses(self, message_id: int) -> Any:
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
                try:
                    ldap_message = decode_message_fast(message)
                    response = self.decode_response_fast(ldap_message)
                    received_id = int(ldap_message["messageID"])
                except (IndexError, KeyError, ValueError, TypeError, AttributeError) as error:
                    raise self._refuse(
                        f"the server sent a message that does not decode ({type(error).__name__})"
                    ) from error
                if received_id == message_id:
                    responses.append(response)
                    if response["type"] not in MORE:
                        responses.append(RESPONSE_COMPLETE)
                        return responses
                elif received_id == 0 and response.get("responseName") == "1.3.6.1.4.1.1466.20036":
                    return SESSION_TERMINATED_BY_SERVER  # notice of disconnection
                else:
                    raise self._refuse(f"unexpected LDAP message id {received_id}")


def use_fast_search(connection: Any, page_size: int = 0) -> None:
    """Give a not-yet-opened synchronous ldap3 connection the fast entry parser and the
    bounds of :class:`FastSearchStrategy` (``page_size``: the page size its searches ask for).

    ldap3's Connection binds its strategy's methods to itself when it is made, so those are
    bound again to the new strategy. Attribute names come lower-cased, so ldap3 must not add
    the requested (mixed-case) names as empty lists for the attributes an entry lacks.
    """
    connection.empty_attributes = False
    strategy = FastSearchStrategy(connection)
    if page_size:
        strategy.max_messages = max(PAGE_CEILING_FACTOR * page_size, MIN_PAGE_CEILING)
    connection.strategy = strategy
    connection.send = strategy.send
    connection.open = strategy.open
    connection.get_response = strategy.get_response
    connection.post_send_single_response = strategy.post_send_single_response
    connection.post_send_search = strategy.post_send_search
