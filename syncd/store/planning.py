"""Planning support: which serials need a plan, their inputs, and recording the plan.

Candidate selection is one set-based statement over two partial indexes (the
serials whose ``desired`` or ``mirror`` hash differs from the hash last planned)
plus every tombstone, so its cost follows the number of changed serials, not the
size of the inventory. The selected serials and the hashes they had are kept in
``plan_candidate`` until ``record_plan`` marks exactly those hashes as planned: a
batch stored while the engine is planning makes its serials candidates again. When
the policy changed, the serials the engine's ``settle_fields`` proves unchanged are
settled set-based (``settle.py``): never loaded, and given no ``plan_candidate`` row,
since only a serial whose plan would leave no trace is settled (its hashes already
planned, no change of it waiting, no conflict of it open). A policy change plans
every serial, most of them unchanged.

Every candidate is marked planned when its plan is released, whatever the plan
does for it: a no-op or a conflict is not re-planned (or re-reported) until its
inputs change. A plan is released when it is recorded without a hold, or when the
held plan is approved while it is still the newest recorded plan. A held plan marks
nothing: its serials stay candidates, so the next run plans them afresh and
supersedes the held changes (a held plan never strands its writes when the operator
fixes the source instead of approving). A change that fails in a way worth
retrying, a change abandoned by a dead process, and a held plan that is discarded
mark their serials for planning again; so does ``Store.force_replan``.

A held plan's tombstone updates ARE saved when it is recorded: counting a missing
serial writes nothing to the API, any delete the count makes due is itself held
while the gate holds, and a serial that comes back clears its tombstone at once.
Tombstoned serials are candidates of every run anyway, so each run (held or not)
counts once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.engine import (
    Candidate,
    FieldChange,
    MirrorEntry,
    Operation,
    Plan,
    SettleField,
    Tombstone,
)
from syncd.errors import NoSuchError, StateError
from syncd.records import DeviceRecord
from syncd.store.db import (
    SERIAL_ORDER,
    Database,
    bulk_insert,
    fetch_by_serials,
    in_values,
    upsert,
)
from syncd.store.rows import REPORT_KINDS
from syncd.store.serials import Serials
from syncd.store.settle import CHANGED_SERIALS, choose, choose_unsettled
from syncd.store.staging import iter_chunks, record_from_row
from syncd.store.tables import (
    CHANGE,
    DESIRED,
    KEPT_VALUE,
    MIRROR,
    OPEN_CONFLICT,
    PLAN_CANDIDATE,
    SOURCE_STATE,
    STORE_META,
    SYNC_RUN,
    TOMBSTONE,
)

#: Serials per ``IN (...)`` query when loading candidates.
LOAD_CHUNK: Final = 2000
#: A hash that matches nothing: set to make a serial a candidate again.
REPLAN: Final = "!replan"
#: ``store_meta`` key of the policy fingerprint the last released plan used.
PLANNED_POLICY: Final = "planned_policy_fingerprint"
#: ``store_meta`` key of the id of the newest run whose plan was recorded (held or not).
LAST_RECORDED: Final = "last_recorded_run"
#: ``store_meta`` key of how many owned devices the inventory listed when a plan was last
#: let through (the listing gate's baseline).
OWNED_BASELINE: Final = "owned_baseline"

_OWNED_PRESENT = sa.text("ownership <> 'unmanaged' AND present")

_SELECT_ALL = (
    "INSERT INTO plan_candidate (run_id, serial_number, desired_hash, values_hash) "
    "SELECT :run_id, s.serial_number, d.sources_hash, m.values_hash FROM ("
    "SELECT serial_number FROM desired UNION SELECT serial_number FROM mirror "
    "UNION SELECT serial_number FROM tombstone) s "
    "LEFT JOIN desired d ON d.serial_number = s.serial_number "
    "LEFT JOIN mirror m ON m.serial_number = s.serial_number"
)


class RunStateError(StateError, ValueError):
    """The run is not in a state that allows this (e.g. approving a run not held)."""


class UnknownRunError(NoSuchError, RunStateError):
    """There is no run (or change) of that id."""


def get_meta(conn: Connection, key: str) -> Any:
    """A ``store_meta`` value (``None`` if unset)."""
    return conn.execute(sa.select(STORE_META.c.value).where(STORE_META.c.key == key)).scalar()


def set_meta(conn: Connection, dialect: str, key: str, value: Any) -> None:
    """Set a ``store_meta`` value."""
    stmt = upsert(dialect, STORE_META).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def run_status(conn: Connection, run_id: int) -> tuple[str, str]:
    """``(status, policy_fingerprint)`` of a run; ``RunStateError`` if there is none."""
    row = conn.execute(
        sa.select(SYNC_RUN.c.status, SYNC_RUN.c.policy_fingerprint).where(SYNC_RUN.c.id == run_id)
    ).first()
    if row is None:
        raise UnknownRunError(f"no run {run_id}")
    return str(row.status), str(row.policy_fingerprint)


def select_candidates(db: Database, run_id: int) -> list[str]:
    """Choose the run's candidate serials (all of them if the policy changed)."""
    return list(choose_candidates(db, run_id, None)[0])


