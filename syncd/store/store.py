"""``Store``: the one object the rest of syncd uses to reach the state store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

import sqlalchemy as sa

from syncd import process
from syncd.config import StoreSettings
from syncd.engine import Candidate, Catalogue, Plan, SettleField
from syncd.errors import ConfigError, Problem
from syncd.records import DeviceRecord, InventoryDevice, Reject
from syncd.store import access, audit, coordination, mirror, outbox, planning, retention
from syncd.store import metrics as metric_rows
from syncd.store import migrate as migrations
from syncd.store import tokens as token_rows
from syncd.store.db import Database, safe_url, upsert
from syncd.store.rows import (
    BatchEntry,
    BatchMode,
    BatchStats,
    ChangeRow,
    ChangeStatus,
    MirrorStats,
    RejectEntry,
    RunRow,
    RunStatus,
)
from syncd.store.staging import UNSET, StagedBatch, iter_chunks
from syncd.store.tables import REJECT, SOURCE_BATCH, SOURCE_STATE

_PRESENT_DEVICES = "SELECT count(*) FROM mirror WHERE present"


class VerdictLike(Protocol):
    """What ``store_batch`` needs of a verdict (``connectors.base.Verdict`` fits)."""

    @property
    def accepted(self) -> bool: ...

    @property
    def reason(self) -> str: ...


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("times handed to the store must be timezone-aware")
    return now


def upgrade_database(url: str) -> str | None:
    """Bring the database at ``url`` to the newest schema (``syncd db upgrade``);
    returns the revision it is at afterwards."""
    with Store.open(url, migrate=False) as store:
        return store.upgrade()


class Store:
    """The state store: sources, desired state, mirror, catalogue, runs and changes.

    Build one with ``Store.open(url)``; it is safe to share between threads (each
    call takes its own pooled connection). Times default to "now"; every method that
    writes one accepts ``now`` so tests and the engine agree on the clock.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, echo: bool = False) -> Store:
        """Connect to ``url`` (``sqlite:///path`` or ``postgresql://...``).

        ``migrate`` upgrades the schema to the newest revision first (under a lock,
        so concurrent openers queue). ``migrate=False`` leaves the schema alone (for
        ``syncd db upgrade`` and tools that inspect it): call ``ensure_current()`` to
        refuse an out-of-date schema with a clear message.

        A store that cannot be used raises ``ConfigError`` (a bad path or URL, a file
        that is not a database, a read-only folder, an unknown PostgreSQL database or
        role) or ``StoreUnavailableError`` (down or busy for now); see ``access``.
        """
        parsed = access.parse(url)
        path = access.sqlite_file(parsed)
        problem = access.sqlite_problem(path) if path is not None else None
        if problem:
            raise ConfigError([Problem("store.url", problem)], source="store")
        with access.translate(parsed):
            db = Database(parsed, echo=echo)
        try:
            with access.translate(parsed):
                with db.read():
                    pass  # connect now: a broken database fails here, by name
                if migrate:
                    migrations.upgrade(db)
        except BaseException:
            db.dispose()
            raise
        return cls(db)

    @classmethod
    def from_settings(cls, settings: StoreSettings, *, migrate: bool = True) -> Store:
        """``open`` with the ``[store]`` section of the configuration."""
        return cls.open(settings.url, migrate=migrate, echo=settings.echo)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return safe_url(self._db.engine.url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.dialect

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for the store's own tools and tests)."""
        return self._db.engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._db.dispose()

    def rehearsal(self) -> AbstractContextManager[object]:
        """Until the block ends, everything this thread does with the store happens in
        one transaction that is then rolled back (a dry run: see ``Database.rehearsal``)."""
        return self._db.rehearsal()

    @property
    def rehearsing(self) -> bool:
        """Whether this thread is in a rehearsal (nothing it writes will remain)."""
        return self._db.rehearsing

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- schema ----------------------------------------------------------------------------

    def upgrade(self) -> str | None:
        """Migrate to the newest schema revision (``syncd db upgrade``); returns it."""
        with access.translate(self._db.engine.url):
            return migrations.upgrade(self._db)

    def ensure_current(self) -> None:
        """Raise ``SchemaOutOfDateError`` (naming ``syncd db upgrade``) unless the schema
        is at the newest revision."""
        migrations.ensure_current(self._db)

    def schema_revision(self) -> str | None:
        """The revision the database is at."""
        return migrations.current_revision(self._db)

    def schema_diff(self) -> list[Any]:
        """Differences between the live schema and the table classes (empty: in step)."""
        return migrations.schema_diff(self._db)

    # -- sources ---------------------------------------------------------------------------

    def stage(
        self, connector: str, *, mode: BatchMode, origin: str, run_id: int | None = None
    ) -> StagedBatch:
        """Start storing one batch of ``connector``: ``add()`` its items, then
        ``commit(accepted=...)`` once the verdict is known (see ``StagedBatch``)."""
        return StagedBatch(self._db, connector, mode=mode, origin=origin, run_id=run_id)

    def store_batch(
        self,
        connector: str,
        mode: BatchMode,
        origin: str,
        items: Iterable[DeviceRecord | Reject],
        run_id: int | None = None,
        *,
        verdict: Callable[[], VerdictLike] | None = None,
        watermark: Any = UNSET,
        now: datetime | None = None,
    ) -> BatchStats:
        """Stage ``items`` and commit them in one go.

        ``verdict`` is asked once the items are exhausted (a connector's batch knows
        only then whether it may be used); without one the batch is accepted.
        """
        with self.stage(connector, mode=mode, origin=origin, run_id=run_id) as staged:
            staged.add(items)
            accepted, reason = True, ""
            if verdict is not None:
                answer = verdict()
                accepted, reason = answer.accepted, answer.reason
            return staged.commit(
                accepted=accepted, reason=reason, watermark=watermark, now=_now(now)
            )

    def record_rejects(
        self, run_id: int | None, rejects: Iterable[Reject], *, now: datetime | None = None
    ) -> int:
        """Keep rejected rows for the audit; returns how many."""
        stamp = _now(now)
        total = 0
        with self._db.write() as conn:
            for chunk in iter_chunks(rejects):
                conn.execute(
                    REJECT.insert(),
                    [
                        {
                            "run_id": run_id,
                            "batch_id": None,
                            "source": r.source,
                            "location": r.location,
                            "reason": r.reason,
                            "serial_number": r.serial_number,
                            "created_at": stamp,
                        }
                        for r in chunk
                    ],
                )
                total += len(chunk)
        return total

    def rejects(self, run_id: int | None = None, limit: int = 100) -> list[RejectEntry]:
        """Audit: rejected rows, newest first."""
        where: list[Any] = []
        order: list[Any] = [REJECT.c.id.desc()]
        if run_id is not None:  # by ix_reject_run, whatever PostgreSQL's statistics say
            where, order = outbox.newest_first(REJECT.c.run_id, run_id, self.dialect)
        query = sa.select(REJECT).where(*where).order_by(*order).limit(limit)
        with self._db.read() as conn:
            rows = conn.execute(query).mappings()
            return [RejectEntry(**dict(row)) for row in rows]

    def batches(self, connector: str | None = None, limit: int = 50) -> list[BatchEntry]:
        """Audit: batches received (stored or refused), newest first."""
        query = sa.select(SOURCE_BATCH)
        if connector is not None:
            query = query.where(SOURCE_BATCH.c.connector == connector)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(SOURCE_BATCH.c.id.desc()).limit(limit)).mappings()
            return [BatchEntry(**dict(row)) for row in rows]

    def source_counts(self) -> dict[str, tuple[int | None, int]]:
        """Per connector with a snapshot: ``(baseline, latest)`` snapshot sizes.

        The baseline is the size when a plan was last released (``None`` before the
        first), so a source that shrank stays flagged until a plan with it is let
        through. This is ``PlanContext.source_counts``.
        """
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(
                    SOURCE_STATE.c.connector,
                    SOURCE_STATE.c.previous_snapshot_count,
                    SOURCE_STATE.c.last_snapshot_count,
                ).where(SOURCE_STATE.c.last_snapshot_count.is_not(None))
            )
            return {name: (previous, int(latest)) for name, previous, latest in rows}

    def watermark(self, connector: str) -> Any:
        """The connector's saved incremental mark (``None`` if none)."""
        with self._db.read() as conn:
            return conn.execute(
                sa.select(SOURCE_STATE.c.watermark).where(SOURCE_STATE.c.connector == connector)
            ).scalar()

    def set_watermark(self, connector: str, value: Any, *, now: datetime | None = None) -> None:
        """Save the connector's incremental mark (JSON-able)."""
        stmt = upsert(self.dialect, SOURCE_STATE).values(
            connector=connector, watermark=value, updated_at=_now(now)
        )
        with self._db.write() as conn:
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["connector"],
                    set_={
                        "watermark": stmt.excluded.watermark,
                        "updated_at": stmt.excluded.updated_at,
                    },
                )
            )

    # -- mirror and catalogue --------------------------------------------------------------

    def refresh_mirror(
        self,
        devices: Iterable[InventoryDevice],
        *,
        complete: bool | Callable[[], bool],
        now: datetime | None = None,
    ) -> MirrorStats:
        """Record what the API listed (streamed) and learn the catalogue from it.

        With ``complete`` (the listing was unfiltered and ran to the end consistently),
        serials it did not return are marked absent; a partial listing never does that.
        ``complete`` may be a callable, asked once the devices are exhausted (a lazy
        listing knows only then whether it saw everything).
        """
        return mirror.refresh(self._db, devices, complete=complete, now=_now(now))

    def mark_gone(self, serial: str, *, now: datetime | None = None) -> None:
        """The API answered 404 for ``serial``: record it absent from the inventory (the
        next run plans it afresh, e.g. re-creates a wanted device deleted by hand)."""
        with self._db.write(lock="shared") as conn:
            mirror.mark_gone(conn, serial, _now(now))

    def observe_device(
        self,
        device: InventoryDevice,
        *,
        change_id: int | None = None,
        response: Mapping[str, Any] | None = None,
        note: str | None = None,
        replan: bool = True,
        now: datetime | None = None,
    ) -> None:
        """A device read from the API outside a refresh (after a ``409``): the mirror
        holds it as present with these values, ownership and written values kept, and
        its serial is planned again by the next run (three-way compare and policy, as
        any update); with ``replan=False`` only if its values changed. With
        ``change_id`` that change is closed ``skipped`` with ``response`` and ``note``,
        in the same transaction."""
        stamp = _now(now)
        with self._db.write(lock="shared") as conn:
            mirror.observe(conn, device, stamp, self.dialect)
            buffer = mirror.CatalogueBuffer()
            buffer.learn(device)
            buffer.save(conn, self.dialect, stamp)
            if change_id is not None:
                outbox.complete(
                    conn, change_id, status="skipped", response=response, error=note, now=stamp
                )
            if replan:
                planning.force_replan(conn, sa.select(sa.literal(device.serial_number)))

    def mirror_seen_at(self, serial: str) -> datetime | None:
        """When the inventory's values for ``serial`` were last known to be current: the
        later of the last complete listing and the row's own last change (a write or a
        read of that device); ``None`` if never."""
        with self._db.read() as conn:
            return mirror.seen_at(conn, serial)

    def learn_catalogue(
        self, devices: Iterable[InventoryDevice], *, now: datetime | None = None
    ) -> None:
        """Learn type and organization names from devices read one by one."""
        mirror.learn_catalogue(self._db, devices, _now(now))

    def load_catalogue(self) -> Catalogue:
        """The type and organization ids learned so far."""
        return mirror.load_catalogue(self._db)

    def owned_total(self) -> int:
        """How many devices in the inventory syncd created or adopted."""
        with self._db.read() as conn:
            return planning.owned_present(conn)

    def owned_baseline(self) -> int | None:
        """How many owned devices the inventory held when a plan was last let through
        and applied (``PlanContext.owned_baseline``); ``None`` before the first."""
        with self._db.read() as conn:
            value = planning.get_meta(conn, planning.OWNED_BASELINE)
        return int(value) if isinstance(value, int) else None

    def settle_owned_baseline(self) -> None:
        """After a released plan was applied: the owned devices the inventory holds now
        (its creates included) become the listing gate's baseline."""
        with self._db.write() as conn:
            planning.settle_owned_baseline(conn, self.dialect)

    def record_write(
        self,
        serial: str,
        operation: str,
        sent_fields: Mapping[str, Any],
        response_device: InventoryDevice | None,
        *,
        ownership: str | None = None,
        change_id: int | None = None,
        response: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        """After a successful ``create``/``update``/``adopt``/``delete``: update the mirror.

        ``sent_fields`` are the fields written, in write form; they become the
        mirror's "last written" values (the base of the three-way compare), and its
        read values together with the server's answer (which wins where it has a
        field). Ownership: ``create`` -> created, ``adopt`` -> adopted, ``update``
        keeps it, unless ``ownership`` says otherwise. ``delete`` marks the serial
        absent, forgets what was written and clears its tombstone. With
        ``change_id`` the change is marked applied in the same transaction.
        """
        if operation not in ("create", "update", "adopt", "delete"):
            raise ValueError(f"not a write operation: {operation!r}")
        stamp = _now(now)
        with self._db.write(lock="shared") as conn:
            mirror.write_after(
                conn,
                self.dialect,
                serial=serial,
                operation=operation,
                sent=sent_fields,
                response=response_device,
                ownership=ownership,
                now=stamp,
            )
            if response_device is not None:
                buffer = mirror.CatalogueBuffer()
                buffer.learn(response_device)
                buffer.save(conn, self.dialect, stamp)
            if change_id is not None:
                outbox.complete(
                    conn, change_id, status="applied", response=response, error=None, now=stamp
                )

    # -- planning --------------------------------------------------------------------------

    def begin_run(
        self,
        trigger: str,
        policy_fingerprint: str,
        *,
        owner: str | None = None,
        now: datetime | None = None,
        connector: str | None = None,
        run_id: int | None = None,
    ) -> int:
        """Open a run (status ``planning``), owned by the process ``owner`` (default:
        this one), of the sources ``connector`` names (``service.runs.connector_label``);
        returns its id. ``run_id`` gives it one outside the sequence: only in a rehearsal
        (``rehearsal``), where the run is never kept."""
        if run_id is not None and not self._db.rehearsing:
            raise ValueError("a run gets an id of its choosing only in a rehearsal")
        stamp = _now(now)
        with self._db.write() as conn:
            planning.forget_candidates(conn)
        who = owner if owner is not None else str(process.current())
        return outbox.begin_run(
            self._db, trigger, policy_fingerprint, stamp, who, connector=connector, run_id=run_id
        )

    def candidate_serials(self, run_id: int) -> list[str]:
        """The serials the run must plan: those whose sources or inventory values changed
        since they were last planned, every tombstoned serial, and all serials when the
        run's policy fingerprint differs from the last recorded plan's."""
        return planning.select_candidates(self._db, run_id)

    def settled_candidates(
        self, run_id: int, settle: Sequence[SettleField] | None
    ) -> tuple[Sequence[str], int]:
        """``candidate_serials``, less those ``settle`` (``engine.settle_fields``) proves
        unchanged in the store, set-based; returns the serials to load and plan (in
        code point order, strictly increasing: ``engine.plan(ordered=True)``; held
        compactly), and how many were settled (``engine.plan(settled=...)``). Every
        serial returned stays a candidate of the run and is marked planned when its plan
        is released; a settled one is already planned at its hashes, and no change or
        conflict of it waits (``settle.choose_unsettled``)."""
        return planning.choose_candidates(self._db, run_id, settle)

    def load_candidates(self, serials: Iterable[str]) -> Iterator[Candidate]:
        """The engine's ``Candidate`` for each serial (read in chunks, lazily)."""
        return planning.load_candidates(self._db, serials)

    def record_plan(
        self, run_id: int, plan: Plan, *, held: bool | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """Write the plan in ONE transaction and return the run's summary.

        One change row per operation: ``pending`` (``held`` if the plan is held),
        ``skipped`` at once for conflict/reject/skip. Older pending or held changes
        of the same serials are superseded (skipped). Tombstones are updated, and the
        run moves to ``held``, ``applying`` or (nothing to apply) ``done``. ``held``
        defaults to ``plan.held``.

        A plan recorded without a hold marks every candidate planned (and its source
        sizes become the volume gate's baseline). A held plan marks nothing: its
        serials stay candidates, so the next run plans them afresh and supersedes
        the held changes, unless the held run is approved first (``approve_run``).
        """
        return planning.record_plan(
            self._db, run_id, plan, held=plan.held if held is None else held, now=_now(now)
        )

    def plan_writer(self, run_id: int) -> planning.PlanWriter:
        """A sink for ``engine.plan(..., sink=writer.add)``: the operations stream into the
        store as they are planned, and ``writer.record(plan)`` then records the plan as
        ``record_plan`` would, in one transaction, without any process holding them all."""
        return planning.PlanWriter(self._db, run_id)

    def approve_run(self, run_id: int, by: str, *, now: datetime | None = None) -> int:
        """Release a held run (its held changes become pending); returns how many.

        If the run is still the newest recorded plan, its candidates are marked
        planned and its source sizes become the baseline. An older held run has been
        overtaken (a later run re-planned its serials and superseded its changes):
        approving it releases 0 changes and moves nothing."""
        return outbox.approve_run(self._db, run_id, by, _now(now))

    def discard_run(
        self, run_id: int, by: str, reason: str = "", *, now: datetime | None = None
    ) -> int:
        """Refuse a held run: its changes are skipped, its serials planned again next run."""
        return outbox.discard_run(self._db, run_id, by, reason, _now(now))

    def mark_idle(self, run_id: int) -> bool:
        """Mark a finished run that did nothing at all (a scheduled poll that found no
        file and nothing to plan) ``idle``: out of the default audit views, so polling
        often does not bury them."""
        return outbox.mark_idle(self._db, run_id)

    def finish_run(
        self,
        run_id: int,
        status: RunStatus | None,
        summary: Mapping[str, Any] | None = None,
        error: str | None = None,
        *,
        now: datetime | None = None,
    ) -> None:
        """Close a run with its final status (summary merged into the recorded one);
        ``status=None`` merges the summary and leaves the status as it is."""
        outbox.finish_run(
            self._db, run_id, status=status, summary=summary, error=error, now=_now(now)
        )

    # -- outbox ----------------------------------------------------------------------------

    def pending_changes(self, run_id: int | None = None, limit: int = 100) -> list[ChangeRow]:
        """Pending changes, oldest first (what the dispatcher sends to workers)."""
        return outbox.pending_changes(self._db, run_id, limit)

    def count_waiting(self, run_id: int | None = None) -> int:
        """How many changes are still on their way (pending, dispatched or applying)."""
        return outbox.count_waiting(self._db, run_id)

    def count_pending(self, run_id: int | None = None) -> int:
        """How many changes wait in the outbox (of one run, or all)."""
        return outbox.count_pending(self._db, run_id)

    def claim_change(
        self, change_id: int, *, owner: str | None = None, now: datetime | None = None
    ) -> bool:
        """Atomically take a pending change (``applying``, attempts + 1) for the process
        ``owner`` (default: this one); False if another worker has it or it is no
        longer pending."""
        who = owner if owner is not None else str(process.current())
        return outbox.claim_change(self._db, change_id, _now(now), who)

    def release_change(
        self, change_id: int, error: str | None = None, *, now: datetime | None = None
    ) -> bool:
        """Hand a claimed change back to the outbox after a retriable failure."""
        return outbox.release_change(self._db, change_id, error, _now(now))

    def complete_change(
        self,
        change_id: int,
        status: outbox.FinalStatus,
        response: Mapping[str, Any] | None = None,
        error: str | None = None,
        *,
        replan: bool = True,
        now: datetime | None = None,
    ) -> bool:
        """Finish a change; False if it was already final (nothing is changed then).

        ``response`` keeps only ``status_code``, ``detail``, ``field_errors``,
        ``retry_after``, ``method`` and ``path`` (never headers). A ``failed``
        change's serial is planned again by the next run, unless ``replan=False``:
        pass that when the API refused the change (400, 403, 404 on update, a 409
        that cannot be reconciled), which would fail the same way every run; the
        serial is then planned again only when its source or inventory values
        change. ``replan`` does nothing for ``applied`` or ``skipped``.
        """
        with self._db.write(lock="shared") as conn:
            return outbox.complete(
                conn,
                change_id,
                status=status,
                response=response,
                error=error,
                now=_now(now),
                replan=replan,
            )

    def claim(
        self, change_id: int, *, owner: str | None = None, now: datetime | None = None
    ) -> outbox.ClaimResult:
        """Take a pending or dispatched change for applying (``claimed``); ``busy`` while
        an older change of the same serial is still on its way; ``gone`` when it is no
        longer waiting."""
        who = owner if owner is not None else str(process.current())
        return outbox.claim(self._db, change_id, _now(now), who)

    def dispatch(
        self, limit: int, *, lease: timedelta, now: datetime | None = None
    ) -> list[ChangeRow]:
        """Mark up to ``limit`` pending changes ``dispatched`` (their messages are sent
        now) and return them; one still dispatched after ``lease`` is sent again."""
        stamp = _now(now)
        return outbox.dispatch(self._db, limit, stamp + lease, stamp)

    def expired_dispatches(
        self, *, lease: timedelta, limit: int = 1000, now: datetime | None = None
    ) -> list[ChangeRow]:
        """Dispatched changes whose lease ran out, given a new one (to be sent again)."""
        stamp = _now(now)
        return outbox.expired_dispatches(self._db, stamp, stamp + lease, limit)

    def retry_later(
        self,
        change_id: int,
        delay: timedelta,
        error: str | None = None,
        *,
        now: datetime | None = None,
    ) -> bool:
        """A claimed change met a transient failure: ``dispatched`` again, due after
        ``delay`` (plus the sweeper's margin if its retry message is lost)."""
        stamp = _now(now)
        return outbox.retry_later(self._db, change_id, stamp + delay, error, stamp)

    def requeue_failed(
        self,
        ids: Sequence[int] | None = None,
        *,
        run_id: int | None = None,
        now: datetime | None = None,
    ) -> list[ChangeRow]:
        """Failed changes (these, or of the run, or all) no newer change of their serial
        has overtaken go back to ``pending``; returns them."""
        return outbox.requeue_failed(self._db, ids, run_id, _now(now))

    # -- coordination ----------------------------------------------------------------------

    def acquire_lock(
        self, name: str, owner: str, lease: timedelta, *, now: datetime | None = None
    ) -> bool:
        """Take (or extend) the lease lock ``name``; False if someone else holds it."""
        stamp = _now(now)
        return coordination.acquire(self._db, name, owner, stamp + lease, stamp)

    def release_lock(self, name: str, owner: str) -> bool:
        """Let go of ``name`` if ``owner`` holds it."""
        return coordination.release(self._db, name, owner)

    def lock_holder(self, name: str) -> tuple[str, datetime] | None:
        """Who holds ``name`` and until when (``None``: nobody)."""
        return coordination.holder(self._db, name)

    def request_trigger(
        self,
        connector: str,
        *,
        serials: Sequence[str] | None = None,
        dry_run: bool = False,
        source: str = "cli",
        now: datetime | None = None,
    ) -> int:
        """Queue an on-demand run (merged into one already queued); returns its id."""
        return coordination.request(
            self._db, connector, serials=serials, dry_run=dry_run, source=source, now=_now(now)
        )

    def enqueue_trigger(
        self,
        connector: str,
        *,
        serials: Sequence[str] | None = None,
        dry_run: bool = False,
        source: str = "cli",
        now: datetime | None = None,
    ) -> coordination.Queued:
        """``request_trigger``, saying whether the request joined one already queued."""
        return coordination.enqueue(
            self._db, connector, serials=serials, dry_run=dry_run, source=source, now=_now(now)
        )

    def take_triggers(
        self, connector: str, *, dry_run: bool | None = None, now: datetime | None = None
    ) -> coordination.TakenTriggers | None:
        """Take every queued request of ``connector`` of one kind (``dry_run``, or the
        oldest's) at once."""
        return coordination.take(self._db, connector, _now(now), dry_run=dry_run)

    def finish_triggers(
        self,
        ids: Sequence[int],
        state: coordination.TriggerState,
        *,
        run_id: int | None = None,
        detail: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Close taken requests."""
        coordination.finish(self._db, ids, state, run_id=run_id, detail=detail, now=_now(now))

    def queued_triggers(self) -> list[str]:
        """Connectors with a request waiting, oldest first."""
        return coordination.queued_connectors(self._db)

    def requeue_stale_triggers(self, older_than: timedelta, *, now: datetime | None = None) -> int:
        """Requests taken by a worker that never finished them: queued again."""
        stamp = _now(now)
        return coordination.requeue_stale(self._db, stamp - older_than, stamp)

    def trigger(self, request_id: int) -> coordination.TriggerRow | None:
        """One trigger request by id."""
        return coordination.get(self._db, request_id)

    # -- recovery ----------------------------------------------------------------------------

    def claimed_changes(self) -> list[ChangeRow]:
        """Every change being applied (or left so by a process that died), oldest first."""
        return outbox.claimed_changes(self._db)

    def take_over(self, change: ChangeRow, owner: str, *, now: datetime | None = None) -> bool:
        """Make the process ``owner`` the claimant of ``change``, still ``applying``, if
        it is still claimed as it was read (one of racing recoverers wins)."""
        return outbox.take_over(self._db, change.id, change.claimed_by, owner, _now(now))

    def give_up(
        self, change_id: int, owner: str, note: str, *, now: datetime | None = None
    ) -> None:
        """Leave a claimed change whose outcome is unknown (a POST cut off in flight) to
        the next recovery, which reads it back first."""
        outbox.give_up(self._db, change_id, owner, note, _now(now))

    def abandon(
        self,
        change: ChangeRow,
        owner: str,
        error: str = outbox.ABANDONED,
        *,
        now: datetime | None = None,
    ) -> bool:
        """Fail ``change``, claimed by a process that is gone, and mark its serial for
        planning again (``owner``: the process doing it). Never re-sent as it stands:
        newer runs may have planned and applied something else for the serial since.
        Call it before ``candidate_serials`` so that the same run plans the serial
        afresh from the refreshed mirror. False if it finished meanwhile."""
        return outbox.abandon(self._db, change, owner, error, _now(now))

    def open_runs(self) -> list[RunRow]:
        """Runs still ``planning`` or ``applying``, oldest first."""
        return outbox.open_runs(self._db)

    def close_interrupted(self, run_id: int, error: str, *, now: datetime | None = None) -> bool:
        """Close a run a process left ``planning`` when it died (``interrupted``)."""
        return outbox.close_interrupted(self._db, run_id, error, _now(now))

    def close_if_final(
        self, run_id: int, note: str, *, now: datetime | None = None
    ) -> RunStatus | None:
        """Close an ``applying`` run whose changes are all final (``done``/``failed``);
        ``None`` if it still has work waiting."""
        return outbox.close_if_final(self._db, run_id, note, _now(now))

    def force_replan(self, serials: Iterable[str]) -> int:
        """Make ``serials`` candidates of the next run whatever their hashes (e.g. a held
        change found stale at approval). Returns how many of them the store knows
        (has source records or an inventory entry for); unknown serials are ignored."""
        return planning.replan_serials(self._db, serials)

    # -- audit -----------------------------------------------------------------------------

    def changes(
        self,
        run_id: int | None = None,
        serial: str | None = None,
        status: ChangeStatus | None = None,
        limit: int = 100,
        *,
        before_id: int | None = None,
    ) -> list[ChangeRow]:
        """Changes matching every filter given, newest first (``before_id`` pages back)."""
        return outbox.changes(
            self._db, run_id=run_id, serial=serial, status=status, limit=limit, before_id=before_id
        )

    def change(self, change_id: int) -> ChangeRow | None:
        """One change by id."""
        return outbox.change(self._db, change_id)

    def change_counts(self, run_id: int) -> dict[str, int]:
        """The run's changes per status (``{"pending": 3, "applied": 10}``)."""
        return outbox.change_counts(self._db, run_id)

    def runs(self, limit: int = 20, *, idle: bool = True) -> list[RunRow]:
        """The latest runs, newest first (``idle=False``: without idle polls)."""
        return outbox.runs(self._db, limit, idle=idle)

    def run(self, run_id: int) -> RunRow | None:
        """One run by id."""
        return outbox.run(self._db, run_id)

    def get_meta(self, key: str) -> Any:
        """A small persisted fact (``None`` if unset)."""
        with self._db.read() as conn:
            return planning.get_meta(conn, key)

    def set_meta(self, key: str, value: Any) -> None:
        """Persist a small fact (JSON-able)."""
        with self._db.write() as conn:
            planning.set_meta(conn, self.dialect, key, value)

    # -- the faces' audit (``syncd.store.audit``) ------------------------------------------

    def audit_changes(
        self, query: audit.ChangeQuery, *, limit: int, before: int | None = None
    ) -> list[ChangeRow]:
        """Changes matching ``query``, newest first, ``limit`` of them below id ``before``."""
        return audit.changes(self._db, query, limit=limit, before=before)

    def audit_rejects(
        self, query: audit.RejectQuery, *, limit: int, before: int | None = None
    ) -> list[audit.RejectPlace]:
        """Rejects matching ``query``, newest first, with where their file lies now."""
        return audit.rejects(self._db, query, limit=limit, before=before)

    def audit_runs(
        self, query: audit.RunQuery, *, limit: int, before: int | None = None
    ) -> list[RunRow]:
        """Runs matching ``query``, newest first."""
        return audit.runs(self._db, query, limit=limit, before=before)

    def run_triggers(self, run_ids: Iterable[int]) -> dict[int, str]:
        """What made each of these runs (``schedule``, ``cli``, ``webhook``...)."""
        return audit.run_triggers(self._db, run_ids)

    def run_batches(self, run_id: int) -> list[BatchEntry]:
        """The source batches a run read, in order."""
        return audit.batches_of_run(self._db, run_id)

    def change_kinds(self, run_id: int) -> dict[str, int]:
        """The run's changes per operation (``{"create": 3, "conflict": 1}``)."""
        return audit.change_kinds(self._db, run_id)

    def note_batch_place(self, batch_id: int, where: str) -> None:
        """Record where a batch's data lies once its source set it down."""
        audit.note_batch_place(self._db, batch_id, where)

    def open_conflicts(
        self, *, serial: str | None = None, limit: int | None = None
    ) -> list[audit.ConflictRow]:
        """Open conflicts by serial and field."""
        return audit.open_conflicts(self._db, serial=serial, limit=limit)

    def count_open_conflicts(self, *, besides_run: int | None = None) -> int:
        """How many fields are in open conflict (``besides_run``: not counting the serials
        that run is planning)."""
        return audit.count_open_conflicts(self._db, besides_run=besides_run)

    def keep_inventory_value(
        self, conflict: audit.ConflictRow, *, by: str, now: datetime | None = None
    ) -> None:
        """Settle ``conflict`` by keeping the inventory's value: no longer written nor
        reported while both sides stay as they are."""
        audit.keep_value(self._db, conflict, by=by, now=_now(now), dialect=self.dialect)

    def take_conflict(self, serial: str, field: str) -> audit.ConflictRow | None:
        """Remove one open conflict and return it (``None``: there is none)."""
        with self._db.write() as conn:
            return audit.take_conflict(conn, serial, field)

    def drop_kept(self, serial: str, field: str) -> bool:
        """Forget a decision to keep the inventory's value of a field."""
        return audit.drop_kept(self._db, serial, field)

    def kept_values(self, *, serial: str | None = None) -> list[audit.KeptRow]:
        """The standing decisions to keep the inventory's value."""
        return audit.kept_values(self._db, serial=serial)

    def missing_devices(self, *, limit: int) -> list[audit.MissingRow]:
        """Serials a source wants that the inventory does not hold, with their last change."""
        return audit.missing(self._db, limit=limit)

    def count_missing(self) -> int:
        """How many serials a source wants are not in the inventory."""
        return audit.count_missing(self._db)

    def orphans(self, *, limit: int | None = None) -> list[audit.OrphanRow]:
        """Owned devices no source wants, waiting out their grace."""
        return audit.orphans(self._db, limit=limit)

    def source_rows(self, serial: str) -> list[dict[str, Any]]:
        """Every source's stored row for ``serial``."""
        return audit.source_rows(self._db, serial)

    def inventory_size(self) -> int:
        """How many devices the mirror holds as present (what a listing would return)."""
        with self._db.read() as conn:
            return int(conn.exec_driver_sql(_PRESENT_DEVICES).scalar_one())

    def mirror_row(self, serial: str) -> dict[str, Any] | None:
        """The mirror's entry for ``serial``."""
        return audit.mirror_row(self._db, serial)

    def planned_as_stored(self, serial: str, policy_fingerprint: str) -> bool:
        """Whether the last released plan of ``serial`` saw its sources as stored now,
        under this policy (else the next plan may judge it otherwise)."""
        with self._db.read() as conn:
            policy = planning.get_meta(conn, planning.PLANNED_POLICY)
        return policy == policy_fingerprint and audit.planned_as_stored(self._db, serial)

    # -- retention -------------------------------------------------------------------------

    def prune(
        self,
        policy: retention.RetentionPolicy,
        *,
        dry_run: bool = False,
        keep_going: Callable[[], bool] | None = None,
        now: datetime | None = None,
    ) -> retention.PruneReport:
        """Export, then delete, the audit detail ``policy`` lets go, chunk by chunk
        (``syncd.store.retention``): final change rows and rejects past their age or
        count, idle runs past theirs. Run summaries stay, with a note; nothing on its way
        or held is ever pruned. ``dry_run`` only counts; ``keep_going`` is asked before
        each chunk (False stops there). Call it from one process at a time."""
        return retention.prune(self._db, policy, _now(now), dry_run=dry_run, keep_going=keep_going)

    # -- access and metrics ------------------------------------------------------------------

    def ping(self) -> None:
        """Ask the database for nothing (``/readyz``): ``StoreUnavailableError`` or
        ``ConfigError`` when it cannot be reached or used."""
        with access.translate(self._db.engine.url), self._db.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def add_token(
        self, name: str, role: str, token_hash: str, *, now: datetime | None = None
    ) -> token_rows.TokenRow:
        """Keep an API token's hash (``syncd tokens add``); a name is never reused."""
        return token_rows.add(self._db, name, role, token_hash, _now(now))

    def tokens(self) -> list[token_rows.TokenRow]:
        """Every API token, oldest first (never their hashes)."""
        return token_rows.listed(self._db)

    def revoke_token(self, name: str, *, now: datetime | None = None) -> token_rows.TokenRow:
        """Revoke the API token ``name``: refused from now on."""
        return token_rows.revoke(self._db, name, _now(now))

    def token_by_hash(self, token_hash: str) -> tuple[token_rows.TokenRow, str] | None:
        """The API token with this hash, and the hash as stored."""
        return token_rows.by_hash(self._db, token_hash)

    def token_by_id(self, token_id: int) -> token_rows.TokenRow | None:
        """The API token with this id (revoked or not)."""
        return token_rows.by_id(self._db, token_id)

    def touch_token(self, token_id: int, *, now: datetime | None = None) -> None:
        """Note that an API token was used."""
        token_rows.touch(self._db, token_id, _now(now))

    def add_metric_samples(
        self, samples: Mapping[tuple[str, str], float], *, now: datetime | None = None
    ) -> None:
        """Add one process's counter increments to the stored sums (``syncd.metrics``)."""
        metric_rows.add_samples(self._db, samples, _now(now))

    def metric_samples(self) -> dict[tuple[str, str], float]:
        """The stored counter sums, by ``(name, labels)``."""
        return metric_rows.samples(self._db)

    def metric_figures(self) -> metric_rows.Figures:
        """Runs, changes, the outbox and drift, counted from the rows (``/metrics``)."""
        return metric_rows.figures(self._db)
