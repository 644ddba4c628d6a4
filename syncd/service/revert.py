"""Undo: the inverse of a run's applied changes (or of one change), as a plan of its own.

Each applied change recorded what it found and what it wrote, field by field; the
inverse is built from those records and from the inventory as it is **now** (each
device is read first, one ``GET``):

- a **create** becomes a delete (with the device's current values kept in the audit);
- an **update** or **adoption** becomes an update back to the recorded before-values;
- a **delete** becomes a create from the values the delete recorded.

A change is **refused**, with its reason, when the device is no longer as that change
left it: a field it wrote was edited since (by hand, or by a later run), a device it
created is gone, a device it deleted exists again, or a later applied change of the
same serial would be undone out of order (revert that one first). Nothing is ever
overwritten that the run did not write.

The plan is recorded as a run (trigger ``revert``) and goes through the same safety
gates (a revert deleting more than ``max_delete_share`` of the owned devices is held
for approval) and the same rate-limited apply as any run. Letting it through moves no
source baseline. The reverted values then stand until a source, the inventory or the
policy changes that device again (they are what syncd last wrote).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.engine import FieldChange, Operation, Plan, PlanContext
from syncd.engine.gates import check_gates
from syncd.engine.values import current_value
from syncd.errors import NotFoundError
from syncd.service.apply import Progress
from syncd.service.runs import Runner, RunResult
from syncd.store import ChangeRow, RunStateError
from syncd.store.planning import REVERT_TRIGGER, UnknownRunError

log = structlog.get_logger("syncd.revert")

_REQUIRED_ON_CREATE = ("name", "type", "organization")
_REVERTIBLE = ("create", "update", "adopt", "delete")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A change that cannot be undone, and why."""

    change_id: int
    serial_number: str
    reason: str


@dataclass(slots=True)
class RevertResult:
    """The revert run, its plan, and what was refused."""

    run: RunResult
    of_run: int | None
    refused: list[Refusal] = field(default_factory=list)


