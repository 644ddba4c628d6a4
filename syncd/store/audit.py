"""The audit queries the faces share: runs, changes, rejects, open conflicts and drift.

Listings are newest first and paged by id: a page is the rows with ``id < before``
(the smallest id of the previous page), so a page is as cheap as the first one and a
row written meanwhile never shifts the next page. Each filter narrows with AND; a
filter left ``None`` (or empty) does not narrow.

A change's ``sources`` is a JSON list; "changes asked for by source X" is answered
with the backend's JSON functions (``json_each`` on SQLite, ``@>`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from syncd.store.db import Database, upsert
from syncd.store.outbox import change_from_row, run_from_row
from syncd.store.rows import BatchEntry, ChangeRow, RejectEntry, RunRow
from syncd.store.tables import (
    CHANGE,
    DESIRED,
    KEPT_VALUE,
    MIRROR,
    OPEN_CONFLICT,
    REJECT,
    SOURCE_BATCH,
    SOURCE_RECORD,
    SYNC_RUN,
    TOMBSTONE,
)


@dataclass(frozen=True, slots=True)
class ChangeQuery:
    """Which changes: of one run, one serial, asked for by one source, of these
    operations or statuses, created in ``[since, until)``."""

    run_id: int | None = None
    serial: str | None = None
    source: str | None = None
    operations: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RejectQuery:
    """Which rejects: of one run, one serial, one source, recorded in ``[since, until)``."""

    run_id: int | None = None
    serial: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs: in these statuses, with one of these triggers, started in
    ``[since, until)``; ``idle`` polls (a schedule that found nothing) only if asked."""

    statuses: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    idle: bool = False


@dataclass(frozen=True, slots=True)
class RejectPlace:
    """A reject with where its batch's data lies now (``stored_at``: a CSV file moved to
    ``processed/`` or ``failed/``; ``None`` when the source keeps nothing, or before
    this was recorded) and the batch's origin (the location's prefix)."""

    reject: RejectEntry
    origin: str | None
    stored_at: str | None


@dataclass(frozen=True, slots=True)
class ConflictRow:
    """One ``open_conflict`` row (``field`` ``""``: the whole serial)."""

    serial_number: str
    field: str
    inventory_value: Any
    source_value: Any
    sources: tuple[str, ...]
    origins: tuple[str, ...]
    reason: str
    run_id: int
    change_id: int | None
    first_seen_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class KeptRow:
    """One ``kept_value`` row: a conflict resolved by keeping the inventory's value."""

    serial_number: str
    field: str
    inventory_value: Any
    source_value: Any
    decided_by: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class MissingRow:
    """A serial a source wants that the inventory does not hold (as last listed), with
    the source that lists it and the newest change planned for it (``None``: none yet)."""

    serial_number: str
    source: str
    origin: str
    last_change: ChangeRow | None


@dataclass(frozen=True, slots=True)
class OrphanRow:
    """An owned device no source wants, waiting out its grace before it is deleted."""

    serial_number: str
    ownership: str
    first_missing: datetime
    runs_missing: int


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    where = []
    if since is not None:
        where.append(column >= since)
    if until is not None:
        where.append(column < until)
    return where


def _lists_source(dialect: str, source: str) -> Any:
    """``change.sources`` (a JSON list) holds ``source``."""
    if dialect == "postgresql":
        return sa.text("CAST(change.sources AS JSONB) @> jsonb_build_array(CAST(:src AS TEXT))")
    return sa.text("EXISTS (SELECT 1 FROM json_each(change.sources) WHERE value = :src)")


def changes(db: Database, query: ChangeQuery, *, limit: int, before: int | None) -> list[ChangeRow]:
    """Changes matching ``query``, newest first, ``limit`` of them below id ``before``."""
    where: list[Any] = []
    params: dict[str, Any] = {}
    if query.run_id is not None:
        where.append(CHANGE.c.run_id == query.run_id)
    if query.serial is not None:
        where.append(CHANGE.c.serial_number == query.serial)
    if query.operations:
        where.append(CHANGE.c.operation.in_(query.operations))
    if query.statuses:
        where.append(CHANGE.c.status.in_(query.statuses))
    if query.source is not None:
        where.append(_lists_source(db.dialect, query.source))
        params["src"] = query.source
    where += _window(CHANGE.c.created_at, query.since, query.until)
    if before is not None:
        where.append(CHANGE.c.id < before)
    select = sa.select(CHANGE).where(*where).order_by(CHANGE.c.id.desc()).limit(limit)
    with db.read() as conn:
        rows = conn.execute(select, params).mappings().all()
    return [change_from_row(row) for row in rows]


