"""Storing a connector's batch: stream into a staging table, then merge in one go.

A batch's items are streamed in chunks into temporary tables on a connection the
``StagedBatch`` holds (executemany on SQLite, ``COPY`` on PostgreSQL), so a batch
of a million records is never in memory at once and other writers are not blocked
while the source is read. Nothing is visible until ``commit(accepted=True)``, which
merges the staged rows into ``source_record`` with set-based SQL in one
transaction:

- ``snapshot``: the connector's rows become exactly the batch (rows not in it are
  removed), except that a serial the batch names only in a reject keeps its stored
  rows: a row refused for one bad cell says the device is still there, so it must
  never read as an absence (which would make the device an orphan, then a delete);
  ``delta``: only the serials in the batch are replaced (a delete record is kept, as
  ``wanted=False``, so the engine sees it).
- Rows whose content hash is unchanged are not rewritten: a row that only moved
  (to another line, another file) keeps the origin and batch its content was read
  from, which still hold it. A snapshot does not even stage them (``known``): its
  rows are looked up in the connector's stored hashes as they stream in.
- The ``desired`` row of every serial whose rows changed is recomputed; no other.

A refused batch (``commit(accepted=False)``) leaves only its audit trail: the
``source_batch`` row with the reason, and its rejects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from types import TracebackType
from typing import Any, Final, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.errors import StateError
from syncd.records import (
    DeviceRecord,
    RecordBlock,
    Reject,
    content_hash,
    content_hashes,
    record_values,
)
from syncd.store.db import (
    Database,
    bulk_insert,
    digest_agg_sql,
    multi_row_digest_sql,
    upsert,
)
from syncd.store.known import StoredHashes, last_batch
from syncd.store.rows import BatchMode, BatchStats
from syncd.store.tables import SOURCE_BATCH, SOURCE_STATE
from syncd.store.types import UTCDateTime

#: Records per executemany / COPY chunk.
CHUNK: Final = 5000

_STAGE = "syncd_stage"
_STAGE_REJECT = "syncd_stage_reject"
_TEMP_TABLES = (
    _STAGE,
    _STAGE_REJECT,
    "syncd_stage_final",
    "syncd_diff",
    "syncd_removed",
    "syncd_touched",
    "syncd_backfill",
    "syncd_unmatched",
)
UNSET: Any = object()


class ConcurrentBatchError(StateError):
    """Another batch of the same source was stored while this snapshot was read: its
    unchanged rows were judged against rows that are no longer there. Nothing of this
    batch is stored; reading the source again stores it."""


# "WHERE true": SQLite's parser needs it between a join and ON CONFLICT.
_DESIRED = (
    "INSERT INTO desired (serial_number, sources_hash, record_count, synced_hash, "
    "updated_at) SELECT t.serial_number, COALESCE(a.h, ''), COALESCE(a.n, 0), '', :now "
    "FROM syncd_touched t LEFT JOIN (SELECT r.serial_number AS serial_number, "
    "{digest} AS h, count(*) AS n FROM source_record r WHERE r.serial_number IN "
    "(SELECT serial_number FROM syncd_touched) GROUP BY r.serial_number) a "
    "ON a.serial_number = t.serial_number WHERE true "
    "ON CONFLICT (serial_number) DO UPDATE SET sources_hash = excluded.sources_hash, "
    "record_count = excluded.record_count, updated_at = excluded.updated_at"
)
# SQLite: the serials with several rows, whose combined value needs the Python md5.
_DESIRED_MULTI = (
    "UPDATE desired SET sources_hash = (SELECT {digest} FROM source_record r "
    "WHERE r.serial_number = desired.serial_number) "
    "WHERE record_count > 1 AND serial_number IN (SELECT serial_number FROM syncd_touched)"
)
# A snapshot's absences (see ``known``): a serial whose first row nobody listed as it
# is (``syncd_unmatched``), with no staged row and no reject naming it, ...
_ABSENT_FIRST = (
    "INSERT INTO syncd_removed (serial_number, seq) SELECT u.serial_number, 0 "
    "FROM syncd_unmatched u "
    "WHERE NOT EXISTS (SELECT 1 FROM syncd_stage_final f WHERE f.serial_number = u.serial_number) "
    "AND NOT EXISTS (SELECT 1 FROM syncd_stage_reject j WHERE j.serial_number = u.serial_number)"
)
# ... and a later row of a serial listed fewer times than that (a serial with no staged
# row is listed once if its first row matched, else never: a reject then keeps it).
_ABSENT_OTHER = (
    "INSERT INTO syncd_removed (serial_number, seq) SELECT r.serial_number, r.seq "
    "FROM source_record r WHERE r.connector = :connector AND r.seq > 0 "
    "AND (SELECT count(*) FROM syncd_stage_final f "
    "WHERE f.serial_number = r.serial_number) <= r.seq "
    "AND NOT (EXISTS (SELECT 1 FROM syncd_stage_reject j WHERE j.serial_number = r.serial_number) "
    "AND NOT EXISTS (SELECT 1 FROM syncd_stage_final f WHERE f.serial_number = r.serial_number) "
    "AND EXISTS (SELECT 1 FROM syncd_unmatched u WHERE u.serial_number = r.serial_number))"
)
# A delta removes only the surplus rows of the serials it lists.
_REMOVED_DELTA = (
    "INSERT INTO syncd_removed (serial_number, seq) SELECT r.serial_number, r.seq "
    "FROM source_record r WHERE r.connector = :connector "
    "AND r.serial_number IN (SELECT serial_number FROM syncd_stage_final) "
    "AND NOT EXISTS (SELECT 1 FROM syncd_stage_final s "
    "WHERE s.serial_number = r.serial_number AND s.seq = r.seq)"
)


def record_row(record: DeviceRecord) -> tuple[str, str, str, str, bool, str]:
    """``(serial, origin, content_hash, payload JSON, wanted, action)`` for staging.

    The payload is encoded once (``DeviceRecord.payload``) and the hash taken from those
    bytes. A delete record is stored as ``wanted=False`` whatever it said, so that an
    absence and a removal look alike to the engine.
    """
    wanted = record.wanted and record.action != "delete"
    payload = record.payload()
    digest = content_hash(record.serial_number, wanted, record.action, payload)
    return (record.serial_number, record.origin, digest, payload.decode(), wanted, record.action)


def record_from_row(
    connector: str, serial: str, origin: str, payload: Any, *, wanted: bool, action: str
) -> DeviceRecord:
    """Rebuild the ``DeviceRecord`` a ``source_record`` row stores."""
    fields, extra = record_values(payload)
    return DeviceRecord(
        source=connector,
        serial_number=serial,
        origin=origin,
        wanted=bool(wanted),
        action="delete" if action == "delete" else "upsert",
        extra=extra,
        **fields,  # type: ignore[arg-type]
    )


def _text(sql: str, *stamps: str) -> sa.TextClause:
    clause = sa.text(sql)
    if stamps:
        clause = clause.bindparams(*(sa.bindparam(n, type_=UTCDateTime()) for n in stamps))
    return clause


class StagedBatch:
    """One batch on its way into the store; use as a context manager.

    ``add()`` the items (records and rejects, any number of calls), then
    ``commit(accepted=...)`` once the source's verdict is known. Leaving the
    ``with`` block without committing (an exception) stores nothing at all.
    """

    def __init__(
        self,
        db: Database,
        connector: str,
        *,
        mode: BatchMode,
        origin: str,
        run_id: int | None = None,
    ) -> None:
        if mode not in ("snapshot", "delta"):
            raise ValueError(f"batch mode must be 'snapshot' or 'delta', not {mode!r}")
        self._db = db
        self.connector = connector
        self.mode: BatchMode = mode
        self.origin = origin
        self.run_id = run_id
        self.records = 0
        self.rejects = 0
        self._done = False
        #: A snapshot's stored hashes (read at its first records) and what it matched.
        self._stored: StoredHashes | None = None
        self._conn: Connection | None = db.connect()
        try:
            self._create_stage()
        except BaseException:
            self.close()
            raise

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drop the staging tables and give the connection back (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        own = self._db.owns(conn)
        try:
            if own and conn.in_transaction():
                conn.rollback()
            with self._db.begin(conn):
                for name in _TEMP_TABLES:
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
            self._db.shrink(conn)
        except sa.exc.DBAPIError:
            if own:
                conn.invalidate()  # a broken connection must not go back with temp tables
            else:
                raise
        finally:
            self._db.release(conn)

    @property
    def _connection(self) -> Connection:
        if self._conn is None or self._done:
            raise RuntimeError("this batch is already committed or closed")
        return self._conn

    # -- staging ---------------------------------------------------------------------------

    def _create_stage(self) -> None:
        conn = self._connection
        payload = "JSON" if self._db.dialect == "postgresql" else "TEXT"
        with self._db.begin(conn):
            for name in _TEMP_TABLES:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {_STAGE} (ord INTEGER NOT NULL, "
                "serial_number TEXT NOT NULL, origin TEXT NOT NULL, content_hash TEXT NOT NULL, "
                f"payload {payload} NOT NULL, wanted BOOLEAN NOT NULL, action TEXT NOT NULL)"
            )
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE {_STAGE_REJECT} (source TEXT NOT NULL, "
                "location TEXT NOT NULL, reason TEXT NOT NULL, serial_number TEXT)"
            )

    def add(self, items: Iterable[DeviceRecord | Reject | RecordBlock]) -> None:
        """Stage records, rejects and blocks of records, streamed: records and rejects
        are written ``CHUNK`` at a time, a block as it comes (it is a chunk already), so
        at most one chunk or one block is held."""
        records: list[tuple[Any, ...]] = []
        rejects: list[tuple[Any, ...]] = []
        for item in items:
            if type(item) is RecordBlock:
                self._write_chunk(self._unseen(records), rejects)
                records, rejects = [], []
                self._write_chunk(self._block_rows(item), [])
                continue
            if type(item) is DeviceRecord or isinstance(item, DeviceRecord):
                if item.source != self.connector:
                    raise ValueError(
                        f"record from source {item.source!r} in a batch of {self.connector!r}"
                    )
                self.records += 1
                records.append((self.records, *record_row(item)))
            elif isinstance(item, Reject):
                self.rejects += 1
                rejects.append((item.source, item.location, item.reason, item.serial_number))
            else:
                raise TypeError(f"expected DeviceRecord or Reject, got {type(item).__name__}")
            if len(records) + len(rejects) >= CHUNK:
                self._write_chunk(self._unseen(records), rejects)
                records, rejects = [], []
        self._write_chunk(self._unseen(records), rejects)

    def _stored_rows(self) -> StoredHashes | None:
        """A snapshot's stored hashes, read once, at its first records; ``None`` for a
        delta (a few records each: staging them all costs less than reading them)."""
        if self.mode != "snapshot":
            return None
        if self._stored is None:
            conn = self._connection
            with self._db.begin(conn):
                self._stored = StoredHashes.read(conn, self._db.dialect, self.connector)
        return self._stored

    def _skipped(self, serials: list[str], digests: list[str], first_ord: int) -> Any:
        """Which of these rows (``ord`` from ``first_ord`` on) the store already holds as
        they are (a snapshot's only; ``None`` for a delta)."""
        stored = self._stored_rows()
        return None if stored is None else stored.skip(serials, digests, first_ord)

    def _unseen(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The staging rows (``record_row`` with their ``ord``) not already stored."""
        if not rows:
            return rows
        skipped = self._skipped([r[1] for r in rows], [r[3] for r in rows], rows[0][0])
        if skipped is None or not skipped.any():
            return rows
        return [row for row, skip in zip(rows, skipped.tolist(), strict=True) if not skip]

    def _block_rows(self, block: RecordBlock) -> list[tuple[Any, ...]]:
        """A block's staging rows, as ``record_row`` makes each (hashes of the same bytes)."""
        if block.source != self.connector:
            raise ValueError(
                f"record from source {block.source!r} in a batch of {self.connector!r}"
            )
        wanted = [w and a != "delete" for w, a in zip(block.wanted, block.actions, strict=True)]
        digests = content_hashes(block.serials, wanted, block.actions, block.payloads)
        start = self.records + 1
        self.records += len(block)
        skipped = self._skipped(block.serials, digests, start)
        kept = (
            range(len(block))
            if skipped is None or not skipped.any()
            else (~skipped).nonzero()[0].tolist()
        )
        return [
            (
                start + i,
                block.serials[i],
                block.origins[i],
                digests[i],
                block.payloads[i].decode(),
                wanted[i],
                block.actions[i],
            )
            for i in kept
        ]

    def _write_chunk(self, records: list[tuple[Any, ...]], rejects: list[tuple[Any, ...]]) -> None:
        if not records and not rejects:
            return
        conn = self._connection
        with self._db.begin(conn):
            if self._db.dialect == "postgresql":
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    _copy(cursor, _STAGE, records)
                    _copy(cursor, _STAGE_REJECT, rejects)
                finally:
                    cursor.close()
            else:
                if records:
                    conn.exec_driver_sql("INSERT INTO syncd_stage VALUES (?,?,?,?,?,?,?)", records)
                if rejects:
                    conn.exec_driver_sql("INSERT INTO syncd_stage_reject VALUES (?,?,?,?)", rejects)

    # -- the verdict -----------------------------------------------------------------------

    def commit(
        self,
        *,
        accepted: bool,
        reason: str = "",
        watermark: Any = UNSET,
        now: datetime | None = None,
    ) -> BatchStats:
        """Store the batch (``accepted``) or record that it was refused, and why.

        ``watermark`` (JSON-able) is saved as the connector's incremental mark in the
        same transaction, only when the batch is accepted.
        """
        now = now or datetime.now(UTC)
        try:
            if accepted:
                return self._merge(reason, watermark, now)
            return self._refuse(reason, now)
        finally:
            self._done = True
            self.close()

    def discard(self, reason: str, *, now: datetime | None = None) -> BatchStats:
        """Shorthand for ``commit(accepted=False, reason=reason)``."""
        return self.commit(accepted=False, reason=reason, now=now)

    def _batch_row(self, conn: Connection, accepted: bool, reason: str, now: datetime) -> int:
        batch_id = conn.execute(
            SOURCE_BATCH.insert()
            .values(
                connector=self.connector,
                origin=self.origin,
                mode=self.mode,
                run_id=self.run_id,
                received_at=now,
                records=self.records,
                rejects=self.rejects,
                accepted=accepted,
                reason=reason,
                inserted=0,
                updated=0,
                removed=0,
            )
            .returning(SOURCE_BATCH.c.id)
        ).scalar_one()
        conn.execute(
            _text(
                "INSERT INTO reject (run_id, batch_id, source, location, reason, "
                "serial_number, created_at) SELECT :run_id, :batch_id, source, location, reason, "
                "serial_number, :now FROM syncd_stage_reject",
                "now",
            ),
            {"run_id": self.run_id, "batch_id": batch_id, "now": now},
        )
        return int(batch_id)

    def _refuse(self, reason: str, now: datetime) -> BatchStats:
        with self._db.transaction(self._connection) as conn:
            batch_id = self._batch_row(conn, False, reason, now)
        return BatchStats(
            batch_id=batch_id,
            connector=self.connector,
            mode=self.mode,
            accepted=False,
            reason=reason,
            records=self.records,
            rejects=self.rejects,
        )

    def _merge(self, reason: str, watermark: Any, now: datetime) -> BatchStats:
        conn = self._connection
        postgres = self._db.dialect == "postgresql"
        payload = "JSON" if postgres else "TEXT"
        stored = self._stored_rows()
        # Ranking the staged rows touches only temporary tables: done before the
        # write lock is taken, so other writers wait only for the merge itself.
        with self._db.begin(conn):
            if stored is not None:
                self._backfill(conn, stored)
            conn.exec_driver_sql(
                "CREATE TEMPORARY TABLE syncd_stage_final (serial_number TEXT NOT NULL, "
                "seq INTEGER NOT NULL, origin TEXT NOT NULL, content_hash TEXT NOT NULL, "
                f"payload {payload} NOT NULL, wanted BOOLEAN NOT NULL, action TEXT NOT NULL, "
                "PRIMARY KEY (serial_number, seq))"
            )
            conn.exec_driver_sql(
                "INSERT INTO syncd_stage_final SELECT serial_number, "
                "row_number() OVER (PARTITION BY serial_number ORDER BY ord) - 1, "
                "origin, content_hash, payload, wanted, action FROM syncd_stage"
            )
            for name, columns in (
                ("syncd_diff", "serial_number TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT"),
                ("syncd_removed", "serial_number TEXT NOT NULL, seq INTEGER NOT NULL"),
            ):
                conn.exec_driver_sql(
                    f"CREATE TEMPORARY TABLE {name} ({columns}, PRIMARY KEY (serial_number, seq))"
                )
            conn.exec_driver_sql(
                "CREATE TEMPORARY TABLE syncd_touched (serial_number TEXT PRIMARY KEY)"
            )
            # A snapshot keeps the rows of the serials its rejects name: looked up per row.
            conn.exec_driver_sql(
                "CREATE INDEX syncd_stage_reject_serial ON syncd_stage_reject (serial_number)"
            )
            if postgres:
                conn.exec_driver_sql("ANALYZE syncd_stage_final")
            collisions = conn.exec_driver_sql(
                "SELECT count(*) FROM syncd_stage_final WHERE seq > 0"
            ).scalar_one()
            if stored is not None:
                self._absences(conn, stored)

        with self._db.transaction(conn, lock="exclusive"):
            if stored is not None and last_batch(conn, self.connector) != stored.mark:
                raise ConcurrentBatchError(
                    f"another batch of source {self.connector!r} was stored while "
                    f"{self.origin} was read; nothing of it is stored, read it again"
                )
            batch_id = self._batch_row(conn, True, reason, now)
            counts = _merge_rows(
                conn,
                dialect=self._db.dialect,
                connector=self.connector,
                mode=self.mode,
                batch_id=batch_id,
                now=now,
            )
            conn.execute(
                SOURCE_BATCH.update()
                .where(SOURCE_BATCH.c.id == batch_id)
                .values(
                    inserted=counts["inserted"],
                    updated=counts["updated"],
                    removed=counts["removed"],
                )
            )
            self._save_state(conn, watermark, now)
        return BatchStats(
            batch_id=batch_id,
            connector=self.connector,
            mode=self.mode,
            accepted=True,
            reason=reason,
            records=self.records,
            rejects=self.rejects,
            inserted=counts["inserted"],
            updated=counts["updated"],
            unchanged=self.records - counts["inserted"] - counts["updated"],
            removed=counts["removed"],
            touched=counts["touched"],
            collisions=int(collisions),
        )

    def _backfill(self, conn: Connection, stored: StoredHashes) -> None:
        """Stage the skipped rows of the serials the snapshot lists more than once, from
        the stored rows they matched, so that ranking numbers each serial's rows."""
        staged = conn.execute(
            sa.text(
                "SELECT DISTINCT s.serial_number, r.content_hash FROM syncd_stage s "
                "JOIN source_record r ON r.connector = :connector "
                "AND r.serial_number = s.serial_number AND r.seq = 0"
            ),
            {"connector": self.connector},
        ).all()
        rows = stored.backfill((str(serial), str(digest)) for serial, digest in staged)
        if not rows:
            return
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE syncd_backfill (ord INTEGER NOT NULL, "
            "serial_number TEXT NOT NULL)"
        )
        bulk_insert(conn, "syncd_backfill", ("ord", "serial_number"), rows)
        conn.execute(
            sa.text(
                "INSERT INTO syncd_stage SELECT b.ord, r.serial_number, r.origin, "
                "r.content_hash, r.payload, r.wanted, r.action FROM syncd_backfill b "
                "JOIN source_record r ON r.connector = :connector "
                "AND r.serial_number = b.serial_number AND r.seq = 0"
            ),
            {"connector": self.connector},
        )

    def _absences(self, conn: Connection, stored: StoredHashes) -> None:
        """Fill ``syncd_removed`` with the stored rows the snapshot no longer lists."""
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE syncd_unmatched (serial_number TEXT PRIMARY KEY)"
        )
        for chunk in iter_chunks(stored.unmatched(), 50_000):
            bulk_insert(conn, "syncd_unmatched", ("serial_number",), chunk)
        if self._db.dialect == "postgresql":
            conn.exec_driver_sql("ANALYZE syncd_unmatched")
        params = {"connector": self.connector}
        conn.execute(sa.text(_ABSENT_FIRST), params)
        conn.execute(sa.text(_ABSENT_OTHER), params)

    def _save_state(self, conn: Connection, watermark: Any, now: datetime) -> None:
        values: dict[str, Any] = {"connector": self.connector, "updated_at": now}
        if self.mode == "snapshot":
            values["last_snapshot_count"] = self.records
            values["last_full_pull_at"] = now
        if watermark is not UNSET:
            values["watermark"] = watermark
        stmt = upsert(self._db.dialect, SOURCE_STATE).values(**values)
        update = {k: stmt.excluded[k] for k in values if k != "connector"}
        conn.execute(stmt.on_conflict_do_update(index_elements=["connector"], set_=update))


def _copy(cursor: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
    """``COPY`` rows into a staging table (PostgreSQL's fastest bulk path)."""
    if not rows:
        return
    columns = {
        _STAGE: "ord, serial_number, origin, content_hash, payload, wanted, action",
        _STAGE_REJECT: "source, location, reason, serial_number",
    }[table]
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _merge_rows(
    conn: Connection,
    *,
    dialect: str,
    connector: str,
    mode: BatchMode,
    batch_id: int,
    now: datetime,
) -> dict[str, int]:
    """The set-based merge of ``syncd_stage_final`` into ``source_record`` and ``desired``
    (a snapshot's ``syncd_removed`` is filled already)."""
    params: dict[str, Any] = {"connector": connector, "batch_id": batch_id, "now": now}
    run = conn.execute
    run(
        sa.text(
            "INSERT INTO syncd_diff (serial_number, seq, kind) "
            "SELECT s.serial_number, s.seq, CASE WHEN r.content_hash IS NULL THEN 'new' "
            "ELSE 'changed' END "
            "FROM syncd_stage_final s LEFT JOIN source_record r ON r.connector = :connector "
            "AND r.serial_number = s.serial_number AND r.seq = s.seq "
            "WHERE r.content_hash IS NULL OR r.content_hash <> s.content_hash"
        ),
        params,
    )
    if mode == "delta":
        run(sa.text(_REMOVED_DELTA), params)
    if dialect == "postgresql":
        for name in ("syncd_diff", "syncd_removed"):
            conn.exec_driver_sql(f"ANALYZE {name}")
    removed = run(
        sa.text(
            "DELETE FROM source_record WHERE connector = :connector "
            "AND serial_number IN (SELECT serial_number FROM syncd_removed) "
            "AND EXISTS (SELECT 1 FROM syncd_removed x "
            "WHERE x.serial_number = source_record.serial_number AND x.seq = source_record.seq)"
        ),
        params,
    ).rowcount
    run(
        _text(
            "INSERT INTO source_record (connector, serial_number, seq, origin, content_hash, "
            "payload, wanted, action, batch_id, updated_at) "
            "SELECT :connector, s.serial_number, s.seq, s.origin, s.content_hash, s.payload, "
            "s.wanted, s.action, :batch_id, :now FROM syncd_diff d JOIN syncd_stage_final s "
            "ON s.serial_number = d.serial_number AND s.seq = d.seq WHERE true "
            "ON CONFLICT (connector, serial_number, seq) DO UPDATE SET "
            "origin = excluded.origin, content_hash = excluded.content_hash, "
            "payload = excluded.payload, wanted = excluded.wanted, action = excluded.action, "
            "batch_id = excluded.batch_id, updated_at = excluded.updated_at",
            "now",
        ),
        params,
    )
    touched = run(
        sa.text(
            "INSERT INTO syncd_touched (serial_number) "
            "SELECT serial_number FROM syncd_diff UNION SELECT serial_number FROM syncd_removed"
        )
    ).rowcount
    recompute_desired(conn, dialect, now)
    kinds: dict[str, int] = dict(
        run(sa.text("SELECT kind, count(*) FROM syncd_diff GROUP BY kind")).all()
    )
    return {
        "inserted": int(kinds.get("new", 0)),
        "updated": int(kinds.get("changed", 0)),
        "removed": int(removed),
        "touched": int(touched),
    }


def recompute_desired(conn: Connection, dialect: str, now: datetime) -> None:
    """Recompute the ``desired`` rows of the serials listed in ``syncd_touched``.

    A serial no source lists any more keeps a row with an empty hash until it has
    been planned (its ``synced_hash`` is not empty); one never planned just goes.
    """
    digest = digest_agg_sql(dialect, "r")
    sql = _DESIRED.format(digest=digest)  # digest: one of two constant expressions
    conn.execute(_text(sql, "now"), {"now": now})
    if dialect != "postgresql":
        conn.execute(sa.text(_DESIRED_MULTI.format(digest=multi_row_digest_sql("r"))))
    conn.execute(
        sa.text(
            "DELETE FROM desired WHERE record_count = 0 AND synced_hash = '' AND serial_number IN "
            "(SELECT serial_number FROM syncd_touched)"
        )
    )


def iter_chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
