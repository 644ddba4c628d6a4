"""syncd's Celery face: the tasks (declared as data), beat's schedule, ``make_app``.

``tasks.app`` builds the app from the configuration file for Celery's command line;
tests build their own with ``make_app``. Nothing in ``syncd/`` imports this package.

Every task is a thin call into ``syncd.service.daemon``; the business logic, and the
truth about each change, live in the store. A task retries only what the service
says is transient, with the delay it names (the server's ``Retry-After`` when it sent
one): ``apply_change`` with its outcome's ``delay`` (the change row is ``dispatched``
meanwhile, and the sweeper sends it again if the retry message is lost), and
``run_connector`` on a ``RetriableError``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from celery import Celery, Task, signals
from celery.schedules import crontab

from syncd import broker
from syncd.config import Settings, parse_interval
from syncd.errors import AuthenticationError, RetriableError, SourceError
from syncd.locks import LockBusyError
from syncd.service import daemon
from syncd.service.outbox import dispatch as dispatch_changes
from syncd.service.retention import prune
from syncd.service.stop import StopRequest

#: A run that failed for a transient reason is tried again after this long (seconds),
#: unless the error names a delay; at most this many times.
RUN_RETRY_DELAY = 30.0
RUN_RETRIES = 3


class Context:
    """The process's ``Worker`` (opened on first use, closed at shutdown) and the way
    tasks send more work."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = StopRequest()
        self._worker: daemon.Worker | None = None
        self._lock = threading.Lock()
        self.send_apply: Callable[[int], None] = _unset
        self.send_run: Callable[[str], None] = _unset

    def worker(self) -> daemon.Worker:
        with self._lock:
            if self._worker is None:
                self._worker = daemon.Worker.open(self.settings)
                self._worker.stop = self.stop
            return self._worker

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None


def _unset(_: object) -> None:  # pragma: no cover - replaced when the app is made
    raise RuntimeError("the app's senders are not wired")


# -- the tasks, as data ----------------------------------------------------------------------


