"""Settling unchanged serials set-based, in SQL, before the engine sees them.

A policy change makes every serial a candidate (``planning.choose_candidates``), and
almost all of them are unchanged: one source record whose values are the mirror's.
Loading and comparing each in Python is what a full re-plan spent its time on, so the
store settles those here, with the test ``engine.settle_fields`` describes (the
shortcuts the engine's compare takes before anything can change), and hands the
engine only the rest. Settling is only ever an early "unchanged": whatever the SQL
cannot decide exactly as the engine would (a value of another JSON type or
spelling, a text the mirror holds differently, a record with ``extra``) goes to the
engine, which decides it as always.

Only a serial whose plan would leave no trace is settled, so it needs no
``plan_candidate`` row at all (writing a million of them, and marking them planned
again, was most of what remained of a re-plan): its hashes are the ones last
planned (releasing the plan would write nothing for it), and no change of it waits
or is held, and no conflict of it is open (recording the plan would supersede the
one and clear the other). Every other serial is a candidate row as before:
``MOVED`` (the serials a run without a policy change would plan, and those with a
change on its way or a conflict open) go to the engine whole, and of the rest, those
the test does not settle.

On SQLite the test is the engine's own (``engine.is_settled``), run by SQLite over
the joined rows as a function of the connection: SQLite 3.40 parses a JSON text
again for every function call, and a field-by-field test in SQL cost more than
decoding each row once in Python. PostgreSQL compares ``jsonb`` values field by
field in SQL, the mapped fields through a temporary table of the texts the
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
from syncd.store.db import bulk_insert

#: Temporary table (PostgreSQL): each mapped field's source texts and their ids.
_BY_FIELD: Final = "syncd_settle_map"
#: The SQLite function that runs ``engine.is_settled`` over a row.
_FUNCTION: Final = "syncd_settled"
_EMPTY_TEXT: Final = "'\"\"'::jsonb"

#: The serials whose inputs moved since they were last planned (a source's rows or the
#: inventory's values), and every tombstoned serial: the candidates of a run.
CHANGED_SERIALS: Final = (
    "SELECT serial_number FROM desired WHERE sources_hash <> synced_hash "
    "UNION SELECT serial_number FROM mirror WHERE values_hash <> synced_values_hash "
    "UNION SELECT serial_number FROM tombstone"
)
#: A serial the store keeps something of.
_KNOWN: Final = (
    "(EXISTS (SELECT 1 FROM desired d WHERE d.serial_number = {s}) "
    "OR EXISTS (SELECT 1 FROM mirror m WHERE m.serial_number = {s}))"
)
#: What a re-plan never settles: the changed serials, and those whose plan would leave
#: a trace even when the engine plans nothing (a change waiting or held, which the plan
#: supersedes; an open conflict, which it clears).
MOVED_SERIALS: Final = (
    f"{CHANGED_SERIALS} UNION SELECT c.serial_number FROM change c "  # noqa: S608
    "WHERE c.status IN ('pending', 'dispatched', 'applying', 'held') "
    f"AND {_KNOWN.format(s='c.serial_number')} "
    "UNION SELECT o.serial_number FROM open_conflict o "
    f"WHERE {_KNOWN.format(s='o.serial_number')}"
)


def select_into(serials: str) -> str:
    """``INSERT`` the serials ``serials`` selects into the run's ``plan_candidate``, each
    with the hashes it has now (looked up per serial: the cost follows their number)."""
    return (
        "INSERT INTO plan_candidate (run_id, serial_number, desired_hash, values_hash) "  # noqa: S608
        "SELECT :run_id, s.serial_number, "
        "(SELECT d.sources_hash FROM desired d WHERE d.serial_number = s.serial_number), "
        "(SELECT m.values_hash FROM mirror m WHERE m.serial_number = s.serial_number) "
        f"FROM ({serials}) s"
    )


def choose(conn: Connection, run_id: int, serials: str) -> None:
    """Make the serials ``serials`` selects (``CHANGED_SERIALS``, ``MOVED_SERIALS``: each
    branch answered from a partial index) candidates of the run, with their hashes."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # PostgreSQL cannot estimate "column <> column" (it guesses almost every row)
        # and would scan both tables; the partial indexes hold what is wanted, so steer
        # this one statement to them.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    conn.execute(sa.text(select_into(serials)), {"run_id": run_id})
    if postgres:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = on")


