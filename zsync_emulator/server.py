"""Serve the emulator over real HTTP with uvicorn: in a background thread, or in the foreground."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from .app import Organization, create_app
from .tls import Tls, make_tls

if TYPE_CHECKING:
    from .microsoft import Tenant


class LoopbackServer:
    """An ASGI app on a loopback port, in a thread: ``with Server(...) as server: server.base``."""

    name = "server"

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
        http: str = "h11",
    ) -> None:
        """``http``: uvicorn's HTTP parser, "h11" (pure Python: what the tests use, whatever is
        installed) or "httptools" (C, for the benchmark: a faster stand-in for Zivver)."""
        self.scheme = "https" if tls else "http"
        self.sock = listening_socket(host, port)
        self.host, self.port = self.sock.getsockname()
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=http,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> Any:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not start within 10 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorServer(LoopbackServer):
    """The Zivver emulator: ``with EmulatorServer(org) as server: server.url``."""

    name = "Zivver emulator"

    def __init__(self, org: Organization, *args: Any, **kwargs: Any) -> None:
        self.org = org
        super().__init__(create_app(org), *args, **kwargs)

    @property
    def url(self) -> str:
        return f"{self.base}/api/scim/v2"


class MicrosoftServer(LoopbackServer):
    """The Microsoft 365 emulator (sign-in, Graph and Exchange on one port), over TLS as the
    real services are: its ``base`` is the source's ``authority_url``, ``graph_url`` and
    ``exchange_url`` alike, and its ``ca_file`` the source's ``ca_file``.

    ``tls``: the CA and certificate to serve with; without one the server makes its own in a
    temporary directory, removed when it stops.
    """

    name = "Microsoft 365 emulator"

    def __init__(self, tenant: Tenant, *args: Any, tls: Tls | None = None, **kwargs: Any) -> None:
        from .microsoft import create_app as create_microsoft_app

        self.tenant = tenant
        self._made: tempfile.TemporaryDirectory[str] | None = None
        if tls is None:
            self._made = tempfile.TemporaryDirectory(prefix="zsync-m365-tls-")
            tls = make_tls(Path(self._made.name))
        self.ca_file = tls.ca_file
        kwargs["tls"] = (str(tls.certificate), str(tls.key))
        super().__init__(create_microsoft_app(tenant), *args, **kwargs)

    def stop(self) -> None:
        super().stop()
        if self._made is not None:
            self._made.cleanup()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket whose connections send small writes at once (TCP_NODELAY, inherited on accept).

    Without it a keep-alive client waits about 40 ms per request: uvicorn writes a response's
    head and body separately, and Nagle holds the body until the client's delayed ACK.
    Zivver does not behave like that, so neither may its emulator.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def serve_forever(app: Any, host: str, port: int, tls: Tls | None = None) -> None:
    """``zsync emulator``: serve an emulator's ASGI app in the foreground until Ctrl-C (over
    TLS with ``tls``)."""
    config = uvicorn.Config(
        app,
        log_level="info",
        ssl_certfile=str(tls.certificate) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
    uvicorn.Server(config).run(sockets=[listening_socket(host, port)])
