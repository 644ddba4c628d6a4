"""One reconciliation run, in-process: sources -> store -> mirror -> plan -> outbox -> API.

The CLI (``syncd plan``, ``syncd run --once``, ``syncd approve``), the tests and,
later, the Celery tasks all call these functions; none of them holds logic of its own.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import structlog

from connectors.base import Connector, build_connector
from syncd import engine, metrics, process
from syncd.config import Settings
from syncd.engine import Candidate, Operation, Plan, PlanContext, Policy
from syncd.errors import NotFoundError, SyncdError
from syncd.inventory import InventoryClient
from syncd.locks import Locks, StoreLocks, held
from syncd.log import redact
from syncd.service.apply import ApplyPolicy, ApplyReport, Progress, apply_pending
from syncd.service.audit import DriftCounts, drift_counts
from syncd.service.ingest import IngestReport, ingest
from syncd.service.outbox import dispatch
from syncd.service.policy import build_policy
from syncd.service.recovery import RecoveryReport, close_runs, recover
from syncd.service.stop import StopRequest
from syncd.store import ChangeRow, MirrorStats, RejectEntry, RunStatus, Store
from syncd.store.planning import REVERT_TRIGGER

log = structlog.get_logger("syncd.run")

Clock = Callable[[], datetime]
P = ParamSpec("P")
T = TypeVar("T")

#: The run id a dry run works under inside its rehearsal: never taken from the runs'
#: sequence, never kept (``Runner.rehearse``).
DRY_RUN_ID = 0
#: The most changes one approval checks and releases at once.
HELD_PLAN_LIMIT = 1_000_000
#: The operations of a recorded plan a run keeps in memory for its caller to show.
PLAN_KEPT = 20_000

Sink = Callable[[list[Operation]], None]


class _Kept:
    """The engine's sink for a recorded plan: every operation to the store, the first
    ``PLAN_KEPT`` also kept for the caller."""

    def __init__(self, store_ops: Sink) -> None:
        self._store_ops = store_ops
        self.operations: list[Operation] = []
        self.total = 0

    def __call__(self, ops: list[Operation]) -> None:
        self._store_ops(ops)
        self.total += len(ops)
        room = PLAN_KEPT - len(self.operations)
        if room > 0:
            self.operations.extend(ops[:room])


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RunResult:
    """Everything one run did, for the CLI to show and the tests to check."""

    run_id: int
    status: str
    plan: Plan
    ingest: IngestReport = field(default_factory=IngestReport)
    mirror: MirrorStats | None = None
    applied: ApplyReport | None = None
    dry_run: bool = False
    rejects: list[RejectEntry] = field(default_factory=list)
    listing_problems: list[str] = field(default_factory=list)
    recovery: RecoveryReport = field(default_factory=RecoveryReport)
    dispatched: int = 0
    #: Operations recorded in the store but not kept in ``plan.operations`` (a plan of
    #: more than ``PLAN_KEPT``): ``syncd changes --run RUN --limit N`` lists them all.
    operations_not_kept: int = 0
    #: What still differs after this plan (open conflicts, devices missing from the
    #: inventory, orphans waiting), when the caller asked for it (``measure_drift``).
    drift: DriftCounts | None = None

    @property
    def held(self) -> bool:
        return self.plan.held

    def summary(self) -> dict[str, Any]:
        """Plain figures (JSON-able)."""
        out: dict[str, Any] = {
            "run": None if self.dry_run else self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "held": self.plan.held,
            "hold_reasons": list(self.plan.hold_reasons),
            "operations": dict(self.plan.counts),
            "records": self.ingest.records,
            "rejects": self.ingest.rejects,
            "refused_batches": [
                {"source": b.connector, "origin": b.origin, "reason": b.reason}
                for b in self.ingest.refused
            ],
        }
        if self.mirror is not None:
            out["inventory_listed"] = self.mirror.listed
        if self.listing_problems:
            out["inventory_listing_problems"] = self.listing_problems[:20]
        if self.applied is not None:
            out["applied"] = self.applied.applied
            out["failed"] = self.applied.failed
        if self.dispatched:
            out["dispatched"] = self.dispatched
        if self.ingest.waiting:
            out["waiting"] = [
                {"source": w.connector, "origin": w.origin, "reason": w.reason}
                for w in self.ingest.waiting
            ]
        if self.drift is not None:
            out["open_conflicts"] = self.drift.conflicts
            out["missing_from_inventory"] = self.drift.missing
            out["orphans_waiting"] = self.drift.orphans
        out.update(self.recovery.summary())
        return out


def apply_policy(settings: Settings, *, max_attempts: int | None = None) -> ApplyPolicy:
    """The ``ApplyPolicy`` of ``[outbox]`` (``max_attempts`` overrides its own: a one-shot
    run fails a change at once, its client having retried within the call)."""
    outbox = settings.outbox
    age = outbox.max_mirror_age
    return ApplyPolicy(
        max_attempts=outbox.max_attempts if max_attempts is None else max_attempts,
        retry_delay=outbox.retry_delay,
        max_mirror_age=timedelta(seconds=age) if age > 0 else None,
    )


class StoreState:
    """A connector's persistent memory (watermarks), kept in the state store so it moves
    with the data it describes (``ConnectorState``)."""

    def __init__(self, store: Store, connector: str) -> None:
        self._store = store
        self._connector = connector

    def load(self) -> dict[str, Any]:
        saved = self._store.watermark(self._connector)
        return dict(saved) if isinstance(saved, dict) else {}

    def save(self, data: dict[str, Any]) -> None:
        self._store.set_watermark(self._connector, data)


def build_connectors(settings: Settings, store: Store | None = None) -> list[Connector]:
    """Every enabled connector of the config, built through its entry point; with a
    store, connectors that keep state (NetBox's watermark) keep it there. A connector
    that can (``skip_fields``) is told which fields the policy ignores, so it need not
    read them (a CSV column of NetBox's ``Active``/``Planned`` under an ignored
    ``status`` is no reason to refuse a row)."""
    policy = build_policy(settings.policy)
    ignored = frozenset(name for name, rule in policy.fields.items() if rule.mode == "ignore")
    built = [
        build_connector(
            c.name,
            c.plugin,
            c.options,
            where=f"connectors[{i}]",
            state=StoreState(store, c.name) if store is not None else None,
        )
        for i, c in enumerate(settings.connectors)
        if c.enabled
    ]
    for connector in built:
        skip = getattr(connector, "skip_fields", None)
        if skip is not None:
            skip(ignored)
    return built


@dataclass(slots=True)
class ApproveResult:
    """What an approval did."""

    released: int
    stale: int = 0
    applied: ApplyReport = field(default_factory=ApplyReport)


def stale_reason(change: ChangeRow, now: Candidate | None, *, revert: bool = False) -> str | None:
    """Why a held change no longer fits the inventory and sources as they are now.

    A revert's changes answer to the inventory alone (a revert deletes what a run
    created even if a source still lists it: that is what undo means), and its deletes
    must find the device as the revert saw it."""
    mirror = now.mirror if now is not None else None
    if change.operation == "create":
        return "the device exists in the inventory now" if mirror is not None else None
    if change.operation == "delete" and not revert:
        wanted = now is not None and any(r.wanted and r.action == "upsert" for r in now.records)
        return "a source lists the device again" if wanted else None
    if mirror is None:
        return "the device is no longer in the inventory"
    for name, field_change in change.changes.items():
        if not field_change.get("before_known", True) or name not in mirror.values:
            continue
        if mirror.values[name] != field_change.get("before"):
            return f"{name} was changed in the inventory since the plan was held"
    return None


_BEFORE_RECORD = "before its plan was recorded"

#: One plan at a time: candidate selection to recorded changes, across processes.
PLANNER_LOCK = "planner"
PLANNER_LEASE = 600.0
#: How long a run waits for another process's plan to be recorded.
PLANNER_WAIT = 600.0
#: ``store_meta`` key set by the first complete listing (``syncd.store.mirror``).
MIRROR_LISTED = "mirror_refreshed_at"

Sender = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class RunScope:
    """What one run reads.

    ``sources``: the connectors to pull (``None``: every enabled one; ``()``: none).
    ``serials``: only these devices (a connector that can pull one device, like
    NetBox, pulls just them; the inventory is then read device by device).
    ``list_inventory``: list the whole inventory into the mirror (``None``: only if it
    was never listed; the daemon lists it on its own schedule).
    """

    sources: tuple[str, ...] | None = None
    serials: tuple[str, ...] | None = None
    list_inventory: bool | None = True


class _Targeted:
    """A connector narrowed to some serials: its ``targeted`` pull for each."""

    def __init__(self, connector: Connector, serials: Sequence[str]) -> None:
        self.name = connector.name
        self.Config = connector.Config
        self._connector = connector
        self._serials = serials

    def fetch(self) -> Iterator[Any]:
        pull = self._connector.targeted  # type: ignore[attr-defined]
        for serial in self._serials:
            yield pull(serial=serial)


def targeted(connector: Connector, serials: Sequence[str]) -> Connector:
    """``connector`` pulling only ``serials`` if it can pull single devices, else whole."""
    if callable(getattr(connector, "targeted", None)):
        return cast(Connector, _Targeted(connector, serials))
    return connector


class _StoppedError(Exception):
    """A stop was asked for while the inventory was being listed (internal)."""


def _until_stopped(devices: Iterable[T], stopping: Callable[[], bool]) -> Iterator[T]:
    """``devices``, ending with ``_StoppedError`` between two pages once ``stopping()``:
    the mirror keeps the chunks already stored and marks nothing absent."""
    for count, device in enumerate(devices):
        if count % 100 == 0 and stopping():
            raise _StoppedError
        yield device


#: What a run's ``connector`` says (``/metrics`` labels runs by it) when the run read
#: every enabled source, or none (only the inventory).
ALL_SOURCES = "(all)"
NO_SOURCE = "(inventory)"


def connector_label(sources: Sequence[str] | None) -> str:
    """What a run of ``sources`` (``RunScope.sources``) is called by connector."""
    if sources is None:
        return ALL_SOURCES
    return "+".join(sorted(sources)) if sources else NO_SOURCE


def _scoped(method: Callable[Concatenate[Runner, P], T]) -> Callable[Concatenate[Runner, P], T]:
    """Run ``method`` in a copy of the context, so the run id it binds to every log line
    (structlog's context variables) ends with it; then add the process's metric
    increments (API requests, rate-limiter waits) to the store's sums (not when stopped
    at once: that exits without waiting for the store). The run is bulk work
    (``process.bulk_work``: fewer garbage collections while it holds its chunks)."""

    @functools.wraps(method)
    def scoped(self: Runner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            with process.bulk_work():
                result = contextvars.copy_context().run(method, self, *args, **kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            metrics.flush(self.store)
            raise
        metrics.flush(self.store)
        return result

    return scoped


class Runner:
    """Runs the pipeline for one configuration over one store and one API client."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: InventoryClient,
        *,
        connectors: Sequence[Connector] | None = None,
        clock: Clock = utcnow,
        owner: str | None = None,
        stop: StopRequest | None = None,
        locks: Locks | None = None,
    ) -> None:
        self.settings = settings
        #: The planner lock (one plan at a time across processes): the store's by default.
        self.locks: Locks = locks if locks is not None else StoreLocks(store)
        #: This process, as its claims and runs record it (``syncd.process``).
        self.owner = owner if owner is not None else str(process.current())
        #: Set by the first SIGTERM/SIGINT (``stop_on_signals``): stop at a safe point.
        self.stop = stop
        self.store = store
        self.client = client
        self.policy: Policy = build_policy(settings.policy)
        self.connectors = (
            list(connectors) if connectors is not None else build_connectors(settings, store)
        )
        self.clock = clock
        self.listing_problems: list[str] = []

    def force_full_pulls(self) -> None:
        """Make incremental sources (NetBox) do a full pull on their next fetch."""
        for connector in self.connectors:
            if hasattr(connector, "force_full"):
                connector.force_full = True

    # -- the steps ---------------------------------------------------------------------------

    def ingest(
        self, run_id: int | None, scope: RunScope | None = None, *, rehearse: bool = False
    ) -> IngestReport:
        """Read every ready batch of the sources in ``scope`` (all, by default) into the
        store; with serials, a source that can pulls only those (a stop request ends it
        between two batches). ``rehearse``: a dry run's (see ``ingest``)."""
        reach = scope if scope is not None else RunScope()
        chosen: list[Connector] = [
            c for c in self.connectors if reach.sources is None or c.name in reach.sources
        ]
        if reach.serials:
            chosen = [targeted(c, reach.serials) for c in chosen]
        return ingest(
            self.store,
            chosen,
            serial_rules=self.policy.serial,
            run_id=run_id,
            now=self.clock(),
            stopping=self._stopping,
            rehearse=rehearse,
        )

    def refresh_mirror(self) -> MirrorStats:
        """Read the whole inventory (paged, lazily) into the mirror.

        Devices missing from the listing are marked absent only when the listing was
        complete and consistent (the inventory did not change under the paging, no
        malformed item was skipped); otherwise they stay as last seen, so a shaky
        listing can never make owned devices look gone.
        """
        listing = self.client.list_inventory()
        stats = self.store.refresh_mirror(
            # plain rows: a Device is built only for a row plain checks cannot decide
            _until_stopped(listing.rows(), self._stopping),
            complete=lambda: listing.complete,
            now=self.clock(),
        )
        self.listing_problems = list(listing.problems)
        if listing.problems:
            log.warning("mirror.listing_incomplete", problems=len(listing.problems))
        return stats

    def make_plan(self, run_id: int, *, sink: Sink | None = None) -> Plan:
        """Plan the serials whose sources or inventory values changed since last planned
        (with ``sink``, the operations go there as they are planned: ``engine.plan``).
        The candidates the store proves unchanged set-based are counted, not loaded."""
        catalogue = self.store.load_catalogue()
        serials, settled = self.store.settled_candidates(
            run_id, engine.settle_fields(self.policy, catalogue)
        )
        context = PlanContext(
            now=self.clock(),
            owned_total=self.store.owned_total(),
            source_counts=self.store.source_counts(),
            run_id=str(run_id),
            owned_baseline=self.store.owned_baseline(),
        )
        return engine.plan(
            self.store.load_candidates(serials),
            self.policy,
            catalogue,
            context,
            sink=sink,
            settled=settled,
            ordered=True,
        )

    # -- whole runs --------------------------------------------------------------------------

    @_scoped
    def run(
        self,
        *,
        dry_run: bool,
        trigger: str = "cli",
        read_sources: bool = True,
        progress: Progress | None = None,
        scope: RunScope | None = None,
        send: Sender | None = None,
        measure_drift: bool = False,
    ) -> RunResult:
        """Recover what dead processes left, ingest, refresh the mirror, plan; then record
        and apply the plan (unless ``dry_run``: see ``rehearse``).

        ``measure_drift`` (a dry run's) counts what would still differ once the plan is
        applied (``RunResult.drift``: open conflicts, devices missing, orphans waiting);
        after a run, ``syncd.service.audit.drift_counts`` tells it.

        ``scope`` narrows what the run reads (some sources, some serials, no listing).
        With ``send`` the plan's changes are dispatched (``send(change_id)`` each, for a
        worker to apply) instead of applied here; the run then stays ``applying`` until
        they are final. A stop request (``self.stop``: the first SIGTERM or SIGINT) is
        honoured at the next safe point: between source batches, between steps, between
        two changes; the run is then closed ``interrupted`` with what it did.
        """
        reach = scope if scope is not None else RunScope(sources=None if read_sources else ())
        if dry_run:
            return self.rehearse(trigger=trigger, scope=reach, measure_drift=measure_drift)
        recovered = self.recover()
        run_id = self.store.begin_run(
            trigger,
            self.policy.fingerprint(),
            owner=self.owner,
            now=self.clock(),
            connector=connector_label(reach.sources),
        )
        structlog.contextvars.bind_contextvars(run=run_id)
        log.info("run.start", run=run_id, dry_run=dry_run, trigger=trigger)
        result = RunResult(run_id=run_id, status="planning", plan=Plan(operations=[]))
        result.dry_run = dry_run
        result.recovery = recovered
        try:
            stopped = self._gather(result, reach)
            if stopped is None:
                with held(self.locks, PLANNER_LOCK, self.owner, PLANNER_LEASE, wait=PLANNER_WAIT):
                    stopped = self._plan(result)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise
        if stopped is not None:
            return self._interrupted(result, stopped)
        result.status = "done"
        if result.plan.held:
            result.status = "held"
            log.warning("run.held", run=run_id, reasons=result.plan.hold_reasons)
            self.store.finish_run(run_id, "held", summary=result.summary(), now=self.clock())
            return result
        if send is not None:
            return self._dispatch(result, send)
        return self._apply(result, progress)

    def rehearse(
        self, *, trigger: str = "plan", scope: RunScope | None = None, measure_drift: bool = False
    ) -> RunResult:
        """A dry run: everything a run does up to its plan, and nothing left behind.

        The inventory is read first, for real (what it holds is a fact, kept in the
        mirror). Then, inside one store transaction that is rolled back at the end
        (``Store.rehearsal``), the run is opened under ``DRY_RUN_ID`` (no number is taken
        from the runs' sequence), the sources are read as a run reads them (a CSV file
        is read where it lies: not claimed, not moved, its content not remembered as
        accepted), the candidates are chosen and planned. The result holds the plan;
        the store, the inbox and the API are as they were.
        """
        reach = scope if scope is not None else RunScope()
        result = RunResult(run_id=DRY_RUN_ID, status="planning", plan=Plan(operations=[]))
        result.dry_run = True
        log.info("run.start", run="dry", dry_run=True, trigger=trigger)
        stopped = self._read_inventory(result, reach)
        if stopped is None:
            with self.store.rehearsal():
                self.store.begin_run(
                    trigger,
                    self.policy.fingerprint(),
                    owner=self.owner,
                    now=self.clock(),
                    run_id=DRY_RUN_ID,
                )
                result.ingest = self.ingest(DRY_RUN_ID, reach, rehearse=True)
                stopped = "before planning" if self._stopping() else None
                if stopped is None:
                    result.plan = self.make_plan(DRY_RUN_ID)
                    result.rejects = self.store.rejects(run_id=DRY_RUN_ID, limit=1000)[::-1]
                    if measure_drift:
                        result.drift = self._dry_drift(result.plan)
        if stopped is not None:
            result.status = "interrupted"
            log.warning("run.interrupted", run="dry", reason=f"stopped {stopped}")
            return result
        result.status = "done"
        return result

    def _dry_drift(self, plan: Plan) -> DriftCounts:
        """Drift as it would be once this plan is applied: the open conflicts of the
        serials it did not plan, plus its own; the devices missing that it does not
        create; the orphans it counts waiting."""
        counts = drift_counts(self.store, besides_run=DRY_RUN_ID)
        return DriftCounts(
            conflicts=counts.conflicts
            + sum(max(1, len(op.changes)) for op in plan.operations if op.kind == "conflict"),
            missing=max(0, counts.missing - plan.counts.get("create", 0)),
            # every tombstoned serial is a candidate of every run: the plan counts them all
            orphans=plan.counts.get("orphans_waiting", 0) + plan.counts.get("orphans_kept", 0),
        )

    def _read_inventory(self, result: RunResult, scope: RunScope) -> str | None:
        """Read the inventory as ``scope`` says, into ``result``; returns where a stop
        request ended it (``None``: it did not)."""
        listing = scope.list_inventory
        if listing is None:
            listing = self.store.get_meta(MIRROR_LISTED) is None
        if listing:
            try:
                result.mirror = self.refresh_mirror()
            except _StoppedError:
                return "while reading the inventory"
            result.listing_problems = self.listing_problems
        elif scope.serials:
            self.read_devices(scope.serials)
        return "before planning" if self._stopping() else None

    def _gather(self, result: RunResult, scope: RunScope) -> str | None:
        """Ingest and read the inventory as ``scope`` says, into ``result``; returns where
        a stop request ended it (``None``: it did not)."""
        result.ingest = self.ingest(result.run_id, scope)
        if self._stopping():
            return "before reading the inventory"
        return self._read_inventory(result, scope)

    def _plan(self, result: RunResult) -> str | None:
        """Plan and record under the planner lock; returns where a stop request ended it.

        A recorded plan streams its operations into the store as they are planned
        (never all in memory); the result keeps the first ``PLAN_KEPT`` of them.
        """
        with self.store.plan_writer(result.run_id) as writer:
            kept = _Kept(writer.add)
            result.plan = self.make_plan(result.run_id, sink=kept)
            result.rejects = self.store.rejects(run_id=result.run_id, limit=1000)[::-1]
            if self._stopping():
                return _BEFORE_RECORD
            result.plan.operations = kept.operations
            result.operations_not_kept = kept.total - len(kept.operations)
            writer.record(result.plan, now=self.clock())
        return None

    def read_devices(self, serials: Iterable[str]) -> None:
        """Read single devices (a targeted run does not list the whole inventory): the
        mirror holds each as it is now, or as gone."""
        for serial in serials:
            try:
                device = self.client.get_device(serial)
            except NotFoundError:
                self.store.mark_gone(serial, now=self.clock())
                continue
            self.store.observe_device(device, now=self.clock())

    def _dispatch(self, result: RunResult, send: Sender) -> RunResult:
        """Hand the outbox to workers; the run stays ``applying`` until its changes are
        final (the last one's worker closes it)."""
        sent = dispatch(self.store, send, lease=self.settings.outbox.dispatch_lease)
        result.dispatched = sent
        # Workers apply while this dispatches, and the one that finishes the run, or meets
        # a refused token, closes it: merge the summary without touching its status.
        run_id = result.run_id
        self.store.finish_run(run_id, None, summary=result.summary(), now=self.clock())
        self.store.close_if_final(run_id, "its changes are final", now=self.clock())
        run = self.store.run(run_id)
        result.status = run.status if run is not None else "applying"
        return result

    def recover(self) -> RecoveryReport:
        """Recover the claims and runs of processes that are gone (``syncd.service.recovery``)."""
        return recover(
            self.store,
            self.client,
            owner=self.owner,
            now=self.clock(),
            lease=timedelta(seconds=self.settings.outbox.claim_lease),
        )

    @_scoped
    def approve(self, run_id: int, by: str, *, progress: Progress | None = None) -> ApproveResult:
        """Release a held run and apply what still holds of it, now.

        The inventory is read first, the plan's devices alone when that costs fewer
        requests than a listing (if reading fails, the run stays held and can be
        approved again). A plan can wait for hours: a change whose premise no longer
        holds (the field was edited since, the device now exists, a source lists it
        again) is skipped. Every serial of the run is then planned afresh by the next
        run, so an edit made meanwhile to a field the plan did not touch is still seen.
        """
        structlog.contextvars.bind_contextvars(run=run_id)
        self.recover()
        self._read_for_approval(run_id)
        released = self.store.approve_run(run_id, by, now=self.clock())
        result = ApproveResult(released=released)
        try:
            result.stale = self._skip_stale(run_id)
            result.applied = self._drain(run_id, progress)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise
        finally:
            self.store.force_replan(
                c.serial_number for c in self.store.changes(run_id=run_id, limit=HELD_PLAN_LIMIT)
            )
        summary = {
            "approved_by": by,
            "applied": result.applied.applied,
            "failed": result.applied.failed,
            "stale": result.stale,
        }
        if result.applied.interrupted:
            self._close_interrupted(run_id, summary, result.applied)
            return result
        self.store.settle_owned_baseline()
        self.store.finish_run(
            run_id,
            "done" if result.applied.failed == 0 else "failed",
            summary=summary,
            error="; ".join(result.applied.errors[:5]) or None,
            now=self.clock(),
        )
        return result

    def _read_for_approval(self, run_id: int) -> None:
        """The inventory as it is now, for the held plan's serials: each read alone when
        that takes fewer requests than listing the whole inventory (a page per
        ``page_size`` devices), else listed (which also reveals every other change)."""
        serials = sorted(
            {c.serial_number for c in self.store.changes(run_id=run_id, limit=HELD_PLAN_LIMIT)}
        )
        pages = -(-self.store.inventory_size() // self.client.page_size)
        if self.store.get_meta(MIRROR_LISTED) is not None and len(serials) < pages:
            log.info("approve.read_devices", devices=len(serials), listing_pages=pages)
            self.read_devices(serials)
        else:
            self.refresh_mirror()

    def _skip_stale(self, run_id: int) -> int:
        """Skip (and re-plan) released changes the inventory or sources have overtaken."""
        changes = self.store.pending_changes(run_id=run_id, limit=HELD_PLAN_LIMIT)
        if not changes:
            return 0
        current = {
            c.serial_number: c
            for c in self.store.load_candidates(sorted({c.serial_number for c in changes}))
        }
        run = self.store.run(run_id)
        revert = run is not None and run.trigger == REVERT_TRIGGER
        stale = 0
        for change in changes:
            reason = stale_reason(change, current.get(change.serial_number), revert=revert)
            if reason is None:
                continue
            if self.store.claim_change(change.id, owner=self.owner):
                self.store.complete_change(
                    change.id, "skipped", error=f"stale after approval: {reason}", replan=False
                )
                self.store.force_replan([change.serial_number])
                stale += 1
        return stale

    def apply_recorded(self, result: RunResult, progress: Progress | None = None) -> RunResult:
        """Apply a plan already recorded for ``result``'s run (a revert's), the way a run
        applies its own, and close the run."""
        return self._apply(result, progress)

    def _apply(self, result: RunResult, progress: Progress | None) -> RunResult:
        run_id = result.run_id
        try:
            result.applied = self._drain(run_id, progress)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise
        if result.applied.interrupted:
            result.status = "interrupted"
            self._close_interrupted(run_id, result.summary(), result.applied)
            return result
        self.store.settle_owned_baseline()
        waiting = self.store.count_pending(run_id)
        if waiting:
            # Behind changes of the same serials that another process is applying: the
            # run stays open, and is closed once they are final.
            result.status = "applying"
            log.warning("run.changes_waiting", run=run_id, waiting=waiting)
            self.store.finish_run(run_id, "applying", summary=result.summary(), now=self.clock())
            return result
        status: RunStatus = "done" if result.applied.failed == 0 else "failed"
        result.status = status
        self.store.finish_run(
            run_id,
            status,
            summary=result.summary(),
            error="; ".join(result.applied.errors[:5]) or None,
            now=self.clock(),
        )
        return result

    def _drain(self, run_id: int, progress: Progress | None) -> ApplyReport:
        """Apply this run's changes, then whatever else waits in the outbox (left by a run
        whose process stopped); the report counts this run's only. Runs of stopped
        processes whose changes are now all final are closed."""
        report = apply_pending(
            self.store, self.client, run_id=run_id, progress=progress, **self._apply_args()
        )
        if report.interrupted:
            return report
        earlier = apply_pending(self.store, self.client, **self._apply_args())
        if earlier.applied or earlier.failed:
            log.info("apply.earlier_changes", applied=earlier.applied, failed=earlier.failed)
        report.interrupted = earlier.interrupted
        close_runs(self.store, owner=self.owner, now=self.clock(), exclude=run_id)
        return report

    def apply_args(self) -> dict[str, Any]:
        """How this runner applies changes: ``apply_pending``'s keyword arguments."""
        return self._apply_args()

    def _apply_args(self) -> dict[str, Any]:
        # Changes in flight at once: never more than the client's connection pool holds.
        concurrency = min(self.settings.outbox.concurrency, self.settings.inventory.max_connections)
        return {
            "owner": self.owner,
            "stop": self.stop,
            "concurrency": concurrency,
            "policy": apply_policy(self.settings, max_attempts=1),
        }

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.requested

    def _interrupted(self, result: RunResult, when: str) -> RunResult:
        """Close a run a stop request ended before its plan was recorded."""
        result.status = "interrupted"
        why = f"stopped by {self._stop_reason()} {when}"
        log.warning("run.interrupted", run=result.run_id, reason=why)
        self.store.finish_run(
            result.run_id, "interrupted", summary=result.summary(), error=why, now=self.clock()
        )
        return result

    def _close_interrupted(
        self, run_id: int, summary: dict[str, Any], applied: ApplyReport
    ) -> None:
        left = self.store.count_pending(run_id)
        why = (
            f"stopped by {self._stop_reason()}: {applied.applied} change(s) applied, {left} "
            "left pending (the next run applies them, or plans them afresh)"
        )
        log.warning("run.interrupted", run=run_id, reason=why)
        self.store.finish_run(
            run_id,
            "interrupted",
            summary={**summary, "left_pending": left},
            error=why,
            now=self.clock(),
        )

    def _stop_reason(self) -> str:
        return self.stop.reason if self.stop is not None else "a stop request"

    def _fail(self, run_id: int, exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            why = f"interrupted at once ({type(exc).__name__}): the change in flight is "
            why += "recovered by the next run"
            log.error("run.interrupted", run=run_id, error=why)
            self.store.finish_run(run_id, "interrupted", error=why, now=self.clock())
            return
        reason = redact(str(exc) if isinstance(exc, SyncdError) else f"{type(exc).__name__}: {exc}")
        log.error("run.failed", run=run_id, error=reason)
        self.store.finish_run(run_id, "failed", error=reason, now=self.clock())
