"""Runs and the outbox: approving, claiming and completing changes; audit queries.

A change moves ``pending -> applying -> applied | failed | skipped`` (or starts
``held`` in a held plan, or ``skipped`` for a report-only operation). Claiming is a
single conditional ``UPDATE ... WHERE status = 'pending'``: of any number of
workers racing for one change, exactly one sees a row updated.

A worker that dies holding a claim leaves the change ``applying``, with the dead
process's identity in ``claimed_by``. Once a caller has judged that process gone
(``syncd.service.recovery``), ``abandon`` fails such a change and marks its serial
for planning again; it is never sent as it stands: newer runs may have planned and
applied something else for the same serial since (a stale PATCH would revert a newer
value, a stale DELETE remove a device wanted again), so the next run decides afresh
from the refreshed mirror. ``take_over`` lets one recovering process read back the
outcome of a create first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from syncd.log import redact
from syncd.process import GIVEN_UP
from syncd.store.db import Database
from syncd.store.planning import (
    RunStateError,
    UnknownRunError,
    drop_candidates,
    force_replan,
    held_serials,
    is_newest_plan,
    release_plan,
    run_status,
    serials_of_change,
)
from syncd.store.rows import ChangeRow, ChangeStatus, RunRow, RunStatus
from syncd.store.tables import CHANGE, REJECT, SOURCE_BATCH, SYNC_RUN

#: The keys of an API response summary a change row keeps; anything else is dropped,
#: so headers (and a token in them) can never reach the audit log.
RESPONSE_KEYS: Final = ("status_code", "detail", "field_errors", "retry_after", "method", "path")
_MAX_TEXT: Final = 2000
#: The error of a change whose claim went stale (its process died while applying it).
ABANDONED: Final = "abandoned: the process applying it stopped"

FinalStatus = Literal["applied", "failed", "skipped"]


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        text = redact(value)
        return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 3:
        return _clean(str(value), depth)
    if isinstance(value, Mapping):
        return {str(_clean(str(k))): _clean(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [_clean(v, depth + 1) for v in list(value)[:50]]
    return _clean(str(value), depth)


def response_summary(response: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The whitelisted, redacted, size-capped summary stored with a change."""
    if response is None:
        return None
    return {key: _clean(response[key]) for key in RESPONSE_KEYS if key in response}


def begin_run(
    db: Database,
    trigger: str,
    policy_fingerprint: str,
    now: datetime,
    owner: str | None = None,
    *,
    connector: str | None = None,
    run_id: int | None = None,
) -> int:
    """Open a run in ``planning``, owned by the process ``owner``, of the sources
    ``connector`` names; returns its id (the next of the sequence, or ``run_id``: a
    rehearsal's, which takes none)."""
    values: dict[str, Any] = {
        "trigger": trigger,
        "started_at": now,
        "status": "planning",
        "policy_fingerprint": policy_fingerprint,
        "summary": {},
        "owner": owner,
        "connector": connector,
    }
    if run_id is not None:
        values["id"] = run_id
    with db.write() as conn:
        made = conn.execute(
            SYNC_RUN.insert().values(**values).returning(SYNC_RUN.c.id)
        ).scalar_one()
    return int(made)


def approve_run(db: Database, run_id: int, by: str, now: datetime) -> int:
    """Release a held run: its held changes become pending. Returns how many.

    Only the newest recorded plan can be held: recording a plan closes every older
    held run ("overtaken by run N", its changes skipped and its serials re-planned),
    so approving one of those raises ``RunStateError``; the newer plan is the one to
    approve. An approved plan is let through as a whole (its serials marked planned,
    its source sizes the new baseline of the volume gate).
    """
    with db.write(lock="exclusive") as conn:
        status, fingerprint = run_status(conn, run_id)
        if status != "held":
            raise RunStateError(f"run {run_id} is {status}, not held: nothing to approve")
        released = conn.execute(
            CHANGE.update()
            .where(CHANGE.c.run_id == run_id, CHANGE.c.status == "held")
            .values(status="pending", updated_at=now)
        ).rowcount
        if is_newest_plan(conn, run_id):
            release_plan(conn, db.dialect, run_id, fingerprint)
        drop_candidates(conn, run_id)
        conn.execute(
            SYNC_RUN.update()
            .where(SYNC_RUN.c.id == run_id)
            .values(
                status="applying" if released else "done",
                finished_at=None if released else now,
                approved_by=by,
                approved_at=now,
            )
        )
    return int(released)


