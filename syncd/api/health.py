"""``GET /healthz`` and ``GET /readyz``: is the process up, and can it do its work.

Both are public (``auth.public``): a load balancer, Docker's ``HEALTHCHECK`` or a
Kubernetes probe carries no secret. So neither says more than a yes or a no per check:
what went wrong (a host name, a database's own words) goes to the server's log.

- ``/healthz``: 200 while the process serves requests, whatever else is down (a
  restart would not help).
- ``/readyz``: 200 when the store answers and, with a Redis broker
  (``daemon.broker_url``), Redis answers ``PING``; else 503. Each check gets
  ``READY_TIMEOUT`` seconds: a store that hangs is as unready as one that refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from syncd.api.app import ApiContext, context
from syncd.api.auth import public
from syncd.log import redact

log = structlog.get_logger("syncd.api")

#: Seconds each readiness check may take.
READY_TIMEOUT = 3.0

router = APIRouter(dependencies=[Depends(public)])

Context = Annotated[ApiContext, Depends(context)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(ctx: Context) -> JSONResponse:
    """200 when the store (and a Redis broker) answer, else 503; each check's verdict."""
    checks = {"store": await _check("store", ctx.store.ping)}
    broker = ctx.settings.daemon.broker_url
    if ctx.settings.daemon.scale_out:
        checks["broker"] = await _check("broker", lambda: ping_redis(broker))
    ready = all(check["ok"] for check in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def _check(name: str, call: Callable[[], None]) -> dict[str, Any]:
    try:
        await asyncio.wait_for(run_in_threadpool(call), timeout=READY_TIMEOUT)
    except TimeoutError:
        log.warning("api.not_ready", check=name, error=f"no answer within {READY_TIMEOUT:g} s")
        return {"ok": False, "error": f"no answer within {READY_TIMEOUT:g} s"}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said plainly
        log.warning("api.not_ready", check=name, error=redact(f"{type(exc).__name__}: {exc}"))
        return {"ok": False, "error": "cannot be used now (the server's log says why)"}
    return {"ok": True}


def ping_redis(url: str) -> None:
    """``PING`` the Redis at ``url`` (raises if it does not answer). A Sentinel URL is
    not checked here: Celery finds the master through it."""
    if url.startswith("redis+sentinel"):
        return
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