def run_triggers(db: Database, run_ids: Iterable[int]) -> dict[int, str]:
    """The trigger of each of these runs (``schedule``, ``cli``, ``http``, ``webhook``,
    ``revert``...: what made the run)."""
    wanted = sorted(set(run_ids))
    if not wanted:
        return {}
    with db.read() as conn:
        rows = conn.execute(
            sa.select(SYNC_RUN.c.id, SYNC_RUN.c.trigger).where(SYNC_RUN.c.id.in_(wanted))
        )
        return {int(run_id): str(trigger) for run_id, trigger in rows}


def rejects(
    db: Database, query: RejectQuery, *, limit: int, before: int | None
) -> list[RejectPlace]:
    """Rejects matching ``query``, newest first, with where their file lies now."""
    where: list[Any] = []
    if query.run_id is not None:
        where.append(REJECT.c.run_id == query.run_id)
    if query.serial is not None:
        where.append(REJECT.c.serial_number == query.serial)
    if query.source is not None:
        where.append(REJECT.c.source == query.source)
    where += _window(REJECT.c.created_at, query.since, query.until)
    if before is not None:
        where.append(REJECT.c.id < before)
    select = (
        sa.select(REJECT, SOURCE_BATCH.c.origin, SOURCE_BATCH.c.stored_at)
        .select_from(REJECT.outerjoin(SOURCE_BATCH, SOURCE_BATCH.c.id == REJECT.c.batch_id))
        .where(*where)
        .order_by(REJECT.c.id.desc())
        .limit(limit)
    )
    fields = [column.name for column in REJECT.columns]
    with db.read() as conn:
        rows = conn.execute(select).mappings().all()
    return [
        RejectPlace(
            reject=RejectEntry(**{name: row[name] for name in fields}),
            origin=row["origin"],
            stored_at=row["stored_at"],
        )
        for row in rows
    ]


def runs(db: Database, query: RunQuery, *, limit: int, before: int | None) -> list[RunRow]:
    """Runs matching ``query``, newest first."""
    where: list[Any] = []
    if query.statuses:
        where.append(SYNC_RUN.c.status.in_(query.statuses))
    elif not query.idle:
        where.append(SYNC_RUN.c.status != "idle")
    if query.triggers:
        where.append(SYNC_RUN.c.trigger.in_(query.triggers))
    where += _window(SYNC_RUN.c.started_at, query.since, query.until)
    if before is not None:
        where.append(SYNC_RUN.c.id < before)
    select = sa.select(SYNC_RUN).where(*where).order_by(SYNC_RUN.c.id.desc()).limit(limit)
    with db.read() as conn:
        return [run_from_row(row) for row in conn.execute(select).mappings().all()]


def batches_of_run(db: Database, run_id: int) -> list[BatchEntry]:
    """The source batches a run read, in the order it read them."""
    select = (
        sa.select(SOURCE_BATCH).where(SOURCE_BATCH.c.run_id == run_id).order_by(SOURCE_BATCH.c.id)
    )
    with db.read() as conn:
        return [BatchEntry(**dict(row)) for row in conn.execute(select).mappings().all()]


def change_kinds(db: Database, run_id: int) -> dict[str, int]:
    """How many of the run's changes are of each operation."""
    with db.read() as conn:
        rows = conn.execute(
            sa.select(CHANGE.c.operation, sa.func.count())
            .where(CHANGE.c.run_id == run_id)
            .group_by(CHANGE.c.operation)
        )
        return {str(operation): int(n) for operation, n in rows}


def note_batch_place(db: Database, batch_id: int, where: str) -> None:
    """Record where a batch's data lies now that the source set it down."""
    with db.write() as conn:
        conn.execute(
            SOURCE_BATCH.update().where(SOURCE_BATCH.c.id == batch_id).values(stored_at=where)
        )


