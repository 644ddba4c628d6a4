"""Retention of the audit log: old detail exported to gzip'd JSON lines, then pruned.

What goes, and what never does:

- **change rows** that are final (``applied``, ``failed``, ``skipped``) and either
  older than the age limit (planned *and* last touched before it) or beyond the
  newest N change rows. A change still on its way (``pending``, ``dispatched``,
  ``applying``) or ``held`` is never pruned, however old.
- **rejects** older than their age limit or beyond their newest N.
- **idle runs** (scheduled polls that found nothing: no change, reject or batch)
  after their short age. Every other run keeps its row and its summary forever; a
  run whose detail went gains a ``retention`` note in its summary: how many rows
  went, and into which files under which folder.
- The newest row of each table is always kept: SQLite gives a new row the largest id
  left plus one, and an id must never name two different rows (the exports, the
  audit's cursors and the run notes all quote ids).

How: oldest first, in chunks of ``chunk_rows``, so that neither memory nor a
transaction grows with the table, and the daemon's writers get in between chunks:

1. read a chunk (a read transaction: nobody waits for it);
2. write it to ``NAME.part``, fsync it, rename it ``NAME.pending``, fsync the folder;
3. one short write transaction: check that every row is still as it was read (a
   failed change may have been sent back to ``pending`` by ``syncd retry``
   meanwhile: the chunk is then dropped and read again), delete the rows, add the
   runs' notes, and record NAME in the ledger of committed exports (``store_meta``);
4. rename ``NAME.pending`` to ``NAME`` and fsync the folder.

**A crash anywhere loses nothing and duplicates nothing.** Until step 3 commits,
every row is still in the store; from then on, every row is in a durable file that
the ledger names, committed in the same transaction as the deletion. Every prune
first settles what a crash left in the folder: ``*.part`` files are removed (their
rows were never deleted); a ``*.pending`` file the ledger names is put in place (its
rows were deleted); one it does not name is removed, since its transaction never
committed and its rows, still in the store, are exported again by this prune. So
each pruned row ends up in exactly one export file. (Should a pending file's rows
have vanished from the store by other means, it is kept rather than removed:
losing rows is worse than holding two copies of them.) Names carry a random part,
so two hosts exporting into one shared folder never collide.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, RowMapping

from syncd.errors import SyncdError
from syncd.store.db import Database
from syncd.store.planning import get_meta, set_meta
from syncd.store.rows import FINAL_STATUSES
from syncd.store.tables import CHANGE, REJECT, SOURCE_BATCH, SYNC_RUN
from syncd.store.types import UTCDateTime

#: The key of a run's summary that says what retention did to its detail.
NOTE_KEY: Final = "retention"
#: ``store_meta`` key: the names of the latest committed export files (see the module).
LEDGER_KEY: Final = "retention.exported"
#: How many names the ledger keeps (a crash leaves at most one pending file per prune).
LEDGER_SIZE: Final = 200
#: Suffixes of an export file before it is complete, and before its rows are deleted.
PART: Final = ".part"
PENDING: Final = ".pending"
#: How often a chunk is read again when its rows keep changing before it is passed over.
MAX_REREADS: Final = 3
#: gzip's own default level: exports are written once and kept for years, and the
#: compression is a small part of a chunk's time next to reading and deleting its rows.
COMPRESSLEVEL: Final = 6


class ExportError(SyncdError):
    """The export folder or file cannot be written: nothing of that chunk was deleted."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What to prune. ``None`` turns a limit off; ``export=False`` prunes without
    writing the rows anywhere (the folder is still settled after a crash)."""

    changes_max_age: timedelta | None = None
    changes_max_count: int | None = None
    rejects_max_age: timedelta | None = None
    rejects_max_count: int | None = None
    idle_runs_max_age: timedelta | None = None
    export: bool = True
    export_dir: Path = Path("var/audit-export")
    chunk_rows: int = 5000

    def __post_init__(self) -> None:
        if self.chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        for name in ("changes_max_count", "rejects_max_count"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (None: no limit)")


@dataclass(slots=True)
class KindReport:
    """What went (or would go) of one table."""

    rows: int = 0
    runs: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    files: list[str] = field(default_factory=list)
    bytes: int = 0

    def add_span(self, oldest: datetime | None, newest: datetime | None) -> None:
        if oldest is not None and (self.oldest is None or oldest < self.oldest):
            self.oldest = oldest
        if newest is not None and (self.newest is None or newest > self.newest):
            self.newest = newest


@dataclass(slots=True)
class PruneReport:
    """What one prune did, or (``dry_run``) would do."""

    dry_run: bool
    export_dir: Path | None
    changes: KindReport = field(default_factory=KindReport)
    rejects: KindReport = field(default_factory=KindReport)
    idle_runs: int = 0
    #: What was found left by an earlier prune that stopped half-way, and what was done.
    settled: list[str] = field(default_factory=list)
    #: Chunks read again because a row changed between reading and deleting.
    reread: int = 0
    #: Stopped early (a stop was asked for, or the prune's lock was lost).
    stopped: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        data = asdict(self)
        data["export_dir"] = None if self.export_dir is None else str(self.export_dir)
        for kind in ("changes", "rejects"):
            for key in ("oldest", "newest"):
                value = data[kind][key]
                data[kind][key] = None if value is None else value.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class _Kind:
    """One prunable table."""

    record: str  # the export's "record" field
    prefix: str  # file names, report and note keys
    table: sa.Table
    #: Columns that must be unchanged between reading and deleting (besides existing).
    checked: tuple[str, ...]

    @property
    def c(self) -> Any:
        return self.table.c

    def live(self) -> list[Any]:
        """SQL conditions that keep rows still in use out."""
        return [self.c.status.in_(sorted(FINAL_STATUSES))] if "status" in self.c else []

    def may_go(self, row: RowMapping) -> bool:
        """``live()`` for a row read: a change on its way or held stays.

        (The walks read every row in their order and leave these out here: given a
        status condition, SQLite would walk the status index instead and sort every
        final row of the table for each chunk.)"""
        return "status" not in row or row["status"] in FINAL_STATUSES

    def aged(self, cutoff: datetime) -> Any:
        """Rows older than ``cutoff``: created (and, for changes, last touched) before it."""
        if "updated_at" in self.c:
            return sa.and_(self.c.created_at < cutoff, self.c.updated_at < cutoff)
        return self.c.created_at < cutoff


CHANGES: Final = _Kind("change", "changes", CHANGE, ("status", "updated_at"))
REJECTS: Final = _Kind("reject", "rejects", REJECT, ())


@dataclass(frozen=True, slots=True)
class _Pass:
    """One walk over a table: its conditions, and its keyset order."""

    conditions: tuple[Any, ...]
    by_age: bool


def prune(
    db: Database,
    policy: RetentionPolicy,
    now: datetime,
    *,
    dry_run: bool = False,
    keep_going: Callable[[], bool] | None = None,
) -> PruneReport:
    """Export, then prune, what ``policy`` lets go (see the module); ``dry_run`` only
    counts it. ``keep_going`` is asked before every chunk: False stops the prune there
    (what is done stays done)."""
    report = PruneReport(dry_run=dry_run, export_dir=policy.export_dir if policy.export else None)
    plans = (
        (CHANGES, policy.changes_max_age, policy.changes_max_count, report.changes),
        (REJECTS, policy.rejects_max_age, policy.rejects_max_count, report.rejects),
    )
    if dry_run:
        for kind, age, count, into in plans:
            _preview(db, kind, _passes(db, kind, now, age, count), into)
        if policy.idle_runs_max_age is not None:
            report.idle_runs = _count_idle_runs(db, now - policy.idle_runs_max_age)
        return report
    report.settled = settle(db, policy.export_dir)
    if policy.export:
        try:
            policy.export_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(
                f"the export folder {policy.export_dir} cannot be made: {exc.strerror or exc}"
            ) from None
    pruner = _Pruner(db, policy, now, report, keep_going or (lambda: True))
    for kind, age, count, into in plans:
        for walk in _passes(db, kind, now, age, count):
            if not pruner.walk(kind, walk, into):
                report.stopped = True
                return report
    if policy.idle_runs_max_age is not None:
        report.stopped = not pruner.idle_runs(now - policy.idle_runs_max_age)
    return report


# -- what goes -------------------------------------------------------------------------------


def _passes(
    db: Database, kind: _Kind, now: datetime, age: timedelta | None, count: int | None
) -> list[_Pass]:
    """The walks that find what goes: by age (oldest first), then beyond the newest
    ``count`` (lowest ids first, skipping what the age walk takes)."""
    with db.read() as conn:
        ceiling = conn.execute(sa.select(sa.func.max(kind.c.id))).scalar()
        boundary = None
        if count is not None:
            boundary = conn.execute(
                sa.select(kind.c.id).order_by(kind.c.id.desc()).offset(count - 1).limit(1)
            ).scalar()
    if ceiling is None:
        return []
    walks = []
    aged = None
    if age is not None:
        aged = kind.aged(now - age)
        walks.append(_Pass((aged, kind.c.id < ceiling), by_age=True))
    if boundary is not None:
        conditions = [kind.c.id < boundary]
        if aged is not None:
            conditions.append(sa.not_(aged))
        walks.append(_Pass(tuple(conditions), by_age=False))
    return walks


def _order(kind: _Kind, walk: _Pass) -> list[Any]:
    return [kind.c.created_at, kind.c.id] if walk.by_age else [kind.c.id]


def _after(kind: _Kind, walk: _Pass, last: RowMapping | None) -> list[Any]:
    """The keyset condition: rows after ``last`` in the walk's order."""
    if last is None:
        return []
    if not walk.by_age:
        return [kind.c.id > last["id"]]
    created = sa.literal(last["created_at"], kind.c.created_at.type)
    ident = sa.literal(last["id"], kind.c.id.type)
    return [sa.tuple_(kind.c.created_at, kind.c.id) > sa.tuple_(created, ident)]


