"""``create_app(settings)``: the FastAPI app of one configuration.

Every route declares who may call it with one dependency of ``syncd.api.auth``
(``public``, ``viewer``, ``operator``, ``netbox_signature``); a route without one fails
the role table's test. Request bodies are limited to ``api.max_body_bytes`` for every
route, by the ``BodyLimit`` middleware.

The app holds an ``ApiContext`` (settings, the store, the secrets) in ``app.state``;
routes reach it through the ``context`` dependency. The store is opened here (or
given, and then left open) and closed when the server shuts down. Every blocking
call (the store, the broker) runs in a worker thread, so a slow database never
stalls the event loop; the broker is nudged after the answer has gone out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from syncd.api.auth import ApiSecrets
from syncd.api.http import BodyLimit, InvalidBodyError
from syncd.config import Settings
from syncd.errors import RetriableError, SyncdError, failure_kind
from syncd.log import redact
from syncd.store import Store, StoreUnavailableError

log = structlog.get_logger("syncd.api")


@dataclass(frozen=True)
class ApiContext:
    """What every request may need."""

    settings: Settings
    store: Store
    secrets: ApiSecrets


def context(request: Request) -> ApiContext:
    """The app's context (a FastAPI dependency)."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def create_app(
    settings: Settings, *, store: Store | None = None, secrets: ApiSecrets | None = None
) -> FastAPI:
    """The API of ``settings``. Reads the secrets (``ConfigError`` if a secret file is
    unusable) and opens the store unless they are given; a given store stays open."""
    from syncd.api import actions, audit, health, metrics, openapi, triggers, webhooks

    secrets = secrets if secrets is not None else ApiSecrets.from_settings(settings)
    owned = store is None
    opened = store if store is not None else Store.from_settings(settings.store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                opened.close()

    app = FastAPI(
        title="syncd",
        version=_version(),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ApiContext(settings, opened, secrets)
    app.add_middleware(BodyLimit, limit=settings.api.max_body_bytes)
    app.include_router(triggers.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(audit.router)
    app.include_router(actions.router)
    app.include_router(openapi.router)
    app.add_exception_handler(InvalidBodyError, _invalid)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(SyncdError, _failure)
    return app


def _version() -> str:
    from syncd import __version__

    return __version__


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 in the API's one error shape, for a body or a path parameter alike."""
    if isinstance(exc, RequestValidationError):
        exc = InvalidBodyError(
            [
                {"field": str(error["loc"][-1]), "message": str(error["msg"])}
                for error in exc.errors()
            ]
        )
    assert isinstance(exc, InvalidBodyError)
    first = exc.problems[0]
    return JSONResponse(
        {"detail": f"{first['field']}: {first['message']}", "errors": exc.problems},
        status_code=422,
    )


#: Seconds a client is asked to wait after a temporary failure that named no delay.
RETRY_AFTER = 5


async def _failure(request: Request, exc: Exception) -> JSONResponse:
    """A ``SyncdError`` in the API's one error shape, with the status of its branch
    (``syncd.errors.failure_kind``, the table the command line's exit codes come from).

    A server-side failure (5xx) says what kind it was but not its text, which may name
    internal places; a temporary one asks the client to come back (``Retry-After``)."""
    assert isinstance(exc, SyncdError)
    kind = failure_kind(exc)
    status = kind.http_status
    headers: dict[str, str] = {}
    if isinstance(exc, StoreUnavailableError):
        detail = "the state store cannot be reached now; try again shortly"
    elif status >= 500:
        detail = f"{kind.name}: syncd could not do this now (see its log)"
    else:
        detail = redact(str(exc))
    if isinstance(exc, RetriableError):
        headers["Retry-After"] = str(round(exc.retry_after or RETRY_AFTER))
    log.warning("api.failed", path=request.url.path, error=type(exc).__name__, status=status)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)
