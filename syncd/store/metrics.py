"""What ``/metrics`` reads from the store: the samples processes add up, and the figures
counted from the store's own rows at scrape time.

- **Samples** (``metric_sample``): counters and histogram buckets measured where they
  happen (API requests, rate-limiter waits, ``syncd.metrics``), each process adding its
  increments since its last flush. Rows are written in key order, so two flushing
  processes cannot deadlock on PostgreSQL.
- **Figures**: runs by connector and status, changes by operation and status, the
  oldest change still on its way, and drift, each one ``SELECT`` over the tables. They
  are the store's own truth, so every process's work shows, whichever machine did it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from syncd.store.db import Database, upsert
from syncd.store.tables import (
    CHANGE,
    DESIRED,
    METRIC_SAMPLE,
    MIRROR,
    SOURCE_RECORD,
    SYNC_RUN,
    TOMBSTONE,
)

#: Change statuses of a change still on its way to the API (the outbox's depth).
WAITING = ("pending", "dispatched", "applying")
#: The connector label of a run recorded before runs named their connector.
UNKNOWN_CONNECTOR = "(unknown)"

SampleKey = tuple[str, str]


def add_samples(db: Database, samples: Mapping[SampleKey, float], now: datetime) -> None:
    """Add ``samples`` (``(name, labels) -> increment``) to the stored sums."""
    if not samples:
        return
    rows = [
        {"name": name, "labels": labels, "value": float(value), "updated_at": now}
        for (name, labels), value in sorted(samples.items())
    ]
    stmt = upsert(db.dialect, METRIC_SAMPLE)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name", "labels"],
        set_={
            "value": METRIC_SAMPLE.c.value + stmt.excluded.value,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    with db.write() as conn:
        for row in rows:  # one at a time, in key order: no deadlock between two flushers
            conn.execute(stmt, row)


def samples(db: Database) -> dict[SampleKey, float]:
    """Every stored sum."""
    with db.read() as conn:
        rows = conn.execute(
            sa.select(METRIC_SAMPLE.c.name, METRIC_SAMPLE.c.labels, METRIC_SAMPLE.c.value)
        )
        return {(name, labels): float(value) for name, labels, value in rows}


@dataclass(slots=True)
class Figures:
    """What the store's rows say now (see the module)."""

    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    changes: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_waiting: datetime | None = None
    drift: dict[str, int] = field(default_factory=dict)


def figures(db: Database) -> Figures:
    """Count runs, changes and drift (one read transaction, so they agree)."""
    with db.read() as conn:
        connector = sa.func.coalesce(SYNC_RUN.c.connector, UNKNOWN_CONNECTOR)
        runs = conn.execute(
            sa.select(connector, SYNC_RUN.c.status, sa.func.count()).group_by(
                connector, SYNC_RUN.c.status
            )
        )
        changes = conn.execute(  # in the order of ix_change_status_operation: no sort
            sa.select(CHANGE.c.operation, CHANGE.c.status, sa.func.count()).group_by(
                CHANGE.c.status, CHANGE.c.operation
            )
        )
        oldest = conn.execute(
            sa.select(sa.func.min(CHANGE.c.created_at)).where(CHANGE.c.status.in_(WAITING))
        ).scalar()
        return Figures(
            runs={(str(name), status): int(n) for name, status, n in runs},
            changes={(operation, status): int(n) for operation, status, n in changes},
            oldest_waiting=oldest,  # min() keeps the column's type: an aware datetime
            drift={kind: int(conn.execute(query).scalar_one()) for kind, query in _drift()},
        )


def _drift() -> list[tuple[str, sa.Select[Any]]]:
    """The drift counts, each a ``SELECT count``.

    - ``missing``: devices a source wants that the inventory does not hold (a create
      that failed or waits, a row the mapping refused);
    - ``orphans``: devices syncd owns that no source wants, waiting out their grace;
    - ``conflicts``: devices whose latest change is a conflict (a hand edit syncd
      reported and has not written over);
    - ``unplanned``: devices whose sources or inventory values changed since they were
      last planned (what the next run plans; a held plan keeps its devices here).
    """
    present = (
        sa.select(MIRROR.c.serial_number)
        .where(MIRROR.c.serial_number == SOURCE_RECORD.c.serial_number, MIRROR.c.present)
        .exists()
    )
    missing = sa.select(sa.func.count(sa.distinct(SOURCE_RECORD.c.serial_number))).where(
        SOURCE_RECORD.c.wanted, SOURCE_RECORD.c.action == "upsert", ~present
    )
    orphans = sa.select(sa.func.count()).select_from(TOMBSTONE)
    later = CHANGE.alias("later")
    newer = (
        sa.select(later.c.id)
        .where(later.c.serial_number == CHANGE.c.serial_number, later.c.id > CHANGE.c.id)
        .exists()
    )
    conflicts = sa.select(sa.func.count()).where(  # reported kinds are skipped at once
        CHANGE.c.status == "skipped", CHANGE.c.operation == "conflict", ~newer
    )
    changed = sa.union(
        sa.select(DESIRED.c.serial_number).where(DESIRED.c.sources_hash != DESIRED.c.synced_hash),
        sa.select(MIRROR.c.serial_number).where(
            MIRROR.c.values_hash != MIRROR.c.synced_values_hash
        ),
    ).subquery()
    unplanned = sa.select(sa.func.count()).select_from(changed)
    return [
        ("missing", missing),
        ("orphans", orphans),
        ("conflicts", conflicts),
        ("unplanned", unplanned),
    ]
