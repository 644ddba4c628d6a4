"""Serving the sandbox with uvicorn on a socket we bind ourselves (so port 0 works).

uvicorn's h11 protocol (named explicitly, so the limits below do not depend on
whether ``httptools`` happens to be installed) with the deadlines uvicorn lacks:

- a request head must arrive whole within the request timeout of the connection
  opening, of its first byte after an idle keep-alive, or of the end of a body
  (a client that sends a head a byte at a time cannot hold a connection forever);
- a body the app did not read (a 401, 404 or 413 came first) is read and thrown
  away, so the client can finish sending and read the answer, for at most the
  request timeout; then the connection is closed.

A head larger than 16 KiB (h11's limit) or malformed gets a JSON 400.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from syncd.sandbox.app import SandboxApp
from syncd.sandbox.asgi import DEFAULT_REQUEST_TIMEOUT, DroppedConnection
from syncd.sandbox.render import dumps

#: The largest request head (request line and headers) accepted: h11's default.
MAX_HEAD_BYTES = 16 * 1024


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


def guarded_protocol(timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the head and discard deadlines (see the module doc)."""

    class GuardedH11(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _waiting_for_client(self) -> bool:
            """True while the client owes us bytes and nothing else times it out."""
            state = self.conn.their_state
            if state is h11.IDLE:
                # a partial head, or a silence uvicorn's keep-alive timer does not cover
                return bool(self.conn.trailing_data[0]) or self.timeout_keep_alive_task is None
            if state is h11.SEND_BODY:
                # the answer is out; the rest of the body is being thrown away
                return self.cycle is not None and self.cycle.response_complete
            return False

        def _watch(self) -> None:
            if self.transport.is_closing() or not self._waiting_for_client():
                self._disarm()
            elif self._deadline is None:
                self._deadline = self.loop.call_later(timeout, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to a head h11 refuses, as JSON with a ``detail``."""
            detail = f"Bad request: malformed HTTP, or a request head over {MAX_HEAD_BYTES} bytes."
            body = dumps({"detail": detail})
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            response = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
            try:
                for event in (response, h11.Data(data=body), h11.EndOfMessage()):
                    self.transport.write(self.conn.send(event) or b"")
            except h11.LocalProtocolError:
                pass  # an answer was already sent (the garbage came after it): just close
            self.transport.close()

    return GuardedH11


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def serve(
    app: SandboxApp,
    sock: socket.socket,
    *,
    on_started: Callable[[], None],
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> None:
    """Run until SIGINT/SIGTERM; ``on_started`` is called once connections are accepted."""
    config = uvicorn.Config(
        app,
        http=guarded_protocol(request_timeout),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
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
