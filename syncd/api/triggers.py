"""``POST /v1/triggers`` and ``GET /v1/triggers/{id}``: on-demand runs over HTTP.

Queuing a run needs an operator token (the trigger token is one), reading what became
of it a viewer token, as ``Authorization: Bearer``. A request joins one already
queued for the same connector and kind (dry run or not): the answer then carries that
one's id (``merged: true``), and the run that takes it serves both.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from syncd.api.app import ApiContext, context
from syncd.api.auth import Operator, viewer
from syncd.api.http import InvalidBodyError, parse, read_json, refuse
from syncd.config import INT64_MAX
from syncd.service.triggers import HTTP, enabled_connectors, nudge, queue_run
from syncd.store.coordination import MAX_SERIALS

log = structlog.get_logger("syncd.api")

PREFIX = "/v1/triggers"
#: The longest serial a trigger may name.
MAX_SERIAL_CHARS = 255


def _not_blank(serial: str) -> str:
    if not serial.strip():
        raise ValueError("a serial may not be blank")
    return serial


Serial = Annotated[
    str, Field(min_length=1, max_length=MAX_SERIAL_CHARS), AfterValidator(_not_blank)
]


class TriggerBody(BaseModel):
    """The body of ``POST /v1/triggers``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    connector: str = Field(min_length=1, max_length=200)
    serials: list[Serial] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SERIALS,
        description="only these devices (left out: the whole source)",
    )
    dry_run: bool = False


router = APIRouter(prefix=PREFIX)

Context = Annotated[ApiContext, Depends(context)]


@router.post("", status_code=202)
async def post_trigger(
    request: Request, background: BackgroundTasks, ctx: Context, who: Operator
) -> JSONResponse:
    """Queue a run of a connector (some serials only, or a dry run, if asked)."""
    body = parse(TriggerBody, await read_json(request))
    names = enabled_connectors(ctx.settings)
    if body.connector not in names:
        shown = ", ".join(names) or "none"
        message = f"no enabled connector named {body.connector!r} (enabled: {shown})"
        raise InvalidBodyError([{"field": "connector", "message": message}])
    queued = await run_in_threadpool(
        queue_run,
        ctx.store,
        body.connector,
        serials=body.serials,
        dry_run=body.dry_run,
        source=HTTP,
    )
    if not queued.merged:
        background.add_task(nudge, ctx.settings, body.connector, dry_run=body.dry_run)
    log.info(
        "api.trigger",
        connector=body.connector,
        request=queued.id,
        merged=queued.merged,
        serials=len(body.serials) if body.serials else "all",
        dry_run=body.dry_run,
        token=who.name,
    )
    url = f"{PREFIX}/{queued.id}"
    answer = {
        "id": queued.id,
        "connector": body.connector,
        "state": "queued",
        "merged": queued.merged,
        "url": url,
    }
    return JSONResponse(answer, status_code=202, headers={"Location": url}, background=background)


@router.get("/{request_id}", dependencies=[Depends(viewer)])
async def get_trigger(
    request_id: Annotated[int, Path(ge=1, le=INT64_MAX)], ctx: Context
) -> dict[str, Any]:
    """What became of a trigger request: its state, and its run's status once it ran."""
    found = await run_in_threadpool(_trigger_view, ctx, request_id)
    if found is None:
        refuse(404, f"no trigger request {request_id}")
    return found


def _trigger_view(ctx: ApiContext, request_id: int) -> dict[str, Any] | None:
    store = ctx.store
    row = store.trigger(request_id)
    if row is None:
        return None
    run = store.run(row.run_id) if row.run_id is not None else None
    return {
        "id": row.id,
        "connector": row.connector,
        "state": row.state,
        "serials": None if row.serials is None else list(row.serials),
        "dry_run": row.dry_run,
        "source": row.source,
        "requested_at": row.requested_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "detail": row.detail,
        "run": None
        if run is None
        else {
            "id": run.id,
            "status": run.status,
            "trigger": run.trigger,
            "started_at": run.started_at.isoformat(),
            "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
            "changes": store.change_counts(run.id),
            "error": run.error,
        },
    }
