"""What lets several processes share one store: lease locks, and queued trigger requests.

**Lease locks** (``lease_lock``): one row per lock name. Taking it is one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` that succeeds when the lock is free,
expired, or already the taker's (which extends it): of racing takers exactly one
gets a row back. A holder that dies leaves the row until its lease runs out. This
is the embedded daemon's lock; in scale-out, Redis holds the same locks
(``syncd.locks``).

**Trigger requests** (``trigger_request``): an on-demand run asked for by the CLI,
the HTTP API or a webhook. A request joins one already queued for the same connector
(and the same kind: dry run or not), so a burst of webhooks for one connector
becomes one run: serial lists are merged, and a request for the whole source absorbs
them. A worker ``take``s every queued request of a connector at once, runs, and
``finish``es them with the run's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import sqlalchemy as sa

from syncd.store.db import Database, upsert
from syncd.store.tables import LEASE_LOCK, TRIGGER_REQUEST

TriggerState = Literal["queued", "running", "done", "failed", "skipped"]
#: At most this many serials are kept on one request; more ask for the whole source.
MAX_SERIALS: Final = 1000


@dataclass(frozen=True, slots=True)
class TriggerRow:
    """One ``trigger_request`` row."""

    id: int
    connector: str
    serials: tuple[str, ...] | None
    dry_run: bool
    source: str
    state: TriggerState
    requested_at: datetime
    updated_at: datetime
    run_id: int | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class TakenTriggers:
    """Every queued request of one connector, taken together: what to run."""

    ids: tuple[int, ...]
    connector: str
    serials: tuple[str, ...] | None
    dry_run: bool
    sources: tuple[str, ...]


# -- lease locks ------------------------------------------------------------------------------


def acquire(db: Database, name: str, owner: str, until: datetime, now: datetime) -> bool:
    """Take (or extend) the lock ``name`` for ``owner`` until ``until``; False if another
    owner holds it and its lease has not run out."""
    stmt = upsert(db.dialect, LEASE_LOCK).values(name=name, owner=owner, expires_at=until)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at},
        where=(LEASE_LOCK.c.expires_at <= now) | (LEASE_LOCK.c.owner == stmt.excluded.owner),
    ).returning(LEASE_LOCK.c.owner)
    with db.write(lock="shared") as conn:
        taken = conn.execute(stmt).scalar()
    return taken == owner


def release(db: Database, name: str, owner: str) -> bool:
    """Let go of ``name`` if ``owner`` holds it."""
    with db.write(lock="shared") as conn:
        done = conn.execute(
            LEASE_LOCK.delete().where(LEASE_LOCK.c.name == name, LEASE_LOCK.c.owner == owner)
        ).rowcount
    return done == 1


def holder(db: Database, name: str) -> tuple[str, datetime] | None:
    """``(owner, expires_at)`` of the lock ``name``, or ``None`` if nobody took it."""
    with db.read() as conn:
        row = conn.execute(
            sa.select(LEASE_LOCK.c.owner, LEASE_LOCK.c.expires_at).where(LEASE_LOCK.c.name == name)
        ).first()
    return None if row is None else (str(row.owner), row.expires_at)


# -- trigger requests -------------------------------------------------------------------------


def _merge(old: Sequence[str] | None, new: Sequence[str] | None) -> list[str] | None:
    if old is None or new is None:
        return None
    merged = sorted({*old, *new})
    return merged if len(merged) <= MAX_SERIALS else None


@dataclass(frozen=True, slots=True)
class Queued:
    """A queued request: its id, and whether it joined one already waiting (``merged``:
    that one's message, or the sweeper, will start its run; none need be sent again)."""

    id: int
    merged: bool


def request(
    db: Database,
    connector: str,
    *,
    serials: Sequence[str] | None,
    dry_run: bool,
    source: str,
    now: datetime,
) -> int:
    """Queue a run of ``connector`` (only ``serials``, if given); returns the request's id,
    which is the id of a request already queued for the same connector and kind when
    there is one (the two are merged)."""
    return enqueue(db, connector, serials=serials, dry_run=dry_run, source=source, now=now).id


def enqueue(
    db: Database,
    connector: str,
    *,
    serials: Sequence[str] | None,
    dry_run: bool,
    source: str,
    now: datetime,
) -> Queued:
    """``request``, saying whether the request was merged into one already queued."""
    wanted = None if serials is None else sorted(set(serials))
    if wanted is not None and len(wanted) > MAX_SERIALS:
        wanted = None
    with db.write(lock="exclusive") as conn:
        queued = conn.execute(
            sa.select(TRIGGER_REQUEST.c.id, TRIGGER_REQUEST.c.serials, TRIGGER_REQUEST.c.source)
            .where(
                TRIGGER_REQUEST.c.state == "queued",
                TRIGGER_REQUEST.c.connector == connector,
                TRIGGER_REQUEST.c.dry_run.is_(dry_run),
            )
            .order_by(TRIGGER_REQUEST.c.id)
            .limit(1)
        ).first()
        if queued is not None:
            sources = sorted({*str(queued.source).split(","), source})
            conn.execute(
                TRIGGER_REQUEST.update()
                .where(TRIGGER_REQUEST.c.id == queued.id)
                .values(
                    serials=_merge(queued.serials, wanted),
                    source=",".join(sources),
                    updated_at=now,
                )
            )
            return Queued(int(queued.id), merged=True)
        new_id = int(
            conn.execute(
                TRIGGER_REQUEST.insert()
                .values(
                    connector=connector,
                    serials=wanted,
                    dry_run=dry_run,
                    source=source,
                    state="queued",
                    requested_at=now,
                    updated_at=now,
                )
                .returning(TRIGGER_REQUEST.c.id)
            ).scalar_one()
        )
        return Queued(new_id, merged=False)


def take(
    db: Database, connector: str, now: datetime, *, dry_run: bool | None = None
) -> TakenTriggers | None:
    """Take every queued request of ``connector`` of one kind (``dry_run``, or the oldest
    request's kind when ``None``): ``running`` now; ``None`` if none waits."""
    with db.write(lock="exclusive") as conn:
        rows = conn.execute(
            sa.select(
                TRIGGER_REQUEST.c.id,
                TRIGGER_REQUEST.c.serials,
                TRIGGER_REQUEST.c.dry_run,
                TRIGGER_REQUEST.c.source,
            )
            .where(TRIGGER_REQUEST.c.state == "queued", TRIGGER_REQUEST.c.connector == connector)
            .order_by(TRIGGER_REQUEST.c.id)
        ).all()
        kind = bool(rows[0].dry_run) if rows and dry_run is None else dry_run
        chosen = [row for row in rows if bool(row.dry_run) == kind]
        if not chosen:
            return None
        serials: list[str] | None = []
        for row in chosen:
            serials = _merge(serials, row.serials)
        ids = [int(row.id) for row in chosen]
        conn.execute(
            TRIGGER_REQUEST.update()
            .where(TRIGGER_REQUEST.c.id.in_(ids))
            .values(state="running", updated_at=now)
        )
    sources = sorted({part for row in chosen for part in str(row.source).split(",")})
    return TakenTriggers(
        ids=tuple(ids),
        connector=connector,
        serials=None if serials is None else tuple(serials),
        dry_run=bool(kind),
        sources=tuple(sources),
    )


def finish(
    db: Database,
    ids: Sequence[int],
    state: TriggerState,
    *,
    run_id: int | None,
    detail: str | None,
    now: datetime,
) -> None:
    """Close taken requests with what became of them."""
    if not ids:
        return
    with db.write(lock="shared") as conn:
        conn.execute(
            TRIGGER_REQUEST.update()
            .where(TRIGGER_REQUEST.c.id.in_(list(ids)))
            .values(state=state, run_id=run_id, detail=detail, updated_at=now)
        )


def queued_connectors(db: Database) -> list[str]:
    """The connectors with a request waiting, oldest request first."""
    with db.read() as conn:
        rows = conn.execute(
            sa.select(TRIGGER_REQUEST.c.connector, sa.func.min(TRIGGER_REQUEST.c.id))
            .where(TRIGGER_REQUEST.c.state == "queued")
            .group_by(TRIGGER_REQUEST.c.connector)
            .order_by(sa.func.min(TRIGGER_REQUEST.c.id))
        ).all()
    return [str(row[0]) for row in rows]


def requeue_stale(db: Database, older_than: datetime, now: datetime) -> int:
    """Requests ``running`` since before ``older_than`` (their worker died): queued again."""
    with db.write(lock="shared") as conn:
        return int(
            conn.execute(
                TRIGGER_REQUEST.update()
                .where(
                    TRIGGER_REQUEST.c.state == "running",
                    TRIGGER_REQUEST.c.updated_at < older_than,
                )
                .values(state="queued", updated_at=now)
            ).rowcount
        )


def get(db: Database, request_id: int) -> TriggerRow | None:
    """One request by id."""
    with db.read() as conn:
        row = (
            conn.execute(sa.select(TRIGGER_REQUEST).where(TRIGGER_REQUEST.c.id == request_id))
            .mappings()
            .first()
        )
    if row is None:
        return None
    serials = row["serials"]
    return TriggerRow(
        id=int(row["id"]),
        connector=row["connector"],
        serials=None if serials is None else tuple(serials),
        dry_run=bool(row["dry_run"]),
        source=row["source"],
        state=row["state"],
        requested_at=row["requested_at"],
        updated_at=row["updated_at"],
        run_id=row["run_id"],
        detail=row["detail"],
    )
