"""What the store hands back: plain frozen dataclasses, no ORM objects."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from syncd.engine import FieldChange, Operation, OperationKind
from syncd.records import DETAIL_ONLY

BatchMode = Literal["snapshot", "delta"]
ChangeStatus = Literal["pending", "held", "dispatched", "applying", "applied", "failed", "skipped"]
RunStatus = Literal[
    "planning",
    "held",
    "applying",
    "done",
    "failed",
    "discarded",
    "interrupted",
    "skipped",
    "idle",
]

#: Change statuses that are final: nothing will happen to the change any more.
FINAL_STATUSES: frozenset[str] = frozenset({"applied", "failed", "skipped"})
#: Operation kinds that are only reported: their change rows are ``skipped`` at once.
REPORT_KINDS: frozenset[str] = frozenset({"conflict", "reject", "skip"})


def part_hash(values: dict[str, Any]) -> str:
    """16 hex digits over ``values`` (compact JSON, sorted keys)."""
    encoded = orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(encoded, digest_size=8).hexdigest()


def values_hash(values: Mapping[str, Any]) -> str:
    """The hash of a mirror entry's values (``""`` is reserved for "no values").

    Two halves: the fields the list endpoint returns, then the detail-only ones. A
    refresh from list pages compares the first half alone, so an
    unchanged device costs one hash and one compare, its stored values never decoded.
    """
    listed = {k: v for k, v in values.items() if k not in DETAIL_ONLY}
    detail = {k: v for k, v in values.items() if k in DETAIL_ONLY}
    return part_hash(listed) + part_hash(detail)


def combined_hash(keys: list[str]) -> str:
    """A serial's combined source value, from its rows' ``connector:seq:content_hash``
    keys: the key itself when there is one row (nearly every serial: no hashing, and
    SQLite computes it without calling into Python), otherwise md5 of the keys sorted
    bytewise and joined with ``|``. The SQL of both backends computes the same."""
    if len(keys) == 1:
        return keys[0]
    return hashlib.md5("|".join(sorted(keys)).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class BatchStats:
    """What storing (or refusing) one batch did.

    ``touched`` counts the serials whose combined source hash was recomputed (their
    records changed); ``collisions`` the records beyond the first for a serial.
    """

    batch_id: int
    connector: str
    mode: BatchMode
    accepted: bool
    reason: str = ""
    records: int = 0
    rejects: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    touched: int = 0
    collisions: int = 0


@dataclass(frozen=True, slots=True)
class MirrorStats:
    """What one mirror refresh did."""

    listed: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    gone: int = 0


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One ``change`` row: a planned operation and what became of it.

    ``changes`` maps each API field to ``{"before", "after", "before_known"}``;
    ``response`` is a short summary of the API's answer (status code, detail), never
    headers.
    """

    id: int
    run_id: int
    serial_number: str
    operation: OperationKind
    changes: Mapping[str, Mapping[str, Any]]
    reason: str
    sources: tuple[str, ...]
    origins: tuple[str, ...]
    status: ChangeStatus
    attempts: int
    response: Mapping[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    applied_at: datetime | None
    claimed_by: str | None = None
    lease_until: datetime | None = None

    def to_operation(self) -> Operation:
        """The engine's ``Operation`` this row records (for the apply step)."""
        return Operation(
            kind=self.operation,
            serial_number=self.serial_number,
            changes={
                name: FieldChange(
                    before=change.get("before"),
                    after=change.get("after"),
                    before_known=bool(change.get("before_known", True)),
                )
                for name, change in self.changes.items()
            },
            reason=self.reason,
            sources=self.sources,
            origins=self.origins,
        )

    def body(self) -> dict[str, object]:
        """The request body: create -> POST body (with the serial), update/adopt -> PATCH."""
        return self.to_operation().body()


@dataclass(frozen=True, slots=True)
class RunRow:
    """One ``sync_run`` row."""

    id: int
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    status: RunStatus
    policy_fingerprint: str
    summary: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class RejectEntry:
    """One ``reject`` row: a source row that could not be used."""

    id: int
    run_id: int | None
    batch_id: int | None
    source: str
    location: str
    reason: str
    serial_number: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One ``source_batch`` row."""

    id: int
    connector: str
    origin: str
    mode: BatchMode
    run_id: int | None
    received_at: datetime
    records: int
    rejects: int
    accepted: bool
    reason: str
    inserted: int
    updated: int
    removed: int
    #: Where the batch's data lies now (a CSV file in ``processed/`` or ``failed/``).
    stored_at: str | None = None
