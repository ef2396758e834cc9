"""Serving the API with uvicorn in a thread (the ``api`` command, tests, the self-test), over TLS
when given a certificate and key."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass
class ApiServer:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for its thread (idempotent)."""
        self.server.should_exit = True
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0,
                    tls_cert: str | None = None, tls_key: str | None = None) -> ApiServer:
    """Serve ``app`` with uvicorn in a daemon thread; return once it accepts connections.

    With ``port=0`` the socket is bound here to port 0 and handed to uvicorn, so the port the OS
    picked cannot be taken by someone else in between.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP (with 0, every
    # answer written in two parts waits ~40 ms for the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc}") from None
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=5, backlog=1024,
                            timeout_keep_alive=75,  # pollers keep their connection between reads
                            ssl_certfile=tls_cert, ssl_keyfile=tls_key)
    server = uvicorn.Server(config)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout)
            raise RuntimeError(f"the API server did not start on {host}:{port}")
        time.sleep(0.01)
    return ApiServer(server, thread, host, port, tls=bool(tls_cert))
