"""Serve the emulator over real HTTP with uvicorn: in a background thread, or in the foreground."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from .app import Organization, create_app


class EmulatorServer:
    """The emulator on a loopback port, in a thread: ``with EmulatorServer(org) as server: server.url``."""

    def __init__(
        self,
        org: Organization,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
        http: str = "h11",
    ) -> None:
        """``http``: uvicorn's HTTP parser, "h11" (pure Python: what the tests use, whatever is
        installed) or "httptools" (C, for the benchmark: a faster stand-in for Zivver)."""
        self.org = org
        self.scheme = "https" if tls else "http"
        self.sock = listening_socket(host, port)
        self.host, self.port = self.sock.getsockname()
        config = uvicorn.Config(
            create_app(org),
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
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/api/scim/v2"

    def start(self) -> EmulatorServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Zivver emulator did not start within 10 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


def serve_forever(org: Organization, host: str, port: int) -> None:
    """``zsync emulator``: serve in the foreground until Ctrl-C."""
    config = uvicorn.Config(create_app(org), log_level="info")
    uvicorn.Server(config).run(sockets=[listening_socket(host, port)])
