"""The ``/_sandbox/`` control API (only with ``--control``; never logged).

No authentication on loopback, unless a control token was given. Bound to any
other address, the sandbox always has a control token (generated when none is
given) and every control request must carry it as ``Authorization: Bearer``:
reset, bulk load and fault injection are not for whoever can reach the port.

==========================================  ==================================================
``GET  /_sandbox/health``                   ``{"ok": true, "devices": N}``
``POST /_sandbox/reset``                    devices, request log, faults, seed back to start
``POST /_sandbox/devices``                  bulk-load a JSON list in load form (upsert)
``GET  /_sandbox/devices/{serial}/state``   ``{"live_status", "pending"}`` of one device
``PUT  /_sandbox/devices/{serial}/state``   set ``live_status`` (bool/null) and/or ``pending``
``GET  /_sandbox/requests``                 the request log, oldest first
``DELETE /_sandbox/requests``               clear the request log and the statistics
``GET  /_sandbox/stats``                    totals by method and status, writes, peak rate
``GET  /_sandbox/faults``                   the current fault settings
``PUT  /_sandbox/faults``                   change the keys given (others stay as they are)
==========================================  ==================================================
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import unquote

from syncd.sandbox.asgi import Request, Response, body_or_refusal, json_response
from syncd.sandbox.auth import Authenticator, TokenGrant
from syncd.sandbox.bodies import BodyError, parse_json
from syncd.sandbox.loading import parse_live_status, parse_pending, rows_from_load
from syncd.sandbox.render import format_datetime
from syncd.sandbox.state import SandboxState, gc_paused
from syncd.sandbox.store import DeviceRow
from syncd.sandbox.validation import FieldError

CONTROL_PREFIX = "/_sandbox/"
Handler = Callable[[Request], Response]
_DEVICES = "devices/"
_STATE = "/state"


def _error(status: int, message: str) -> Response:
    return json_response(status, {"detail": message})


def _json_body(req: Request) -> tuple[Any, Response | None]:
    """The body read by ``handle``, as JSON (UTF-8; empty is null)."""
    try:
        return parse_json(req.body.decode("utf-8") or "null"), None
    except (BodyError, UnicodeDecodeError) as exc:
        return None, _error(400, f"JSON parse error - {exc}")


def _state_json(row: DeviceRow) -> dict[str, Any]:
    pending = row.pending
    return {
        "serial_number": row.serial_number,
        "status": row.status,
        "live_status": row.live_status,
        "pending": None
        if pending is None
        else {
            "configuration_updates": pending.configuration_updates,
            "firmware_update": pending.firmware_update,
            "last_pending_change": format_datetime(pending.last_pending_change),
        },
    }


class ControlApi:
    """Handles one request under ``/_sandbox/``."""

    def __init__(self, state: SandboxState, *, clock: Callable[[], datetime]) -> None:
        self.state = state
        self.clock = clock
        token = state.options.control_token
        self._auth = Authenticator([TokenGrant(token)]) if token is not None else None

    async def handle(self, req: Request) -> Response:
        """The answer to ``req``: the token checked first, the body read only for a known route."""
        if self._auth is not None:
            auth = self._auth.authenticate(req.headers.get("authorization"))
            if auth.grant is None:
                headers = [(b"www-authenticate", b'Bearer realm="sandbox-control"')]
                return json_response(401, {"detail": auth.error}, headers)
        route = self._route(req)
        if isinstance(route, Response):
            return route
        if req.method in ("POST", "PUT"):
            _, refusal = await body_or_refusal(req)
            if refusal is not None:
                return refusal
        return route(req)

    def _route(self, req: Request) -> Handler | Response:
        """The handler of ``req``, or the 404/405 answer."""
        rest = req.raw_path[len(CONTROL_PREFIX) :]
        routes: dict[tuple[str, str], Handler] = {
            ("GET", "health"): self._health,
            ("POST", "reset"): self._reset,
            ("POST", "devices"): self._load,
            ("GET", "requests"): self._requests,
            ("DELETE", "requests"): self._clear_requests,
            ("GET", "stats"): self._stats,
            ("GET", "faults"): self._faults,
            ("PUT", "faults"): self._set_faults,
        }
        key = rest.rstrip("/")
        handler = routes.get((req.method, key))
        if handler is not None:
            return handler
        if rest.startswith(_DEVICES) and key.endswith(_STATE) and len(key) > len(_DEVICES + _STATE):
            serial = unquote(key[len(_DEVICES) : -len(_STATE)])
            if req.method == "GET":
                return lambda _: self._get_state(serial)
            if req.method == "PUT":
                return partial(self._set_state, serial)
            return _error(405, f'Method "{req.method}" not allowed.')
        if any(path == key for (_, path) in routes):
            return _error(405, f'Method "{req.method}" not allowed.')
        return _error(404, "Not found.")

    def _health(self, req: Request) -> Response:
        return json_response(200, {"ok": True, "devices": len(self.state.store)})

    def _reset(self, req: Request) -> Response:
        self.state.reset()
        return json_response(200, {"devices": len(self.state.store)})

    def _load(self, req: Request) -> Response:
        items, refusal = _json_body(req)
        if refusal is not None:
            return refusal
        with gc_paused():
            rows, problems = rows_from_load(items, catalogue=self.state.catalogue, now=self.clock())
            if problems:
                return json_response(400, {"errors": problems})
            loaded = self.state.store.put_many(rows)
        return json_response(200, {"loaded": loaded, "devices": len(self.state.store)})

    def _requests(self, req: Request) -> Response:
        return json_response(200, self.state.log.entries())

    def _clear_requests(self, req: Request) -> Response:
        self.state.log.clear()
        return json_response(204, None)

    def _stats(self, req: Request) -> Response:
        return json_response(200, self.state.log.stats())

    def _faults(self, req: Request) -> Response:
        return json_response(200, self.state.faults.to_json())

    def _set_faults(self, req: Request) -> Response:
        data, refusal = _json_body(req)
        if refusal is not None:
            return refusal
        if not isinstance(data, dict):
            return _error(400, "Expected a JSON object of fault settings.")
        errors = self.state.faults.update(data)
        if errors:
            return json_response(400, errors)
        return json_response(200, self.state.faults.to_json())

    def _get_state(self, serial: str) -> Response:
        row = self.state.store.get(serial)
        if row is None:
            return _error(404, "Not found.")
        return json_response(200, _state_json(row))

    def _set_state(self, serial: str, req: Request) -> Response:
        row = self.state.store.get(serial)
        if row is None:
            return _error(404, "Not found.")
        data, refusal = _json_body(req)
        if refusal is not None:
            return refusal
        if not isinstance(data, dict):
            return _error(400, "Expected a JSON object with live_status and/or pending.")
        errors: dict[str, list[str]] = {}
        live: bool | None = row.live_status
        pending = row.pending
        try:
            if "live_status" in data:
                live = parse_live_status(data["live_status"])
        except FieldError as exc:
            errors["live_status"] = [str(exc)]
        try:
            if "pending" in data:
                pending = parse_pending(data["pending"], self.clock())
        except FieldError as exc:
            errors["pending"] = [str(exc)]
        unknown = sorted(set(data) - {"live_status", "pending"})
        for key in unknown:
            errors[key] = ["Unknown key: use live_status and pending."]
        if errors:
            return json_response(400, errors)
        self.state.store.set_live_status(row, live)
        row.pending = pending
        self.state.store.changed()
        return json_response(200, _state_json(row))
