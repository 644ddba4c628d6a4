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
  sender knows the secret and that the body is the one it signed;
- the dashboard's (``syncd.api.dashboard``), by a session cookie instead of a token
  (``syncd.api.session``): ``dashboard_viewer`` for a page (no session: a redirect to
  the login page), ``dashboard_operator`` for an action's form (the operator role, the
  session's CSRF token and the app's own ``Origin``: else 403), ``dashboard_session``
  for the logout form (any session, CSRF checked), ``dashboard_login`` for the login
  form (the login page's own CSRF pair and ``Origin``).

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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import fastapi.routing
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from syncd.api.http import refuse
from syncd.api.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Session,
    csrf_matches,
    login_nonce_matches,
    read_session,
    same_origin,
    session_key,
)
from syncd.config import Settings
from syncd.log import register_secret
from syncd.service.access import Principal, Role, authenticate, principal_of

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


# -- the dashboard's, by session cookie ------------------------------------------------------


class LoginRequired(Exception):  # noqa: N818 - a redirect, not a failure
    """A page asked for without a valid session: answered with a redirect to the login
    page, which comes back to ``path`` after."""

    def __init__(self, path: str) -> None:
        super().__init__("a session is required")
        self.path = path


class PageRefused(Exception):  # noqa: N818 - answered as an HTML page
    """A dashboard request refused (``status``, and why in general), answered as a page."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def dashboard_key(request: Request) -> bytes | None:
    """The key sessions are signed with (``None``: no pepper, so no dashboard)."""
    pepper = _context(request).secrets.token_pepper
    return None if pepper is None else session_key(pepper)


def own_origin(request: Request) -> str:
    """``scheme://host[:port]`` of the app as this request reached it."""
    return f"{request.url.scheme}://{request.url.netloc}"


async def _session(request: Request) -> tuple[Session, Principal] | None:
    """The request's session and who it is now (``None``: none, expired, forged, or its
    token revoked)."""
    key = dashboard_key(request)
    if key is None:
        return None
    found = read_session(key, request.cookies.get(SESSION_COOKIE), now=datetime.now(UTC))
    if found is None:
        return None
    principal = await run_in_threadpool(principal_of, _context(request).store, found.token_id)
    if principal is None:
        return None
    request.state.session = found
    request.state.principal = principal
    return found, principal


async def _form_field(request: Request, name: str) -> str | None:
    form = await request.form()
    value = form.get(name)
    return value if isinstance(value, str) else None


async def _checked_form(request: Request) -> Principal:
    """A form POST of a session: 403 unless the session, its CSRF token and the origin
    hold."""
    if not same_origin(
        request.headers.get("origin"), request.headers.get("referer"), own_origin(request)
    ):
        log.warning("dashboard.refused", path=request.url.path, reason="foreign origin")
        raise PageRefused(403, "this form was not sent from syncd's own pages")
    found = await _session(request)
    if found is None:
        log.warning("dashboard.refused", path=request.url.path, reason="no session")
        raise PageRefused(403, "you are not logged in (or your session ended): log in again")
    session, principal = found
    if not csrf_matches(session, await _form_field(request, CSRF_FIELD)):
        log.warning("dashboard.refused", path=request.url.path, reason="missing or wrong CSRF")
        raise PageRefused(403, "this form is stale or was not sent from syncd's pages")
    return principal


async def dashboard_viewer(request: Request) -> Principal:
    """A dashboard page: a session whose token is a viewer's (or more); else a redirect
    to the login page."""
    found = await _session(request)
    if found is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return found[1]


async def dashboard_operator(request: Request) -> Principal:
    """A dashboard action's form: a session of an operator's token, its CSRF token and
    the app's own origin; 403 otherwise (nothing is done)."""
    principal = await _checked_form(request)
    if not principal.may("operator"):
        log.warning("dashboard.forbidden", path=request.url.path, token=principal.name)
        raise PageRefused(403, f"this needs the operator role; {principal.name} is a viewer")
    return principal


async def dashboard_session(request: Request) -> Principal:
    """The logout form: any session, its CSRF token and the app's own origin."""
    return await _checked_form(request)


async def dashboard_login(request: Request) -> None:
    """The login form: the login page's CSRF pair and the app's own origin; 403 else."""
    key = dashboard_key(request)
    if key is None:
        raise PageRefused(503, "the dashboard needs SYNCD_API__TOKEN_PEPPER to be set")
    fresh = login_nonce_matches(
        key,
        request.cookies.get(LOGIN_COOKIE),
        await _form_field(request, CSRF_FIELD),
        now=datetime.now(UTC),
    )
    if not fresh or not same_origin(
        request.headers.get("origin"), request.headers.get("referer"), own_origin(request)
    ):
        log.warning("dashboard.refused", path=request.url.path, reason="login form CSRF")
        raise PageRefused(403, "this login form is stale or was not sent from syncd's pages")


#: What a route may declare, and what the role table calls it.
ACCESS: dict[Callable[..., Any], str] = {
    public: "public",
    viewer: "viewer",
    operator: "operator",
    netbox_signature: "netbox-signature",
    dashboard_viewer: "dashboard-viewer",
    dashboard_operator: "dashboard-operator",
    dashboard_session: "dashboard-session",
    dashboard_login: "dashboard-login",
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
