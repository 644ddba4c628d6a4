"""Settling unchanged candidates set-based, in SQL, before the engine sees them.

A policy change makes every serial a candidate (``planning.choose_candidates``), and
almost all of them are unchanged: one source record whose values are the mirror's.
Loading and comparing each in Python is what a full re-plan spent its time on, so the
store settles those here, with the test ``engine.settle_fields`` describes (the
shortcuts the engine's compare takes before anything can change), and hands the
engine only the rest. Settling is only ever an early "unchanged": whatever the SQL
cannot decide exactly as the engine would (a value of another JSON type or
spelling, a text the mirror holds differently, a record with ``extra``) goes to the
engine, which decides it as always.

SQLite (3.40 parses a JSON text again for every function call) first compares each
record's plain values and the mirror's as two JSON arrays, one parse of each, and
their mapped values through a table of the texts the run's records give and the ids
they resolve to; a row that differs there is tried field by field. Two renderings by
SQLite's ``json_extract`` are equal only if their values are (its output keeps each
token as written), so a difference of spelling only sends a row to the slower test.
PostgreSQL compares ``jsonb`` values field by field.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.engine import SettleField
from syncd.records import RECORD_FIELDS
from syncd.store.db import bulk_insert
from syncd.store.tables import PLAN_CANDIDATE

#: Temporary table: each mapped field's source texts and the ids they resolve to.
_BY_FIELD: Final = "syncd_settle_map"
#: Temporary table (SQLite): the mapped fields' texts of a record as one JSON array, and
#: the ids they resolve to as the array the mirror's values would show.
_BY_RECORD: Final = "syncd_settle_vector"
_SCALAR: Final = "('text', 'integer', 'real', 'true', 'false')"
_EMPTY_TEXT: Final = "'\"\"'::jsonb"
_SQLITE_COLUMNS: Final = {"p": "sr.payload", "v": 'm."values"', "w": "m.written"}

# The run's candidates with exactly one source record (wanted, an upsert) and an owned
# device present in the mirror, without a tombstone: those the engine would compare
# field by field. ``{p}``/``{v}``/``{w}``: the payload, values and written columns as
# the dialect's SQL reads them.
_SINGLE_OWNED: Final = (
    "SELECT pc.serial_number, {p} AS p, {v} AS v, {w} AS w FROM plan_candidate pc "
    "JOIN source_record sr ON sr.serial_number = pc.serial_number "
    "JOIN mirror m ON m.serial_number = pc.serial_number "
    "WHERE pc.run_id = :run_id AND sr.wanted AND sr.action <> 'delete' "
    "AND m.present AND m.ownership <> 'unmanaged' "
    "AND (SELECT count(*) FROM source_record o WHERE o.serial_number = pc.serial_number) = 1 "
    "AND NOT EXISTS (SELECT 1 FROM tombstone t WHERE t.serial_number = pc.serial_number)"
)


def unsettled(
    conn: Connection, run_id: int, settle: Sequence[SettleField]
) -> tuple[list[str], int]:
    """The run's candidates ``settle`` does not prove unchanged (sorted), and how many
    it does, read inside the transaction that chose them."""
    postgres = conn.dialect.name == "postgresql"
    _fill_maps(conn, run_id, settle, postgres=postgres)
    if postgres:  # each JSON column made jsonb once per row, not once per field
        single = _SINGLE_OWNED.format(
            p="sr.payload::jsonb", v='m."values"::jsonb', w="m.written::jsonb"
        )
        one = f"WITH one AS MATERIALIZED ({single}) "
        test = (
            "CASE WHEN jsonb_typeof(p) = 'array' THEN jsonb_array_length(p) END = "
            f"{len(RECORD_FIELDS)} AND {_fields_pg(settle)}"
        )
    else:
        one = f"WITH one AS ({_SINGLE_OWNED.format(**_SQLITE_COLUMNS)}) "
        test = (
            f"({_whole_sqlite(settle)}) OR "
            f"(json_array_length(p) = {len(RECORD_FIELDS)} AND {_fields_sqlite(settle)})"
        )
    total = int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(PLAN_CANDIDATE)
            .where(PLAN_CANDIDATE.c.run_id == run_id)
        ).scalar_one()
    )
    serials = [
        str(serial)
        for (serial,) in conn.execute(
            sa.text(
                # built from the engine's field declarations, never from data
                f"{one}SELECT serial_number FROM plan_candidate WHERE run_id = :run_id "  # noqa: S608
                f"AND serial_number NOT IN (SELECT serial_number FROM one WHERE {test}) "
                "ORDER BY serial_number"
            ),
            {"run_id": run_id},
        )
    ]
    conn.exec_driver_sql(f"DROP TABLE {_BY_FIELD}")
    if not postgres:
        conn.exec_driver_sql(f"DROP TABLE {_BY_RECORD}")
    return serials, total - len(serials)


def _paths(items: Sequence[str]) -> str:
    """``json_extract`` paths that always give an array (one path is given twice)."""
    quoted = [f"'{item}'" for item in items]
    return ", ".join(quoted * 2 if len(quoted) == 1 else quoted)


def _whole_sqlite(settle: Sequence[SettleField]) -> str:
    """SQLite: the record's plain values are the mirror's, and its mapped texts resolve
    to the mirror's ids (each side read as one JSON array)."""
    plain = [field for field in settle if field.resolve is None]
    mapped = [field for field in settle if field.resolve is not None]
    # a payload is an array of the record's values, then its ``extra`` if it has any:
    # its element after the values (null on the mirror's side) must be absent
    after = f"$[{len(RECORD_FIELDS)}]"
    tests = [
        "substr(p, 1, 1) = '['",
        f"json_extract(p, {_paths([*(f'$[{f.position}]' for f in plain), after])}) = "
        f"json_extract(v, {_paths([*(f'$.{f.api}' for f in plain), after])})",
    ]
    if mapped:
        tests.append(
            f"EXISTS (SELECT 1 FROM {_BY_RECORD} x WHERE "  # noqa: S608
            f"x.raw = json_extract(p, {_paths([f'$[{f.position}]' for f in mapped])}) "
            f"AND x.want = json_extract(v, {_paths([f'$.{f.api}' for f in mapped])}))"
        )
    return " AND ".join(tests)