def discard_run(db: Database, run_id: int, by: str, reason: str, now: datetime) -> int:
    """Refuse a held run: its held changes are skipped and their serials planned again
    by the next run. Returns how many changes were discarded."""
    with db.write(lock="exclusive") as conn:
        status, _ = run_status(conn, run_id)
        if status != "held":
            raise RunStateError(f"run {run_id} is {status}, not held: nothing to discard")
        force_replan(conn, held_serials(run_id))
        drop_candidates(conn, run_id)
        why = f"discarded by {by}: {reason}" if reason else f"discarded by {by}"
        discarded = conn.execute(
            CHANGE.update()
            .where(CHANGE.c.run_id == run_id, CHANGE.c.status == "held")
            .values(status="skipped", error=redact(why), updated_at=now)
        ).rowcount
        conn.execute(
            SYNC_RUN.update()
            .where(SYNC_RUN.c.id == run_id)
            .values(status="discarded", finished_at=now, error=redact(why))
        )
    return int(discarded)


def finish_run(
    db: Database,
    run_id: int,
    *,
    status: RunStatus | None,
    summary: Mapping[str, Any] | None,
    error: str | None,
    now: datetime,
) -> None:
    """Close a run; ``summary`` is merged into what the run already recorded. With
    ``status=None`` only the summary is merged: the status stays whatever it is now
    (the daemon's workers may have closed the run meanwhile)."""
    with db.write() as conn:
        current = conn.execute(sa.select(SYNC_RUN.c.summary).where(SYNC_RUN.c.id == run_id)).first()
        if current is None:
            raise UnknownRunError(f"no run {run_id}")
        merged = {**(current.summary or {}), **(summary or {})}
        values: dict[str, Any] = {"summary": merged}
        if status is not None:
            values["status"] = status
            values["error"] = redact(error) if error else None
            values["finished_at"] = None if status in ("planning", "applying") else now
        conn.execute(SYNC_RUN.update().where(SYNC_RUN.c.id == run_id).values(**values))


#: Statuses of a change that is still on its way to the API.
WAITING: Final = ("pending", "dispatched", "applying")

ClaimResult = Literal["claimed", "busy", "gone"]


def claim(db: Database, change_id: int, now: datetime, owner: str | None) -> ClaimResult:
    """Take a pending or dispatched change for applying, as the process ``owner``.

    ``claimed`` for exactly one of racing workers; ``busy`` while an older change of the
    same serial is still on its way (the changes of one serial go out in order, one at
    a time); ``gone`` if it is no longer waiting (applied, superseded, taken by another).
    """
    older = CHANGE.alias("older")
    blocked = (
        sa.select(older.c.id)
        .where(
            older.c.serial_number == CHANGE.c.serial_number,
            older.c.id < CHANGE.c.id,
            older.c.status.in_(WAITING),
        )
        .exists()
    )
    with db.write(lock="shared") as conn:
        claimed = conn.execute(
            CHANGE.update()
            .where(
                CHANGE.c.id == change_id,
                CHANGE.c.status.in_(("pending", "dispatched")),
                ~blocked,
            )
            .values(
                status="applying",
                attempts=CHANGE.c.attempts + 1,
                updated_at=now,
                claimed_by=owner,
                lease_until=None,
            )
        ).rowcount
        if claimed == 1:
            return "claimed"
        status = conn.execute(sa.select(CHANGE.c.status).where(CHANGE.c.id == change_id)).scalar()
    return "busy" if status in ("pending", "dispatched") else "gone"


def claim_change(db: Database, change_id: int, now: datetime, owner: str | None = None) -> bool:
    """``claim`` answering only whether it was claimed."""
    return claim(db, change_id, now, owner) == "claimed"


