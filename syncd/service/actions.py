"""What an operator does, whichever face they use: approve or discard a held plan, retry
failed changes, revert a run, resolve a conflict.

Each entry point checks what it acts on first and raises from the one exception tree
(``UnknownRunError`` for a run that does not exist, ``RunStateError`` for one that is
not held, ``NoSuchError`` for a conflict that is not open), so the command line's exit
code and the HTTP API's status come from ``syncd.errors.failure_kind``.

Resolving a conflict (a field the inventory and the sources disagree on, kept as the
inventory has it until a person decides):

- **keep the inventory's value**: recorded as a decision (``kept_value``): the field is
  neither written nor reported while the inventory and the sources stay as they are;
  a change on either side ends it (the usual rules take over again);
- **take the source's value**: the device is read first (a device changed since is
  refused, as any stale plan is, and so is a source that changed since the plan), then
  one ``update`` is recorded as a run of its own
  (trigger ``resolve``) and applied through the outbox like any change: rate-limited,
  audited, and the value becomes what syncd last wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from syncd.engine import FieldChange, Operation, Plan
from syncd.engine.values import current_value
from syncd.errors import InvalidInputError, NoSuchError, NotFoundError, StateError
from syncd.records import API_FIELDS
from syncd.service.apply import Progress, apply_pending
from syncd.service.outbox import requeue_failed
from syncd.service.revert import RevertResult
from syncd.service.revert import revert as revert_run
from syncd.service.runs import ApproveResult, Runner, RunResult
from syncd.store import ChangeRow, RunRow, RunStateError, Store
from syncd.store.audit import ConflictRow
from syncd.store.planning import RESOLVE_TRIGGER, UnknownRunError

log = structlog.get_logger("syncd.actions")

__all__ = [
    "ApproveResult",
    "ResolveResult",
    "RetryResult",
    "RevertResult",
    "approve",
    "discard",
    "require_held",
    "resolve_conflict",
    "retry",
    "revert_run",
]


def require_held(store: Store, run_id: int) -> RunRow:
    """The run, if it is held for approval; else ``UnknownRunError``/``RunStateError``."""
    run = store.run(run_id)
    if run is None:
        raise UnknownRunError(f"no run {run_id}")
    if run.status != "held":
        raise RunStateError(
            f"run {run_id} is {run.status}, not held: nothing to approve or discard"
        )
    return run


def approve(
    runner: Runner, run_id: int, by: str, *, progress: Progress | None = None
) -> ApproveResult:
    """Release a held plan and apply what still holds of it (``Runner.approve``)."""
    require_held(runner.store, run_id)
    return runner.approve(run_id, by, progress=progress)


def discard(store: Store, run_id: int, by: str, reason: str = "") -> int:
    """Refuse a held plan: its changes are skipped, its serials planned afresh next run.
    Returns how many changes were discarded."""
    require_held(store, run_id)
    return store.discard_run(run_id, by, reason)


@dataclass(slots=True)
class RetryResult:
    """What a retry did: the changes sent again, how many were applied, those that
    failed again."""

    sent: list[ChangeRow]
    applied: int = 0
    failed: list[ChangeRow] = field(default_factory=list)


def retry(
    runner: Runner, *, run_id: int | None = None, change_ids: Sequence[int] | None = None
) -> RetryResult:
    """Send failed changes again (all, of one run, or these) now, in this process; a
    change a newer plan overtook is left alone."""
    if run_id is not None and runner.store.run(run_id) is None:
        raise UnknownRunError(f"no run {run_id}")
    again = requeue_failed(runner.store, None, ids=change_ids, run_id=run_id)
    if not again:
        return RetryResult(sent=[])
    ids = {c.id for c in again}
    report = apply_pending(runner.store, runner.client, **runner.apply_args())
    failed = [
        c for c in (runner.store.change(i) for i in sorted(ids)) if c and c.status == "failed"
    ]
    return RetryResult(sent=again, applied=report.applied, failed=failed)


# -- conflicts -------------------------------------------------------------------------------


@dataclass(slots=True)
class ResolveResult:
    """What resolving a conflict did: the conflict, and for ``take-source`` the run that
    wrote the source's value."""

    conflict: ConflictRow
    kept: bool
    run: RunResult | None = None


