"""A small LDAP server on loopback that answers as scripted: cut, lying, dripping or malformed
answers that no real directory gives on purpose (fault injection; real slapd tests cover the rest).

Only a request's message id and kind are read; answers are built byte by byte, so a test can
send what no encoder would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable

PAGED_RESULTS = b"1.2.840.113556.1.4.319"


def tlv(tag: int, content: bytes) -> bytes:
    """One BER element with a definite length (short or long form)."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def message(message_id: int, op: bytes, controls: bytes = b"") -> bytes:
    number = message_id.to_bytes(message_id.bit_length() // 8 + 1, "big")  # INTEGER: signed
    return tlv(0x30, tlv(0x02, number) + op + controls)


def entry(message_id: int, dn: str, attributes: dict[str, list[bytes]], op: int = 0x64) -> bytes:
    """A searchResEntry as a server encodes it."""
    partials = b"".join(
        tlv(0x30, tlv(0x04, name.encode()) + tlv(0x31, b"".join(tlv(0x04, v) for v in values)))
        for name, values in attributes.items()
    )
    return message(message_id, tlv(op, tlv(0x04, dn.encode()) + tlv(0x30, partials)))


def result(message_id: int, op: int = 0x65, code: int = 0, cookie: bytes | None = None) -> bytes:
    """An LDAPResult (searchResDone by default), with a paging cookie when one is given."""
    body = tlv(0x0A, bytes([code])) + tlv(0x04, b"") + tlv(0x04, b"")
    controls = b""
    if cookie is not None:
        value = tlv(0x30, tlv(0x02, b"\x00") + tlv(0x04, cookie))
        controls = tlv(0xA0, tlv(0x30, tlv(0x04, PAGED_RESULTS) + tlv(0x04, value)))
    return message(message_id, tlv(op, body), controls)


Script = Callable[[int, int], Iterable[bytes | float]]
"""(message id, number of the search on this connection) → what to send: bytes, or a pause in s."""


class ScriptedLdap:
    """Accepts any simple bind (or answers it with what ``bind`` yields); answers each search
    with what ``script`` yields."""

    def __init__(
        self, script: Script, bind: Callable[[int], Iterable[bytes | float]] | None = None
    ) -> None:
        self.script = script
        self.bind = bind
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = int(self.listener.getsockname()[1])
        self.searches = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    return
                buffer += data
                while len(buffer) >= 2:
                    size, start = _length(buffer, 0)
                    if len(buffer) < start + size:
                        break
                    request, buffer = buffer[: start + size], buffer[start + size :]
                    id_size, id_start = _length(request, start)
                    message_id = int.from_bytes(request[id_start : id_start + id_size], "big")
                    op = request[id_start + id_size]
                    if op == 0x60 and self.bind is not None:  # bindRequest, scripted
                        _send(client, self.bind(message_id))
                    elif op == 0x60:  # bindRequest
                        client.sendall(result(message_id, op=0x61))
                    elif op == 0x63:  # searchRequest
                        self.searches += 1
                        _send(client, self.script(message_id, self.searches))
                    elif op == 0x42:  # unbindRequest
                        return
        except OSError:
            pass
        finally:
            client.close()


def _send(client: socket.socket, parts: Iterable[bytes | float]) -> None:
    for part in parts:
        if isinstance(part, float):
            time.sleep(part)
        else:
            client.sendall(part)


def _length(data: bytes, index: int) -> tuple[int, int]:
    """The length of the element whose tag is at ``index``, and where its contents start."""
    first = data[index + 1]
    if first < 0x80:
        return first, index + 2
    count = first & 0x7F
    return int.from_bytes(data[index + 2 : index + 2 + count], "big"), index + 2 + count