# -- conflicts -------------------------------------------------------------------------------


def _conflict(row: RowMapping) -> ConflictRow:
    return ConflictRow(
        serial_number=row["serial_number"],
        field=row["field"],
        inventory_value=row["inventory_value"],
        source_value=row["source_value"],
        sources=tuple(row["sources"] or ()),
        origins=tuple(row["origins"] or ()),
        reason=row["reason"],
        run_id=int(row["run_id"]),
        change_id=None if row["change_id"] is None else int(row["change_id"]),
        first_seen_at=row["first_seen_at"],
        last_seen_at=row["last_seen_at"],
    )


def open_conflicts(
    db: Database, *, serial: str | None = None, limit: int | None = None
) -> list[ConflictRow]:
    """Open conflicts by serial and field (of one serial, if given)."""
    select = sa.select(OPEN_CONFLICT).order_by(OPEN_CONFLICT.c.serial_number, OPEN_CONFLICT.c.field)
    if serial is not None:
        select = select.where(OPEN_CONFLICT.c.serial_number == serial)
    if limit is not None:
        select = select.limit(limit)
    with db.read() as conn:
        return [_conflict(row) for row in conn.execute(select).mappings().all()]


def count_open_conflicts(db: Database, *, besides_run: int | None = None) -> int:
    """How many fields are in open conflict; ``besides_run``: not counting the serials
    that run is planning (a dry run counts its own conflicts instead)."""
    select = sa.select(sa.func.count()).select_from(OPEN_CONFLICT)
    if besides_run is not None:
        select = select.where(
            sa.text(
                "serial_number NOT IN "
                "(SELECT serial_number FROM plan_candidate WHERE run_id = :run_id)"
            ).bindparams(run_id=besides_run)
        )
    with db.read() as conn:
        return int(conn.execute(select).scalar_one())


