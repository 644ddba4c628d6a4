"""Serving the sandbox with uvicorn on a socket we bind ourselves (so port 0 works)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import uvicorn

from syncd.sandbox.app import SandboxApp
from syncd.sandbox.asgi import DroppedConnection


class _HideDrops(logging.Filter):
    """Injected drops are on purpose: keep uvicorn from logging them as app errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: the system picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def serve(app: SandboxApp, sock: socket.socket, *, on_started: Callable[[], None]) -> None:
    """Run until SIGINT/SIGTERM; ``on_started`` is called once connections are accepted."""
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_level="warning",
        ws="none",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
        server_header=False,
    )
    logging.getLogger("uvicorn.error").addFilter(_HideDrops())
    try:
        _Server(config, on_started).run(sockets=[sock])
    finally:
        app.state.log.close()