def open_conflict(store: Store, serial: str, field_name: str) -> ConflictRow:
    """The open conflict of ``serial``'s ``field_name``; ``NoSuchError`` naming what is open."""
    if field_name not in API_FIELDS:
        raise InvalidInputError(
            f"field {field_name!r} is not a device field (one of: {', '.join(API_FIELDS)})"
        )
    conflicts = store.open_conflicts(serial=serial)
    for conflict in conflicts:
        if conflict.field == field_name:
            return conflict
    if conflicts:
        fields = ", ".join(c.field or "(the whole serial)" for c in conflicts)
        raise NoSuchError(f"{serial}: no open conflict of {field_name} (open: {fields})")
    raise NoSuchError(f"{serial}: no open conflict (see `syncd conflicts`)")


def resolve_conflict(
    runner: Runner,
    serial: str,
    field_name: str,
    *,
    keep_inventory: bool,
    by: str,
    progress: Progress | None = None,
) -> ResolveResult:
    """Resolve one open conflict (see the module): keep the inventory's value, or take
    the source's through the outbox."""
    store = runner.store
    conflict = open_conflict(store, serial, field_name)
    if keep_inventory:
        store.keep_inventory_value(conflict, by=by, now=runner.clock())
        log.info("conflict.kept", serial=serial, field=field_name, by=by)
        return ResolveResult(conflict, kept=True)
    _still_as_reported(runner, conflict)
    store.drop_kept(serial, field_name)
    result = _write_source_value(runner, conflict, by, progress)
    store.take_conflict(serial, field_name)
    store.force_replan([serial])  # its other fields are judged afresh by the next run
    log.info("conflict.taken", serial=serial, field=field_name, by=by, run=result.run_id)
    return ResolveResult(conflict, kept=False, run=result)


def _still_as_reported(runner: Runner, conflict: ConflictRow) -> None:
    """Read the device: ``StateError`` unless it still holds the value reported."""
    serial, name = conflict.serial_number, conflict.field
    try:
        device = runner.client.get_device(serial)
    except NotFoundError:
        runner.store.mark_gone(serial)
        raise StateError(f"{serial} is no longer in the inventory: nothing to resolve") from None
    runner.store.observe_device(device, replan=False)
    now = device.writable_values().get(name)
    if current_value(name, now) != current_value(name, conflict.inventory_value):
        raise StateError(
            f"{serial}: {name} is {now!r} in the inventory now, not {conflict.inventory_value!r} "
            "as reported: the next plan judges it afresh"
        )
    # The source's value is the one the plan saw, unless a source row stored since (or
    # a new policy) wants another, which only the next plan can tell.
    if not runner.store.planned_as_stored(serial, runner.policy.fingerprint()):
        raise StateError(
            f"{serial}: the sources changed since this conflict was found: the next plan "
            "judges it afresh (then resolve it again if it is still open)"
        )


def _write_source_value(
    runner: Runner, conflict: ConflictRow, by: str, progress: Progress | None
) -> RunResult:
    """One update of the field to the source's value, recorded and applied as a run."""
    store = runner.store
    change = FieldChange(conflict.inventory_value, conflict.source_value)
    operation = Operation(
        "update",
        conflict.serial_number,
        {conflict.field: change},
        f"conflict resolved by {by}: the source's value taken over the inventory's",
        conflict.sources,
        conflict.origins,
    )
    run_id = store.begin_run(
        RESOLVE_TRIGGER, runner.policy.fingerprint(), owner=runner.owner, now=runner.clock()
    )
    plan = Plan(operations=[operation], counts={"candidates": 1, "update": 1})
    result = RunResult(run_id=run_id, status="applying", plan=plan)
    try:
        store.record_plan(run_id, plan, held=False, now=runner.clock())
    except BaseException as exc:
        store.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return runner.apply_recorded(result, progress)
