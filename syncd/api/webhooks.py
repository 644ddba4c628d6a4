"""``POST /v1/webhooks/netbox`` (and ``/v1/webhooks/netbox/{connector}`` when several
NetBox connectors are configured): NetBox's webhooks, as targeted runs.

Checked in this order, and nothing is queued unless all pass:

1. the webhook secret is configured (else 503);
2. ``X-Hook-Signature`` is the HMAC-SHA512 of the raw body under it (else 401);
3. the connector: the one named, or the only enabled NetBox connector (else 404, or
   400 when several could be meant);
4. the body is a NetBox webhook payload (else 400), read by
   ``connectors.netbox.webhook.read_event``.

A device event queues a run of the connector for the device's serials (202, with the
request's id); anything else is answered 202 with a note, and queues nothing. Events
for one connector that arrive while a request waits join it (the store coalesces
them): a burst is one run.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, BackgroundTasks, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from connectors.netbox.webhook import WebhookEvent, read_event
from syncd.api.app import ApiContext, context
from syncd.api.auth import netbox_signature
from syncd.api.http import refuse
from syncd.errors import DataError
from syncd.service.triggers import WEBHOOK, enabled_connectors, nudge, queue_run

log = structlog.get_logger("syncd.api")

#: The connector plugin whose webhooks this module receives.
NETBOX = "netbox"

router = APIRouter(prefix="/v1/webhooks")

Context = Annotated[ApiContext, Depends(context)]


#: The raw body, once its signature is checked (``auth.netbox_signature``).
SignedBody = Annotated[bytes, Depends(netbox_signature)]


@router.post("/netbox", status_code=202)
async def netbox_webhook(
    body: SignedBody, background: BackgroundTasks, ctx: Context
) -> JSONResponse:
    """A NetBox webhook for the only enabled NetBox connector."""
    return await _receive(body, background, ctx, None)


@router.post("/netbox/{connector}", status_code=202)
async def netbox_webhook_for(
    connector: str, body: SignedBody, background: BackgroundTasks, ctx: Context
) -> JSONResponse:
    """A NetBox webhook for the NetBox connector ``connector``."""
    return await _receive(body, background, ctx, connector)


async def _receive(
    body: bytes, background: BackgroundTasks, ctx: ApiContext, named: str | None
) -> JSONResponse:
    connector = _connector(ctx, named)
    event = _event(body)
    seen: dict[str, Any] = {
        "connector": connector,
        "model": event.model,
        "event": event.event,
        "device": event.device_id,
    }
    # structlog's first argument is called "event": NetBox's goes in as "netbox_event"
    facts = {**{k: v for k, v in seen.items() if k != "event"}, "netbox_event": event.event}
    if event.action == "ignore":
        log.info("api.webhook_ignored", **facts, note=event.note)
        return JSONResponse({"queued": False, **seen, "note": event.note}, status_code=202)
    serials = list(event.serials) if event.action == "pull" else None
    queued = await run_in_threadpool(
        queue_run, ctx.store, connector, serials=serials, source=WEBHOOK
    )
    if not queued.merged:
        background.add_task(nudge, ctx.settings, connector)
    log.info("api.webhook", **facts, request=queued.id, merged=queued.merged, serials=serials)
    answer = {
        "queued": True,
        **seen,
        "request": queued.id,
        "merged": queued.merged,
        "serials": serials,
        "note": event.note,
    }
    return JSONResponse(answer, status_code=202, background=background)


def _event(body: bytes) -> WebhookEvent:
    """What the (signed) body asks for; 400 if it is not a NetBox webhook payload."""
    try:
        return read_event(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        refuse(400, "the body is not JSON (a NetBox webhook payload)")
    except DataError as exc:
        refuse(400, str(exc))


def _connector(ctx: ApiContext, named: str | None) -> str:
    """The NetBox connector the webhook is for."""
    names = enabled_connectors(ctx.settings, plugin=NETBOX)
    if named is not None:
        if named not in names:
            shown = ", ".join(names) or "none"
            refuse(404, f"no enabled NetBox connector named {named!r} (enabled: {shown})")
        return named
    if not names:
        refuse(404, "no enabled NetBox connector is configured")
    if len(names) > 1:
        refuse(
            400,
            f"several NetBox connectors are configured ({', '.join(names)}): "
            "point the webhook at /v1/webhooks/netbox/<connector>",
        )
    return names[0]