def choose_candidates(
    db: Database, run_id: int, settle: Sequence[SettleField] | None
) -> tuple[Serials, int]:
    """Choose the run's candidate serials (all of them if the policy changed); with
    ``settle`` (``engine.settle_fields``), those it proves unchanged are settled here,
    set-based, instead of being loaded and compared one by one (a policy change makes
    every serial a candidate, and almost all of them are unchanged). Returns the
    serials to plan, in code point order (Python's), and how many were settled (the
    serials held compactly: a first run has a million); every serial returned is a
    candidate of the run, and is marked planned with the others when the plan is
    released. A settled serial needs no mark (``settle.choose_unsettled``)."""
    with db.write() as conn:
        status, fingerprint = run_status(conn, run_id)
        if status != "planning":
            raise RunStateError(f"run {run_id} is {status}, not planning")
        conn.execute(PLAN_CANDIDATE.delete().where(PLAN_CANDIDATE.c.run_id == run_id))
        settled = 0
        if get_meta(conn, PLANNED_POLICY) == fingerprint:
            # a handful of changed serials: the engine compares them faster than settling
            choose(conn, run_id, CHANGED_SERIALS)
        elif settle:
            settled = choose_unsettled(conn, run_id, settle)
        else:
            conn.execute(sa.text(_SELECT_ALL), {"run_id": run_id})
        if db.dialect == "postgresql":
            # plan_candidate is empty between runs, so that is what autovacuum's statistics
            # say; planned on them, recording a plan of many candidates joins them by
            # nested loops (quadratic: a minute for 20,000). Tell the planner the truth.
            conn.exec_driver_sql("ANALYZE plan_candidate")
        return Serials.build(
            conn.execute(
                sa.select(PLAN_CANDIDATE.c.serial_number)
                .where(PLAN_CANDIDATE.c.run_id == run_id)
                .order_by(sa.text(SERIAL_ORDER[db.dialect]))
            ).scalars()
        ), settled


def load_candidates(db: Database, serials: Iterable[str]) -> Iterator[Candidate]:
    """The engine's input for each serial, in the order given (chunked reads).

    Rows come straight from the driver and their JSON is decoded with orjson: a full
    re-plan reads a million serials, and SQLAlchemy's per-row result processing cost
    more than the queries."""
    with db.read() as conn:
        any_kept = conn.execute(sa.select(sa.literal(1)).select_from(KEPT_VALUE).limit(1)).first()
    for chunk in iter_chunks(serials, LOAD_CHUNK):
        with db.read() as conn:
            records = _records(conn, chunk)
            kept = _kept(conn, chunk) if any_kept else {}
            mirrors = {
                serial: MirrorEntry(
                    serial, _json(read), _json(written), ownership, kept.get(serial, {})
                )
                for serial, read, written, ownership in fetch_by_serials(
                    conn,
                    'SELECT serial_number, "values", written, ownership FROM mirror '
                    "WHERE present AND",
                    chunk,
                )
            }
            tombstones = {
                row.serial_number: Tombstone(
                    first_missing=row.first_missing, runs_missing=row.runs_missing
                )
                for row in conn.execute(
                    sa.select(TOMBSTONE).where(
                        in_values(TOMBSTONE.c.serial_number, chunk, db.dialect)
                    )
                )
            }
        for serial in chunk:
            yield Candidate(
                serial_number=serial,
                records=records.get(serial, ()),
                mirror=mirrors.get(serial),
                tombstone=tombstones.get(serial),
            )


