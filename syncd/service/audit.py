"""What the faces (the command line, the HTTP API, the dashboard) read, and its JSON.

Plain functions over a ``Store``, each returning typed rows; the JSON shape of each kind
of row is defined here once (``*_json``), so ``syncd changes --output json`` and
``GET /v1/changes`` say the same thing in the same words.

- **runs** (``list_runs``) and **one run** (``run_detail``: its counts, error, the
  batches it read and where their files lie now, its rejects, the orphans waiting);
- **changes** (``list_changes``): filtered by run, serial, source, operation, status,
  time; conflicts only or held only; newest first, paged by id (``Page.next_before``).
  Each carries its fields' before/after, the sources that asked, the trigger of its
  run (``schedule``, ``cli``, ``http``, ``webhook``, ``revert``...) and the API's answer;
- **rejects** (``list_rejects``), each with where its file lies now (``processed/`` or
  ``failed/``);
- a **device's history** (``device_history``);
- **open conflicts** and **drift** (``drift``): devices a source wants that the
  inventory does not hold, owned orphans waiting with the time they fall due, conflicts.

Times a person types (``--since 2h``, ``?since=2026-12-01``) are read by ``parse_when``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_args

from syncd.config import PolicySettings
from syncd.engine import OPERATION_KINDS, Catalogue, Operation
from syncd.errors import InvalidInputError
from syncd.store import BatchEntry, ChangeRow, RunRow, Store
from syncd.store.audit import (
    ChangeQuery,
    ConflictRow,
    KeptRow,
    MissingRow,
    OrphanRow,
    RejectPlace,
    RejectQuery,
    RunQuery,
)
from syncd.store.planning import UnknownRunError
from syncd.store.rows import ChangeStatus, RunStatus

if TYPE_CHECKING:
    from syncd.service.runs import RunResult

T = TypeVar("T")

#: The most rows one page holds.
MAX_PAGE = 10_000
#: Operation kinds, change and run statuses, as filters accept them.
OPERATIONS: tuple[str, ...] = OPERATION_KINDS
CHANGE_STATUSES: tuple[str, ...] = get_args(ChangeStatus)
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, newest first. ``next_before`` is the cursor of the next
    (older) page: pass it as ``before``; ``None`` when this page is the last."""

    items: list[T]
    next_before: int | None = None


def _page(items: list[T], limit: int, key: Callable[[T], int]) -> Page[T]:
    """``items`` (up to ``limit + 1`` were read) as a page with its cursor."""
    if len(items) > limit:
        items = items[:limit]
        return Page(items, key(items[-1]) if items else None)
    return Page(items, None)


def _limit(limit: int, name: str = "limit") -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"{name} must be between 1 and {MAX_PAGE}, not {limit}")
    return limit


def _one_of(values: Iterable[str], allowed: Sequence[str], name: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(values))
    unknown = [value for value in chosen if value not in allowed]
    if unknown:
        raise InvalidInputError(
            f"{name}: unknown {', '.join(map(repr, unknown))} (one of: {', '.join(allowed)})"
        )
    return chosen


# -- times -----------------------------------------------------------------------------------

