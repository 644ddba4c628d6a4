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

On SQLite the test is the engine's own (``engine.is_settled``), run by SQLite over
the joined rows as a function of the connection: SQLite 3.40 parses a JSON text
again for every function call, and a field-by-field test in SQL cost more than
decoding each row once in Python. PostgreSQL compares ``jsonb`` values field by
field in SQL, the mapped fields through a temporary table of the texts the run's
records give and the ids they resolve to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.engine import SettleField, is_settled
from syncd.records import RECORD_FIELDS
from syncd.store.db import SERIAL_ORDER, bulk_insert
from syncd.store.serials import Serials
from syncd.store.tables import PLAN_CANDIDATE

#: Temporary table (PostgreSQL): each mapped field's source texts and their ids.
_BY_FIELD: Final = "syncd_settle_map"
#: The SQLite function that runs ``engine.is_settled`` over a row.
_FUNCTION: Final = "syncd_settled"
_EMPTY_TEXT: Final = "'\"\"'::jsonb"

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


def unsettled(conn: Connection, run_id: int, settle: Sequence[SettleField]) -> tuple[Serials, int]:
    """The run's candidates ``settle`` does not prove unchanged (in code point order),
    and how many it does, read inside the transaction that chose them."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        _fill_map(conn, run_id, settle)
        test = (
            "CASE WHEN jsonb_typeof(p) = 'array' THEN jsonb_array_length(p) END = "
            f"{len(RECORD_FIELDS)} AND {_fields_pg(settle)}"
        )
        columns = {"p": "sr.payload::jsonb", "v": 'm."values"::jsonb', "w": "m.written::jsonb"}
        one = f"WITH one AS MATERIALIZED ({_SINGLE_OWNED.format(**columns)}) "
    else:
        _register(conn, settle)
        test = f"{_FUNCTION}(p, v, w)"
        columns = {"p": "sr.payload", "v": 'm."values"', "w": "m.written"}
        one = f"WITH one AS ({_SINGLE_OWNED.format(**columns)}) "
    total = int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(PLAN_CANDIDATE)
            .where(PLAN_CANDIDATE.c.run_id == run_id)
        ).scalar_one()
    )
    if postgres:  # an anti-join: "NOT IN (subquery)" goes row by row past work_mem
        keep = "NOT EXISTS (SELECT 1 FROM one WHERE one.serial_number = pc.serial_number AND "
    else:
        keep = "pc.serial_number NOT IN (SELECT serial_number FROM one WHERE "
    order = SERIAL_ORDER[conn.dialect.name]
    serials = Serials.build(
        str(serial)
        for (serial,) in conn.execute(
            sa.text(
                # built from the engine's field declarations, never from data
                f"{one}SELECT serial_number FROM plan_candidate pc "  # noqa: S608
                f"WHERE run_id = :run_id AND {keep}{test}) ORDER BY {order}"
            ),
            {"run_id": run_id},
        )
    )
    if postgres:
        conn.exec_driver_sql(f"DROP TABLE {_BY_FIELD}")
    else:  # the connection goes back to the pool: it keeps no reference to this run
        driver = conn.connection.driver_connection
        driver.create_function(_FUNCTION, 3, None)  # type: ignore[union-attr]
    return serials, total - len(serials)


def _register(conn: Connection, settle: Sequence[SettleField]) -> None:
    """Give the SQLite connection ``_FUNCTION``: 1 when a row's record settles every
    field (``engine.is_settled``), 0 otherwise, also for anything it cannot read."""

    def settled(payload: str, values: str, written: str) -> int:
        try:
            return int(
                is_settled(
                    settle,
                    orjson.loads(payload),
                    orjson.loads(values),
                    lambda: orjson.loads(written),
                )
            )
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            return 0

    driver = conn.connection.driver_connection
    driver.create_function(_FUNCTION, 3, settled, deterministic=True)  # type: ignore[union-attr]


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


def _fill_map(conn: Connection, run_id: int, settle: Sequence[SettleField]) -> None:
    """PostgreSQL: the temporary ``_BY_FIELD``: for each mapped field, every text the
    run's candidates' records give for it that resolves to an id (an integer or a
    text)."""
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {_BY_FIELD} (pos INTEGER NOT NULL, raw JSONB NOT NULL, "
        "want JSONB NOT NULL, PRIMARY KEY (pos, raw)) ON COMMIT DROP"
    )
    rows: set[tuple[int, str, str]] = set()
    for field in settle:
        if field.resolve is None:
            continue
        given = conn.execute(
            sa.text(
                f"SELECT DISTINCT sr.payload ->> {field.position} FROM plan_candidate pc "  # noqa: S608
                "JOIN source_record sr ON sr.serial_number = pc.serial_number "
                f"WHERE pc.run_id = :run_id AND json_typeof(sr.payload -> {field.position}) "
                "= 'string'"
            ),
            {"run_id": run_id},
        )
        for (text,) in given:
            want = _resolve(field, text)
            if want is not None:
                rows.add((field.position, _json_text(text), _json_text(want)))
    bulk_insert(conn, _BY_FIELD, ("pos", "raw", "want"), sorted(rows))
    # a new table has no statistics: planned blind, each candidate's lookups scanned it
    conn.exec_driver_sql(f"ANALYZE {_BY_FIELD}")


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
