"""Helpers for the inventory-client tests (``tests/test_client_*.py``).

:class:`RecordingTransport` is a real HTTP transport that also keeps what went on the
wire (method, path, headers, body), so a test can check the exact JSON the client
sent, which the sandbox's request log (no bodies, no headers) does not show.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from syncd.config import RetrySettings
from syncd.inventory import InventoryClient
from syncd.ratelimit import RateLimiter
from syncd.sandbox.testing import RequestRecord, SandboxProcess

#: Retries without waiting: the attempts still count, the backoff is zero.
FAST_RETRY = RetrySettings(attempts=4, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0)
#: One attempt, no wait: a mock transport answers at once.
ONE_TRY = RetrySettings(attempts=1, timeout=5, wait_initial=0, wait_max=0, wait_jitter=0)


@dataclass(frozen=True)
class Sent:
    """One request as it left the client."""

    method: str
    path: str
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.content)


class RecordingTransport(httpx.BaseTransport):
    """``httpx.HTTPTransport`` that records each request it sends."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.sent: list[Sent] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Record, then send for real."""
        self.sent.append(
            Sent(
                request.method,
                request.url.raw_path.decode("ascii"),
                request.headers.copy(),
                request.read(),
            )
        )
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Close the real transport."""
        self._inner.close()


def make_client(
    sandbox: SandboxProcess,
    *,
    token: SecretStr | None = None,
    retry: RetrySettings = FAST_RETRY,
    rate_limiter: RateLimiter | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 10.0,
) -> InventoryClient:
    """An inventory client on the sandbox (first token unless ``token``)."""
    return InventoryClient(
        sandbox.base_url,
        token if token is not None else sandbox.token,
        retry=retry,
        rate_limiter=rate_limiter,
        transport=transport,
        timeout=timeout,
        connect_timeout=5.0,
    )


def device(serial: str, **fields: Any) -> dict[str, Any]:
    """A device in the sandbox's load form (create body plus staged server state)."""
    return {"serial_number": serial, "name": f"dev-{serial}", "type": 1, "organization": 123} | (
        fields
    )


def api_requests(sandbox: SandboxProcess) -> list[RequestRecord]:
    """The request log of the API (the control API is never in it)."""
    return sandbox.requests()


def summary(sandbox: SandboxProcess) -> list[tuple[str, int, str | None]]:
    """``(method, status, fault)`` of each logged request, oldest first."""
    return [(r.method, r.status, r.fault) for r in sandbox.requests()]


def wait_for_log(
    sandbox: SandboxProcess, count: int, *, fault: str | None = None, timeout: float = 15.0
) -> list[tuple[str, int, str | None]]:
    """The log summary once it holds ``count`` requests (with ``fault``, if given).

    For requests the client gave up on (timeouts): the server finishes them later, and
    a test must not end before that, or they would land in the next test's log.
    """
    deadline = time.monotonic() + timeout
    while True:
        logged = summary(sandbox)
        matching = [e for e in logged if fault is None or e[2] == fault]
        if len(matching) >= count or time.monotonic() > deadline:
            return logged if fault is None else matching
        time.sleep(0.05)


def list_row(serial: str, **fields: Any) -> dict[str, Any]:
    """A row as the sandbox's list page shows one (``fields`` replace or add keys)."""
    return {
        "serial_number": serial,
        "name": f"dev-{serial}",
        "type": {"id": 1, "name": "Router", "model": "X1"},
        "organization": {"id": 2, "name": "Acme"},
        "status": True,
        "last_status_change": "2026-01-05T09:31:00Z",
        "ip_address": "10.0.0.1",
        "location": "dc1",
        "pending_changes": False,
        "created_at": "2026-01-05T09:30:00Z",
        "updated_at": "2026-01-06T09:30:00.123456Z",
    } | fields


def mock_client(
    handle: Callable[[httpx.Request], httpx.Response], *, page_size: int
) -> InventoryClient:
    """A client whose requests ``handle`` answers in-process (one try, no wait)."""
    return InventoryClient(
        "http://inventory.test/api/v1",
        SecretStr("mock-token-listing-5c1e"),
        retry=ONE_TRY,
        page_size=page_size,
        transport=httpx.MockTransport(handle),
    )
