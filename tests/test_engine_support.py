"""Builders shared by the engine tests (pure data; no tests here).

``apply_plan`` plays the part of the store and the API: it applies a plan's writes to
the mirror the way a run would record them, so a test can plan again on the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.engine import (
    DETAIL_ONLY,
    Candidate,
    Catalogue,
    MirrorEntry,
    OrgInfo,
    Plan,
    PlanContext,
    Policy,
    Tombstone,
    TypeInfo,
    plan,
)
from syncd.records import DeviceRecord

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

CATALOGUE = Catalogue(
    types={
        10: TypeInfo(name="switch", model="C9300-48P", manufacturer="Cisco"),
        11: TypeInfo(name="router", model="ISR4331", manufacturer="Cisco"),
        12: TypeInfo(name="switch", model="EX4300", manufacturer="Juniper"),
        13: TypeInfo(name="Firewall", model="PA-440"),
    },
    organizations={
        1: OrgInfo(name="Acme", code="ACME"),
        2: OrgInfo(name="Globex", code="GLX"),
    },
)

#: What ``rec()`` says by default, and the same in the inventory's write form.
RECORD_DEFAULTS: dict[str, Any] = {
    "name": "sw-1",
    "device_type": "C9300-48P",
    "organization": "Acme",
}
INVENTORY_DEFAULTS: dict[str, Any] = {
    "name": "sw-1",
    "type": 10,
    "organization": 1,
    "status": True,
}


def rec(serial: str = "SN1", source: str = "netbox", **values: Any) -> DeviceRecord:
    """A record with name, type and organization filled in unless given (``None`` to omit)."""
    fields = {**RECORD_DEFAULTS, **values}
    origin = fields.pop("origin", f"{source}:{serial}")
    return DeviceRecord(source=source, serial_number=serial, origin=origin, **fields)


#: Pass as a value to ``mirror()`` to leave the field out of the read values.
ABSENT: Any = object()


def mirror(
    serial: str = "SN1",
    ownership: str = "created",
    written: Mapping[str, object] | None = None,
    **values: Any,
) -> MirrorEntry:
    """A mirror entry equal to ``rec()``'s defaults unless told otherwise; ``written``
    defaults to the list-visible values (as after syncd created the device)."""
    shown = {**INVENTORY_DEFAULTS, **values}
    shown = {k: v for k, v in shown.items() if v is not ABSENT}
    if written is None:
        written = {k: v for k, v in shown.items() if k != "status"}
    return MirrorEntry(serial, shown, dict(written), ownership)  # type: ignore[arg-type]


def context(**overrides: Any) -> PlanContext:
    """A context at ``NOW`` owning 100 devices, unless told otherwise."""
    fields: dict[str, Any] = {"now": NOW, "owned_total": 100, **overrides}
    return PlanContext(**fields)


def run(
    *candidates: Candidate,
    policy: Policy | None = None,
    catalogue: Catalogue = CATALOGUE,
    ctx: PlanContext | None = None,
) -> Plan:
    """``plan()`` with the test defaults."""
    return plan(candidates, policy or Policy.default(), catalogue, ctx or context())


def only(result: Plan) -> tuple[str, dict[str, tuple[object, object]]]:
    """The plan's single operation as (kind, {field: (before, after)})."""
    assert len(result.operations) == 1, result.operations
    op = result.operations[0]
    return op.kind, {k: (c.before, c.after) for k, c in op.changes.items()}


def apply_plan(
    result: Plan, candidates: Iterable[Candidate], *, now: datetime = NOW
) -> list[Candidate]:
    """The candidates as the next run would see them after ``result`` was applied.

    Creates and updates land in the inventory as sent; the list endpoint then shows
    every field but the detail-only ones, and ``written`` records what was sent.
    Deleted devices leave the mirror. Tombstones follow ``result.tombstones``.
    """
    ops_by_serial: dict[str, list[Any]] = {}
    for op in result.operations:
        ops_by_serial.setdefault(op.serial_number, []).append(op)
    out = []
    for candidate in candidates:
        serial = candidate.serial_number
        entry = candidate.mirror
        for op in ops_by_serial.get(serial, []):
            sent = {name: change.after for name, change in op.changes.items()}
            if op.kind == "create":
                shown = {k: v for k, v in sent.items() if k not in DETAIL_ONLY}
                shown.setdefault("status", False)
                entry = MirrorEntry(serial, shown, sent, "created")
            elif op.kind in ("update", "adopt"):
                assert entry is not None
                # the server now holds what was sent; a detail-only field stays unseen
                # unless the mirror had read it
                shown = {**entry.values}
                shown.update({k: v for k, v in sent.items() if k not in DETAIL_ONLY or k in shown})
                ownership = "adopted" if op.kind == "adopt" else entry.ownership
                entry = MirrorEntry(serial, shown, {**entry.written, **sent}, ownership)
            elif op.kind == "delete":
                entry = None
        tombstone = candidate.tombstone
        if serial in result.tombstones:
            tombstone = result.tombstones[serial]
        if entry is None and candidate.mirror is not None:
            tombstone = None  # the store drops a deleted device's tombstone with it
        out.append(Candidate(serial, candidate.records, entry, tombstone))
    return out


def tombstone(days_ago: float, runs: int) -> Tombstone:
    """A tombstone first set ``days_ago`` days before ``NOW``."""
    return Tombstone(NOW - timedelta(days=days_ago), runs)