_NOT_CHOSEN: Final = (
    "NOT EXISTS (SELECT 1 FROM plan_candidate pc WHERE pc.run_id = :run_id "
    "AND pc.serial_number = {s})"
)
# One record and an owned device present (the record wanted, an upsert: ``_WANTED``).
# ``record_count`` is the number of the serial's ``source_record`` rows: both are written
# in the merge's one transaction (``staging.recompute_desired``).
_SINGLE_OWNED: Final = "d.record_count = 1 AND m.present AND m.ownership <> 'unmanaged'"
_WANTED: Final = "sr.serial_number = d.serial_number AND sr.wanted AND sr.action <> 'delete'"
# Every serial with a ``desired`` row not chosen yet, unless ``{settled}`` holds for it.
_UNSETTLED_DESIRED: Final = (
    "{prefix}INSERT INTO plan_candidate (run_id, serial_number, desired_hash, values_hash) "  # noqa: S608
    "SELECT :run_id, d.serial_number, d.sources_hash, m.values_hash FROM desired d "
    "LEFT JOIN mirror m ON m.serial_number = d.serial_number "
    f"WHERE {_NOT_CHOSEN.format(s='d.serial_number')} AND NOT COALESCE({{settled}}, false)"
)
# A serial only the mirror knows has no record to settle it. (Its hash is looked up for
# the few found: the scan itself reads only the mirror's primary key index.)
_MIRROR_ONLY: Final = select_into(
    "SELECT m.serial_number FROM mirror m "  # noqa: S608
    "WHERE NOT EXISTS (SELECT 1 FROM desired d WHERE d.serial_number = m.serial_number) "
    f"AND {_NOT_CHOSEN.format(s='m.serial_number')}"
)


def choose_unsettled(conn: Connection, run_id: int, settle: Sequence[SettleField]) -> int:
    """A re-plan's candidates (``plan_candidate`` is empty for the run): the moved serials,
    then every other serial ``settle`` does not prove unchanged; returns how many it
    proves (they have no row), inside the transaction that chose the rest."""
    postgres = conn.dialect.name == "postgresql"
    params = {"run_id": run_id}
    choose(conn, run_id, MOVED_SERIALS)
    if postgres:
        conn.exec_driver_sql("ANALYZE plan_candidate")
        _fill_map(conn, settle)
        one = (
            'SELECT d.serial_number, sr.payload::jsonb AS p, m."values"::jsonb AS v, '  # noqa: S608
            "m.written::jsonb AS w FROM desired d "
            "JOIN mirror m ON m.serial_number = d.serial_number "
            f"JOIN source_record sr ON {_WANTED} "
            f"WHERE {_SINGLE_OWNED} AND {_NOT_CHOSEN.format(s='d.serial_number')}"
        )
        test = (
            "CASE WHEN jsonb_typeof(p) = 'array' THEN jsonb_array_length(p) END = "
            f"{len(RECORD_FIELDS)} AND {_fields_pg(settle)}"
        )
        statement = _UNSETTLED_DESIRED.format(
            prefix=f"WITH one AS MATERIALIZED ({one}) ",
            settled="EXISTS (SELECT 1 FROM one WHERE one.serial_number = d.serial_number "  # noqa: S608
            f"AND {test})",
        )
    else:
        _register(conn, settle)
        statement = _UNSETTLED_DESIRED.format(
            prefix="",
            settled=f"{_SINGLE_OWNED} AND EXISTS (SELECT 1 FROM source_record sr WHERE "  # noqa: S608
            f'{_WANTED} AND {_FUNCTION}(sr.payload, m."values", m.written))',
        )
    try:
        conn.execute(sa.text(statement), params)  # built from declarations, never from data
    finally:
        if not postgres:  # the connection goes back to the pool: no reference to this run
            driver = conn.connection.driver_connection
            driver.create_function(_FUNCTION, 3, None)  # type: ignore[union-attr]
    if postgres:  # (dropped on commit anyway; a failed statement rolls it back with the rest)
        conn.exec_driver_sql(f"DROP TABLE {_BY_FIELD}")
    conn.execute(sa.text(_MIRROR_ONLY), params)
    # Every serial with a ``desired`` row is now chosen or settled, and only those settle.
    desired, chosen = conn.execute(
        sa.text(
            "SELECT (SELECT count(*) FROM desired), (SELECT count(*) FROM plan_candidate pc "
            "JOIN desired d ON d.serial_number = pc.serial_number WHERE pc.run_id = :run_id)"
        ),
        params,
    ).one()
    return int(desired) - int(chosen)


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


def _fill_map(conn: Connection, settle: Sequence[SettleField]) -> None:
    """PostgreSQL: the temporary ``_BY_FIELD``: for each mapped field, every text the
    stored records give for it that resolves to an id (an integer or a text)."""
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
                f"SELECT DISTINCT sr.payload ->> {field.position} FROM source_record sr "  # noqa: S608
                f"WHERE json_typeof(sr.payload -> {field.position}) = 'string'"
            )
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