def _lease_batch(
    db: Database, selected: Sequence[Any], limit: int, values: Mapping[str, Any]
) -> list[ChangeRow]:
    """Give up to ``limit`` changes matching ``selected`` (oldest first) ``values`` in one
    transaction, and return them as they are then."""
    with db.write(lock="exclusive") as conn:
        ids = list(
            conn.execute(
                sa.select(CHANGE.c.id).where(*selected).order_by(CHANGE.c.id).limit(limit)
            ).scalars()
        )
        if not ids:
            return []
        conn.execute(CHANGE.update().where(CHANGE.c.id.in_(ids), *selected).values(**values))
        rows = (
            conn.execute(sa.select(CHANGE).where(CHANGE.c.id.in_(ids)).order_by(CHANGE.c.id))
            .mappings()
            .all()
        )
    return [_change(row) for row in rows]


def dispatch(db: Database, limit: int, lease_until: datetime, now: datetime) -> list[ChangeRow]:
    """Mark up to ``limit`` pending changes ``dispatched`` (oldest first) and return them:
    their messages are to be sent now, and a change still ``dispatched`` after
    ``lease_until`` is sent again by the sweeper (``expired_dispatches``)."""
    values = {"status": "dispatched", "lease_until": lease_until, "updated_at": now}
    return _lease_batch(db, [CHANGE.c.status == "pending"], limit, values)


def expired_dispatches(
    db: Database, now: datetime, lease_until: datetime, limit: int
) -> list[ChangeRow]:
    """The dispatched changes whose lease ran out (their message was lost, or its worker
    died before claiming it), given a new lease, oldest first."""
    selected = [CHANGE.c.status == "dispatched", CHANGE.c.lease_until < now]
    return _lease_batch(db, selected, limit, {"lease_until": lease_until, "updated_at": now})


def retry_later(
    db: Database, change_id: int, until: datetime, error: str | None, now: datetime
) -> bool:
    """A claimed change met a transient failure: back to ``dispatched`` until ``until``
    (its retry message is due then; the sweeper sends it again if that is lost)."""
    with db.write(lock="shared") as conn:
        done = conn.execute(
            CHANGE.update()
            .where(CHANGE.c.id == change_id, CHANGE.c.status == "applying")
            .values(
                status="dispatched",
                lease_until=until,
                error=redact(error) if error else None,
                updated_at=now,
            )
        ).rowcount
    return done == 1


def requeue_failed(
    db: Database, ids: Sequence[int] | None, run_id: int | None, now: datetime
) -> list[ChangeRow]:
    """``syncd retry``: failed changes (these ids, or of this run, or all) whose serial has
    no newer change waiting go back to ``pending``; returns them. Each is re-checked
    against the inventory before it is sent (see ``syncd.service.outbox.retry``)."""
    newer = CHANGE.alias("newer")
    superseded = (
        sa.select(newer.c.id)
        .where(newer.c.serial_number == CHANGE.c.serial_number, newer.c.id > CHANGE.c.id)
        .exists()
    )
    where = [CHANGE.c.status == "failed", ~superseded]
    if ids is not None:
        where.append(CHANGE.c.id.in_(list(ids)))
    if run_id is not None:
        where.append(CHANGE.c.run_id == run_id)
    with db.write(lock="exclusive") as conn:
        found = list(conn.execute(sa.select(CHANGE.c.id).where(*where)).scalars())
        if not found:
            return []
        conn.execute(
            CHANGE.update()
            .where(CHANGE.c.id.in_(found))
            .values(status="pending", error=None, updated_at=now, lease_until=None)
        )
        rows = (
            conn.execute(sa.select(CHANGE).where(CHANGE.c.id.in_(found)).order_by(CHANGE.c.id))
            .mappings()
            .all()
        )
    return [_change(row) for row in rows]


def take_over(
    db: Database, change_id: int, previous: str | None, owner: str, now: datetime
) -> bool:
    """Move a claimed change from the process ``previous`` (gone) to ``owner``; True for
    exactly one of the processes racing to recover it."""
    with db.write(lock="shared") as conn:
        taken = conn.execute(
            CHANGE.update()
            .where(
                CHANGE.c.id == change_id,
                CHANGE.c.status == "applying",
                CHANGE.c.claimed_by.is_(None)
                if previous is None
                else CHANGE.c.claimed_by == previous,
            )
            .values(claimed_by=owner, updated_at=now)
        ).rowcount
    return taken == 1