def _kept(conn: Connection, serials: list[str]) -> dict[str, dict[str, tuple[Any, Any]]]:
    """The values people chose to keep, per serial and field (``MirrorEntry.kept``)."""
    out: dict[str, dict[str, tuple[Any, Any]]] = {}
    # Straight from the driver: SQLite hands JSON over as text, psycopg decoded.
    decode = orjson.loads if conn.dialect.name == "sqlite" else _as_is
    for serial, name, inventory, source in fetch_by_serials(
        conn, "SELECT serial_number, field, inventory_value, source_value FROM kept_value", serials
    ):
        out.setdefault(serial, {})[name] = (
            None if inventory is None else decode(inventory),
            None if source is None else decode(source),
        )
    return out


def _as_is(value: Any) -> Any:
    return value


def _json(value: Any) -> Any:
    """A JSON column as the driver hands it: text (SQLite) or already decoded (psycopg)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _records(conn: Connection, serials: list[str]) -> dict[str, list[DeviceRecord]]:
    out: dict[str, list[DeviceRecord]] = {}
    rows = fetch_by_serials(
        conn,
        "SELECT connector, serial_number, origin, payload, wanted, action, seq "
        "FROM source_record WHERE",
        serials,
    )
    rows.sort(key=_record_order)
    for connector, serial, origin, payload, wanted, action, _seq in rows:
        out.setdefault(serial, []).append(
            record_from_row(connector, serial, origin, _json(payload), wanted=wanted, action=action)
        )
    return out


def _record_order(row: tuple[Any, ...]) -> tuple[str, str, int]:
    return row[1], row[0], row[6]


_CHANGE_COLUMNS = (
    "run_id",
    "serial_number",
    "operation",
    "changes",
    "reason",
    "sources",
    "origins",
    "status",
    "attempts",
    "response",
    "error",
    "created_at",
    "updated_at",
    "applied_at",
)
_STAGED_COLUMNS = (
    "ord",
    "serial_number",
    "operation",
    "changes",
    "reason",
    "sources",
    "origins",
)


def _change_row(run_id: int, op: Operation, status: str, stamp: Any) -> tuple[Any, ...]:
    """One ``change`` row as the driver takes it: JSON columns encoded (orjson) here."""
    changes = {
        name: {"before": change.before, "after": change.after, "before_known": change.before_known}
        for name, change in op.changes.items()
    }
    return (
        run_id,
        op.serial_number,
        op.kind,
        orjson.dumps(changes).decode(),
        op.reason,
        orjson.dumps(op.sources).decode(),
        orjson.dumps(op.origins).decode(),
        status,
        0,
        None,
        None,
        stamp,
        stamp,
        None,
    )


def _insert_changes(
    conn: Connection, run_id: int, operations: Iterable[Operation], held: bool, now: datetime
) -> tuple[dict[str, int], int]:
    """Write one ``change`` row per operation, built and sent in chunks (never all held
    at once); returns the count per kind and how many rows are pending."""
    kinds: dict[str, int] = {}
    pending = 0
    waiting = "held" if held else "pending"
    # The dialect's own form of the type: its processor writes SQLite's text exactly as
    # SQLAlchemy's other statements do ('... 12:00:00.000000'; the driver's default
    # adapter would drop zero microseconds and break the order of string comparisons).
    column_type = CHANGE.c.created_at.type.dialect_impl(conn.dialect)
    processor = column_type.bind_processor(conn.dialect)
    stamp = processor(now) if processor is not None else now
    for chunk in iter_chunks(operations):
        rows = []
        for op in chunk:
            kinds[op.kind] = kinds.get(op.kind, 0) + 1
            status = "skipped" if op.kind in REPORT_KINDS else waiting
            pending += status == "pending"
            rows.append(_change_row(run_id, op, status, stamp))
        bulk_insert(conn, "change", _CHANGE_COLUMNS, rows)
    return kinds, pending


def record_plan(
    db: Database, run_id: int, plan: Plan, *, held: bool, now: datetime | None = None
) -> dict[str, Any]:
    """Write the plan in one transaction (see ``Store.record_plan``); returns the summary."""
    now = now or datetime.now(UTC)
    with db.write(lock="exclusive") as conn:
        serials = sorted({op.serial_number for op in plan.operations} | set(plan.tombstones))
        return _record(
            conn,
            db.dialect,
            run_id,
            plan,
            held=held,
            now=now,
            select=lambda: _add_candidates(conn, db.dialect, run_id, serials),
            insert=lambda: _insert_changes(conn, run_id, plan.operations, held, now),
            conflicts=[op for op in plan.operations if op.kind == "conflict"],
        )


def _add_candidates(conn: Connection, dialect: str, run_id: int, serials: list[str]) -> None:
    """Make ``serials`` candidates of the run (a plan may name serials it was not given)."""
    for chunk in iter_chunks(serials):
        stmt = upsert(dialect, PLAN_CANDIDATE).on_conflict_do_nothing()
        conn.execute(stmt, [{"run_id": run_id, "serial_number": s} for s in chunk])


def _record(
    conn: Connection,
    dialect: str,
    run_id: int,
    plan: Plan,
    *,
    held: bool,
    now: datetime,
    select: Callable[[], None],
    insert: Callable[[], tuple[dict[str, int], int]],
    conflicts: list[Operation],
) -> dict[str, Any]:
    """``record_plan`` inside its transaction: ``select`` adds the plan's serials to the
    run's candidates, ``insert`` writes its change rows (from memory, or from the
    operations a ``PlanWriter`` staged); ``conflicts`` are the plan's conflict
    operations, which become the open conflicts of the serials it planned."""
    status, fingerprint = run_status(conn, run_id)
    if status != "planning":
        raise RunStateError(f"run {run_id} is {status}: its plan is already recorded")
    select()
    superseded = conn.execute(
        sa.text(
            "UPDATE change SET status = 'skipped', error = :why, updated_at = :now "
            "WHERE status IN ('pending', 'dispatched', 'held') AND run_id <> :run_id "
            "AND serial_number IN "
            "(SELECT serial_number FROM plan_candidate WHERE run_id = :run_id)"
        ).bindparams(sa.bindparam("now", type_=CHANGE.c.updated_at.type)),
        {"why": f"superseded by run {run_id}", "now": now, "run_id": run_id},
    ).rowcount
    superseded += _overtake_held_runs(conn, run_id, now)
    kinds, pending = insert()
    track_conflicts(conn, dialect, run_id, conflicts, now)
    _save_tombstones(conn, dialect, plan.tombstones)
    # Older held plans are overtaken (their serials were candidates of this run and
    # their changes are superseded): what they selected can never be released now.
    conn.execute(
        sa.text(
            "DELETE FROM plan_candidate WHERE run_id <> :run_id AND run_id IN "
            "(SELECT id FROM sync_run WHERE status <> 'planning')"
        ),
        {"run_id": run_id},
    )
    set_meta(conn, dialect, LAST_RECORDED, run_id)
    if not held:
        release_plan(conn, dialect, run_id, fingerprint)
    # A held plan keeps its candidate rows (the hashes it planned from) until it is
    # approved, discarded or overtaken; nothing is marked planned before that.
    summary: dict[str, Any] = {
        "operations": kinds,
        "counts": dict(plan.counts),
        "held": held,
        "hold_reasons": list(plan.hold_reasons),
        "superseded": int(superseded),
    }
    new_status = "held" if held else ("applying" if pending else "done")
    conn.execute(
        SYNC_RUN.update()
        .where(SYNC_RUN.c.id == run_id)
        .values(
            status=new_status,
            summary=summary,
            finished_at=now if new_status == "done" else None,
        )
    )
    return summary


_STAGED_OPS = "syncd_plan_op"
# Report kinds (``REPORT_KINDS``) are skipped at once; the others wait (pending or held).
_COPY_STAGED_OPS = (
    "INSERT INTO change (run_id, serial_number, operation, changes, reason, sources, origins, "
    "status, attempts, response, error, created_at, updated_at, applied_at) "
    "SELECT :run_id, serial_number, operation, changes, reason, sources, origins, "
    "CASE WHEN operation IN ('conflict', 'reject', 'skip') THEN 'skipped' ELSE :waiting END, "
    "0, NULL, NULL, :now, :now, NULL FROM syncd_plan_op ORDER BY ord"
)


class PlanWriter:
    """A plan's operations streamed into the store while the engine plans, then recorded
    in one transaction: the engine's ``sink``, so no process ever holds every operation.

    ``add`` (the sink) writes each chunk into a temporary table on a connection of its
    own, without the store's write lock; ``record`` then does what ``record_plan`` does,
    the change rows copied from that table set-based. Use as a context manager; leaving
    it without ``record`` stores nothing.
    """

    def __init__(self, db: Database, run_id: int) -> None:
        self._db = db
        self.run_id = run_id
        self.added = 0
        #: The plan's conflict operations (few), kept for the open conflicts.
        self.conflicts: list[Operation] = []
        self._conn: Connection | None = db.engine.connect()
        json_type = "JSON" if db.dialect == "postgresql" else "TEXT"
        try:
            with self._conn.begin():
                self._conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_STAGED_OPS}")
                self._conn.exec_driver_sql(
                    f"CREATE TEMPORARY TABLE {_STAGED_OPS} (ord INTEGER NOT NULL, "
                    "serial_number TEXT NOT NULL, operation TEXT NOT NULL, "
                    f"changes {json_type} NOT NULL, reason TEXT NOT NULL, "
                    f"sources {json_type} NOT NULL, origins {json_type} NOT NULL)"
                )
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> PlanWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the temporary table and give the connection back (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_STAGED_OPS}")
            self._db.shrink(conn)
        except sa.exc.DBAPIError:
            conn.invalidate()
        finally:
            conn.close()

    @property
    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("this plan writer is closed")
        return self._conn

    def add(self, ops: list[Operation]) -> None:
        """Stage a chunk of operations (the engine's ``sink``)."""
        conn = self._connection
        rows = []
        for op in ops:
            self.added += 1
            if op.kind == "conflict":
                self.conflicts.append(op)
            row = _change_row(self.run_id, op, "", None)
            rows.append((self.added, row[1], row[2], row[3], row[4], row[5], row[6]))
        with conn.begin():
            bulk_insert(conn, _STAGED_OPS, _STAGED_COLUMNS, rows)

    def record(
        self, plan: Plan, *, held: bool | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """Record the plan (its counts, tombstones and gates; its operations as staged)
        in one transaction, as ``record_plan`` does; returns the run's summary."""
        now = now or datetime.now(UTC)
        held = plan.held if held is None else held
        conn = self._connection
        dialect = self._db.dialect
        tombstoned = sorted(plan.tombstones)
        try:
            with self._db.transaction(conn, lock="exclusive"):
                return _record(
                    conn,
                    dialect,
                    self.run_id,
                    plan,
                    held=held,
                    now=now,
                    select=lambda: self._select(conn, dialect, tombstoned),
                    insert=lambda: self._insert(conn, held, now),
                    conflicts=self.conflicts,
                )
        finally:
            self.close()

    def _select(self, conn: Connection, dialect: str, tombstoned: list[str]) -> None:
        if dialect == "postgresql":
            conn.exec_driver_sql("ANALYZE syncd_plan_op")  # a temporary table has no statistics
        conn.execute(
            sa.text(
                "INSERT INTO plan_candidate (run_id, serial_number) SELECT DISTINCT :run_id, "
                "serial_number FROM syncd_plan_op WHERE true ON CONFLICT DO NOTHING"
            ),
            {"run_id": self.run_id},
        )
        _add_candidates(conn, dialect, self.run_id, tombstoned)

    def _insert(self, conn: Connection, held: bool, now: datetime) -> tuple[dict[str, int], int]:
        conn.execute(
            sa.text(_COPY_STAGED_OPS).bindparams(
                sa.bindparam("now", type_=CHANGE.c.created_at.type)
            ),
            {"run_id": self.run_id, "waiting": "held" if held else "pending", "now": now},
        )
        kinds = {
            str(kind): int(count)
            for kind, count in conn.exec_driver_sql(
                "SELECT operation, count(*) FROM syncd_plan_op GROUP BY operation"
            )
        }
        pending = 0 if held else sum(n for k, n in kinds.items() if k not in REPORT_KINDS)
        return kinds, pending


def track_conflicts(
    conn: Connection, dialect: str, run_id: int, conflicts: list[Operation], now: datetime
) -> None:
    """The open conflicts of the serials the run planned become its conflict operations'
    fields (``OpenConflict``): each serial's earlier rows go, so a conflict settled by an
    edit on either side disappears. A field still in the same disagreement keeps when
    it was first seen. Runs of ``PLAN_ONLY_TRIGGERS`` change nothing here."""
    trigger = conn.execute(sa.select(SYNC_RUN.c.trigger).where(SYNC_RUN.c.id == run_id)).scalar()
    if trigger in PLAN_ONLY_TRIGGERS:
        return
    serials = sorted({op.serial_number for op in conflicts})
    earlier: dict[tuple[str, str], tuple[Any, Any, datetime]] = {}
    for chunk in iter_chunks(serials):
        for row in conn.execute(
            sa.select(OPEN_CONFLICT).where(in_values(OPEN_CONFLICT.c.serial_number, chunk, dialect))
        ).mappings():
            key = (row["serial_number"], row["field"])
            earlier[key] = (row["inventory_value"], row["source_value"], row["first_seen_at"])
    conn.execute(
        sa.text(
            "DELETE FROM open_conflict WHERE serial_number IN "
            "(SELECT serial_number FROM plan_candidate WHERE run_id = :run_id)"
        ),
        {"run_id": run_id},
    )
    if not conflicts:
        return
    change_ids = {
        str(serial): int(change_id)
        for serial, change_id in conn.execute(
            sa.select(CHANGE.c.serial_number, CHANGE.c.id).where(
                CHANGE.c.run_id == run_id, CHANGE.c.operation == "conflict"
            )
        )
    }
    rows = []
    for op in conflicts:
        fields = list(op.changes.items()) or [("", FieldChange(None, None))]
        for name, change in fields:
            seen = earlier.get((op.serial_number, name))
            same = seen is not None and (seen[0], seen[1]) == (change.before, change.after)
            rows.append(
                {
                    "serial_number": op.serial_number,
                    "field": name,
                    "inventory_value": change.before,
                    "source_value": change.after,
                    "sources": list(op.sources),
                    "origins": list(op.origins),
                    "reason": _field_reason(op.reason, name),
                    "run_id": run_id,
                    "change_id": change_ids.get(op.serial_number),
                    "first_seen_at": seen[2] if same and seen is not None else now,
                    "last_seen_at": now,
                }
            )
    for chunk in iter_chunks(rows):
        conn.execute(OPEN_CONFLICT.insert(), chunk)


def _field_reason(reason: str, name: str) -> str:
    """The part of a conflict's reason about field ``name`` (the engine writes one
    ``"<field>: ..."`` note per field, joined by ``"; "``), or the whole reason."""
    head, found, notes = reason.partition(": ")
    if name and found:
        for note in notes.split("; "):
            if note.startswith(f"{name}: "):
                return f"{head}: {note}"
    return reason


def _overtake_held_runs(conn: Connection, run_id: int, now: datetime) -> int:
    """A newer plan overtakes every older held one, whole: its remaining held changes
    (serials this plan did not select, e.g. a source that went back to what was last
    planned) can no longer be approved, since they describe a state that has passed.
    Their serials are planned afresh by the next run. Returns how many were skipped."""
    why = f"overtaken by run {run_id}"
    older = sa.select(CHANGE.c.serial_number).where(
        CHANGE.c.status == "held", CHANGE.c.run_id != run_id
    )
    force_replan(conn, older)
    skipped = conn.execute(
        CHANGE.update()
        .where(CHANGE.c.status == "held", CHANGE.c.run_id != run_id)
        .values(status="skipped", error=why, updated_at=now)
    ).rowcount
    conn.execute(
        SYNC_RUN.update()
        .where(SYNC_RUN.c.status == "held", SYNC_RUN.c.id != run_id)
        .values(status="done", error=why, finished_at=now)
    )
    return int(skipped)


#: The trigger of a run that undoes another (``syncd revert``): it plans no source, so
#: letting it through moves no gate's baseline.
REVERT_TRIGGER = "revert"
#: The trigger of a run that writes a source's value over a conflict a person resolved
#: (``syncd conflicts resolve --take-source``): one change, planned from no source either.
RESOLVE_TRIGGER = "resolve"
#: Runs whose plan is not the engine's over the sources: they move no baseline and say
#: nothing about which conflicts are open.
PLAN_ONLY_TRIGGERS: Final = frozenset({REVERT_TRIGGER, RESOLVE_TRIGGER})


def release_plan(conn: Connection, dialect: str, run_id: int, fingerprint: str) -> None:
    """The run's plan is let through: its candidates are marked planned at the hashes
    they were selected at, its policy becomes the planned one, and the source sizes
    become the baseline of the volume gate. A revert run only forgets its candidates:
    it read no source, so it must not make a shrunken source's size look accepted (a
    resolve run neither)."""
    _mark_planned(conn, run_id)
    trigger = conn.execute(sa.select(SYNC_RUN.c.trigger).where(SYNC_RUN.c.id == run_id)).scalar()
    if trigger in PLAN_ONLY_TRIGGERS:
        return
    set_meta(conn, dialect, PLANNED_POLICY, fingerprint)
    release_source_counts(conn)
    settle_owned_baseline(conn, dialect)


def owned_present(conn: Connection) -> int:
    """How many devices the inventory holds (as last listed) that syncd owns."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(MIRROR).where(_OWNED_PRESENT)
        ).scalar_one()
    )


def settle_owned_baseline(conn: Connection, dialect: str) -> None:
    """The owned devices the inventory holds now become the listing gate's baseline."""
    set_meta(conn, dialect, OWNED_BASELINE, owned_present(conn))


def is_newest_plan(conn: Connection, run_id: int) -> bool:
    """True if no plan was recorded after the run's (a held plan that is not newest has
    been overtaken: every change of it was superseded). A store that has recorded no
    plan since this was introduced counts its held run as the newest."""
    newest = get_meta(conn, LAST_RECORDED)
    return newest is None or newest == run_id


def drop_candidates(conn: Connection, run_id: int) -> None:
    """Forget what a (held) run selected."""
    conn.execute(PLAN_CANDIDATE.delete().where(PLAN_CANDIDATE.c.run_id == run_id))


def _save_tombstones(
    conn: Connection, dialect: str, tombstones: dict[str, Tombstone | None]
) -> None:
    cleared = [serial for serial, stone in tombstones.items() if stone is None]
    for chunk in iter_chunks(cleared):
        conn.execute(TOMBSTONE.delete().where(in_values(TOMBSTONE.c.serial_number, chunk, dialect)))
    kept = [
        {"serial_number": s, "first_missing": t.first_missing, "runs_missing": t.runs_missing}
        for s, t in tombstones.items()
        if t is not None
    ]
    if kept:
        stmt = upsert(dialect, TOMBSTONE)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["serial_number"],
                set_={
                    "first_missing": stmt.excluded.first_missing,
                    "runs_missing": stmt.excluded.runs_missing,
                },
            ),
            kept,
        )


