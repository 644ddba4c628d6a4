"""On-demand runs asked for from outside the daemon (the HTTP API): queue a trigger
request in the store, then nudge the workers through the broker.

The store's row is the truth and the message only makes the run start sooner. A
request that joins one already queued sends nothing: the message sent for that one
(or the sweeper) starts the run that takes both, so a burst of webhooks for one
connector costs one message and one run. A broker that is down costs latency (the
sweeper takes queued requests every ``daemon.sweep_interval``), never the request.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from syncd import broker
from syncd.config import Settings
from syncd.store import Store
from syncd.store.coordination import Queued

log = structlog.get_logger("syncd.triggers")

#: What a trigger request's ``source`` says about who asked.
HTTP = "http"
WEBHOOK = "webhook"


def enabled_connectors(settings: Settings, *, plugin: str | None = None) -> list[str]:
    """Names of the enabled connectors (of ``plugin`` only, if given), in config order."""
    return [
        c.name for c in settings.connectors if c.enabled and (plugin is None or c.plugin == plugin)
    ]


def queue_run(
    store: Store,
    connector: str,
    *,
    serials: Sequence[str] | None = None,
    dry_run: bool = False,
    source: str,
) -> Queued:
    """Queue a run of ``connector`` (only ``serials``, if given), merged into a request
    already waiting for it when there is one (see ``syncd.store.coordination``)."""
    return store.enqueue_trigger(connector, serials=serials, dry_run=dry_run, source=source)


def nudge(settings: Settings, connector: str, *, dry_run: bool = False) -> bool:
    """Send the message that makes a worker take ``connector``'s queued requests now.
    Best effort: False (and a warning) if the broker did not take it."""
    try:
        broker.send(settings, broker.RUN_CONNECTOR, connector, trigger="request", dry_run=dry_run)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweeper takes over
        # Only the type: a broker's error text may quote its URL, credentials included.
        log.warning(
            "trigger.not_sent",
            connector=connector,
            error=type(exc).__name__,
            fallback=f"the sweeper takes the request within {settings.daemon.sweep_interval:.0f} s",
        )
        return False
    return True
