"""The audit over HTTP, for a viewer token: ``GET /v1/runs``, ``/v1/runs/{id}``,
``/v1/changes``, ``/v1/rejects``, ``/v1/devices/{serial}/history`` and ``/v1/drift``.

Each route reads through ``syncd.service.audit``, as ``syncd runs|show|changes|rejects|
history|drift`` do, with the same filters under the same names, and answers the same
JSON (the service's ``*_json``). Listings are newest first, one page at a time:
``limit`` rows below the id ``before``; the answer's ``next_before`` is the cursor of
the next page and ``next`` the path and query that fetch it (``null`` on the last page).

A serial may hold ``/``: the history route takes the rest of the path, so both
``/v1/devices/A/B/history`` and ``/v1/devices/A%2FB/history`` name serial ``A/B``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from syncd.api.app import ApiContext, context
from syncd.api.auth import viewer
from syncd.config import INT64_MAX
from syncd.service import audit
from syncd.service.audit import MAX_PAGE, Page

T = TypeVar("T")

router = APIRouter(prefix="/v1", dependencies=[Depends(viewer)])

Context = Annotated[ApiContext, Depends(context)]
Id = Annotated[int, Path(ge=1, le=INT64_MAX)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows per page")]
Before = Annotated[
    int | None, Query(ge=1, le=INT64_MAX, description="only older than this id (the cursor)")
]
RunId = Annotated[int | None, Query(ge=1, le=INT64_MAX, description="only this run")]
Serial = Annotated[str | None, Query(min_length=1, description="only this serial (exact)")]
Connector = Annotated[
    str | None, Query(min_length=1, description="only what this connector asked for")
]
When = Query(description="an ISO date or time (UTC unless a zone is given), or an age: 2h, 7d")
Since = Annotated[str | None, When]
Until = Annotated[str | None, When]


def _when(text: str | None, name: str) -> datetime | None:
    return None if text is None else audit.parse_when(text, now=datetime.now(UTC), name=name)


def _paged(request: Request, page: Page[T], shape: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """``page_json`` and ``next``: this request's path and query for the next page
    (relative, so it holds behind a proxy that rewrites the scheme or the host)."""
    answer = audit.page_json(page, shape)
    cursor = page.next_before
    if cursor is None:
        answer["next"] = None
    else:
        url = request.url.include_query_params(before=cursor)
        answer["next"] = f"{url.path}?{url.query}"
    return answer


@router.get("/runs")
async def get_runs(
    *,
    request: Request,
    ctx: Context,
    status: Annotated[list[str] | None, Query(description="only runs in this status")] = None,
    trigger: Annotated[list[str] | None, Query(description="only runs of this trigger")] = None,
    since: Since = None,
    until: Until = None,
    show_all: Annotated[bool, Query(alias="all", description="also idle polls")] = False,
    limit: Limit = 20,
    before: Before = None,
) -> dict[str, Any]:
    """The runs, newest first (as ``syncd runs``)."""

    def read() -> Page[Any]:
        return audit.list_runs(
            ctx.store,
            statuses=status or (),
            triggers=trigger or (),
            since=_when(since, "since"),
            until=_when(until, "until"),
            idle=show_all,
            limit=limit,
            before=before,
        )

    return _paged(request, await run_in_threadpool(read), audit.run_json)


@router.get("/runs/{run_id}")
async def get_run(
    run_id: Id,
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="changes and rejects")] = 50,
) -> dict[str, Any]:
    """One run (as ``syncd show RUN``): its counts, error, batches and where their files
    lie now, rejects, first changes and the orphans waiting; 404 for no such run."""

    def read() -> dict[str, Any]:
        detail = audit.run_detail(ctx.store, run_id, policy=ctx.settings.policy, limit=limit)
        return audit.run_detail_json(detail)

    return await run_in_threadpool(read)


@router.get("/changes")
async def get_changes(
    *,
    request: Request,
    ctx: Context,
    run: RunId = None,
    serial: Serial = None,
    connector: Connector = None,
    operation: Annotated[list[str] | None, Query(description="only these operations")] = None,
    status: Annotated[list[str] | None, Query(description="only these statuses")] = None,
    since: Since = None,
    until: Until = None,
    conflicts: Annotated[bool, Query(description="only conflicts")] = False,
    held: Annotated[bool, Query(description="only changes held for approval")] = False,
    limit: Limit = 50,
    before: Before = None,
) -> dict[str, Any]:
    """The audit log, newest first (as ``syncd changes``)."""

    def read() -> Page[Any]:
        return audit.list_changes(
            ctx.store,
            run_id=run,
            serial=serial,
            source=connector,
            operations=operation or (),
            statuses=status or (),
            since=_when(since, "since"),
            until=_when(until, "until"),
            conflicts_only=conflicts,
            held_only=held,
            limit=limit,
            before=before,
        )

    return _paged(request, await run_in_threadpool(read), audit.change_json)


@router.get("/rejects")
async def get_rejects(
    *,
    request: Request,
    ctx: Context,
    run: RunId = None,
    serial: Serial = None,
    connector: Connector = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows per page")] = 100,
    before: Before = None,
) -> dict[str, Any]:
    """Rows the sources could not use, each with where its file lies now (as
    ``syncd rejects``)."""

    def read() -> Page[Any]:
        return audit.list_rejects(
            ctx.store,
            run_id=run,
            serial=serial,
            source=connector,
            since=_when(since, "since"),
            until=_when(until, "until"),
            limit=limit,
            before=before,
        )

    return _paged(request, await run_in_threadpool(read), audit.reject_json)


@router.get("/devices/{serial:path}/history")
async def get_history(
    serial: Annotated[str, Path(min_length=1, description="the serial, exact")],
    ctx: Context,
    limit: Limit = 50,
    before: Before = None,
) -> dict[str, Any]:
    """What syncd knows of one device (as ``syncd history SERIAL``); 404 if it never saw
    that serial. Its changes are paged by ``before`` (``more_changes_before``)."""

    def read() -> dict[str, Any]:
        found = audit.device_history(ctx.store, serial, limit=limit, before=before)
        return audit.device_history_json(found)

    return await run_in_threadpool(read)


@router.get("/drift")
async def get_drift(
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows of each kind")] = 100,
) -> dict[str, Any]:
    """Where the inventory and the sources differ (as ``syncd drift``)."""

    def read() -> dict[str, Any]:
        return audit.drift_json(audit.drift(ctx.store, policy=ctx.settings.policy, limit=limit))

    return await run_in_threadpool(read)