def give_up(db: Database, change_id: int, owner: str, note: str, now: datetime) -> None:
    """Leave a claimed change to whoever recovers it next (``GIVEN_UP`` + ``owner``: dead
    to ``liveness``): its outcome is unknown, e.g. a POST cut off in flight."""
    with db.write(lock="shared") as conn:
        conn.execute(
            CHANGE.update()
            .where(CHANGE.c.id == change_id, CHANGE.c.status == "applying")
            .values(claimed_by=GIVEN_UP + owner, error=redact(note), updated_at=now)
        )


def claimed_changes(db: Database) -> list[ChangeRow]:
    """Every change some process is applying (or was, when it died), oldest first."""
    with db.read() as conn:
        rows = (
            conn.execute(
                sa.select(CHANGE).where(CHANGE.c.status == "applying").order_by(CHANGE.c.id)
            )
            .mappings()
            .all()
        )
    return [_change(row) for row in rows]


def open_runs(db: Database) -> list[RunRow]:
    """Runs still ``planning`` or ``applying``, oldest first."""
    with db.read() as conn:
        rows = (
            conn.execute(
                sa.select(SYNC_RUN)
                .where(SYNC_RUN.c.status.in_(("planning", "applying")))
                .order_by(SYNC_RUN.c.id)
            )
            .mappings()
            .all()
        )
    return [_run(row) for row in rows]


def close_interrupted(db: Database, run_id: int, error: str, now: datetime) -> bool:
    """Close a run left ``planning`` by a process that is gone: ``interrupted``."""
    with db.write() as conn:
        closed = conn.execute(
            SYNC_RUN.update()
            .where(SYNC_RUN.c.id == run_id, SYNC_RUN.c.status == "planning")
            .values(status="interrupted", error=redact(error), finished_at=now)
        ).rowcount
        drop_candidates(conn, run_id)
    return closed == 1


def close_if_final(db: Database, run_id: int, note: str, now: datetime) -> RunStatus | None:
    """Close an ``applying`` run whose changes are all final: ``failed`` if one failed,
    else ``done``, with ``note`` merged into its summary. Returns the status set, or
    ``None`` if the run is not ``applying`` or still has work waiting."""
    waiting = (
        sa.select(CHANGE.c.id)
        .where(CHANGE.c.run_id == run_id, CHANGE.c.status.in_((*WAITING, "held")))
        .exists()
    )
    with db.read() as conn:  # the common answer, from the index alone: not yet
        if conn.execute(sa.select(waiting)).scalar():
            return None
    with db.write() as conn:
        counts: dict[str, int] = dict(
            conn.execute(
                sa.select(CHANGE.c.status, sa.func.count())
                .where(CHANGE.c.run_id == run_id)
                .group_by(CHANGE.c.status)
            ).all()
        )
        if any(counts.get(s, 0) for s in (*WAITING, "held")):
            return None
        row = conn.execute(
            sa.select(SYNC_RUN.c.status, SYNC_RUN.c.summary).where(SYNC_RUN.c.id == run_id)
        ).first()
        if row is None or row.status != "applying":
            return None
        status: RunStatus = "failed" if counts.get("failed", 0) else "done"
        summary = {**(row.summary or {}), "closed": note, "changes": {**counts}}
        conn.execute(
            SYNC_RUN.update()
            .where(SYNC_RUN.c.id == run_id, SYNC_RUN.c.status == "applying")
            .values(status=status, summary=summary, finished_at=now)
        )
    return status


def release_change(db: Database, change_id: int, error: str | None, now: datetime) -> bool:
    """Give a claimed change back (a retriable failure): ``applying -> pending``."""
    with db.write(lock="shared") as conn:
        released = conn.execute(
            CHANGE.update()
            .where(CHANGE.c.id == change_id, CHANGE.c.status == "applying")
            .values(status="pending", error=redact(error) if error else None, updated_at=now)
        ).rowcount
    return released == 1


