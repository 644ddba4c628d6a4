"""The sandbox ASGI application: routing, fault injection and the request log.

``/api/v1/...`` goes through the fault layer (as a proxy in front of the real API
would: a fault can strike before authentication) into ``InventoryApi`` and is
recorded in the request log; ``/_sandbox/...`` goes to the control API when it is
enabled and is never logged; anything else is a 404.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime

from syncd.sandbox.api import API_PREFIX, API_ROOT, InventoryApi, resolve, utc_now
from syncd.sandbox.asgi import (
    ClientGone,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    drop,
    json_response,
    read_request,
    send_response,
)
from syncd.sandbox.control import CONTROL_PREFIX, ControlApi
from syncd.sandbox.faults import Fault, injected_detail
from syncd.sandbox.reqlog import WRITE_METHODS, LogEntry
from syncd.sandbox.state import SandboxOptions, SandboxState

logger = logging.getLogger(__name__)


class SandboxApp:
    """An ASGI app serving the inventory contract from memory."""

    def __init__(self, options: SandboxOptions, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.state = SandboxState(options)
        self.api = InventoryApi(self.state, clock=clock)
        self.control = ControlApi(self.state, clock=clock) if options.control else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if raw_path.startswith(API_PREFIX) or raw_path == API_ROOT:
            await self._api_request(scope, receive, send)
            return
        try:
            req = await read_request(scope, receive)
        except ClientGone:
            return
        if self.control is not None and raw_path.startswith(CONTROL_PREFIX):
            await send_response(send, self.control.handle(req))
        else:
            await send_response(send, json_response(404, {"detail": "Not found."}))

    async def _api_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        wall = time.time()
        log = self.state.log
        log.started(started)
        try:
            req = await read_request(scope, receive)
        except ClientGone:
            return
        fault = self.state.faults.decide(self.state.rng)
        if fault.delay_ms > 0:
            await asyncio.sleep(fault.delay_ms / 1000)
        response = await self._respond(req, fault)

        # Logged before the answer goes out, so a client that has its answer always
        # finds the request in the log.
        log.record(
            LogEntry(
                method=req.method,
                path=req.raw_path,
                query=req.query_string,
                status=response.status,
                start=wall,
                duration_ms=round((time.monotonic() - started) * 1000, 3),
                fault=fault.label,
                serial=_write_serial(req),
            ),
            applied_write=response.applied_write,
        )
        if fault.hold_ms > 0:
            await asyncio.sleep(fault.hold_ms / 1000)
        if fault.drop is not None:
            await drop(send, response)
        await send_response(send, response)

    async def _respond(self, req: Request, fault: Fault) -> Response:
        if fault.status is not None:
            retry_after = self.state.faults.retry_after
            if fault.status == 429 and retry_after is None:
                retry_after = 1
            headers = (
                [(b"retry-after", str(retry_after).encode())] if retry_after is not None else []
            )
            return json_response(
                fault.status, {"detail": injected_detail(fault.status, retry_after)}, headers
            )
        if fault.drop == "before":
            # nothing is applied: the answer is lost before the request reached the API
            return json_response(200, {"detail": "dropped"})
        try:
            return await self.api.handle(req)
        except Exception:
            logger.exception("sandbox: unhandled error for %s %s", req.method, req.raw_path)
            return json_response(500, {"detail": "A server error occurred."})


def _write_serial(req: Request) -> str | None:
    """The serial a write is for: from the path, or the body of a create."""
    if req.method not in WRITE_METHODS:
        return None
    _, serial = resolve(req.raw_path)
    if serial is not None or req.method != "POST":
        return serial
    try:
        body = json.loads(req.body)
    except ValueError:
        return None
    value = body.get("serial_number") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
