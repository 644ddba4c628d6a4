"""Delivering the outbox to workers: dispatch, sweep, retry.

The plan's change rows are committed before any message is sent. ``dispatch`` marks
pending rows ``dispatched`` with a lease and sends one message per change (``send``:
the Celery task ``apply_change``, or a direct call in-process). A worker claims the row
when the message arrives (``syncd.service.apply.apply_one``). Whatever goes wrong
between those steps, the store still knows the change:

- a message lost by the broker, or a worker that dies before claiming it: the row is
  still ``dispatched`` when its lease runs out, and ``sweep`` sends it again;
- a worker killed while applying: the row is ``applying`` with a dead claimant, and
  ``sweep`` recovers it (``syncd.service.recovery``: a create is read back first);
- a message delivered twice: the second claim finds the row no longer waiting
  (``gone``) and does nothing.

So a change can be delayed, never lost, and never sent twice in effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from syncd.store import ChangeRow, Store

log = structlog.get_logger("syncd.outbox")

Sender = Callable[[int], None]

#: Changes marked dispatched per transaction.
DISPATCH_BATCH = 500
#: ``store_meta`` key: until when nothing is dispatched (the API refused the token).
HALT_KEY = "dispatch_halted"
#: How long a refused token halts dispatching before one change probes it again.
HALT_SECONDS = 300.0


def halt(store: Store, reason: str, *, seconds: float = HALT_SECONDS) -> None:
    """Stop dispatching for ``seconds``: the API refused the token (401), and every
    change would meet the same answer until a person fixes it."""
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    store.set_meta(HALT_KEY, {"until": until.isoformat(), "reason": reason})
    log.error("dispatch.halted", reason=reason, until=until.isoformat())


def halted(store: Store) -> str | None:
    """Why dispatching is halted now (``None``: it is not)."""
    value = store.get_meta(HALT_KEY)
    if not isinstance(value, dict):
        return None
    try:
        until = datetime.fromisoformat(str(value.get("until")))
    except ValueError:
        return None
    return str(value.get("reason")) if datetime.now(UTC) < until else None


def dispatch(store: Store, send: Sender, *, lease: float, limit: int | None = None) -> int:
    """Send every pending change (up to ``limit``), oldest first; returns how many.

    A change whose message cannot be sent stays ``dispatched``: the sweeper sends it
    again when its lease runs out. Nothing is sent while dispatching is ``halted``.
    """
    if halted(store) is not None:
        return 0
    sent = 0
    while limit is None or sent < limit:
        size = DISPATCH_BATCH if limit is None else min(DISPATCH_BATCH, limit - sent)
        batch = store.dispatch(size, lease=timedelta(seconds=lease))
        if not batch:
            break
        sent += _send_all(batch, send)
        if len(batch) < size:
            break
    return sent


def _send_all(changes: Sequence[ChangeRow], send: Sender) -> int:
    sent = 0
    for change in changes:
        try:
            send(change.id)
        except Exception as exc:  # noqa: BLE001 - the lease brings it back; log and go on
            log.warning("dispatch.send_failed", change=change.id, error=str(exc))
            continue
        sent += 1
    return sent


@dataclass(slots=True)
class SweepReport:
    """What one sweep found."""

    resent: int = 0
    dispatched: int = 0
    recovered: int = 0
    requeued_triggers: int = 0
    triggers: list[str] = field(default_factory=list)


def resend_expired(store: Store, send: Sender, *, lease: float) -> int:
    """Send again the dispatched changes whose lease ran out; returns how many."""
    if halted(store) is not None:
        return 0
    expired = store.expired_dispatches(lease=timedelta(seconds=lease))
    if expired:
        log.warning("sweep.resend", count=len(expired))
    return _send_all(expired, send)


def requeue_failed(
    store: Store,
    send: Sender | None,
    *,
    ids: Sequence[int] | None = None,
    run_id: int | None = None,
    lease: float = 120.0,
) -> list[ChangeRow]:
    """``syncd retry``: failed changes go back to the outbox (unless a newer change of
    their serial overtook them) and, with ``send``, are dispatched at once. Each is still
    read before it is written when the listing is old (``ApplyPolicy.max_mirror_age``);
    a create meets the ``409`` path if the device appeared meanwhile."""
    again = store.requeue_failed(ids, run_id=run_id)
    if again and send is not None:
        dispatch(store, send, lease=lease)
    return again
