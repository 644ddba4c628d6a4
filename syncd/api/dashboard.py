"""The dashboard: server-rendered pages under ``/ui`` for people with a browser.

Pages (a viewer's session): the overview (recent runs, held plans, failed changes, the
drift's figures), one run, a device's history (searched by exact serial), the drift
and the rejects. Forms (an operator's session, CSRF-checked): approve or discard a
held plan, retry failed changes. Everything is read and done through
``syncd.service.audit`` and ``syncd.service.actions``, as the command line and the
JSON API do; this module only turns their rows into HTML (Jinja2, autoescaped) and
forms into calls.

Logging in takes an API token (``syncd tokens add``) once, checked by
``syncd.service.access``; the browser keeps a signed session cookie naming the token's
id, never the token (``syncd.api.session``). Each route declares its access with one
dependency of ``syncd.api.auth``. After an action the browser is sent back (303) to
the page that shows its effect, so a reload never repeats it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

import jinja2
import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from syncd.api.actions import open_runner
from syncd.api.app import ApiContext, context
from syncd.api.auth import (
    LoginRequired,
    PageRefused,
    dashboard_key,
    dashboard_login,
    dashboard_operator,
    dashboard_session,
    dashboard_viewer,
    public,
)
from syncd.api.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_LIFETIME,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    Session,
    login_nonce,
    open_session,
)
from syncd.config import INT64_MAX
from syncd.errors import NoSuchError, SyncdError, failure_kind
from syncd.log import redact
from syncd.service import actions, audit
from syncd.service.access import Principal, authenticate
from syncd.service.audit import Labels

log = structlog.get_logger("syncd.dashboard")

T = TypeVar("T")
HERE = Path(__file__).parent
#: Where a login goes when it names nowhere (or somewhere that is not the dashboard).
HOME = "/ui"

router = APIRouter(prefix="/ui", include_in_schema=False)  # pages, not the API

Context = Annotated[ApiContext, Depends(context)]
Viewer = Annotated[Principal, Depends(dashboard_viewer)]
Operator = Annotated[Principal, Depends(dashboard_operator)]
Id = Annotated[int, PathParam(ge=1, le=INT64_MAX)]

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals["location_now"] = audit.location_now
_templates.globals["operation_kinds"] = audit.OPERATIONS
_templates.filters["q"] = lambda value: quote(str(value), safe="")
_templates.filters["when"] = lambda moment: "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"

#: Every page: no caching (they hold what only a session may read), no framing, and
#: nothing loaded from anywhere but the app (no script at all).
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(request: Request, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` filled with ``values``, who is logged in and the session's CSRF token."""
    principal: Principal | None = getattr(request.state, "principal", None)
    session: Session | None = getattr(request.state, "session", None)
    values.setdefault("page", "")
    html = _templates.get_template(template).render(
        who=principal,
        may_act=principal is not None and principal.may("operator"),
        csrf=session.csrf if session is not None else "",
        csrf_field=CSRF_FIELD,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


async def _read(work: Callable[[], T]) -> T:
    return await run_in_threadpool(work)


def _labels(ctx: ApiContext) -> Labels:
    return Labels.of(ctx.store, ctx.settings.policy)


# -- the exception handlers the app installs ---------------------------------------------------


async def login_redirect(request: Request, exc: Exception) -> Response:
    """A page without a session: to the login page, which comes back after."""
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"{HOME}/login?{urlencode({'next': exc.path})}", status_code=303)


async def refused_page(request: Request, exc: Exception) -> Response:
    """A refused dashboard request as a page (nothing was done)."""
    assert isinstance(exc, PageRefused)
    return render(request, "error.html", status=exc.status, title="Refused", reason=exc.reason)


def _failed(request: Request, exc: SyncdError) -> HTMLResponse:
    """An action that failed, as a page with the status of its branch."""
    status = failure_kind(exc).http_status
    reason = redact(str(exc)) if status < 500 else "syncd could not do this now (see its log)"
    log.warning("dashboard.failed", path=request.url.path, error=type(exc).__name__)
    return render(request, "error.html", status=status, title="Not done", reason=reason)


# -- login and logout ------------------------------------------------------------------------