def _mark_planned(conn: Connection, run_id: int) -> None:
    params = {"run_id": run_id}
    # Rows already planned at their hash are left alone: a full re-plan selects every
    # serial, and rewriting a million unchanged rows (the mirror's hold its values)
    # cost more than the rest of recording.
    conn.execute(
        sa.text(
            "UPDATE desired SET synced_hash = pc.desired_hash FROM plan_candidate pc "
            "WHERE pc.run_id = :run_id AND pc.serial_number = desired.serial_number "
            "AND pc.desired_hash IS NOT NULL AND desired.synced_hash <> pc.desired_hash"
        ),
        params,
    )
    conn.execute(
        sa.text(
            "UPDATE mirror SET synced_values_hash = pc.values_hash FROM plan_candidate pc "
            "WHERE pc.run_id = :run_id AND pc.serial_number = mirror.serial_number "
            "AND pc.values_hash IS NOT NULL AND mirror.synced_values_hash <> pc.values_hash"
        ),
        params,
    )
    # A serial no source lists any more, now planned: nothing left to remember.
    conn.execute(
        sa.text(
            "DELETE FROM desired WHERE record_count = 0 AND sources_hash = synced_hash "
            "AND serial_number IN (SELECT serial_number FROM plan_candidate WHERE run_id = :run_id)"
        ),
        params,
    )
    conn.execute(PLAN_CANDIDATE.delete().where(PLAN_CANDIDATE.c.run_id == run_id))


