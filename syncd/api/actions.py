"""What an operator does over HTTP (an operator token): ``POST /v1/runs/{id}/approve``,
``/v1/runs/{id}/discard``, ``/v1/runs/{id}/revert`` and ``/v1/changes/retry``.

Each goes through ``syncd.service.actions``, as ``syncd approve|discard|revert|retry``
do, and is done before the answer goes out (an approval applies the plan's changes
through the rate-limited outbox, in a worker thread). The token's name is who did it:
kept as ``approved_by`` of an approval, in the error of a discard (``discarded by``),
as ``requested_by`` in a revert run's summary, and logged for every action. A run
that does not exist is 404, one not held 409 (``syncd.errors.failure_kind``).

Bodies are optional JSON objects (an empty body takes the defaults), refused when they
name a field these routes do not know; their size is limited as every route's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from syncd.api.app import ApiContext, context
from syncd.api.auth import Operator
from syncd.api.http import InvalidBodyError, parse, read_json
from syncd.config import INT64_MAX
from syncd.service import Runner, actions, audit
from syncd.store.planning import UnknownRunError

log = structlog.get_logger("syncd.api")

router = APIRouter(prefix="/v1")

Context = Annotated[ApiContext, Depends(context)]
Id = Annotated[int, Path(ge=1, le=INT64_MAX)]
B = TypeVar("B", bound=BaseModel)
#: The most change ids one retry may name.
MAX_RETRY_IDS = 10_000


class DiscardBody(BaseModel):
    """The body of ``POST /v1/runs/{id}/discard``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field("", max_length=2000, description="why (kept in the audit log)")


class RevertBody(BaseModel):
    """The body of ``POST /v1/runs/{id}/revert``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = Field(False, description="answer the inverse plan, write nothing")


class RetryBody(BaseModel):
    """The body of ``POST /v1/changes/retry``: the failed changes of one run, or these."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run: int | None = Field(None, ge=1, le=INT64_MAX, description="the failed changes of this run")
    changes: list[Annotated[int, Field(ge=1, le=INT64_MAX)]] | None = Field(
        None, min_length=1, max_length=MAX_RETRY_IDS, description="these changes"
    )


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads ``model`` itself (optional)."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": schema}}}}


async def _body(request: Request, model: type[B]) -> B:
    """The request's JSON body as ``model`` (an empty body: the defaults)."""
    raw = await request.body()
    return parse(model, await read_json(request) if raw.strip() else {})


@contextmanager
def _runner(ctx: ApiContext) -> Iterator[Runner]:
    """A runner over the app's store and a client of ``[inventory]`` (closed after)."""
    from syncd.service.daemon import build_client

    with build_client(ctx.settings) as client:
        yield Runner(ctx.settings, ctx.store, client)


async def _in_thread(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return await run_in_threadpool(work)


@router.post("/runs/{run_id}/approve")
async def post_approve(run_id: Id, ctx: Context, who: Operator) -> dict[str, Any]:
    """Release a held plan and apply what still holds of it (as ``syncd approve``); a
    change the inventory or the sources overtook is skipped and planned afresh."""

    def work() -> dict[str, Any]:
        actions.require_held(ctx.store, run_id)  # before the inventory is read
        with _runner(ctx) as runner:
            result = actions.approve(runner, run_id, who.name)
        applied = result.applied
        return {
            "run": _run(ctx, run_id),
            "released": result.released,
            "stale": result.stale,
            "applied": applied.applied,
            "failed": applied.failed,
            "skipped": applied.skipped,
            "errors": applied.errors[:100],
        }

    answer = await _in_thread(work)
    log.info("api.approve", run=run_id, token=who.name, released=answer["released"])
    return answer


@router.post("/runs/{run_id}/discard", openapi_extra=_documented(DiscardBody))
async def post_discard(run_id: Id, request: Request, ctx: Context, who: Operator) -> dict[str, Any]:
    """Refuse a held plan (as ``syncd discard``): its changes are skipped, its serials
    planned afresh by the next run."""
    body = await _body(request, DiscardBody)

    def work() -> dict[str, Any]:
        discarded = actions.discard(ctx.store, run_id, who.name, body.reason)
        return {"run": _run(ctx, run_id), "discarded": discarded}

    answer = await _in_thread(work)
    log.info("api.discard", run=run_id, token=who.name, discarded=answer["discarded"])
    return answer


@router.post("/runs/{run_id}/revert", openapi_extra=_documented(RevertBody))
async def post_revert(run_id: Id, request: Request, ctx: Context, who: Operator) -> dict[str, Any]:
    """Undo what a run applied, as a run of its own (as ``syncd revert RUN``): each
    device is read first, and one changed since is refused (``refused``), never
    overwritten; the inverse plan passes the same safety gates (``held``)."""
    body = await _body(request, RevertBody)

    def work() -> dict[str, Any]:
        _known(ctx, run_id)  # before the inventory is read
        with _runner(ctx) as runner:
            outcome = actions.revert_run(runner, run_id=run_id, dry_run=body.dry_run, by=who.name)
        result = outcome.run
        return {
            **audit.plan_json(result),
            "revert_of": outcome.of_run,
            "refused": [
                {"change": r.change_id, "serial_number": r.serial_number, "reason": r.reason}
                for r in outcome.refused
            ],
        }

    answer = await _in_thread(work)
    log.info(
        "api.revert", run=run_id, token=who.name, revert_run=answer["run"], dry_run=body.dry_run
    )
    return answer


@router.post("/changes/retry", openapi_extra=_documented(RetryBody))
async def post_retry(request: Request, ctx: Context, who: Operator) -> dict[str, Any]:
    """Send failed changes again now (as ``syncd retry``): those of ``run``, or the
    ``changes`` named (one of the two); a change a newer plan overtook is left alone."""
    body = await _body(request, RetryBody)
    if (body.run is None) == (body.changes is None):
        message = "name the failed changes to send again: run, or changes (not both)"
        raise InvalidBodyError([{"field": "(body)", "message": message}])

    def work() -> dict[str, Any]:
        if body.run is not None:
            _known(ctx, body.run)  # before the inventory is read
        with _runner(ctx) as runner:
            done = actions.retry(runner, run_id=body.run, change_ids=body.changes)
        return {
            "sent": [change.id for change in done.sent],
            "applied": done.applied,
            "failed": [audit.change_json(change) for change in done.failed],
        }

    answer = await _in_thread(work)
    log.info("api.retry", token=who.name, sent=len(answer["sent"]), applied=answer["applied"])
    return answer


def _known(ctx: ApiContext, run_id: int) -> None:
    """``UnknownRunError`` (404) unless the run exists."""
    if ctx.store.run(run_id) is None:
        raise UnknownRunError(f"no run {run_id}")


def _run(ctx: ApiContext, run_id: int) -> dict[str, Any] | None:
    """The run as it is now."""
    run = ctx.store.run(run_id)
    return None if run is None else audit.run_json(run)
