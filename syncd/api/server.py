"""``serve``: the API under uvicorn, on a socket bound here (so port 0 works and a port
in use is a clear error before anything starts).

uvicorn's own loggers go through syncd's logging (``log_config=None``), hence through
the redactor and, with ``format = "json"``, as JSON. No access log: request lines
would carry nothing a person needs that the API's own events do not already say.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from syncd.api.app import create_app
from syncd.config import Settings
from syncd.errors import ConfigError, Problem
from syncd.sandbox.server import bind_socket

LISTENING = "syncd api listening on "


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def serve(settings: Settings, *, host: str, port: int, echo: Callable[[str], None]) -> None:
    """Serve until SIGINT/SIGTERM; ``echo`` gets ``syncd api listening on http://HOST:PORT``
    once connections are accepted (the real port when ``port`` is 0)."""
    app = create_app(settings)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        problem = Problem("api.port", f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        raise ConfigError([problem], source="api") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws="none",
        server_header=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
    )
    try:
        _Server(config, lambda: echo(f"{LISTENING}http://{shown}:{bound}")).run(sockets=[sock])
    finally:
        sock.close()