def force_replan(conn: Connection, serials: sa.Select[Any]) -> None:
    """Make the serials ``serials`` selects candidates of the next run."""
    conn.execute(
        DESIRED.update().where(DESIRED.c.serial_number.in_(serials)).values(synced_hash=REPLAN)
    )
    conn.execute(
        MIRROR.update().where(MIRROR.c.serial_number.in_(serials)).values(synced_values_hash=REPLAN)
    )


def serials_of_change(change_id: int) -> sa.Select[Any]:
    """The serial of one change, as a subquery for ``force_replan``."""
    return sa.select(CHANGE.c.serial_number).where(CHANGE.c.id == change_id)


def held_serials(run_id: int) -> sa.Select[Any]:
    """The serials of a run's held changes, as a subquery for ``force_replan``."""
    return sa.select(CHANGE.c.serial_number).where(
        CHANGE.c.run_id == run_id, CHANGE.c.status == "held"
    )


def replan_serials(db: Database, serials: Iterable[str]) -> int:
    """Make ``serials`` candidates of the next run (one transaction); returns how many of
    them the store knows (has source records or an inventory entry for)."""
    wanted = sorted(set(serials))
    known = 0
    with db.write(lock="exclusive") as conn:
        for chunk in iter_chunks(wanted):
            known += int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(
                        sa.union(
                            sa.select(DESIRED.c.serial_number).where(
                                in_values(DESIRED.c.serial_number, chunk, db.dialect)
                            ),
                            sa.select(MIRROR.c.serial_number).where(
                                in_values(MIRROR.c.serial_number, chunk, db.dialect)
                            ),
                        ).subquery()
                    )
                ).scalar_one()
            )
            conn.execute(
                DESIRED.update()
                .where(in_values(DESIRED.c.serial_number, chunk, db.dialect))
                .values(synced_hash=REPLAN)
            )
            conn.execute(
                MIRROR.update()
                .where(in_values(MIRROR.c.serial_number, chunk, db.dialect))
                .values(synced_values_hash=REPLAN)
            )
    return known


def release_source_counts(conn: Connection) -> None:
    """The current snapshot sizes become the baseline of the volume gate."""
    conn.execute(
        SOURCE_STATE.update()
        .where(SOURCE_STATE.c.last_snapshot_count.is_not(None))
        .values(previous_snapshot_count=SOURCE_STATE.c.last_snapshot_count)
    )


def forget_candidates(conn: Connection) -> None:
    """Drop the candidate lists of runs neither planning nor held (a crashed planner's,
    or a held run's closed by other means)."""
    live = sa.select(SYNC_RUN.c.id).where(SYNC_RUN.c.status.in_(("planning", "held")))
    conn.execute(PLAN_CANDIDATE.delete().where(PLAN_CANDIDATE.c.run_id.not_in(live)))