def _next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path, never another site."""
    if target and target.startswith(HOME) and not target.startswith("//"):
        return target
    return HOME


def _cookie(request: Request, response: Response, name: str, value: str, seconds: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _login_page(
    request: Request, *, status: int = 200, problem: str = "", target: str = HOME
) -> Response:
    key = dashboard_key(request)
    if key is None:
        raise PageRefused(503, "the dashboard needs SYNCD_API__TOKEN_PEPPER to be set")
    cookie, nonce = login_nonce(key, now=datetime.now(UTC))
    response = render(
        request,
        "login.html",
        status=status,
        login_csrf=nonce,
        problem=problem,
        target=_next(target),
    )
    _cookie(request, response, LOGIN_COOKIE, cookie, int(LOGIN_LIFETIME.total_seconds()))
    return response


@router.get("/static/dashboard.css", dependencies=[Depends(public)])
async def stylesheet() -> Response:
    """The dashboard's one stylesheet."""
    css = (HERE / "templates" / "dashboard.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login", dependencies=[Depends(public)])
async def login_form(
    request: Request, target: Annotated[str, Query(alias="next", max_length=2000)] = HOME
) -> Response:
    """The login form (an API token), with its CSRF pair."""
    return _login_page(request, target=target)


@router.post("/login", dependencies=[Depends(dashboard_login)])
async def login(request: Request, ctx: Context) -> Response:
    """Check the token; a good one opens a session (cookie) and goes on to ``next``."""
    form = await request.form()
    token, target = form.get("token"), form.get("next")
    presented = token.strip() if isinstance(token, str) else ""
    principal = None
    if presented:
        principal = await _read(
            lambda: authenticate(
                ctx.store,
                presented,
                pepper=ctx.secrets.token_pepper,
                trigger_token=None,  # a machine's credential: people log in with their own
            )
        )
    after = _next(target if isinstance(target, str) else None)
    if principal is None or principal.token_id is None:
        log.warning("dashboard.login_refused", reason="missing, wrong or revoked token")
        return _login_page(
            request,
            status=401,
            problem="That token is not valid (or was revoked). Use one made by `syncd tokens add`.",
            target=after,
        )
    key = dashboard_key(request)
    assert key is not None  # dashboard_login checked it
    cookie, _ = open_session(key, principal.token_id, now=datetime.now(UTC))
    response = RedirectResponse(after, status_code=303)
    _cookie(request, response, SESSION_COOKIE, cookie, int(SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    log.info("dashboard.login", token=principal.name, role=principal.role)
    return response


@router.post("/logout")
async def logout(who: Annotated[Principal, Depends(dashboard_session)]) -> Response:
    """End the session (the cookie is dropped)."""
    response = RedirectResponse(f"{HOME}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    log.info("dashboard.logout", token=who.name)
    return response


# -- pages -----------------------------------------------------------------------------------


@router.get("")
async def overview(request: Request, ctx: Context, who: Viewer) -> Response:
    """Recent runs, held plans, failed changes and the drift's figures."""

    def read() -> dict[str, Any]:
        return {
            "runs": audit.list_runs(ctx.store, limit=20).items,
            "held": audit.list_runs(ctx.store, statuses=["held"], limit=50).items,
            "failed": audit.list_changes(ctx.store, statuses=["failed"], limit=50).items,
            "counts": audit.drift_counts(ctx.store),
            "labels": _labels(ctx),
        }

    return render(request, "overview.html", page="overview", **await _read(read))


@router.get("/runs/{run_id}")
async def run_page(
    request: Request,
    run_id: Id,
    ctx: Context,
    who: Viewer,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """One run: its figures, error, files, rejects and changes, field by field."""

    def read() -> dict[str, Any]:
        detail = audit.run_detail(ctx.store, run_id, policy=ctx.settings.policy, limit=200)
        return {
            "detail": detail,
            "changes": audit.with_triggers(ctx.store, detail.changes.items),
            "labels": _labels(ctx),
        }

    try:
        found = await _read(read)
    except SyncdError as exc:
        return _failed(request, exc)
    notice = _notice(done, request.query_params)
    return render(request, "run.html", page="runs", notice=notice, **found)


@router.get("/devices")
async def device_page(
    request: Request,
    ctx: Context,
    who: Viewer,
    serial: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """A device's history, by exact serial (the search box)."""
    if not serial:
        return render(request, "device.html", page="devices", serial="", history=None)

    def read() -> dict[str, Any]:
        return {"history": audit.device_history(ctx.store, serial), "labels": _labels(ctx)}

    try:
        found = await _read(read)
    except SyncdError as exc:
        status = failure_kind(exc).http_status
        return render(
            request,
            "device.html",
            status=status,
            page="devices",
            serial=serial,
            history=None,
            problem=redact(str(exc)),
        )
    return render(request, "device.html", page="devices", serial=serial, **found)


@router.get("/drift")
async def drift_page(request: Request, ctx: Context, who: Viewer) -> Response:
    """Devices a source wants that the inventory lacks, orphans waiting, conflicts."""

    def read() -> dict[str, Any]:
        found = audit.drift(ctx.store, policy=ctx.settings.policy, limit=500)
        return {"drift": found, "labels": _labels(ctx)}

    return render(request, "drift.html", page="drift", **await _read(read))


@router.get("/rejects")
async def rejects_page(
    request: Request,
    ctx: Context,
    who: Viewer,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> Response:
    """Rows the sources could not use, each at the file:line where it lies now."""

    def read() -> dict[str, Any]:
        page = audit.list_rejects(ctx.store, limit=200, before=before)
        return {
            "rejects": [(place, audit.location_now(place)) for place in page.items],
            "next_before": page.next_before,
        }

    return render(request, "rejects.html", page="rejects", **await _read(read))


# -- actions ---------------------------------------------------------------------------------

NOTICES = {
    "approve": "Approved: {released} change(s) released, {applied} applied, {failed} failed.",
    "discard": "Discarded: {discarded} change(s) will not be made.",
    "retry": "Sent again: {sent} change(s), {applied} applied, {failed} failed again.",
}


def _notice(done: str | None, query: Mapping[str, str]) -> str:
    """The line that says what an action just did (numbers only come from the query)."""
    if done not in NOTICES:
        return ""
    figures = {k: int(v) for k, v in query.items() if v.isdigit() and len(v) < 10}
    try:
        return NOTICES[done].format(**figures)
    except KeyError:
        return ""


def _to_run(run_id: int, done: str, **figures: int) -> RedirectResponse:
    query = urlencode({"done": done, **figures})
    return RedirectResponse(f"{HOME}/runs/{run_id}?{query}", status_code=303)


@router.post("/runs/{run_id}/approve")
async def approve(request: Request, run_id: Id, ctx: Context, who: Operator) -> Response:
    """Release a held plan and apply what still holds of it."""

    def work() -> actions.ApproveResult:
        actions.require_held(ctx.store, run_id)  # before the inventory is read
        with open_runner(ctx) as runner:
            return actions.approve(runner, run_id, who.name)

    try:
        result = await _read(work)
    except SyncdError as exc:
        return _failed(request, exc)
    log.info("dashboard.approve", run=run_id, token=who.name, released=result.released)
    applied = result.applied
    return _to_run(
        run_id, "approve", released=result.released, applied=applied.applied, failed=applied.failed
    )


@router.post("/runs/{run_id}/discard")
async def discard(request: Request, run_id: Id, ctx: Context, who: Operator) -> Response:
    """Refuse a held plan (with the reason typed, kept in the audit log)."""
    form = await request.form()
    reason = form.get("reason")
    text = reason.strip()[:2000] if isinstance(reason, str) else ""
    try:
        count = await _read(lambda: actions.discard(ctx.store, run_id, who.name, text))
    except SyncdError as exc:
        return _failed(request, exc)
    log.info("dashboard.discard", run=run_id, token=who.name, discarded=count)
    return _to_run(run_id, "discard", discarded=count)


@router.post("/changes/retry")
async def retry(request: Request, ctx: Context, who: Operator) -> Response:
    """Send failed changes again: one (``change``) or a run's (``run``)."""
    form = await request.form()
    run_text, change_text = form.get("run"), form.get("change")
    run_id = _form_id(run_text)
    change_id = _form_id(change_text)
    if (run_id is None) == (change_id is None):
        raise PageRefused(422, "name one failed change, or a run whose failed changes to retry")

    def work() -> tuple[int, actions.RetryResult]:
        if change_id is not None:
            change = ctx.store.change(change_id)
            if change is None:
                raise NoSuchError(f"no change {change_id}")
            owner = change.run_id
        else:
            assert run_id is not None
            owner = run_id
        with open_runner(ctx) as runner:
            ids = None if change_id is None else [change_id]
            return owner, actions.retry(runner, run_id=run_id, change_ids=ids)

    try:
        owner, done = await _read(work)
    except SyncdError as exc:
        return _failed(request, exc)
    log.info("dashboard.retry", token=who.name, sent=len(done.sent), applied=done.applied)
    return _to_run(
        owner, "retry", sent=len(done.sent), applied=done.applied, failed=len(done.failed)
    )


def _form_id(value: object) -> int | None:
    """A positive id typed in a form field; ``None`` if absent; 422 if not an id."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.isdigit() or not 1 <= int(value) <= INT64_MAX:
        raise PageRefused(422, "an id is a positive whole number")
    return int(value)
