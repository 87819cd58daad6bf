"""Serve a mock's ASGI app on a real TCP port from a background thread; stop and start it again.

The mocks run inside ``gateway serve`` (embedded default), standalone (``gateway mocks``) and in
tests. Stopping one and starting it again on the same port is how tests show an outage of an
outside system; ``ssl`` options let a mock demand a client certificate (mutual TLS).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import uvicorn

from gateway.serving import OwnedServer


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Server certificate and key; with ``client_ca`` the server demands a client certificate."""

    certfile: str
    keyfile: str
    client_ca: str | None = None


class ServedApp:
    """One ASGI app on ``host:port`` (port 0 picks a free one, kept across restarts)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, tls: TlsFiles | None = None):
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
        self._server: OwnedServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 15.0) -> ServedApp:
        if self.running:
            return self
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see gateway.bootstrap.bind_socket
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            where = f"{self.host}:{self.port}"
            raise OSError(exc.errno, f"mock cannot listen on {where}: {exc.strerror}") from exc
        sock.listen(512)
        self.port = sock.getsockname()[1]
        options: dict[str, Any] = {}
        if self.tls is not None:
            options = {"ssl_certfile": self.tls.certfile, "ssl_keyfile": self.tls.keyfile}
            if self.tls.client_ca:
                options |= {"ssl_ca_certs": self.tls.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", server_header=False, **options
        )
        server = OwnedServer(config)
        self._server = server
        failed: list[BaseException] = []

        def main() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # reported by start()
                failed.append(exc)
            finally:
                sock.close()

        self._thread = threading.Thread(target=main, name=f"mock:{self.port}", daemon=True)
        self._thread.start()
        deadline = timeout
        step = 0.01
        while not server.started and self._thread.is_alive() and deadline > 0:
            threading.Event().wait(step)
            deadline -= step
        if not server.started:
            raise RuntimeError(f"mock on port {self.port} did not start") from (failed[0] if failed else None)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.request_exit()
            self._thread.join(timeout=15)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
