"""The sandbox ASGI application: routing, fault injection and the request log.

Every request first meets the checks a front server makes from the head alone
(414 for an over-long URL, 413 for a declared body over the limit). Then
``/api/v1/...`` goes through the fault layer (as a proxy in front of the real API
would: a fault can strike before authentication) into ``InventoryApi`` and is
recorded in the request log; ``/_sandbox/...`` goes to the control API when it is
enabled and is never logged; anything else is a 404.

An API request with a valid token (decided from its head) has its body read whole
before the faults strike, as a buffering front server (nginx) would pass it on:
a client that gives up during an injected delay still has its write applied. Any
other request's body is read only by the handler that needs it (never for a 401).
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
    MAX_URL_LENGTH,
    BodyRefused,
    ClientGone,
    Limits,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    drop,
    json_response,
    read_head,
    send_response,
)
from syncd.sandbox.control import CONTROL_PREFIX, ControlApi
from syncd.sandbox.faults import NO_FAULT, Fault, injected_detail
from syncd.sandbox.reqlog import WRITE_METHODS, LogEntry
from syncd.sandbox.state import SandboxOptions, SandboxState

logger = logging.getLogger(__name__)


class SandboxApp:
    """An ASGI app serving the inventory contract from memory."""

    def __init__(self, options: SandboxOptions, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.state = SandboxState(options)
        self.api = InventoryApi(self.state, clock=clock)
        self.control = ControlApi(self.state, clock=clock) if options.control else None
        self.limits = Limits(max_body=options.max_body_bytes, timeout=options.request_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = read_head(scope, receive, self.limits)
        raw_path = req.raw_path
        if raw_path.startswith(API_PREFIX) or raw_path == API_ROOT:
            await self._api_request(req, send)
            return
        response = req.early_refusal()
        if response is None and self.control is not None and raw_path.startswith(CONTROL_PREFIX):
            try:
                response = await self.control.handle(req)
            except ClientGone:
                return
            except Exception:
                logger.exception("sandbox: unhandled error for %s %s", req.method, raw_path)
                response = json_response(500, {"detail": "A server error occurred."})
        await send_response(send, response or json_response(404, {"detail": "Not found."}))

    async def _api_request(self, req: Request, send: Send) -> None:
        started = time.monotonic()
        wall = time.time()
        log = self.state.log
        log.started(started)
        fault = NO_FAULT
        response = req.early_refusal()
        if response is None and req.declares_body() and self.api.knows_token(req):
            # As a buffering front server would, the body of a request with a known
            # token arrives whole before the faults and the API see it: a client that
            # gives up during an injected delay still has its write applied.
            try:
                await req.read_body()
            except BodyRefused:
                pass  # kept, and answered by the handler that needs the body
            except ClientGone:
                return
        if response is None:
            fault = self.state.faults.decide(self.state.rng)
            if fault.delay_ms > 0:
                await asyncio.sleep(fault.delay_ms / 1000)
            try:
                response = await self._respond(req, fault)
            except ClientGone:
                return

        # Logged before the answer goes out, so a client that has its answer always
        # finds the request in the log. An over-long URL is logged cut to the limit.
        path = req.raw_path[:MAX_URL_LENGTH]
        log.record(
            LogEntry(
                method=req.method,
                path=path,
                query=req.query_string[: MAX_URL_LENGTH - len(path)],
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
        except ClientGone:
            raise
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
    except (ValueError, RecursionError):  # refused by the API with a 400 already
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
