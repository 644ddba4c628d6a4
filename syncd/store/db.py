"""The database connection: engine set-up per backend, and transactions.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL``, foreign
keys on and a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue for the lock instead of failing half-way with ``SQLITE_BUSY``.
PostgreSQL (``postgresql+psycopg://``) orders its writers with a transaction-scoped
advisory lock: multi-row writers exclusive, single-change writers shared.

A **rehearsal** (``Database.rehearsal``, a dry run) pins one connection for the calling
thread: every read and write it makes until the block ends goes through that
connection, inside one transaction (each write a savepoint), and the whole is rolled
back at the end. So a dry run can store a batch, choose candidates and plan exactly as
a run does, and leave nothing behind. Other threads are not affected (the pin is a
context variable); on SQLite the rehearsal holds the write lock while it lasts.

The URL's password never appears in a repr, a log line or an exception raised here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from syncd.process import give_back_memory
from syncd.store.rows import combined_hash

#: How long a SQLite writer waits for the lock before giving up, milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Advisory lock key (PostgreSQL) of the store-wide writer lock (see ``Database.write``).
STORE_LOCK = 0x5359_4E43  # "SYNC"

Lock = Literal["exclusive", "shared"] | None


def normalise_url(url: str | URL) -> URL:
    """Accept ``postgresql://``/``postgres://`` as psycopg 3; leave everything else."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL as text with its password replaced by ``***``."""
    return make_url(url).render_as_string(hide_password=True)


def digest_key_sql(alias: str) -> str:
    """SQL for one source row's contribution to a serial's combined hash."""
    return f"{alias}.connector || ':' || CAST({alias}.seq AS TEXT) || ':' || {alias}.content_hash"


def digest_agg_sql(dialect: str, alias: str) -> str:
    """SQL aggregate: the combined value over a serial's source rows, order-independent
    (see ``rows.combined_hash``: the key of a lone row, else md5 of the sorted keys).

    On SQLite the md5 of several rows needs the Python aggregate ``syncd_digest``; this
    expression leaves those groups ``NULL`` so that one row (nearly every serial) never
    calls into Python: ``multi_row_digest_sql`` fills them in afterwards.
    """
    key = digest_key_sql(alias)
    if dialect == "postgresql":
        return (
            f"CASE WHEN count(*) = 1 THEN min({key}) "
            f"ELSE md5(string_agg({key}, '|' ORDER BY {key} COLLATE \"C\")) END"
        )
    return f"CASE WHEN count(*) = 1 THEN min({key}) END"


def multi_row_digest_sql(alias: str) -> str:
    """SQLite: the combined value of a serial with several rows (``syncd_digest``)."""
    return f"syncd_digest({digest_key_sql(alias)})"


class _DigestAggregate:
    """SQLite aggregate behind ``syncd_digest`` (SQLite has no hash function)."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: list[str] = []

    def step(self, key: str) -> None:
        self.keys.append(key)

    def finalize(self) -> str:
        return combined_hash(self.keys)


#: What SQLite may hold in the whole process, bytes: every connection's page caches,
#: main and temporary, together (a soft limit: past it, SQLite reuses its own pages).
#: A first run at 1M otherwise kept 64 MiB for each cache of each pooled connection:
#: its plan peaked 257 MiB over the process's start, 171 MiB with this limit, in the
#: same time; the baseline ingest of 1M rows takes 7 % longer.
SQLITE_HEAP_LIMIT = 48 << 20


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Hand transaction control to SQLAlchemy's "begin" event below: the driver's own
    # implicit BEGIN would be DEFERRED and cannot be made IMMEDIATE per transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        # A plan's one transaction dirties thousands of pages; at SQLite's default
        # threshold (1,000) its commit would also copy the WAL back into the database
        # file, doubling the cost of recording a plan. Checkpoint later, in bigger steps.
        cursor.execute("PRAGMA wal_autocheckpoint = 10000")
        cursor.execute("PRAGMA foreign_keys = ON")
        # 64 MiB of page cache (SQLite's default is 2 MiB): a batch merge sorts and joins
        # temporary tables of a million rows, which otherwise spill to temporary files.
        cursor.execute("PRAGMA cache_size = -65536")
        cursor.execute(f"PRAGMA soft_heap_limit = {SQLITE_HEAP_LIMIT}")
    finally:
        cursor.close()
    dbapi_connection.create_aggregate("syncd_digest", 1, _DigestAggregate)


def _set_wal(cursor: Any) -> None:
    """Switch to WAL. Several processes opening a new database at once race for the
    exclusive lock this needs, and SQLite answers "locked" at once instead of waiting
    on busy_timeout for it: wait here instead."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get("syncd_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with the store's per-backend settings applied."""
    parsed = normalise_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, echo=echo, hide_parameters=not echo)
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return sa.create_engine(parsed, echo=echo, hide_parameters=not echo, pool_pre_ping=True)
    raise ValueError(
        f"unsupported store URL {safe_url(parsed)!r}: use sqlite:///path or postgresql://..."
    )