def complete(
    conn: Connection,
    change_id: int,
    *,
    status: FinalStatus,
    response: Mapping[str, Any] | None,
    error: str | None,
    now: datetime,
    replan: bool = True,
) -> bool:
    """Finish a change (inside the caller's transaction); False if it was already final.

    A failed change's serial is planned again by the next run, unless ``replan`` is
    False (the API refused the change: sending it again would fail the same way).
    """
    if status not in ("applied", "failed", "skipped"):
        raise ValueError(f"a change ends applied, failed or skipped, not {status!r}")
    done = conn.execute(
        CHANGE.update()
        .where(CHANGE.c.id == change_id, CHANGE.c.status.in_(WAITING))
        .values(
            status=status,
            response=response_summary(response),
            error=redact(error) if error else None,
            updated_at=now,
            applied_at=now if status == "applied" else None,
        )
    ).rowcount
    if done and status == "failed" and replan:
        force_replan(conn, serials_of_change(change_id))
    return done == 1


def abandon(db: Database, change: ChangeRow, owner: str, error: str, now: datetime) -> bool:
    """Fail a change claimed by a process that is gone (the caller judged it so), and
    mark its serial for planning again; ``owner`` is the process doing it. False if
    the change finished or another process recovered it meanwhile."""
    previous = change.claimed_by
    with db.write(lock="shared") as conn:
        done = conn.execute(
            CHANGE.update()
            .where(
                CHANGE.c.id == change.id,
                CHANGE.c.status == "applying",
                CHANGE.c.claimed_by.is_(None)
                if previous is None
                else CHANGE.c.claimed_by == previous,
            )
            .values(
                status="failed",
                error=redact(error),
                updated_at=now,
                applied_at=None,
                claimed_by=owner,
            )
        ).rowcount
        if done:
            force_replan(conn, serials_of_change(change.id))
    return done == 1


# -- reading -------------------------------------------------------------------------------


