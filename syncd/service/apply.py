"""Draining the outbox: each pending change applied through the client, every outcome kept.

Apply is idempotent, so a change re-sent after a crash does no harm:

- create -> ``POST``; a ``409`` means the device exists after all: it is read, the
  mirror records it as it is, and the change is skipped; the next run plans the serial
  by the same three-way rules and field policies as any update (adopt it, patch what
  the source changed, report a hand edit as a conflict; leave it alone with
  ``adopt = false``). Nothing is patched on the strength of a ``409`` alone: a listing
  that omitted devices must never turn into a revert of their hand edits. One
  exception: a create tried before (its process stopped before it could record the
  answer) that finds the device exactly as it sent it recognises its own create;
- update / adopt -> ``PATCH`` with the changed fields only; ``404`` -> failed, reported
  (the device vanished: the next run re-plans it);
- delete -> ``DELETE``; ``404`` -> done (it is gone, which is what we wanted).

A rejected change (400, 404, 409 that cannot be reconciled, 403 on one device) is
marked failed with the server's answer and the run goes on; a retriable failure
whose retry budget is spent is marked failed too (the next run re-plans it); a
fatal failure (401) hands the change back to the outbox and stops the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from syncd import process
from syncd.errors import (
    AlreadyExistsError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RejectedError,
    RetriableError,
    SyncdError,
    ValidationRejectedError,
)
from syncd.inventory import Device, DeviceCreate, InventoryClient
from syncd.inventory.models import WRITABLE_FIELDS
from syncd.log import redact
from syncd.service.stop import StopRequest
from syncd.store import ChangeRow, Store

log = structlog.get_logger("syncd.apply")


class Progress(Protocol):
    """Where the apply step reports how far it is (a progress bar, a task's state)."""

    def start(self, total: int) -> None: ...

    def advance(self, change: ChangeRow, outcome: str) -> None: ...


@dataclass(slots=True)
class ApplyReport:
    """Outcomes of one drain of the outbox (``interrupted``: a stop was asked for, and
    the drain ended between two changes with work still pending)."""

    applied: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: bool = False
    by_operation: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, operation: str) -> None:
        self.by_operation[operation] = self.by_operation.get(operation, 0) + 1


def apply_pending(
    store: Store,
    client: InventoryClient,
    *,
    run_id: int | None = None,
    progress: Progress | None = None,
    batch_size: int = 200,
    owner: str | None = None,
    stop: StopRequest | None = None,
) -> ApplyReport:
    """Apply every pending change (of ``run_id``, or all), oldest first, each claimed
    for the process ``owner`` (default: this one).

    When ``stop`` is requested the drain ends before the next claim (the change in
    flight is finished and recorded first) with ``interrupted`` set. If anything
    escapes while a change is in flight (a second Ctrl-C, a bug), the change is left
    to the next run's recovery: its outcome is unknown, so a create is read back first
    and anything else is planned afresh.

    Raises ``AuthenticationError`` (after handing its change back) when the token
    is refused: nothing else can succeed then.
    """
    report = ApplyReport()
    if progress is not None:
        progress.start(store.count_pending(run_id))
    while True:
        pending = store.pending_changes(run_id=run_id, limit=batch_size)
        if not pending:
            return report
        for change in pending:
            if stop is not None and stop.requested:
                report.interrupted = True
                return report
            if not store.claim_change(change.id, owner=owner):
                continue  # another worker has it
            try:
                outcome = apply_change(store, client, change)
            except BaseException as exc:
                if not isinstance(exc, AuthenticationError):
                    who = owner if owner is not None else str(process.current())
                    why = f"interrupted while in flight ({type(exc).__name__}): outcome unknown"
                    store.give_up(change.id, who, why)
                raise
            if outcome == "applied":
                report.applied += 1
                report.count(change.operation)
            elif outcome == "skipped":
                report.skipped += 1
            else:
                report.failed += 1
                report.errors.append(f"{change.serial_number}: {outcome}")
            if progress is not None:
                progress.advance(change, outcome)