def _fields_sqlite(settle: Sequence[SettleField]) -> str:
    """SQLite: every field settled, tested one by one."""
    return " AND ".join(f"({_field_sqlite(field)})" for field in settle) or "1"


def _field_sqlite(field: SettleField) -> str:
    at, api = field.position, field.api
    raw_type, raw = f"json_type(p, '$[{at}]')", f"json_extract(p, '$[{at}]')"
    if field.detail_only:  # the last written value stands for one the values lack
        now_type = (
            f"CASE WHEN json_type(v, '$.{api}') IS NULL THEN json_type(w, '$.{api}') "
            f"ELSE json_type(v, '$.{api}') END"
        )
        now = (
            f"CASE WHEN json_type(v, '$.{api}') IS NULL THEN json_extract(w, '$.{api}') "
            f"ELSE json_extract(v, '$.{api}') END"
        )
    else:
        now_type, now = f"json_type(v, '$.{api}')", f"json_extract(v, '$.{api}')"
    # json_extract gives SQL values (true is 1, as True == 1 in Python); an object or
    # an array would come as its text, so only scalars are compared
    tests = [
        f"{raw_type} IS NULL",
        f"{raw_type} = 'null'",
        f"({raw_type} IN {_SCALAR} AND {now_type} IN {_SCALAR} AND {raw} = {now})",
    ]
    if field.empty_is_nothing:
        tests.append(f"({raw_type} = 'text' AND {raw} = '')")
    if field.empty_clears:
        tests.append(f"({raw_type} = 'text' AND {raw} = '' AND {now_type} = 'null')")
    if field.resolve is not None:
        tests.append(
            f"({raw_type} = 'text' AND {now_type} IN ('integer', 'text') AND EXISTS "  # noqa: S608
            f"(SELECT 1 FROM {_BY_FIELD} x WHERE x.pos = {at} AND x.raw = {raw} "
            f"AND x.want = {now}))"
        )
    return " OR ".join(tests)


def _fields_pg(settle: Sequence[SettleField]) -> str:
    """PostgreSQL: every field settled (``jsonb`` equality: a number and a boolean are
    never equal, which only sends such a row to the engine)."""
    return " AND ".join(f"({_field_pg(field)})" for field in settle) or "true"


