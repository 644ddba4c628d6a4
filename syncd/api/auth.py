"""Who may call what: one FastAPI dependency per kind of access, and the secrets behind them.

Every route declares exactly one (``tests/test_api_access.py`` walks ``app.routes``
and fails for a route that declares none):

- ``public``: no credentials (``/healthz``, ``/readyz``: health checks must not need a
  secret);
- ``viewer``: an API token with the ``viewer`` or ``operator`` role (reading);
- ``operator``: an API token with the ``operator`` role (acting: triggers, approvals,
  retries, reverts);
- ``netbox_signature``: no token, but ``X-Hook-Signature``, the hex HMAC-SHA512 of the
  raw body under the webhook secret (NetBox's ``generate_signature``), which proves the
  sender knows the secret and that the body is the one it signed.

API tokens come from ``syncd tokens add`` (kept hashed: ``syncd.service.access``); the
trigger token (``SYNCD_API__TRIGGER_TOKEN``) counts as an operator token named
``env:trigger_token``. A missing, wrong or revoked token is 401, a token without the
role 403. Every secret is registered with the log redactor when read, and none is ever
quoted back: a refused request learns only that it was refused, and why in general.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import fastapi.routing
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from syncd.api.http import refuse
from syncd.config import Settings
from syncd.log import register_secret
from syncd.service.access import Principal, Role, authenticate

if TYPE_CHECKING:
    from syncd.api.app import ApiContext

log = structlog.get_logger("syncd.api")

SIGNATURE_HEADER = "X-Hook-Signature"


@dataclass(frozen=True, slots=True)
class ApiSecrets:
    """The secrets of ``[api]``, read once (``None``: not configured)."""

    trigger_token: SecretStr | None = field(default=None, repr=False)
    webhook_secret: SecretStr | None = field(default=None, repr=False)
    token_pepper: SecretStr | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiSecrets:
        """Read them (``ConfigError`` for an unreadable, empty or too short file) and
        register them with the redactor."""
        api = settings.api
        found = (
            api.resolved_trigger_token(),
            api.resolved_webhook_secret(),
            api.resolved_token_pepper(),
        )
        for secret in found:
            register_secret(secret)
        return cls(*found)


def bearer_credentials(authorization: str | None) -> str | None:
    """The credentials of a ``Bearer`` ``Authorization`` header (``None``: none)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def signature(body: bytes, secret: SecretStr) -> str:
    """The ``X-Hook-Signature`` NetBox sends with ``body``: hex HMAC-SHA512, the secret
    (UTF-8) as key."""
    key = secret.get_secret_value().encode("utf-8")
    return hmac.new(key, body, hashlib.sha512).hexdigest()


def signature_matches(body: bytes, header: str | None, secret: SecretStr) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret``."""
    if not header:
        return False
    given = header.strip().lower().encode("latin-1", errors="replace")
    return hmac.compare_digest(given, signature(body, secret).encode("ascii"))


# -- the dependencies, one per kind of access -------------------------------------------------


def _context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def public() -> None:
    """No credentials needed (health checks)."""


async def viewer(request: Request) -> Principal:
    """A token with the viewer role (or more): 401 without one, 403 without the role."""
    return await _require(request, "viewer")


async def operator(request: Request) -> Principal:
    """A token with the operator role: 401 without a token, 403 for a viewer's."""
    return await _require(request, "operator")


async def netbox_signature(request: Request) -> bytes:
    """The raw body of a webhook signed with the webhook secret (503 when no secret is
    set, 401 for a missing or wrong signature)."""
    secret = _context(request).secrets.webhook_secret
    if secret is None:
        refuse(503, "webhooks are off: set SYNCD_API__WEBHOOK_SECRET or api.webhook_secret_file")
    body = await request.body()
    if not signature_matches(body, request.headers.get(SIGNATURE_HEADER), secret):
        log.warning("api.refused", path=request.url.path, reason="missing or wrong signature")
        refuse(401, f"missing or wrong {SIGNATURE_HEADER}: sign the webhook with syncd's secret")
    return body


#: What a route may declare, and what the role table calls it.
ACCESS: dict[Callable[..., Any], str] = {
    public: "public",
    viewer: "viewer",
    operator: "operator",
    netbox_signature: "netbox-signature",
}

#: For an endpoint that needs to know who called (``by`` of an approval):
#: ``def approve(..., who: Operator)``.
Viewer = Annotated[Principal, Depends(viewer)]
Operator = Annotated[Principal, Depends(operator)]


@dataclass(frozen=True, slots=True)
class RouteAccess:
    """One route of an app and the kinds of access it declares."""

    methods: frozenset[str]
    path: str
    declared: tuple[str, ...]


def route_access(app: FastAPI) -> list[RouteAccess]:
    """Every route of ``app`` and what it declares (its own dependencies, its router's,
    and theirs): exactly one kind for a well-made route; a route that is not an API
    route (a mount) can declare none."""
    # FastAPI >= 0.16x includes routers lazily: their routes are reached through
    # iter_route_contexts; before that, app.routes held the APIRoutes themselves.
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Iterable[Any] = contexts(app.routes) if contexts is not None else app.routes
    found = []
    for route in routes:
        dependant = getattr(route, "dependant", None)
        declared = declared_access(dependant) if isinstance(dependant, Dependant) else ()
        methods = frozenset(getattr(route, "methods", None) or ())
        found.append(RouteAccess(methods, str(getattr(route, "path", route)), declared))
    return found


def declared_access(dependant: Dependant) -> tuple[str, ...]:
    """The kinds of access a route's dependencies (and theirs) declare, each once (a
    route may both declare ``operator`` and take ``who: Operator``)."""
    found: dict[str, None] = {}

    def walk(node: Dependant) -> None:
        for sub in node.dependencies:
            if sub.call in ACCESS:
                found[ACCESS[sub.call]] = None
            walk(sub)

    walk(dependant)
    return tuple(found)


async def _require(request: Request, role: Role) -> Principal:
    ctx = _context(request)
    secrets = ctx.secrets
    if secrets.trigger_token is None and secrets.token_pepper is None:
        refuse(
            503,
            "no API token can be checked: set SYNCD_API__TOKEN_PEPPER (for tokens made by "
            "`syncd tokens add`) or SYNCD_API__TRIGGER_TOKEN",
        )
    presented = bearer_credentials(request.headers.get("authorization"))
    principal = None
    if presented is not None:
        principal = await run_in_threadpool(
            authenticate,
            ctx.store,
            presented,
            pepper=secrets.token_pepper,
            trigger_token=secrets.trigger_token,
        )
    if principal is None:
        log.warning("api.refused", path=request.url.path, reason="missing, wrong or revoked token")
        refuse(
            401,
            "a valid API token is required (Authorization: Bearer <token>): one made by "
            "`syncd tokens add`, or the trigger token",
            {"WWW-Authenticate": 'Bearer realm="syncd"'},
        )
    if not principal.may(role):
        log.warning("api.forbidden", path=request.url.path, token=principal.name, needs=role)
        refuse(
            403, f"this needs the {role} role; the token {principal.name!r} is a {principal.role}"
        )
    request.state.principal = principal
    return principal
