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

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

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


OutcomeKind = Literal["applied", "skipped", "failed", "retry", "busy", "gone", "halted"]


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What became of one change (``apply_one``).

    ``applied`` / ``skipped`` / ``failed``: final, recorded on the change row.
    ``retry``: a transient failure within the attempt budget; the row is ``dispatched``
    again and due after ``delay`` seconds (a task retries with that countdown).
    ``busy``: an older change of the same serial is still on its way: try again after
    ``delay``. ``gone``: the change was no longer waiting (done, superseded, or taken by
    another worker): nothing to do. ``halted``: dispatching is halted (a refused token):
    not tried, the sweeper sends it again when the halt is over.
    """

    kind: OutcomeKind
    change_id: int
    operation: str = ""
    serial_number: str = ""
    detail: str = ""
    delay: float | None = None

    @property
    def final(self) -> bool:
        """True when the change row is final (applied, skipped or failed) by this call."""
        return self.kind in ("applied", "skipped", "failed")


@dataclass(frozen=True, slots=True)
class ApplyPolicy:
    """How one process applies changes.

    ``max_attempts``: tries of a change that meets transient failures (429, 5xx,
    timeouts) before it is failed; 1 fails it at once (the client has already retried
    within the call), more returns ``retry`` outcomes for a scheduler to act on.
    ``retry_delay``: the wait when the server names none. ``max_mirror_age``: an
    update or adoption planned against an inventory listing older than this reads its
    device first (``None``: always trust the mirror).
    """

    max_attempts: int = 1
    retry_delay: float = 5.0
    max_mirror_age: timedelta | None = None
    busy_delay: float = 1.0


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

    def add(self, outcome: ApplyOutcome) -> None:
        """Count one final outcome."""
        if outcome.kind == "applied":
            self.applied += 1
            self.by_operation[outcome.operation] = self.by_operation.get(outcome.operation, 0) + 1
        elif outcome.kind == "skipped":
            self.skipped += 1
        elif outcome.kind in ("failed", "retry"):
            self.failed += 1
            self.errors.append(f"{outcome.serial_number}: {outcome.detail}")


def apply_pending(
    store: Store,
    client: InventoryClient,
    *,
    run_id: int | None = None,
    progress: Progress | None = None,
    batch_size: int = 200,
    owner: str | None = None,
    stop: StopRequest | None = None,
    concurrency: int = 1,
    policy: ApplyPolicy | None = None,
) -> ApplyReport:
    """Apply every pending change (of ``run_id``, or all), oldest first, up to
    ``concurrency`` at once (all paced by the client's one rate limiter), each claimed
    for the process ``owner`` (default: this one).

    When ``stop`` is requested the drain ends before the next claim (the changes in
    flight are finished and recorded first) with ``interrupted`` set. If anything else
    escapes (a second Ctrl-C), the changes in flight are given up: their outcome is
    unknown, so the next run's recovery reads a create back first and plans anything
    else afresh.

    Raises ``AuthenticationError`` (after handing its change back) when the token
    is refused: nothing else can succeed then.
    """
    who = owner if owner is not None else str(process.current())
    rules = policy if policy is not None else ApplyPolicy()
    report = ApplyReport()
    if progress is not None:
        progress.start(store.count_pending(run_id))
    in_flight: set[int] = set()
    guard = threading.Lock()

    def one(change: ChangeRow) -> ApplyOutcome | None:
        if stop is not None and stop.requested:
            return None
        with guard:
            in_flight.add(change.id)
        try:
            return apply_one(store, client, change.id, owner=who, policy=rules)
        finally:
            with guard:
                in_flight.discard(change.id)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="syncd-apply")
    wait = True
    try:
        while True:
            pending = store.pending_changes(run_id=run_id, limit=batch_size)
            if not pending:
                return report
            progressed = False
            for future in as_completed([pool.submit(one, change) for change in pending]):
                outcome = future.result()
                if outcome is None:
                    report.interrupted = True
                    continue
                if outcome.kind in ("busy", "gone"):
                    continue  # another process has it, or an older change of its serial
                progressed = True
                report.add(outcome)
                if progress is not None:
                    progress.advance(_row(pending, outcome.change_id), outcome.kind)
            if report.interrupted or not progressed:
                return report
    except BaseException as exc:
        wait = isinstance(exc, AuthenticationError)  # else: stop now, do not wait for them
        pool.shutdown(wait=False, cancel_futures=True)
        if not isinstance(exc, AuthenticationError):
            with guard:
                stranded = sorted(in_flight)
            why = f"interrupted while in flight ({type(exc).__name__}): outcome unknown"
            for change_id in stranded:
                store.give_up(change_id, who, why)
        raise
    finally:
        pool.shutdown(wait=wait)


def _row(rows: list[ChangeRow], change_id: int) -> ChangeRow:
    return next(row for row in rows if row.id == change_id)


def apply_one(
    store: Store,
    client: InventoryClient,
    change_id: int,
    *,
    owner: str | None = None,
    policy: ApplyPolicy | None = None,
    now: datetime | None = None,
) -> ApplyOutcome:
    """Claim one change and apply it; the typed outcome says what became of it."""
    rules = policy if policy is not None else ApplyPolicy()
    claimed = store.claim(change_id, owner=owner, now=now)
    if claimed == "busy":
        return ApplyOutcome("busy", change_id, delay=rules.busy_delay)
    change = store.change(change_id) if claimed == "claimed" else None
    if change is None:
        return ApplyOutcome("gone", change_id)
    # every log line of this change names its run and serial (in whatever thread it runs)
    with structlog.contextvars.bound_contextvars(run=change.run_id, serial=change.serial_number):
        stale = _recheck(store, client, change, rules)
        if stale is not None:
            return stale
        return apply_change(store, client, change, policy=rules)


def _recheck(
    store: Store, client: InventoryClient, change: ChangeRow, rules: ApplyPolicy
) -> ApplyOutcome | None:
    """An update or adoption planned against an old listing: read the device first, and
    skip (and re-plan) the change if a field it changes was edited since."""
    if rules.max_mirror_age is None or change.operation not in ("update", "adopt"):
        return None
    seen = store.mirror_seen_at(change.serial_number)
    if seen is not None and datetime.now(UTC) - seen <= rules.max_mirror_age:
        return None
    try:
        device = client.get_device(change.serial_number)
    except NotFoundError:
        store.mark_gone(change.serial_number)
        store.complete_change(
            change.id, "skipped", error="the device is gone since it was planned", replan=True
        )
        store.force_replan([change.serial_number])
        return _outcome("skipped", change, "gone since planned")
    current = device.writable_values()
    for name, field_change in change.changes.items():
        if not field_change.get("before_known", True) or name not in current:
            continue
        if current[name] != field_change.get("before"):
            store.observe_device(
                device,
                change_id=change.id,
                response={"status_code": 200, "detail": "read before writing"},
                note=f"{name} was changed in the inventory since the plan (read before "
                "writing, the listing being old): planned again by the rules",
            )
            return _outcome("skipped", change, f"{name} changed since planned")
    return None


def _outcome(kind: OutcomeKind, change: ChangeRow, detail: str = "") -> ApplyOutcome:
    return ApplyOutcome(kind, change.id, change.operation, change.serial_number, detail)


def apply_change(
    store: Store,
    client: InventoryClient,
    change: ChangeRow,
    *,
    policy: ApplyPolicy | None = None,
) -> ApplyOutcome:
    """Apply one claimed change and record what became of it.

    A change the API refused (400, 403, 404, an unreconcilable 409, an answer outside
    the contract) is failed and NOT planned again until its source or inventory
    values change: re-sending it would fail the same way every run. A transient
    failure is tried again while the policy's attempts last (``retry``), then failed
    and planned again by the next run. Raises ``AuthenticationError`` after releasing
    the change back to the outbox.
    """
    rules = policy if policy is not None else ApplyPolicy()
    try:
        kind = _execute(store, client, change)
        return _outcome(kind, change)
    except AuthenticationError as exc:
        store.release_change(change.id, redact(str(exc)))
        raise
    except RetriableError as exc:
        message = redact(str(exc))
        if change.attempts < rules.max_attempts:
            delay = exc.retry_after if exc.retry_after is not None else rules.retry_delay
            store.retry_later(change.id, timedelta(seconds=delay), message)
            log.info("apply.retry", change=change.id, delay=delay, error=message)
            return ApplyOutcome(
                "retry", change.id, change.operation, change.serial_number, message, delay
            )
        return _failed(store, change, exc, message, replan=True)
    except SyncdError as exc:
        message = redact(str(exc))
        if isinstance(exc, NotFoundError):
            # An update of a device the API no longer has: it was deleted by hand. Record
            # it gone, so the next run plans it afresh (a create, if still wanted).
            store.mark_gone(change.serial_number)
        # Re-sending what the API refused (400, 403, 409) would fail the same way every
        # run: that waits for new data. A server failure is tried again.
        transient = not isinstance(exc, RejectedError | PermissionDeniedError) or isinstance(
            exc, NotFoundError
        )
        return _failed(store, change, exc, message, replan=transient)


def _failed(
    store: Store, change: ChangeRow, exc: SyncdError, message: str, *, replan: bool
) -> ApplyOutcome:
    store.complete_change(change.id, "failed", response=_summary(exc), error=message, replan=replan)
    log.warning(
        "apply.failed",
        change=change.id,
        serial=change.serial_number,
        operation=change.operation,
        error=message,
        replan=replan,
    )
    return _outcome("failed", change, message)


def _execute(
    store: Store, client: InventoryClient, change: ChangeRow
) -> Literal["applied", "skipped"]:
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
) -> Literal["applied", "skipped"]:
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