def revert(
    runner: Runner,
    *,
    run_id: int | None = None,
    change_id: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    by: str | None = None,
) -> RevertResult:
    """Undo run ``run_id``'s applied changes, or the one change ``change_id`` (see the
    module). ``dry_run`` shows the plan and the refusals and writes nothing. ``by``:
    who asked (an API token's name), kept in the revert run's summary."""
    store = runner.store
    changes = _changes(runner, run_id, change_id)
    of_run = run_id if run_id is not None else (changes[0].run_id if changes else None)
    revert_id = store.begin_run(
        REVERT_TRIGGER, runner.policy.fingerprint(), owner=runner.owner, now=runner.clock()
    )
    log.info("revert.start", run=revert_id, of_run=of_run, changes=len(changes))
    result = RunResult(run_id=revert_id, status="planning", plan=Plan(operations=[]))
    result.dry_run = dry_run
    try:
        operations, refused = _inverse(runner, changes)
        result.plan = _gated(runner, operations)
    except BaseException as exc:
        store.finish_run(revert_id, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    outcome = RevertResult(run=result, of_run=of_run, refused=refused)
    summary = {
        "revert_of": {"run": of_run, "change": change_id},
        "refused": [
            {"change": r.change_id, "serial": r.serial_number, "reason": r.reason}
            for r in refused[:100]
        ],
    }
    if by is not None:
        summary["requested_by"] = by
    if dry_run:
        result.status = "done"
        store.finish_run(revert_id, "done", summary={**result.summary(), **summary})
        return outcome
    store.record_plan(revert_id, result.plan, now=runner.clock())
    if result.plan.held:
        result.status = "held"
        store.finish_run(revert_id, "held", summary={**result.summary(), **summary})
        return outcome
    recorded = store.run(revert_id)
    if recorded is not None and recorded.status == "done":  # nothing left to send
        result.status = "done"
        store.finish_run(revert_id, "done", summary={**result.summary(), **summary})
        return outcome
    store.finish_run(revert_id, "applying", summary=summary)
    outcome.run = runner.apply_recorded(result, progress)
    return outcome


def _changes(runner: Runner, run_id: int | None, change_id: int | None) -> list[ChangeRow]:
    """The applied changes to undo, newest first."""
    store = runner.store
    if (run_id is None) == (change_id is None):
        raise ValueError("revert needs exactly one of run_id or change_id")
    if change_id is not None:
        change = store.change(change_id)
        if change is None:
            raise UnknownRunError(f"no change {change_id}")
        if change.status != "applied" or change.operation not in _REVERTIBLE:
            raise RunStateError(
                f"change {change_id} is a {change.status} {change.operation}: only an "
                "applied create, update, adoption or delete can be undone"
            )
        return [change]
    if store.run(run_id or 0) is None:
        raise UnknownRunError(f"no run {run_id}")
    applied = store.changes(run_id=run_id, status="applied", limit=1_000_000)
    return [c for c in applied if c.operation in _REVERTIBLE]


def _inverse(runner: Runner, changes: Sequence[ChangeRow]) -> tuple[list[Operation], list[Refusal]]:
    operations: list[Operation] = []
    refused: list[Refusal] = []
    for change in changes:
        if change.operation in ("update", "adopt") and not change.changes:
            continue  # an adoption that changed nothing: nothing to undo
        try:
            op = _undo(runner, change)
        except _RefusedError as exc:
            refused.append(Refusal(change.id, change.serial_number, str(exc)))
            log.warning(
                "revert.refused", change=change.id, serial=change.serial_number, why=str(exc)
            )
            continue
        operations.append(op)
    operations.sort(key=lambda op: op.serial_number)
    return operations, refused


class _RefusedError(Exception):
    """Internal: this change cannot be undone (the message says why)."""


def _undo(runner: Runner, change: ChangeRow) -> Operation:
    later = [
        c
        for c in runner.store.changes(serial=change.serial_number, status="applied", limit=50)
        if c.id > change.id and c.operation in _REVERTIBLE
    ]
    if later:
        newest = later[0]
        raise _RefusedError(
            f"change {newest.id} (run {newest.run_id}, {newest.operation}) was applied to this "
            "device after it: undo that one first"
        )
    current = _read(runner, change.serial_number)
    why = f"undo of change {change.id} (run {change.run_id}, {change.operation})"
    if change.operation == "create":
        return _undo_create(change, current, why)
    if change.operation == "delete":
        return _undo_delete(change, current, why)
    return _undo_update(change, current, why)


def _read(runner: Runner, serial: str) -> dict[str, Any] | None:
    """The device as it is now (writable values), ``None`` when it is not there; the
    mirror learns it too."""
    try:
        device = runner.client.get_device(serial)
    except NotFoundError:
        runner.store.mark_gone(serial)
        return None
    runner.store.observe_device(device, replan=False)
    return device.writable_values()


def _same(name: str, now: object, then: object) -> bool:
    if now == then:
        return True
    return bool(current_value(name, now) == current_value(name, then))


def _check_as_written(change: ChangeRow, current: Mapping[str, Any]) -> None:
    for name, recorded in change.changes.items():
        if name not in current:
            continue  # a detail-only field the answer did not carry: nothing to compare
        if not _same(name, current[name], recorded.get("after")):
            raise _RefusedError(
                f"{name} was changed in the inventory since ({current[name]!r}, and the "
                f"change wrote {recorded.get('after')!r}): not overwritten"
            )


def _undo_create(change: ChangeRow, current: Mapping[str, Any] | None, why: str) -> Operation:
    if current is None:
        raise _RefusedError("the device it created is gone already")
    _check_as_written(change, current)
    removed = {name: FieldChange(value, None) for name, value in current.items()}
    return Operation("delete", change.serial_number, removed, why + ": it created the device")


def _undo_delete(change: ChangeRow, current: Mapping[str, Any] | None, why: str) -> Operation:
    if current is not None:
        raise _RefusedError("the device it deleted exists again: not overwritten")
    values = {name: rec.get("before") for name, rec in change.changes.items()}
    missing = [name for name in _REQUIRED_ON_CREATE if values.get(name) in (None, "")]
    if missing:
        raise _RefusedError(
            f"the delete did not record {', '.join(missing)} (planned by an older syncd): "
            "the device cannot be made again from it"
        )
    body = {
        name: FieldChange(None, value)
        for name, value in values.items()
        if value is not None and value != ""
    }
    return Operation("create", change.serial_number, body, why + ": it deleted the device")


def _undo_update(change: ChangeRow, current: Mapping[str, Any] | None, why: str) -> Operation:
    if current is None:
        raise _RefusedError("the device is gone since: nothing to restore")
    _check_as_written(change, current)
    restore: dict[str, FieldChange] = {}
    unknown: list[str] = []
    for name, recorded in change.changes.items():
        if not recorded.get("before_known", True):
            unknown.append(name)
            continue
        now = current.get(name, recorded.get("after"))
        restore[name] = FieldChange(now, recorded.get("before"), name in current)
    if not restore:
        raise _RefusedError(
            f"what {', '.join(sorted(unknown))} held before was never known (detail-only "
            "fields syncd had not read): nothing to restore"
        )
    note = f"; not restored (never known): {', '.join(sorted(unknown))}" if unknown else ""
    return Operation("update", change.serial_number, restore, why + note)


def _gated(runner: Runner, operations: list[Operation]) -> Plan:
    """The revert as a plan, held when the same gates as any run say so."""
    counts: dict[str, int] = {}
    for op in operations:
        counts[op.kind] = counts.get(op.kind, 0) + 1
    context = PlanContext(now=runner.clock(), owned_total=runner.store.owned_total())
    reasons = check_gates(runner.policy, context, counts.get("delete", 0))
    return Plan(
        operations=operations,
        held=bool(reasons),
        hold_reasons=reasons,
        counts={"candidates": len(operations), **counts},
    )