def run_connector(
    task: Task,
    ctx: Context,
    name: str,
    *,
    trigger: str = "schedule",
    serials: list[str] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Pull one source, plan, record, dispatch (``daemon.run_connector``)."""
    try:
        outcome = daemon.run_connector(
            ctx.worker(),
            name,
            trigger=trigger,
            serials=serials,
            dry_run=dry_run,
            send=ctx.send_apply,
        )
    except (RetriableError, SourceError) as exc:
        transient = isinstance(exc, RetriableError) or bool(getattr(exc, "retriable", False))
        if not transient:
            raise
        delay = getattr(exc, "retry_after", None) or RUN_RETRY_DELAY
        raise task.retry(countdown=delay, max_retries=RUN_RETRIES, exc=exc) from None
    return outcome.as_dict()


def refresh_mirror(task: Task, ctx: Context) -> dict[str, Any]:
    """List the inventory, plan what it shows, dispatch (``daemon.refresh_inventory``)."""
    try:
        outcome = daemon.refresh_inventory(ctx.worker(), send=ctx.send_apply)
    except RetriableError as exc:
        delay = exc.retry_after or RUN_RETRY_DELAY
        raise task.retry(countdown=delay, max_retries=RUN_RETRIES, exc=exc) from None
    return outcome.as_dict()


def dispatch(task: Task, ctx: Context) -> int:
    """Send every pending change to the workers."""
    worker = ctx.worker()
    return dispatch_changes(
        worker.store, ctx.send_apply, lease=worker.settings.outbox.dispatch_lease
    )


def apply_change(task: Task, ctx: Context, change_id: int) -> dict[str, Any]:
    """One API operation (``daemon.apply``); a transient failure or a serial busy with an
    older change is retried after the outcome's delay."""
    try:
        outcome = daemon.apply(ctx.worker(), change_id)
    except AuthenticationError:
        return {"kind": "failed", "change_id": change_id, "detail": "the API refused the token"}
    if outcome.kind in ("retry", "busy"):
        raise task.retry(countdown=outcome.delay or 1.0, max_retries=None)
    return asdict(outcome)


def sweep(task: Task, ctx: Context) -> dict[str, Any]:
    """The safety net: recover, resend, take queued trigger requests (``daemon.sweep``)."""
    report = daemon.sweep(ctx.worker(), ctx.send_apply, ctx.send_run)
    return asdict(report)


def prune_audit(task: Task, ctx: Context) -> dict[str, Any]:
    """Export, then prune, the audit log past ``[retention]`` (``syncd prune``); another
    process pruning already makes this one a no-op."""
    worker = ctx.worker()
    try:
        report = prune(worker.store, ctx.settings.retention, owner=worker.owner, stop=ctx.stop)
    except LockBusyError as busy:
        return {"skipped": str(busy)}
    return report.as_dict()


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task: its name (``syncd.broker``), its body, and Celery options."""

    name: str
    body: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(broker.RUN_CONNECTOR, run_connector),
    TaskSpec(broker.REFRESH_MIRROR, refresh_mirror),
    TaskSpec(broker.DISPATCH, dispatch),
    TaskSpec(broker.APPLY_CHANGE, apply_change),
    TaskSpec(broker.SWEEP, sweep, {"expires": 60}),
    TaskSpec(broker.PRUNE_AUDIT, prune_audit),
)


# -- beat's schedule -------------------------------------------------------------------------


def _every(text: str) -> tuple[Any, float]:
    """``(schedule, expiry seconds)`` of a config schedule: an interval or a cron line."""
    seconds = parse_interval(text)
    if seconds is not None:
        return timedelta(seconds=seconds), seconds
    minute, hour, day_of_month, month, day_of_week = text.split()
    return crontab(minute, hour, day_of_week, day_of_month, month), 3600.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat's entries: each scheduled connector, the inventory listing, the sweeper, the
    audit log's retention (``retention.schedule``).

    A scheduled run that is still queued when the next one is due has expired: it is
    dropped rather than run late (two runs would queue behind one busy worker).
    """
    entries: dict[str, dict[str, Any]] = {}
    for connector in settings.connectors:
        if connector.enabled and connector.schedule:
            every, expires = _every(connector.schedule)
            entries[f"run {connector.name}"] = {
                "task": broker.RUN_CONNECTOR,
                "schedule": every,
                "args": [connector.name],
                "kwargs": {"trigger": "schedule"},
                "options": {"expires": expires},
            }
    if settings.daemon.mirror_refresh:
        every, expires = _every(settings.daemon.mirror_refresh)
        entries["refresh inventory"] = {
            "task": broker.REFRESH_MIRROR,
            "schedule": every,
            "options": {"expires": expires},
        }
    sweep_every = settings.daemon.sweep_interval
    entries["sweep"] = {
        "task": broker.SWEEP,
        "schedule": timedelta(seconds=sweep_every),
        "options": {"expires": sweep_every},
    }
    entries.update(_retention_entry(settings))
    return entries


def _retention_entry(settings: Settings) -> dict[str, dict[str, Any]]:
    """The audit log's prune, on ``retention.schedule`` (none: no entry)."""
    if not settings.retention.schedule:
        return {}
    every, expires = _every(settings.retention.schedule)
    return {
        "prune audit log": {
            "task": broker.PRUNE_AUDIT,
            "schedule": every,
            "options": {"expires": expires},
        }
    }


# -- the app ---------------------------------------------------------------------------------


def make_app(settings: Settings) -> Celery:
    """The Celery app of this configuration, its tasks registered and its schedule set."""
    broker.prepare(settings)
    app = Celery("syncd")
    app.conf.update(broker.celery_config(settings))
    if settings.daemon.scale_out:
        app.conf.beat_scheduler = "tasks.beat:Scheduler"  # rides out a Redis restart
    app.conf.beat_schedule = beat_schedule(settings)
    ctx = Context(settings)
    registered: dict[str, Any] = {}
    for spec in TASKS:
        registered[spec.name] = _register(app, ctx, spec)
    ctx.send_apply = lambda change_id: registered[broker.APPLY_CHANGE].apply_async(args=[change_id])
    ctx.send_run = lambda name: registered[broker.RUN_CONNECTOR].apply_async(
        args=[name], kwargs={"trigger": "request"}
    )
    app.syncd_context = ctx

    def shutting_down(sig: str = "", **_: Any) -> None:
        ctx.stop.request()

    def shut_down(**_: Any) -> None:
        ctx.close()

    signals.worker_shutting_down.connect(shutting_down, weak=False)
    signals.worker_shutdown.connect(shut_down, weak=False)
    signals.beat_embedded_init.connect(_beat_dies_with(os.getpid()), weak=False)
    return app


#: ``prctl`` option: the signal this process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def _beat_dies_with(worker_pid: int) -> Callable[..., None]:
    """``syncd daemon`` runs beat in a child process of the worker. When the worker is
    killed (``kill -9``, the OOM killer) nothing stops that child: it lives on as an
    orphan and sends the schedule forever, once more after each restart. Linux can
    send it SIGTERM when its parent dies; a parent already gone ends it at once."""

    def embedded_beat_started(**_: Any) -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != worker_pid:
            os._exit(0)

    return embedded_beat_started


def _register(app: Celery, ctx: Context, spec: TaskSpec) -> Any:
    body = spec.body

    def task(self: Task, *args: Any, **kwargs: Any) -> Any:
        return body(self, ctx, *args, **kwargs)

    task.__name__ = body.__name__
    task.__doc__ = body.__doc__
    return app.task(name=spec.name, bind=True, **spec.options)(task)