_RELATIVE = re.compile(r"(\d{1,7})\s*(s|m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, *, now: datetime, name: str = "time") -> datetime:
    """A time as a person types it: an ISO 8601 date or date and time (``2026-12-07``,
    ``2026-12-07T10:30``, UTC unless it names a zone), or an age (``30m``, ``2h``,
    ``7d``, ``1w``: that long before ``now``). ``InvalidInputError`` naming ``name``."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2).lower()
        return now - timedelta(seconds=amount * _UNITS[unit])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"{name}: {text!r} is not a time (an ISO date such as 2026-12-07 or "
            "2026-12-07T10:30, or an age such as 30m, 2h, 7d)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- runs ------------------------------------------------------------------------------------


def list_runs(
    store: Store,
    *,
    statuses: Iterable[str] = (),
    triggers: Iterable[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    idle: bool = False,
    limit: int = 20,
    before: int | None = None,
) -> Page[RunRow]:
    """Runs, newest first (the daemon's idle polls only with ``idle``)."""
    query = RunQuery(
        statuses=_one_of(statuses, RUN_STATUSES, "status"),
        triggers=tuple(triggers),
        since=since,
        until=until,
        idle=idle,
    )
    rows = store.audit_runs(query, limit=_limit(limit) + 1, before=before)
    return _page(rows, limit, lambda run: run.id)


@dataclass(slots=True)
class RunDetail:
    """One run and what it did: the changes per status and per operation, the batches it
    read (each with where its data lies now), its rejects and its first changes; the
    orphans waiting now (see ``drift``)."""

    run: RunRow
    statuses: dict[str, int]
    operations: dict[str, int]
    batches: list[BatchEntry]
    rejects: list[RejectPlace]
    changes: Page[ChangeRow]
    orphans: list[OrphanDue] = field(default_factory=list)


def run_detail(store: Store, run_id: int, *, policy: PolicySettings, limit: int = 50) -> RunDetail:
    """Everything ``syncd show RUN`` shows; ``UnknownRunError`` if there is no such run."""
    run = store.run(run_id)
    if run is None:
        raise UnknownRunError(f"no run {run_id}")
    return RunDetail(
        run=run,
        statuses=store.change_counts(run_id),
        operations=store.change_kinds(run_id),
        batches=store.run_batches(run_id),
        rejects=store.audit_rejects(RejectQuery(run_id=run_id), limit=_limit(limit)),
        changes=_changes_page(store, ChangeQuery(run_id=run_id), limit, None),
        orphans=[orphan_due(o, policy) for o in store.orphans(limit=limit)],
    )


# -- changes ---------------------------------------------------------------------------------


def _changes_page(
    store: Store, query: ChangeQuery, limit: int, before: int | None
) -> Page[ChangeRow]:
    rows = store.audit_changes(query, limit=_limit(limit) + 1, before=before)
    return _page(rows, limit, lambda change: change.id)


@dataclass(frozen=True, slots=True)
class ChangeView:
    """A change with the trigger of its run."""

    change: ChangeRow
    trigger: str


def list_changes(
    store: Store,
    *,
    run_id: int | None = None,
    serial: str | None = None,
    source: str | None = None,
    operations: Iterable[str] = (),
    statuses: Iterable[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    conflicts_only: bool = False,
    held_only: bool = False,
    limit: int = 50,
    before: int | None = None,
) -> Page[ChangeView]:
    """The audit log, newest first: every filter given narrows it."""
    ops = _one_of(operations, OPERATIONS, "operation")
    states = _one_of(statuses, CHANGE_STATUSES, "status")
    if conflicts_only:
        ops = tuple(op for op in ops if op == "conflict") if ops else ("conflict",)
        if not ops:
            return Page([])
    if held_only:
        states = tuple(s for s in states if s == "held") if states else ("held",)
        if not states:
            return Page([])
    query = ChangeQuery(
        run_id=run_id,
        serial=serial,
        source=source,
        operations=ops,
        statuses=states,
        since=since,
        until=until,
    )
    page = _changes_page(store, query, limit, before)
    return Page(with_triggers(store, page.items), page.next_before)


def with_triggers(store: Store, changes: Sequence[ChangeRow]) -> list[ChangeView]:
    """``changes`` with the trigger of each one's run."""
    triggers = store.run_triggers(c.run_id for c in changes)
    return [ChangeView(c, triggers.get(c.run_id, "?")) for c in changes]


# -- rejects ---------------------------------------------------------------------------------


def list_rejects(
    store: Store,
    *,
    run_id: int | None = None,
    serial: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before: int | None = None,
) -> Page[RejectPlace]:
    """Rows the sources could not use, newest first, each with where its file lies now."""
    query = RejectQuery(run_id=run_id, serial=serial, source=source, since=since, until=until)
    rows = store.audit_rejects(query, limit=_limit(limit) + 1, before=before)
    return _page(rows, limit, lambda place: place.reject.id)


def location_now(place: RejectPlace) -> str:
    """Where the rejected row is now: its file:line in the folder the file was moved to
    (``processed/`` or ``failed/``), or as it was read when the file was not moved."""
    location = place.reject.location
    origin = place.origin
    if place.stored_at and origin and location.startswith(origin):
        return place.stored_at + location[len(origin) :]
    return location


# -- a device --------------------------------------------------------------------------------


@dataclass(slots=True)
class DeviceHistory:
    """What syncd knows of one serial: the inventory's values as last read and what
    syncd wrote, the sources' rows, open conflicts and kept values, its changes (newest
    first) and its rejects."""

    serial_number: str
    inventory: dict[str, Any] | None
    sources: list[dict[str, Any]]
    conflicts: list[ConflictRow]
    kept: list[KeptRow]
    changes: Page[ChangeView]
    rejects: list[RejectPlace]


def device_history(
    store: Store, serial: str, *, limit: int = 50, before: int | None = None
) -> DeviceHistory:
    """The history of ``serial`` (exact); ``NoSuchError`` if syncd never saw it."""
    from syncd.errors import NoSuchError

    changes = list_changes(store, serial=serial, limit=limit, before=before)
    inventory = store.mirror_row(serial)
    sources = store.source_rows(serial)
    rejects = store.audit_rejects(RejectQuery(serial=serial), limit=_limit(limit))
    if inventory is None and not sources and not changes.items and not rejects:
        raise NoSuchError(f"syncd knows no device with serial {serial!r} (serials are exact)")
    return DeviceHistory(
        serial_number=serial,
        inventory=inventory,
        sources=sources,
        conflicts=store.open_conflicts(serial=serial),
        kept=store.kept_values(serial=serial),
        changes=changes,
        rejects=rejects,
    )


# -- drift -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrphanDue:
    """An orphan and when it is deleted: after ``runs_left`` more runs miss it and not
    before ``not_before``; ``kept`` when deletes are off (``delete_orphans = false``)."""

    orphan: OrphanRow
    runs_left: int
    not_before: datetime
    kept: bool


def orphan_due(orphan: OrphanRow, policy: PolicySettings) -> OrphanDue:
    """When ``orphan`` falls due under ``policy`` (both grace conditions must hold)."""
    first = orphan.first_missing
    if first.tzinfo is None:
        first = first.replace(tzinfo=UTC)
    runs_left = max(0, policy.orphan_grace_runs - orphan.runs_missing)
    not_before = first + timedelta(hours=policy.orphan_grace_hours)
    return OrphanDue(orphan, runs_left, not_before, kept=not policy.delete_orphans)


@dataclass(slots=True)
class Drift:
    """Where the inventory and the sources differ and stay so: devices a source wants that
    the inventory does not hold (``missing``, the first ``limit`` of ``missing_total``),
    owned orphans waiting, open conflicts and the values kept by decision."""

    missing: list[MissingRow]
    missing_total: int
    orphans: list[OrphanDue]
    conflicts: list[ConflictRow]
    kept: list[KeptRow]


def drift(store: Store, *, policy: PolicySettings, limit: int = 100) -> Drift:
    """The current drift (see ``Drift``)."""
    return Drift(
        missing=store.missing_devices(limit=_limit(limit)),
        missing_total=store.count_missing(),
        orphans=[orphan_due(o, policy) for o in store.orphans(limit=limit)],
        conflicts=store.open_conflicts(limit=limit),
        kept=store.kept_values(),
    )


@dataclass(frozen=True, slots=True)
class DriftCounts:
    """The figures a plan's summary shows."""

    conflicts: int
    missing: int
    orphans: int


def drift_counts(store: Store, *, besides_run: int | None = None) -> DriftCounts:
    """How many open conflicts, devices missing from the inventory and orphans waiting
    there are (``besides_run``: the open conflicts of serials that run is not planning)."""
    return DriftCounts(
        conflicts=store.count_open_conflicts(besides_run=besides_run),
        missing=store.count_missing(),
        orphans=len(store.orphans()),
    )


# -- names beside ids ------------------------------------------------------------------------


class Labels:
    """Names beside the ids the inventory uses: ``3 (Cisco Catalyst 9300)``: the name the
    API gave the id (learned from the devices read), else the source's name the policy
    maps to it (``type_map``, ``organization_map``)."""

    def __init__(self, catalogue: Catalogue, policy: PolicySettings | None = None) -> None:
        self._types = _inverted(policy.type_map) if policy is not None else {}
        self._orgs = _inverted(policy.organization_map) if policy is not None else {}
        for i, t in catalogue.types.items():
            if t.model or t.name:
                self._types[i] = t.model or t.name or ""
        for i, o in catalogue.organizations.items():
            if o.name or o.code:
                self._orgs[i] = o.name or o.code or ""

    @classmethod
    def of(cls, store: Store, policy: PolicySettings | None = None) -> Labels:
        """The labels the store's catalogue and ``policy`` give."""
        return cls(store.load_catalogue(), policy)

    def name(self, field_name: str, value: object) -> str | None:
        """The name of an id value of ``type`` or ``organization``, if known."""
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if field_name == "type":
            return self._types.get(value)
        if field_name == "organization":
            return self._orgs.get(value)
        return None

    def show(self, field_name: str, value: object) -> str:
        """``value`` as text, with its name when it is a known id."""
        text = "∅" if value is None else str(value)
        named = self.name(field_name, value)
        return f"{text} ({named})" if named else text


def _inverted(names: Mapping[str, int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for name, number in sorted(names.items()):
        out.setdefault(number, name)
    return out


# -- JSON: each shape defined once -----------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def run_json(run: RunRow) -> dict[str, Any]:
    """A run."""
    return {
        "id": run.id,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
        "approved_by": run.approved_by,
        "approved_at": _iso(run.approved_at),
        "summary": dict(run.summary),
    }


def change_json(view: ChangeView | ChangeRow, trigger: str | None = None) -> dict[str, Any]:
    """A change: field by field ``before``/``after`` (``before_known`` false when the
    inventory's value was never seen), the sources that asked and where, the trigger of
    its run, and the API's answer (``response``: status code and detail, never headers)."""
    row = view.change if isinstance(view, ChangeView) else view
    run_trigger = view.trigger if isinstance(view, ChangeView) else trigger
    return {
        "id": row.id,
        "run": row.run_id,
        "trigger": run_trigger,
        "operation": row.operation,
        "serial_number": row.serial_number,
        "status": row.status,
        "changes": {k: dict(v) for k, v in row.changes.items()},
        "reason": row.reason,
        "sources": list(row.sources),
        "origins": list(row.origins),
        "error": row.error,
        "response": dict(row.response) if row.response else None,
        "attempts": row.attempts,
        "created_at": _iso(row.created_at),
        "applied_at": _iso(row.applied_at),
    }


def reject_json(place: RejectPlace) -> dict[str, Any]:
    """A reject: where it was read (``location``) and where that row lies now."""
    reject = place.reject
    return {
        "id": reject.id,
        "run": reject.run_id,
        "source": reject.source,
        "location": reject.location,
        "location_now": location_now(place),
        "serial_number": reject.serial_number,
        "reason": reject.reason,
        "created_at": _iso(reject.created_at),
    }


def conflict_json(row: ConflictRow) -> dict[str, Any]:
    """An open conflict (``field`` ``""``: the whole serial, e.g. a collision)."""
    return {
        "serial_number": row.serial_number,
        "field": row.field,
        "inventory_value": row.inventory_value,
        "source_value": row.source_value,
        "sources": list(row.sources),
        "origins": list(row.origins),
        "reason": row.reason,
        "run": row.run_id,
        "change": row.change_id,
        "first_seen_at": _iso(row.first_seen_at),
        "last_seen_at": _iso(row.last_seen_at),
    }


def kept_json(row: KeptRow) -> dict[str, Any]:
    """A decision to keep the inventory's value."""
    return {
        "serial_number": row.serial_number,
        "field": row.field,
        "inventory_value": row.inventory_value,
        "source_value": row.source_value,
        "decided_by": row.decided_by,
        "decided_at": _iso(row.decided_at),
    }


def orphan_json(due: OrphanDue) -> dict[str, Any]:
    """An orphan waiting, and when it falls due."""
    orphan = due.orphan
    return {
        "serial_number": orphan.serial_number,
        "ownership": orphan.ownership,
        "missing_since": _iso(orphan.first_missing),
        "runs_missing": orphan.runs_missing,
        "runs_left": due.runs_left,
        "due_not_before": _iso(due.not_before),
        "kept": due.kept,
    }


def missing_json(row: MissingRow) -> dict[str, Any]:
    """A device a source wants that the inventory does not hold, and its last change."""
    last = row.last_change
    return {
        "serial_number": row.serial_number,
        "source": row.source,
        "origin": row.origin,
        "last_change": None if last is None else change_json(last),
    }


def batch_json(batch: BatchEntry) -> dict[str, Any]:
    """A source batch a run read."""
    return {
        "id": batch.id,
        "source": batch.connector,
        "origin": batch.origin,
        "stored_at": batch.stored_at,
        "mode": batch.mode,
        "accepted": batch.accepted,
        "reason": batch.reason,
        "records": batch.records,
        "rejects": batch.rejects,
        "received_at": _iso(batch.received_at),
    }


def run_detail_json(detail: RunDetail) -> dict[str, Any]:
    """One run and what it did."""
    return {
        **run_json(detail.run),
        "changes_by_status": detail.statuses,
        "changes_by_operation": detail.operations,
        "batches": [batch_json(b) for b in detail.batches],
        "rejects": [reject_json(r) for r in detail.rejects],
        "changes": [change_json(c, detail.run.trigger) for c in detail.changes.items],
        "more_changes_before": detail.changes.next_before,
        "orphans_waiting": [orphan_json(o) for o in detail.orphans],
    }


def drift_json(found: Drift) -> dict[str, Any]:
    """The drift."""
    return {
        "missing_from_inventory": [missing_json(m) for m in found.missing],
        "missing_total": found.missing_total,
        "orphans_waiting": [orphan_json(o) for o in found.orphans],
        "conflicts": [conflict_json(c) for c in found.conflicts],
        "kept_values": [kept_json(k) for k in found.kept],
    }


def device_history_json(history: DeviceHistory) -> dict[str, Any]:
    """A device's history."""
    inventory = history.inventory
    return {
        "serial_number": history.serial_number,
        "inventory": None
        if inventory is None
        else {
            "present": bool(inventory["present"]),
            "ownership": inventory["ownership"],
            "values": inventory["values"],
            "written": inventory["written"],
            "last_seen_at": _iso(inventory["last_seen_at"]),
        },
        "sources": [{**row, "updated_at": _iso(row["updated_at"])} for row in history.sources],
        "conflicts": [conflict_json(c) for c in history.conflicts],
        "kept_values": [kept_json(k) for k in history.kept],
        "changes": [change_json(c) for c in history.changes.items],
        "more_changes_before": history.changes.next_before,
        "rejects": [reject_json(r) for r in history.rejects],
    }


def operation_json(op: Operation) -> dict[str, Any]:
    """A planned operation (not yet recorded as a change)."""
    return {
        "operation": op.kind,
        "serial_number": op.serial_number,
        "changes": {k: {"before": c.before, "after": c.after} for k, c in op.changes.items()},
        "reason": op.reason,
        "sources": list(op.sources),
        "origins": list(op.origins),
    }


def plan_json(result: RunResult) -> dict[str, Any]:
    """A run's figures and its whole plan (``syncd plan --json``, a revert over HTTP)."""
    return {**result.summary(), "plan": [operation_json(op) for op in result.plan.operations]}


def page_json(page: Page[T], shape: Callable[[T], Mapping[str, Any]]) -> dict[str, Any]:
    """A page as ``{"items": [...], "next_before": cursor}`` (the HTTP API's listings)."""
    return {"items": [dict(shape(item)) for item in page.items], "next_before": page.next_before}