class Database:
    """An engine plus the two kinds of transaction the store uses."""

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        self.engine = create_engine(url, echo=echo)
        self.dialect: str = self.engine.dialect.name
        #: This thread's rehearsal connection, if it is rehearsing (``rehearsal``).
        self._pinned: ContextVar[Connection | None] = ContextVar(
            f"syncd_rehearsal_{id(self)}", default=None
        )

    def __repr__(self) -> str:
        return f"Database({safe_url(self.engine.url)!r})"

    @property
    def is_sqlite(self) -> bool:
        """True on SQLite (the dialect differences are few and named where they occur)."""
        return self.dialect == "sqlite"

    @contextmanager
    def rehearsal(self) -> Iterator[Connection]:
        """Until the block ends, every call of this thread works on one connection in one
        transaction, which is then rolled back: nothing done meanwhile remains."""
        if self._pinned.get() is not None:
            raise RuntimeError("this thread is rehearsing already")
        conn = self.engine.connect()
        try:
            if self.is_sqlite:  # a writer from the start: BEGIN IMMEDIATE
                conn.execution_options(syncd_write=True)
            outer = conn.begin()
            if self.is_sqlite:
                conn.execution_options(syncd_write=False)
            token = self._pinned.set(conn)
            try:
                yield conn
            finally:
                self._pinned.reset(token)
                outer.rollback()
        except sa.exc.DBAPIError:
            conn.invalidate()
            raise
        finally:
            conn.close()

    @property
    def rehearsing(self) -> bool:
        """Whether this thread is in a rehearsal."""
        return self._pinned.get() is not None

    def connect(self) -> Connection:
        """A connection of the caller's own (``release`` it), or this thread's rehearsal
        connection while it rehearses."""
        pinned = self._pinned.get()
        return pinned if pinned is not None else self.engine.connect()

    def begin(self, conn: Connection) -> AbstractContextManager[Any]:
        """A transaction on ``conn`` (a savepoint on the rehearsal connection)."""
        if conn is self._pinned.get():
            return conn.begin_nested()
        return conn.begin()

    def owns(self, conn: Connection) -> bool:
        """Whether ``conn`` is the caller's own (not the rehearsal's, which must be left
        open and in its transaction)."""
        return conn is not self._pinned.get()

    def release(self, conn: Connection) -> None:
        """Give back a connection from ``connect``."""
        if self.owns(conn):
            conn.close()

    def shrink(self, conn: Connection) -> None:
        """After a big operation (a batch merged, a listing refreshed, a plan recorded):
        let SQLite free the connection's page caches (up to 64 MiB each, main and
        temporary), which a pooled connection would otherwise keep for the life of the
        process, and the C allocator return what was freed."""
        if self.is_sqlite and not conn.in_transaction():
            conn.exec_driver_sql("PRAGMA shrink_memory")
        give_back_memory()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading; its transaction is rolled back at the end."""
        pinned = self._pinned.get()
        if pinned is not None:
            yield pinned
            return
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self, *, lock: Lock = None) -> Iterator[Connection]:
        """A write transaction, committed when the block ends without an exception.

        ``lock`` (PostgreSQL only; SQLite's ``BEGIN IMMEDIATE`` already admits one
        writer at a time) takes the store-wide advisory lock for the transaction:
        ``"exclusive"`` for the multi-row writers (batch merges, mirror refresh,
        recording and releasing plans, migrations), ``"shared"`` for the single-change
        writers (claims, completions, ``record_write``). Multi-row writers then never
        interleave with anything that could lock the same rows in another order, so
        they cannot deadlock, while workers still run side by side.
        """
        pinned = self._pinned.get()
        if pinned is not None:
            with self.transaction(pinned, lock=lock):
                yield pinned
            return
        with self.engine.connect() as conn, self.transaction(conn, lock=lock):
            yield conn

    @contextmanager
    def transaction(self, conn: Connection, *, lock: Lock = None) -> Iterator[Connection]:
        """A write transaction on a connection the caller holds (see ``write``); on the
        rehearsal connection, a savepoint."""
        if conn is self._pinned.get():
            with conn.begin_nested():
                self._lock(conn, lock)
                yield conn
            return
        if self.is_sqlite:
            conn.execution_options(syncd_write=True)
        try:
            with conn.begin():
                self._lock(conn, lock)
                yield conn
        finally:
            if self.is_sqlite:
                conn.execution_options(syncd_write=False)

    def _lock(self, conn: Connection, lock: Lock) -> None:
        if lock is not None and not self.is_sqlite:
            function = "pg_advisory_xact_lock" + ("_shared" if lock == "shared" else "")
            conn.execute(sa.text(f"SELECT {function}(:key)"), {"key": STORE_LOCK})

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


#: ``ORDER BY`` of serials in Python's order of strings (code points), per dialect:
#: SQLite's default (bytes of UTF-8) already is; PostgreSQL's depends on the database's
#: locale, so it is told ``"C"``.
SERIAL_ORDER = {"sqlite": "serial_number", "postgresql": 'serial_number COLLATE "C"'}


def in_values(column: sa.ColumnElement[Any], values: list[str], dialect: str) -> Any:
    """``column IN (values)`` with the whole list as ONE bound parameter.

    SQLAlchemy's expanding ``in_()`` renders one parameter per value on every
    execution, which dominates the cost of chunked lookups of thousands of serials;
    a JSON array (SQLite ``json_each``) or an array (PostgreSQL ``= ANY``) does not.
    """
    if dialect == "postgresql":
        return column == sa.any_(
            sa.bindparam(None, values, type_=postgresql.ARRAY(sa.String()), unique=True)
        )
    each = sa.func.json_each(sa.bindparam(None, json.dumps(values), unique=True)).table_valued(
        "value"
    )
    return column.in_(sa.select(each.c.value))


def fetch_by_serials(conn: Connection, select: str, serials: list[str]) -> list[tuple[Any, ...]]:
    """Rows of ``select`` for ``serials``, as plain tuples straight from the driver.

    ``select`` is ``SELECT ... FROM table`` with a ``serial_number`` column, optionally
    ending in ``WHERE <condition> AND`` (or ``WHERE``) for the serial test to follow.
    The bulk paths (a mirror refresh reads a row per listed device, a full re-plan a
    million candidates) skip SQLAlchemy's result rows, which cost more than the query
    itself. ``select`` is always a constant of the store's own code; the serials are
    bound parameters."""
    glue = " " if select.rstrip().endswith(("WHERE", "AND")) else " WHERE "
    if not conn.in_transaction():
        # The caller's reads on this connection share one snapshot, as they do through
        # SQLAlchemy (the transaction is rolled back when the connection is closed).
        conn.begin()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(f"{select}{glue}serial_number = ANY(%s)", (serials,))
        else:
            cursor.execute(
                f"{select}{glue}serial_number IN (SELECT value FROM json_each(?))",  # noqa: S608
                (json.dumps(serials),),
            )
        return list(cursor.fetchall())
    finally:
        cursor.close()


def bulk_insert(
    conn: Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` into ``table``: ``COPY`` on PostgreSQL (one stream instead of a
    round trip per row), the driver's ``executemany`` on SQLite. ``table`` and
    ``columns`` are constants of the store's own code."""
    if not rows:
        return
    names = ", ".join(columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608
    finally:
        cursor.close()


def upsert(dialect: str, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT`` for the backend (both offer ``on_conflict_do_update``
    and ``excluded`` with the same signature)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