def _change(row: RowMapping) -> ChangeRow:
    return ChangeRow(
        id=int(row["id"]),
        run_id=int(row["run_id"]),
        serial_number=row["serial_number"],
        operation=row["operation"],
        changes=row["changes"] or {},
        reason=row["reason"],
        sources=tuple(row["sources"] or ()),
        origins=tuple(row["origins"] or ()),
        status=row["status"],
        attempts=int(row["attempts"]),
        response=row["response"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        applied_at=row["applied_at"],
        claimed_by=row["claimed_by"],
        lease_until=row["lease_until"],
    )


def _run(row: RowMapping) -> RunRow:
    return RunRow(
        id=int(row["id"]),
        trigger=row["trigger"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        policy_fingerprint=row["policy_fingerprint"],
        summary=row["summary"] or {},
        error=row["error"],
        approved_by=row["approved_by"],
        approved_at=row["approved_at"],
        owner=row["owner"],
    )


#: A ``change`` row as a ``ChangeRow``, a ``sync_run`` row as a ``RunRow`` (for the audit).
change_from_row = _change
run_from_row = _run


def pending_changes(db: Database, run_id: int | None, limit: int) -> list[ChangeRow]:
    """The outbox: pending changes, oldest first."""
    query = sa.select(CHANGE).where(CHANGE.c.status == "pending")
    if run_id is not None:
        query = query.where(CHANGE.c.run_id == run_id)
    with db.read() as conn:
        rows = conn.execute(query.order_by(CHANGE.c.id).limit(limit)).mappings().all()
    return [_change(row) for row in rows]


def changes(
    db: Database,
    *,
    run_id: int | None,
    serial: str | None,
    status: ChangeStatus | None,
    limit: int,
    before_id: int | None = None,
) -> list[ChangeRow]:
    """Audit: changes matching every filter given, newest first."""
    query = sa.select(CHANGE)
    filters = [(CHANGE.c.serial_number, serial), (CHANGE.c.run_id, run_id)]
    filters.append((CHANGE.c.status, status))
    given = [(column, value) for column, value in filters if value is not None]
    if given:
        where, order = newest_first(*given[0], db.dialect)
        query = query.where(*where, *(c == v for c, v in given[1:])).order_by(*order)
    else:
        query = query.order_by(CHANGE.c.id.desc())
    if before_id is not None:
        query = query.where(CHANGE.c.id < before_id)
    with db.read() as conn:
        rows = conn.execute(query.limit(limit)).mappings().all()
    return [_change(row) for row in rows]


def newest_first(
    column: sa.Column[Any], value: object, dialect: str
) -> tuple[list[Any], list[Any]]:
    """The first filter of an audit query (serial, else run, else status) and its order,
    so that the database walks that column's index (``ix_change_serial``,
    ``ix_change_run``, ``ix_change_status``, ``ix_reject_run``: each ends with ``id``)
    from the cursor and stops after one page, at any size: the ``WHERE`` terms and the
    ``ORDER BY`` (the column, then ``id``, descending).

    On PostgreSQL the filter is the range ``column >= value AND column <= value``: with
    ``column = value ORDER BY id DESC`` it takes the column as settled and may walk the
    primary key backwards instead, filtering as it goes, which reads millions of rows for
    an old run at 5M changes (its statistics cannot know that a run's ids sit together);
    a range leaves the index as the only source of the order, and it still starts the
    walk at ``(value, cursor)``. SQLite keeps the equality: it picks the index anyway, and
    after a range on the first column it could not start the walk at the cursor."""
    order = [column.desc(), column.table.c.id.desc()]
    if dialect == "postgresql":
        return [column >= value, column <= value], order
    return [column == value], order


def change(db: Database, change_id: int) -> ChangeRow | None:
    """One change by id."""
    with db.read() as conn:
        row = conn.execute(sa.select(CHANGE).where(CHANGE.c.id == change_id)).mappings().first()
    return None if row is None else _change(row)


def count_pending(db: Database, run_id: int | None) -> int:
    """How many changes wait in the outbox (of one run, or all)."""
    query = sa.select(sa.func.count()).select_from(CHANGE).where(CHANGE.c.status == "pending")
    if run_id is not None:
        query = query.where(CHANGE.c.run_id == run_id)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def mark_idle(db: Database, run_id: int) -> bool:
    """A finished run that left nothing behind (no change, reject or batch: a scheduled
    poll of an empty inbox) becomes ``idle``: kept, but out of the default views. Run
    ids are never reused. True if it was marked."""
    leftovers = [
        sa.select(CHANGE.c.id).where(CHANGE.c.run_id == run_id).exists(),
        sa.select(REJECT.c.id).where(REJECT.c.run_id == run_id).exists(),
        sa.select(SOURCE_BATCH.c.id).where(SOURCE_BATCH.c.run_id == run_id).exists(),
    ]
    with db.write() as conn:
        if any(conn.execute(sa.select(test)).scalar() for test in leftovers):
            return False
        done = conn.execute(
            SYNC_RUN.update()
            .where(SYNC_RUN.c.id == run_id, SYNC_RUN.c.status == "done")
            .values(status="idle")
        ).rowcount
    return done == 1


def count_waiting(db: Database, run_id: int | None) -> int:
    """How many changes are on their way: pending, dispatched or applying."""
    query = sa.select(sa.func.count()).select_from(CHANGE).where(CHANGE.c.status.in_(WAITING))
    if run_id is not None:
        query = query.where(CHANGE.c.run_id == run_id)
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def change_counts(db: Database, run_id: int) -> dict[str, int]:
    """How many of the run's changes are in each status."""
    with db.read() as conn:
        rows = conn.execute(
            sa.select(CHANGE.c.status, sa.func.count())
            .where(CHANGE.c.run_id == run_id)
            .group_by(CHANGE.c.status)
        )
        return {str(status): int(n) for status, n in rows}


def runs(db: Database, limit: int, *, idle: bool = True) -> list[RunRow]:
    """The latest runs, newest first (without ``idle`` polls unless ``idle``)."""
    query = sa.select(SYNC_RUN)
    if not idle:
        query = query.where(SYNC_RUN.c.status != "idle")
    with db.read() as conn:
        rows = conn.execute(query.order_by(SYNC_RUN.c.id.desc()).limit(limit)).mappings().all()
    return [_run(row) for row in rows]


def run(db: Database, run_id: int) -> RunRow | None:
    """One run by id."""
    with db.read() as conn:
        row = conn.execute(sa.select(SYNC_RUN).where(SYNC_RUN.c.id == run_id)).mappings().first()
    return None if row is None else _run(row)