def apply_change(store: Store, client: InventoryClient, change: ChangeRow) -> str:
    """Apply one claimed change and record the outcome; returns ``"applied"``,
    ``"skipped"`` or the error.

    A change the API refused (400, 403, 404, an unreconcilable 409, an answer outside
    the contract) is failed and NOT planned again until its source or inventory
    values change: re-sending it would fail the same way every run. A transient
    failure whose retries ran out is failed and planned again by the next run.
    Raises ``AuthenticationError`` after releasing the change back to the outbox.
    """
    try:
        return _execute(store, client, change)
    except AuthenticationError as exc:
        store.release_change(change.id, redact(str(exc)))
        raise
    except SyncdError as exc:
        message = redact(str(exc))
        if isinstance(exc, NotFoundError):
            # An update of a device the API no longer has: it was deleted by hand. Record
            # it gone, so the next run plans it afresh (a create, if still wanted).
            store.mark_gone(change.serial_number)
        # Re-sending what the API refused (400, 403, 409) would fail the same way every
        # run: that waits for new data. A server or transport failure is tried again.
        transient = not isinstance(exc, RejectedError | PermissionDeniedError) or isinstance(
            exc, NotFoundError
        )
        store.complete_change(
            change.id, "failed", response=_summary(exc), error=message, replan=transient
        )
        log.warning(
            "apply.failed",
            change=change.id,
            serial=change.serial_number,
            operation=change.operation,
            error=message,
            replan=transient,
        )
        return message


def _execute(store: Store, client: InventoryClient, change: ChangeRow) -> str:
    serial = change.serial_number
    body = change.body()
    now = datetime.now(UTC)
    if change.operation == "create":
        try:
            device = client.create_device(DeviceCreate.model_validate(body))
        except AlreadyExistsError:
            return _exists_already(store, client, change, body, now=now)
        store.record_write(
            serial,
            "create",
            body,
            device,
            change_id=change.id,
            response={"status_code": 201},
            now=now,
        )
    elif change.operation == "update":
        device = client.patch_device(serial, body)
        store.record_write(
            serial,
            "update",
            body,
            device,
            change_id=change.id,
            response={"status_code": 200},
            now=now,
        )
    elif change.operation == "adopt":
        device = client.patch_device(serial, body) if body else client.get_device(serial)
        # The device as adopted is the baseline of the three-way compare: a field that
        # already agreed (so was not patched) must count as written too, or a later
        # hand edit of it would look like a source change and be reverted.
        store.record_write(
            serial,
            "adopt",
            _baseline(device, body),
            device,
            change_id=change.id,
            response={"status_code": 200},
            now=now,
        )
    elif change.operation == "delete":
        gone = "deleted"
        try:
            client.delete_device(serial)
        except NotFoundError:
            gone = "already gone (404)"
        store.record_write(
            serial,
            "delete",
            {},
            None,
            change_id=change.id,
            response={"status_code": 204, "detail": gone},
            now=now,
        )
    else:
        store.complete_change(
            change.id, "skipped", error=f"{change.operation} is not applied", replan=False
        )
        return "skipped"
    return "applied"


def _baseline(device: Device, sent: Mapping[str, Any]) -> dict[str, Any]:
    return {**device.writable_values(), **sent}


def _exists_already(
    store: Store,
    client: InventoryClient,
    change: ChangeRow,
    body: Mapping[str, Any],
    *,
    now: datetime,
) -> str:
    """409 on create: the device exists after all (someone created it after the plan,
    or the listing the plan came from omitted it). It is read and recorded as it is;
    the next run plans it like any other device, so hand edits are kept and the field
    policies hold. A create tried before that finds the device exactly as it sent it
    found its own earlier POST (the process died before recording the answer)."""
    serial = change.serial_number
    existing = client.get_device(serial)
    if change.attempts > 1 and not differing_fields(body, existing):
        store.record_write(
            serial,
            "create",
            body,
            existing,
            change_id=change.id,
            now=now,
            response={
                "status_code": 409,
                "detail": "created by an earlier try of this change: found as sent",
            },
        )
        return "applied"
    store.observe_device(
        existing,
        change_id=change.id,
        now=now,
        response={"status_code": 409, "detail": "exists already: read back"},
        note="exists already (409): the device was read back; the next run plans it by "
        "the three-way rules and field policies (adopt, update, or keep a hand edit)",
    )
    return "skipped"


def differing_fields(body: Mapping[str, Any], device: Device) -> dict[str, Any]:
    """The writable fields of ``body`` whose value ``device`` does not have."""
    current = device.writable_values()
    return {
        name: value
        for name, value in body.items()
        if name in WRITABLE_FIELDS and (name not in current or current[name] != value)
    }


def _summary(exc: SyncdError) -> dict[str, Any]:
    out: dict[str, Any] = {"error": type(exc).__name__}
    status = getattr(exc, "status_code", None)
    if status is not None:
        out["status_code"] = status
    if isinstance(exc, ValidationRejectedError) and exc.field_errors:
        out["field_errors"] = exc.field_errors
    if isinstance(exc, RetriableError) and exc.retry_after is not None:
        out["retry_after"] = exc.retry_after
    return out