def _field_pg(field: SettleField) -> str:
    at, api = field.position, field.api
    raw = f"(p -> {at})"
    now = f"COALESCE(v -> '{api}', w -> '{api}')" if field.detail_only else f"(v -> '{api}')"
    tests = [f"{raw} IS NULL", f"{raw} = 'null'::jsonb", f"{raw} = {now}"]
    if field.empty_is_nothing:
        tests.append(f"{raw} = {_EMPTY_TEXT}")
    if field.empty_clears:
        tests.append(f"({raw} = {_EMPTY_TEXT} AND {now} = 'null'::jsonb)")
    if field.resolve is not None:
        tests.append(
            f"EXISTS (SELECT 1 FROM {_BY_FIELD} x WHERE x.pos = {at} "  # noqa: S608
            f"AND x.raw = {raw} AND x.want = {now})"
        )
    return " OR ".join(tests)


def _fill_maps(
    conn: Connection, run_id: int, settle: Sequence[SettleField], *, postgres: bool
) -> None:
    """The temporary tables of the mapped fields: every text the run's candidates'
    records give for one that resolves to an id (an integer or a text), per field and
    (SQLite) per record."""
    if postgres:
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_BY_FIELD} (pos INTEGER NOT NULL, raw JSONB NOT NULL, "
            "want JSONB NOT NULL, PRIMARY KEY (pos, raw)) ON COMMIT DROP"
        )
    else:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{_BY_FIELD}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{_BY_RECORD}")
        # ``want`` without a type: an id keeps its type (an integer is not a text)
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_BY_FIELD} (pos INTEGER NOT NULL, raw TEXT NOT NULL, "
            "want, PRIMARY KEY (pos, raw))"
        )
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_BY_RECORD} (raw TEXT PRIMARY KEY, want TEXT NOT NULL)"
        )
    mapped = [field for field in settle if field.resolve is not None]
    if not mapped:
        return
    by_field: set[tuple[int, str, int | str]] = set()
    by_record: list[tuple[Any, ...]] = []
    for rendered, texts in _given(conn, run_id, mapped, postgres=postgres):
        wants = [_resolve(field, text) for field, text in zip(mapped, texts, strict=False)]
        for field, text, want in zip(mapped, texts, wants, strict=False):
            if want is not None:
                by_field.add((field.position, str(text), want))
        if rendered is not None and len(wants) == len(mapped) and None not in wants:
            by_record.append((rendered, *(wants * 2 if len(wants) == 1 else wants)))
    rows: list[tuple[Any, ...]] = sorted(by_field, key=repr)
    if postgres:
        rows = [(at, _json_text(text), _json_text(want)) for at, text, want in rows]
    bulk_insert(conn, _BY_FIELD, ("pos", "raw", "want"), rows)
    if by_record:
        marks = ", ".join("?" * (len(by_record[0]) - 1))
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(
                f"INSERT INTO {_BY_RECORD} (raw, want) VALUES (?, json_array({marks}))",  # noqa: S608
                by_record,
            )
        finally:
            cursor.close()


def _given(
    conn: Connection, run_id: int, mapped: Sequence[SettleField], *, postgres: bool
) -> Iterator[tuple[str | None, Sequence[object]]]:
    """The distinct values the run's candidates' records give for the ``mapped``
    fields: each as SQLite renders them (``None`` on PostgreSQL), and decoded."""
    if postgres:
        values = ", ".join(f"sr.payload::jsonb -> {field.position}" for field in mapped)
    else:
        values = f"json_extract(sr.payload, {_paths([f'$[{f.position}]' for f in mapped])})"
    rows = conn.execute(
        sa.text(
            f"SELECT DISTINCT {values} FROM plan_candidate pc JOIN source_record sr "  # noqa: S608
            "ON sr.serial_number = pc.serial_number WHERE pc.run_id = :run_id"
        ),
        {"run_id": run_id},
    )
    for row in rows:
        if postgres:  # psycopg decodes jsonb
            yield None, tuple(row)
            continue
        try:
            texts = orjson.loads(row[0])
        except orjson.JSONDecodeError:
            continue
        if isinstance(texts, list):
            yield str(row[0]), texts


def _json_text(value: object) -> str:
    return orjson.dumps(value).decode()


def _resolve(field: SettleField, text: object) -> int | str | None:
    """The id a source's text resolves to, or ``None`` (not a text, none, several, or
    an id of another kind)."""
    if not isinstance(text, str) or field.resolve is None:
        return None
    try:
        want = field.resolve(text)
    except ValueError:
        return None
    return want if isinstance(want, int | str) and not isinstance(want, bool) else None
