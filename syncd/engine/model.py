"""What the planner reads (candidates, mirror, catalogue, context) and what it returns.

Immutable records: the store builds the inputs from its tables and turns the output
into ``change`` rows; nothing here knows how. The types built once per serial
(candidates, mirror entries, tombstones, operations, field changes) are
``NamedTuple``s rather than frozen dataclasses: a first run builds millions of them,
and a frozen dataclass costs about five times as much to construct.

Mirror and change field names are the API's (``type`` and ``organization`` hold
integer ids); record field names are the ``DeviceRecord``'s (``device_type``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from syncd.records import DeviceRecord

Ownership = Literal["created", "adopted", "unmanaged"]
OperationKind = Literal["create", "adopt", "update", "delete", "conflict", "reject", "skip"]

#: Kinds in the order a serial's operations are listed (and applied).
OPERATION_KINDS: tuple[OperationKind, ...] = (
    "create",
    "adopt",
    "update",
    "delete",
    "conflict",
    "reject",
    "skip",
)
#: Kinds that change the inventory (or, for ``adopt``, syncd's ownership of a device).
WRITE_KINDS: frozenset[str] = frozenset({"create", "adopt", "update", "delete"})

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class MirrorEntry(NamedTuple):
    """What syncd knows of one device in the inventory.

    ``values``: the writable fields as last read from the API, in write form (API
    names, ids for ``type``/``organization``); detail-only fields only if known.
    ``written``: the last value syncd wrote for each field, the base of the
    three-way compare; a field syncd never wrote is absent (``None`` means syncd
    cleared it). ``ownership``: ``created``/``adopted`` devices are syncd's to update
    and delete; ``unmanaged`` ones it may only adopt. ``kept``: fields where a person
    chose to keep the inventory's value over the sources' (``syncd conflicts resolve
    --keep-inventory``), as ``(inventory value, source value)`` when decided: while
    both are still the same, the field is settled.
    """

    serial_number: str
    values: Mapping[str, object]
    written: Mapping[str, object] = _EMPTY
    ownership: Ownership = "unmanaged"
    kept: Mapping[str, tuple[object, object]] = _EMPTY


class Tombstone(NamedTuple):
    """An owned device no source wants: since when, and for how many runs."""

    first_missing: datetime
    runs_missing: int


class Candidate(NamedTuple):
    """Everything about one serial (already normalised) that the planner needs.

    ``records``: every source's current record(s) for the serial, wanted or not; two
    from the same source are a collision.
    """

    serial_number: str
    records: Sequence[DeviceRecord] = ()
    mirror: MirrorEntry | None = None
    tombstone: Tombstone | None = None


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """A device type as learned from the API (``manufacturer`` is detail-only)."""

    name: str | None = None
    model: str | None = None
    manufacturer: str | None = None


@dataclass(frozen=True, slots=True)
class OrgInfo:
    """An organization as learned from the API (``code`` is detail-only)."""

    name: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The id <-> name catalogue learned from the API's expanded objects."""

    types: Mapping[int, TypeInfo] = field(default_factory=dict)
    organizations: Mapping[int, OrgInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlanContext:
    """The run's facts: the time (the engine has no clock of its own), the number of
    devices syncd owns in the whole inventory (for the delete gate), per source
    ``(previous run's record count or None, this run's count)`` for the volume gate,
    and ``owned_baseline``: how many owned devices the inventory listed when a plan was
    last let through (``None`` before the first), for the listing gate.

    ``now`` must be timezone-aware; a naive tombstone time is read as UTC (SQLite
    drops the zone).
    """

    now: datetime
    owned_total: int = 0
    source_counts: Mapping[str, tuple[int | None, int]] = field(default_factory=dict)
    run_id: str | None = None
    owned_baseline: int | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("PlanContext.now must be timezone-aware")


class SettleField(NamedTuple):
    """One managed field, as the store's set-based "unchanged" test reads it
    (``engine.settle_fields``): a serial whose every such field is settled gets no
    operation from the engine, so the store need not load it as a candidate.

    ``position``: the field's place in a record's payload (``RECORD_FIELDS`` order);
    ``api``: its name in the mirror's values; ``detail_only``: the last written value
    stands for an absent one; ``empty_is_nothing``: a source's ``""`` says nothing;
    ``empty_clears``: a source's ``""`` means empty and is written as ``null`` (kept
    as given otherwise); ``resolve``: for a mapped field, a source's text -> the id it
    stands for (raises ``ValueError`` when there is none).
    """

    position: int
    api: str
    detail_only: bool
    empty_is_nothing: bool
    empty_clears: bool
    resolve: Callable[[str], object] | None


class FieldChange(NamedTuple):
    """One field's change, in API terms. ``before`` is the inventory value (``None``
    on create); ``before_known`` is False when the inventory value was never seen
    (a detail-only field syncd has not written), so ``before`` means nothing.
    ``after`` ``None`` clears the field (send JSON ``null``).
    """

    before: object
    after: object
    before_known: bool = True


class Operation(NamedTuple):
    """One thing the plan does or reports for one serial.

    ``changes`` is keyed by API field name: a create carries its whole body (each
    ``before=None``), an update or adopt only the changed fields (a PATCH), a
    conflict the fields it would have changed (``before`` = the inventory's value,
    which is kept), a delete nothing. ``sources``/``origins`` say which records the
    values or the problem came from.
    """

    kind: OperationKind
    serial_number: str
    changes: Mapping[str, FieldChange] = _EMPTY
    reason: str = ""
    sources: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()

    @property
    def is_write(self) -> bool:
        """True for operations that change the inventory or syncd's ownership."""
        return self.kind in WRITE_KINDS

    def body(self) -> dict[str, object]:
        """The request body: create -> POST body (with the serial), update/adopt -> PATCH."""
        out = {name: change.after for name, change in self.changes.items()}
        if self.kind == "create":
            return {"serial_number": self.serial_number, **out}
        return out


@dataclass(slots=True)
class Plan:
    """The planner's answer.

    ``operations`` are sorted by serial, then by ``OPERATION_KINDS``. A held plan
    still lists every operation: the store records them as waiting for approval.
    ``tombstones`` holds only what changed (``None``: clear the serial's tombstone).
    ``counts`` has one entry per operation kind plus ``candidates``, ``unchanged``
    (wanted, owned and already equal), ``orphans_waiting`` (grace not over),
    ``orphans_kept`` (deletes disabled) and ``orphans_unmanaged`` (not syncd's to
    delete).
    """

    operations: list[Operation]
    held: bool = False
    hold_reasons: list[str] = field(default_factory=list)
    tombstones: dict[str, Tombstone | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def of_kind(self, kind: OperationKind) -> list[Operation]:
        """The operations of one kind, in plan order."""
        return [op for op in self.operations if op.kind == kind]

    def writes(self) -> list[Operation]:
        """The operations that change the inventory (create, adopt, update, delete)."""
        return [op for op in self.operations if op.kind in WRITE_KINDS]
