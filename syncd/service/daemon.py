"""The daemon's steps, as plain functions: what each Celery task does (``tasks/``).

A worker process opens one ``Worker`` (settings, store, API client, locks) and calls:

- ``run_connector(worker, name, ...)``: one run of one source, under that source's
  lock (a run that finds it held is recorded as ``skipped``). It takes every queued
  trigger request of the source at once, pulls (the requested serials only, when
  there are some and the source can), plans, records, and dispatches the changes.
- ``refresh_inventory(worker)``: lists the inventory into the mirror (under its own
  lock, on its own schedule: a listing costs ``count / 100`` requests), then plans
  what it revealed (hand edits, devices deleted by hand) and dispatches that.
- ``apply(worker, change_id)``: one API operation, with a typed outcome; the run of
  the change is closed when its last change is final.
- ``sweep(worker, send)``: the safety net, on a short schedule: recovers the work of
  dead processes, sends again what a lost message or a dead worker left, takes
  queued trigger requests, dispatches anything pending.

Each also runs in-process: the tests and the one-shot CLI call them directly with a
``send`` that applies at once. Nothing here imports Celery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from syncd import metrics, process
from syncd.config import Settings
from syncd.errors import AuthenticationError, SyncdError
from syncd.inventory import InventoryClient
from syncd.locks import LockBusyError, Locks, held, locks_for
from syncd.service.apply import ApplyOutcome, ApplyPolicy, apply_one
from syncd.service.outbox import (
    SweepReport,
    dispatch,
    halt,
    halted,
    requeue_failed,
    resend_expired,
)
from syncd.service.recovery import close_runs
from syncd.service.runs import Runner, RunResult, RunScope, apply_policy, utcnow
from syncd.service.stop import StopRequest
from syncd.store import RunStatus, Store
from syncd.store.coordination import TriggerState

log = structlog.get_logger("syncd.daemon")

Sender = Callable[[int], None]
RunSender = Callable[[str], None]

#: Name of the lock that keeps one listing of the inventory at a time.
MIRROR_LOCK = "inventory-listing"
#: A trigger request taken by a worker that died is queued again after this long.
STALE_TRIGGER = timedelta(minutes=30)


def connector_lock(name: str) -> str:
    """The lock name that keeps one run of connector ``name`` at a time."""
    return f"connector:{name}"


def build_client(settings: Settings) -> InventoryClient:
    """The API client of ``[inventory]``, its request budget where the daemon keeps it
    (``inventory.rate_limit.storage_uri``), one budget per token."""
    return InventoryClient.from_settings(
        settings.inventory,
        storage_uri=settings.rate_limit_storage(),
        rate_limit_key=settings.rate_limit_key(),
    )


@dataclass
class Worker:
    """What one worker process holds for all its tasks (thread-safe: the store and the
    client pool their connections)."""

    settings: Settings
    store: Store
    client: InventoryClient
    locks: Locks
    owner: str = field(default_factory=lambda: str(process.current()))
    stop: StopRequest | None = None

    @classmethod
    def open(cls, settings: Settings) -> Worker:
        """Connect to the store and the API as the settings say."""
        store = Store.from_settings(settings.store)
        try:
            client = build_client(settings)
        except BaseException:
            store.close()
            raise
        return cls(settings, store, client, locks_for(settings, store))

    def close(self) -> None:
        """Add what is left of the process's metric increments to the store, and close
        the client and the store."""
        metrics.flush(self.store)
        self.client.close()
        self.store.close()

    def runner(self) -> Runner:
        """A runner over this worker's store and client."""
        return Runner(
            self.settings,
            self.store,
            self.client,
            owner=self.owner,
            stop=self.stop,
            locks=self.locks,
        )

    @property
    def apply_policy(self) -> ApplyPolicy:
        """How this daemon applies changes (``[outbox]``)."""
        return apply_policy(self.settings)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a scheduled or triggered run did (the task's result)."""

    connector: str | None
    run_id: int | None
    status: RunStatus
    detail: str = ""
    dispatched: int = 0
    triggers: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON (a Celery result, a log line)."""
        return {
            "connector": self.connector,
            "run": self.run_id,
            "status": self.status,
            "detail": self.detail,
            "dispatched": self.dispatched,
            "triggers": list(self.triggers),
        }


def run_connector(
    worker: Worker,
    name: str,
    *,
    trigger: str = "schedule",
    serials: Sequence[str] | None = None,
    dry_run: bool = False,
    send: Sender | None = None,
) -> RunOutcome:
    """One run of the source ``name`` (see the module). ``serials`` narrows it; queued
    trigger requests of the source are taken into it (and answered with its run id).
    ``trigger`` says why: ``"schedule"`` (beat), ``"request"`` (sent for queued
    requests, whose own sources then name the run: ``cli``, ``http``, ``webhook``; it
    runs only if one is still queued, as a dry run if that one asked for it)."""
    if name not in {c.name for c in worker.settings.connectors if c.enabled}:
        raise SyncdError(f"no enabled connector named {name!r}")
    lease = worker.settings.daemon.run_lease
    try:
        with held(worker.locks, connector_lock(name), worker.owner, lease):
            return _run_connector(
                worker, name, trigger=trigger, serials=serials, dry_run=dry_run, send=send
            )
    except LockBusyError as busy:
        return _skipped(worker, name, trigger, busy)


def _run_connector(
    worker: Worker,
    name: str,
    *,
    trigger: str,
    serials: Sequence[str] | None,
    dry_run: bool,
    send: Sender | None,
) -> RunOutcome:
    store = worker.store
    requested = trigger == "request"
    # A message sent for queued requests takes them in the kind the oldest was asked
    # for (dry run or not); if an earlier run took them all, it has nothing to run.
    taken = store.take_triggers(name, dry_run=None if requested else dry_run)
    if requested and taken is None:
        return RunOutcome(name, None, "done", "no queued request: an earlier run took it")
    ids: tuple[int, ...] = ()
    if taken is not None:
        ids = taken.ids
        dry_run = taken.dry_run
        # A run for the whole source answers requests for some serials too; requests
        # for serials only make a run for all their serials.
        if trigger == "request":
            serials = taken.serials if serials is None else [*serials, *(taken.serials or ())]
            if taken.serials is None:
                serials = None
        trigger = "+".join(sorted({trigger, *taken.sources} - {"request"}))
    scope = RunScope(
        sources=(name,),
        serials=None if not serials else tuple(sorted(set(serials))),
        list_inventory=None if not serials else False,
    )
    try:
        result = worker.runner().run(dry_run=dry_run, trigger=trigger, scope=scope, send=send)
    except BaseException as exc:
        if ids:
            store.finish_triggers(ids, "failed", detail=f"{type(exc).__name__}: {exc}")
        raise
    status: RunStatus = result.status  # type: ignore[assignment]
    if result.dry_run:  # a rehearsal: no run was kept, so none to point at
        if ids:
            state: TriggerState = "done" if status == "done" else "failed"
            store.finish_triggers(ids, state, detail=f"dry run: {status}")
        log.info("daemon.dry_run", connector=name, status=status)
        return RunOutcome(name, None, status, "dry run", 0, ids)
    if not ids and trigger == "schedule" and _idle(result) and store.mark_idle(result.run_id):
        return RunOutcome(name, result.run_id, "idle", "nothing to do")
    if ids:
        state = "done" if status in ("done", "applying", "held") else "failed"
        store.finish_triggers(ids, state, run_id=result.run_id, detail=status)
    log.info("daemon.run", connector=name, run=result.run_id, status=status)
    return RunOutcome(name, result.run_id, status, "", result.dispatched, ids)


def _idle(result: RunResult) -> bool:
    """Nothing read, nothing planned, nothing moved."""
    return (
        not result.ingest.batches
        and not result.plan.operations
        and not result.plan.tombstones
        and result.status == "done"
    )


def _skipped(worker: Worker, name: str, trigger: str, busy: LockBusyError) -> RunOutcome:
    """The source is being read by another run: recorded as a skipped run (its queued
    trigger requests wait for the next one)."""
    store = worker.store
    policy = worker.runner().policy
    run_id = store.begin_run(trigger, policy.fingerprint(), owner=worker.owner, connector=name)
    why = f"connector {name!r} is already running ({busy.holder or 'another process'})"
    store.finish_run(run_id, "skipped", summary={"connector": name}, error=why)
    log.info("daemon.run_skipped", connector=name, run=run_id, reason=why)
    return RunOutcome(name, run_id, "skipped", why)


def refresh_inventory(
    worker: Worker, *, trigger: str = "schedule", send: Sender | None = None
) -> RunOutcome:
    """List the inventory into the mirror and dispatch what it reveals (see the module)."""
    lease = worker.settings.daemon.run_lease
    try:
        with held(worker.locks, MIRROR_LOCK, worker.owner, lease):
            scope = RunScope(sources=(), list_inventory=True)
            result = worker.runner().run(dry_run=False, trigger=trigger, scope=scope, send=send)
    except LockBusyError as busy:
        return RunOutcome(None, None, "skipped", f"a listing is already running: {busy}")
    status: RunStatus = result.status  # type: ignore[assignment]
    return RunOutcome(None, result.run_id, status, "", result.dispatched)


def apply(worker: Worker, change_id: int) -> ApplyOutcome:
    """Apply one change; when it was the last of its run, close the run.

    A refused token (401) fails the change's run with that reason, hands the change
    back, halts dispatching (nothing would succeed: the API is not hammered), and
    raises ``AuthenticationError``. While dispatching is halted, a change whose message
    was already sent is left as it is (``halted``): the sweeper sends it again once the
    halt is over. Anything unexpected (the rate limit's Redis gone, the store failing)
    gives the change up before it is raised, so the sweeper's recovery takes it."""
    why = halted(worker.store)
    if why is not None:
        return ApplyOutcome("halted", change_id, detail=why)
    try:
        outcome = apply_one(
            worker.store, worker.client, change_id, owner=worker.owner, policy=worker.apply_policy
        )
    except AuthenticationError as exc:
        reason = f"the inventory API refused the token: {exc}; fix it, changes wait in the outbox"
        halt(worker.store, reason)
        change = worker.store.change(change_id)
        if change is not None:
            worker.store.finish_run(change.run_id, "failed", error=reason)
        raise
    except Exception as exc:
        _give_up(worker, change_id, exc)
        raise
    if outcome.final:
        change = worker.store.change(change_id)
        if change is not None:
            worker.store.close_if_final(change.run_id, "its changes are final")
    metrics.flush(worker.store, every=metrics.FLUSH_EVERY)
    return outcome


def _give_up(worker: Worker, change_id: int, exc: Exception) -> None:
    """A change this process claimed, whose outcome an unexpected failure made unknown:
    left ``applying`` under a live process, no recovery would ever take it."""
    change = worker.store.change(change_id)
    if change is None or change.status != "applying" or change.claimed_by != worker.owner:
        return  # not claimed by this call (the failure came first, or another has it)
    why = f"interrupted while in flight ({type(exc).__name__}): outcome unknown"
    worker.store.give_up(change_id, worker.owner, why)
    log.warning("apply.given_up", change=change_id, error=type(exc).__name__)


def sweep(worker: Worker, send: Sender, send_run: RunSender | None = None) -> SweepReport:
    """The safety net (see the module); ``send_run(connector)`` starts a run for queued
    trigger requests (``None``: leave them to the next scheduled run)."""
    settings = worker.settings
    store = worker.store
    report = SweepReport()
    recovered = worker.runner().recover()
    report.recovered = recovered.creates_found + recovered.abandoned
    report.resent = resend_expired(store, send, lease=settings.outbox.dispatch_lease)
    report.dispatched = dispatch(store, send, lease=settings.outbox.dispatch_lease)
    report.requeued_triggers = store.requeue_stale_triggers(STALE_TRIGGER)
    close_runs(store, owner=worker.owner, now=utcnow())
    metrics.flush(store)
    if send_run is not None:
        for name in store.queued_triggers():
            send_run(name)
            report.triggers.append(name)
    return report


def request_run(
    store: Store,
    connector: str,
    *,
    serials: Sequence[str] | None = None,
    dry_run: bool = False,
    source: str = "cli",
) -> int:
    """Queue an on-demand run of ``connector`` (the CLI, the HTTP API, a webhook);
    returns the request's id (shared with a request already waiting, which absorbs
    this one)."""
    return store.request_trigger(connector, serials=serials, dry_run=dry_run, source=source)


def retry_failed(
    worker: Worker,
    *,
    ids: Sequence[int] | None = None,
    run_id: int | None = None,
    send: Sender | None = None,
) -> list[int]:
    """``syncd retry``: failed changes back to the outbox (dispatched with ``send``)."""
    again = requeue_failed(
        worker.store, send, ids=ids, run_id=run_id, lease=worker.settings.outbox.dispatch_lease
    )
    return [change.id for change in again]