def _chunk(conn: Connection, kind: _Kind, walk: _Pass, last: RowMapping | None, limit: int) -> Any:
    """The next rows of the walk: what the walk and the check need, and ``line``, the
    row's export line built by the database (JSON in C, not Python: most of an export's
    time otherwise)."""
    run = SYNC_RUN
    query = (
        sa.select(
            _line(kind, conn.dialect.name).label("line"),
            kind.c.id,
            kind.c.run_id,
            kind.c.created_at,
            *(kind.c[name] for name in kind.checked),
        )
        .select_from(kind.table.outerjoin(run, run.c.id == kind.c.run_id))
        .where(*walk.conditions, *_after(kind, walk, last))
        .order_by(*_order(kind, walk))
        .limit(limit)
    )
    return conn.execute(query).mappings().all()


def _line(kind: _Kind, dialect: str) -> Any:
    """SQL: the row as one JSON object: ``record`` (what it is), every column, and its
    run's ``run_trigger`` and ``run_started_at``. Times are ISO 8601 in UTC."""
    values: list[tuple[str, Any]] = [("record", sa.literal_column(f"'{kind.record}'"))]
    values += [(c.name, _json_of(c, dialect)) for c in kind.table.columns]
    values += [
        ("run_trigger", SYNC_RUN.c.trigger),
        ("run_started_at", _json_of(SYNC_RUN.c.started_at, dialect)),
    ]
    arguments: list[Any] = []
    for name, value in values:
        arguments += [sa.literal_column(f"'{name}'"), value]
    if dialect == "postgresql":
        return sa.cast(sa.func.json_build_object(*arguments), sa.Text)
    return sa.func.json_object(*arguments)