def take_conflict(conn: Connection, serial: str, field: str) -> ConflictRow | None:
    """Remove one open conflict (a person resolved it) and return it; ``None`` if there
    is none (in the caller's transaction)."""
    row = (
        conn.execute(
            sa.select(OPEN_CONFLICT).where(
                OPEN_CONFLICT.c.serial_number == serial, OPEN_CONFLICT.c.field == field
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    conn.execute(
        OPEN_CONFLICT.delete().where(
            OPEN_CONFLICT.c.serial_number == serial, OPEN_CONFLICT.c.field == field
        )
    )
    return _conflict(row)


def keep_value(
    db: Database, conflict: ConflictRow, *, by: str, now: datetime, dialect: str
) -> None:
    """Settle ``conflict`` by keeping the inventory's value (``KeptValue``), and drop it
    from the open conflicts, in one transaction."""
    stmt = upsert(dialect, KEPT_VALUE).values(
        serial_number=conflict.serial_number,
        field=conflict.field,
        inventory_value=conflict.inventory_value,
        source_value=conflict.source_value,
        decided_by=by,
        decided_at=now,
    )
    with db.write() as conn:
        take_conflict(conn, conflict.serial_number, conflict.field)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["serial_number", "field"],
                set_={
                    "inventory_value": stmt.excluded.inventory_value,
                    "source_value": stmt.excluded.source_value,
                    "decided_by": stmt.excluded.decided_by,
                    "decided_at": stmt.excluded.decided_at,
                },
            )
        )


def drop_kept(db: Database, serial: str, field: str) -> bool:
    """Forget a decision to keep the inventory's value; True if there was one."""
    with db.write() as conn:
        gone = conn.execute(
            KEPT_VALUE.delete().where(
                KEPT_VALUE.c.serial_number == serial, KEPT_VALUE.c.field == field
            )
        ).rowcount
    return bool(gone)


def kept_values(db: Database, *, serial: str | None = None) -> list[KeptRow]:
    """The standing decisions to keep the inventory's value (of one serial, if given)."""
    select = sa.select(KEPT_VALUE).order_by(KEPT_VALUE.c.serial_number, KEPT_VALUE.c.field)
    if serial is not None:
        select = select.where(KEPT_VALUE.c.serial_number == serial)
    with db.read() as conn:
        return [
            KeptRow(
                serial_number=row["serial_number"],
                field=row["field"],
                inventory_value=row["inventory_value"],
                source_value=row["source_value"],
                decided_by=row["decided_by"],
                decided_at=row["decided_at"],
            )
            for row in conn.execute(select).mappings().all()
        ]


# -- drift -----------------------------------------------------------------------------------

_MISSING = (
    "FROM source_record r WHERE r.wanted AND r.action = 'upsert' AND NOT EXISTS "
    "(SELECT 1 FROM mirror m WHERE m.serial_number = r.serial_number AND m.present)"
)


def missing(db: Database, *, limit: int) -> list[MissingRow]:
    """Serials a source wants that the inventory does not hold, by serial, each with the
    newest change planned for it (why it is not there: a reject, a refused create...)."""
    with db.read() as conn:
        found = conn.execute(
            sa.text(
                "SELECT r.serial_number, min(r.connector), min(r.origin) "
                f"{_MISSING} GROUP BY r.serial_number ORDER BY r.serial_number LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
        out = []
        for serial, source, origin in found:
            last = (
                conn.execute(
                    sa.select(CHANGE)
                    .where(CHANGE.c.serial_number == serial)
                    .order_by(CHANGE.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            out.append(
                MissingRow(
                    str(serial),
                    str(source),
                    str(origin),
                    None if last is None else change_from_row(last),
                )
            )
    return out


def count_missing(db: Database) -> int:
    """How many serials a source wants are not in the inventory (as last listed)."""
    with db.read() as conn:
        return int(
            conn.execute(sa.text(f"SELECT count(DISTINCT r.serial_number) {_MISSING}")).scalar_one()
        )


def orphans(db: Database, *, limit: int | None = None) -> list[OrphanRow]:
    """Owned devices still in the inventory that no source wants (their tombstones),
    longest missing first."""
    select = (
        sa.select(
            TOMBSTONE.c.serial_number,
            MIRROR.c.ownership,
            TOMBSTONE.c.first_missing,
            TOMBSTONE.c.runs_missing,
        )
        .select_from(TOMBSTONE.join(MIRROR, MIRROR.c.serial_number == TOMBSTONE.c.serial_number))
        .where(MIRROR.c.present, MIRROR.c.ownership != "unmanaged")
        .order_by(TOMBSTONE.c.first_missing, TOMBSTONE.c.serial_number)
    )
    if limit is not None:
        select = select.limit(limit)
    with db.read() as conn:
        return [
            OrphanRow(str(serial), str(ownership), first, int(runs))
            for serial, ownership, first, runs in conn.execute(select)
        ]


def source_rows(db: Database, serial: str) -> list[dict[str, Any]]:
    """Every source's stored row for ``serial`` (connector, origin, wanted, action, when)."""
    select = (
        sa.select(
            SOURCE_RECORD.c.connector,
            SOURCE_RECORD.c.origin,
            SOURCE_RECORD.c.wanted,
            SOURCE_RECORD.c.action,
            SOURCE_RECORD.c.updated_at,
        )
        .where(SOURCE_RECORD.c.serial_number == serial)
        .order_by(SOURCE_RECORD.c.connector, SOURCE_RECORD.c.seq)
    )
    with db.read() as conn:
        return [dict(row) for row in conn.execute(select).mappings().all()]


def mirror_row(db: Database, serial: str) -> dict[str, Any] | None:
    """The mirror's entry for ``serial`` (values as last read, what syncd wrote,
    ownership, presence), or ``None``."""
    with db.read() as conn:
        row = (
            conn.execute(sa.select(MIRROR).where(MIRROR.c.serial_number == serial))
            .mappings()
            .first()
        )
    if row is None:
        return None
    return dict(row)


def planned_as_stored(db: Database, serial: str) -> bool:
    """Whether the last released plan of ``serial`` saw its sources as they are stored
    now (their combined hash is the one planned)."""
    with db.read() as conn:
        row = conn.execute(
            sa.select(DESIRED.c.sources_hash, DESIRED.c.synced_hash).where(
                DESIRED.c.serial_number == serial
            )
        ).first()
    return row is not None and row.sources_hash == row.synced_hash