#: ``to_char``'s picture of ISO 8601 in UTC, with microseconds (as SQLite stores them).
_PG_ISO: Final = """'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'"""


def _json_of(column: Any, dialect: str) -> Any:
    """SQL: ``column`` as a JSON value (a JSON column as JSON, a time as ISO text)."""
    if isinstance(column.type, sa.JSON):
        return column if dialect == "postgresql" else sa.func.json(column)
    if isinstance(column.type, UTCDateTime):
        if dialect == "postgresql":
            utc = sa.func.timezone("UTC", column)
            return sa.func.to_char(utc, sa.literal_column('\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''))
        # stored as "YYYY-MM-DD HH:MM:SS.ffffff", naive UTC
        text = sa.func.replace(sa.type_coerce(column, sa.Text), " ", "T")
        return text.op("||")(sa.literal_column("'+00:00'"))
    return column


def _preview(db: Database, kind: _Kind, walks: list[_Pass], into: KindReport) -> None:
    """Dry run: how many rows the walks would take, of how many runs, from when to when."""
    if not walks:
        return
    query = sa.select(
        sa.func.count(),
        sa.func.count(sa.distinct(kind.c.run_id)),
        sa.func.min(kind.c.created_at),
        sa.func.max(kind.c.created_at),
    ).where(sa.or_(*(sa.and_(*walk.conditions) for walk in walks)), *kind.live())
    with db.read() as conn:
        rows, runs, oldest, newest = conn.execute(query).one()
    into.rows, into.runs = int(rows), int(runs)
    into.add_span(oldest, newest)


# -- export, then delete ---------------------------------------------------------------------


class _StaleChunkError(Exception):
    """A row of the chunk changed (or went) between reading and deleting."""


class _Pruner:
    """One prune's walks: what they share, and each step of a chunk."""

    def __init__(
        self,
        db: Database,
        policy: RetentionPolicy,
        now: datetime,
        report: PruneReport,
        keep_going: Callable[[], bool],
    ) -> None:
        self.db = db
        self.policy = policy
        self.now = now
        self.report = report
        self.keep_going = keep_going

    def walk(self, kind: _Kind, walk: _Pass, into: KindReport) -> bool:
        """Export and delete chunk by chunk along ``walk``; False if told to stop."""
        last: RowMapping | None = None
        runs: set[int] = set()
        rereads = 0
        while self.keep_going():
            with self.db.read() as conn:
                read = _chunk(conn, kind, walk, last, self.policy.chunk_rows)
            if not read:
                into.runs += len(runs)
                return True
            rows = [row for row in read if kind.may_go(row)]
            try:
                name, size = self.export_and_delete(kind, rows) if rows else (None, 0)
            except _StaleChunkError:
                # A row changed under the chunk: read the same place again (the changed
                # row now reads differently, or is live and left out). Rows that keep
                # changing are left to the next prune.
                self.report.reread += 1
                rereads += 1
                if rereads < MAX_REREADS:
                    continue
            else:
                into.rows += len(rows)
                into.bytes += size
                into.add_span(
                    min((r["created_at"] for r in rows), default=None),
                    max((r["created_at"] for r in rows), default=None),
                )
                runs.update(r["run_id"] for r in rows if r["run_id"] is not None)
                if name is not None:
                    into.files.append(name)
            rereads = 0
            last = read[-1]
        into.runs += len(runs)
        return False

    def export_and_delete(self, kind: _Kind, rows: Sequence[RowMapping]) -> tuple[str | None, int]:
        """Steps 2 to 4 of the module for one chunk; returns the file's name and size."""
        name = pending = None
        size = 0
        if self.policy.export:
            ids = [int(r["id"]) for r in rows]
            token = secrets.token_hex(4)
            name = f"{kind.prefix}-{min(ids):012d}-{max(ids):012d}-{token}.jsonl.gz"
            lines = (export_line(kind, r) for r in rows)
            pending = write_pending(self.policy.export_dir, name, lines)
            size = pending.stat().st_size
        try:
            self.delete(kind, rows, name)
        except _StaleChunkError:
            if pending is not None:
                pending.unlink()  # rolled back by us: its rows are all still in the store
            raise
        if pending is not None:
            finalise(pending)
        return name, size

    def delete(self, kind: _Kind, rows: Sequence[RowMapping], name: str | None) -> None:
        """Step 3: in one transaction, check the rows are as read, delete them, note
        their runs, and record ``name`` (the chunk's export) in the ledger."""
        db = self.db
        ids = [int(r["id"]) for r in rows]
        with db.write(lock="exclusive") as conn:
            if kind.checked:
                columns = [kind.c[c] for c in kind.checked]
                found = conn.execute(
                    sa.select(kind.c.id, *columns).where(_in_ids(kind.c.id, ids, db.dialect))
                ).all()
                now_as = {row[0]: tuple(row[1:]) for row in found}
                read_as = {r["id"]: tuple(r[c] for c in kind.checked) for r in rows}
                if now_as != read_as:
                    raise _StaleChunkError
            deleted = conn.execute(kind.table.delete().where(_in_ids(kind.c.id, ids, db.dialect)))
            if deleted.rowcount != len(ids):
                raise _StaleChunkError
            self.note_runs(conn, kind, rows, name)
            if name is not None:
                ledger = list(get_meta(conn, LEDGER_KEY) or [])
                set_meta(conn, db.dialect, LEDGER_KEY, [*ledger, name][-LEDGER_SIZE:])

    def note_runs(
        self, conn: Connection, kind: _Kind, rows: Sequence[RowMapping], name: str | None
    ) -> None:
        """Each run whose rows went gains (or updates) its ``retention`` note."""
        per_run = Counter(int(r["run_id"]) for r in rows if r["run_id"] is not None)
        if not per_run:
            return
        dialect = self.db.dialect
        query = sa.select(SYNC_RUN.c.id, SYNC_RUN.c.summary).where(
            _in_ids(SYNC_RUN.c.id, list(per_run), dialect)
        )
        if dialect == "postgresql":
            query = query.with_for_update()
        updates = []
        for run_id, summary in conn.execute(query).all():
            note = _noted(dict((summary or {}).get(NOTE_KEY) or {}), kind, per_run[run_id], name)
            note["pruned_at"] = self.now.isoformat()
            if name is not None:
                note["exported_to"] = str(self.policy.export_dir)
            updates.append({"run": run_id, "new_summary": {**(summary or {}), NOTE_KEY: note}})
        conn.execute(
            SYNC_RUN.update()
            .where(SYNC_RUN.c.id == sa.bindparam("run"))
            .values(summary=sa.bindparam("new_summary", type_=SYNC_RUN.c.summary.type)),
            updates,
        )

    def idle_runs(self, cutoff: datetime) -> bool:
        """Delete idle runs started before ``cutoff``, chunk by chunk; False if told to
        stop."""
        conditions = _idle_conditions(self.db, cutoff)
        last = 0
        run = SYNC_RUN
        while self.keep_going():
            with self.db.read() as conn:
                ids = list(
                    conn.execute(
                        sa.select(run.c.id)
                        .where(*conditions, run.c.id > last)
                        .order_by(run.c.id)
                        .limit(self.policy.chunk_rows)
                    ).scalars()
                )
            if not ids:
                return True
            with self.db.write(lock="exclusive") as conn:
                self.report.idle_runs += conn.execute(
                    run.delete().where(_in_ids(run.c.id, ids, self.db.dialect), *conditions)
                ).rowcount
            last = ids[-1]
        return False


def export_line(kind: _Kind, row: RowMapping) -> bytes:
    """One line of an export file: the row's JSON object (see ``_line``)."""
    return str(row["line"]).encode() + b"\n"


def write_pending(folder: Path, name: str, lines: Iterator[bytes]) -> Path:
    """Write ``name`` complete and durable as ``name.pending`` (via ``name.part``)."""
    part, pending = folder / (name + PART), folder / (name + PENDING)
    try:
        with part.open("wb") as raw:
            with gzip.GzipFile(
                filename=name, mode="wb", fileobj=raw, compresslevel=COMPRESSLEVEL, mtime=0
            ) as packed:
                for line in lines:
                    packed.write(line)
            raw.flush()
            os.fsync(raw.fileno())
        part.replace(pending)
        _sync_folder(folder)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ExportError(f"cannot write the export {part}: {exc.strerror or exc}") from None
    return pending


def finalise(pending: Path) -> Path:
    """Step 4: the pending file, whose rows are deleted, takes its final name."""
    final = pending.with_name(pending.name.removesuffix(PENDING))
    pending.replace(final)
    _sync_folder(final.parent)
    return final


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _in_ids(column: Any, ids: list[int], dialect: str) -> Any:
    """``column IN (ids)`` as one bound parameter, however many ids."""
    if dialect == "postgresql":
        array = sa.bindparam(None, ids, type_=postgresql.ARRAY(sa.BigInteger()), unique=True)
        return column == sa.any_(array)
    each = sa.func.json_each(sa.bindparam(None, json.dumps(ids), unique=True)).table_valued("value")
    return column.in_(sa.select(each.c.value))


def _noted(note: dict[str, Any], kind: _Kind, count: int, name: str | None) -> dict[str, Any]:
    key = f"{kind.prefix}_pruned"
    note[key] = int(note.get(key, 0)) + count
    if name is not None:
        note["files"] = [*note.get("files", []), name]
        note["note"] = (
            "detail pruned by retention; every pruned change and reject of this run is in "
            "the files listed, under exported_to (gzip'd JSON lines)"
        )
    elif "files" not in note:
        note["note"] = "detail pruned by retention without export (retention.export = false)"
    return note


# -- idle runs -------------------------------------------------------------------------------


def _idle_conditions(db: Database, cutoff: datetime) -> list[Any]:
    """Idle runs started before ``cutoff`` that nothing refers to, except the newest run."""
    run = SYNC_RUN
    with db.read() as conn:
        ceiling = conn.execute(sa.select(sa.func.max(run.c.id))).scalar() or 0
    left_behind = [
        sa.select(table.c.id).where(table.c.run_id == run.c.id).exists()
        for table in (CHANGE, REJECT, SOURCE_BATCH)
    ]
    return [
        run.c.status == "idle",
        run.c.started_at < cutoff,
        run.c.id < ceiling,
        *(~test for test in left_behind),
    ]


def _count_idle_runs(db: Database, cutoff: datetime) -> int:
    query = sa.select(sa.func.count()).select_from(SYNC_RUN).where(*_idle_conditions(db, cutoff))
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


# -- after a crash ---------------------------------------------------------------------------


def settle(db: Database, folder: Path) -> list[str]:
    """Settle what a prune that stopped half-way left in ``folder`` (see the module);
    returns what was found and done, for people."""
    if not folder.is_dir():
        return []
    notes: list[str] = []
    for part in sorted(folder.glob("*" + PART)):
        part.unlink()
        notes.append(f"removed {part.name}: it was never complete, its rows are in the store")
    pendings = sorted(folder.glob("*" + PENDING))
    if not pendings:
        return notes
    with db.read() as conn:
        ledger = set(get_meta(conn, LEDGER_KEY) or [])
    for pending in pendings:
        name = pending.name.removesuffix(PENDING)
        if name in ledger:
            finalise(pending)
            notes.append(f"{name}: its rows had been pruned; the file is now in place")
            continue
        notes.append(_settle_uncommitted(db, pending, name))
    _sync_folder(folder)
    return notes


def _settle_uncommitted(db: Database, pending: Path, name: str) -> str:
    """A pending file whose deletion never committed: removed if all its rows are still
    in the store; kept (put in place) if some are not, so that nothing is lost."""
    kind = CHANGES if name.startswith(CHANGES.prefix) else REJECTS
    try:
        with gzip.open(pending, "rt", encoding="utf-8") as lines:
            ids = [int(json.loads(line)["id"]) for line in lines]
    except (OSError, ValueError, KeyError) as exc:
        return f"{pending.name}: cannot be read ({exc}); left as it is"
    with db.read() as conn:
        present = conn.execute(
            sa.select(sa.func.count()).where(_in_ids(kind.c.id, ids, db.dialect))
        ).scalar_one()
    if present == len(ids):
        pending.unlink()
        return f"removed {pending.name}: its rows were never pruned (they are exported again)"
    finalise(pending)
    return (
        f"{name}: {len(ids) - int(present)} of its {len(ids)} rows are no longer in the store; "
        "the file is kept"
    )


def ledger(db: Database) -> list[str]:
    """The names of the latest committed export files, oldest first."""
    with db.read() as conn:
        return list(get_meta(conn, LEDGER_KEY) or [])


def note_of(summary: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A run summary's retention note, if its detail was pruned."""
    note = summary.get(NOTE_KEY)
    return note if isinstance(note, Mapping) else None
