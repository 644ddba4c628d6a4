"""``syncd daemon``, ``syncd worker``, ``syncd beat``, ``syncd trigger``, ``syncd retry``.

The first three run Celery's own command line on ``tasks.app`` (this package never
imports ``tasks/``), with ``SYNCD_CONFIG`` naming the configuration:

- ``syncd daemon``: the embedded deployment, one process: a worker with beat inside,
  on the filesystem broker under ``daemon.data_dir``, the SQLite store holding locks;
- ``syncd worker`` / ``syncd beat``: the scale-out deployment over a Redis broker (any
  number of workers; beat as often as you like: ``celery-redbeat`` keeps one active).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from syncd.cli.common import (
    DEFAULT_CONFIG,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_HELD,
    EXIT_RETRIABLE,
    ConfigOption,
    console,
    err_console,
    fail,
    settings_from,
)
from syncd.errors import ConfigError, Problem, SyncdError

if TYPE_CHECKING:
    from syncd.config import Settings
    from syncd.store import Store

ConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        "--concurrency", min=1, max=256, help="threads (default: daemon.worker_concurrency)"
    ),
]


def _celery(settings: Settings, config: Path, *args: str) -> None:
    """Replace this process with Celery's command line on ``tasks.app``."""
    from syncd import broker
    from syncd.store import Store

    try:  # the schema first: every worker thread would otherwise race to migrate it
        Store.from_settings(settings.store).close()
    except SyncdError as exc:
        fail(exc)
    broker.prepare(settings)
    env = dict(os.environ)
    if config.exists():
        env["SYNCD_CONFIG"] = str(config.resolve())
    level = settings.logging.level
    argv = [sys.executable, "-m", "celery", "-A", "tasks.app", *args, "--loglevel", level]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter, fixed argv


def _worker_args(settings: Settings, concurrency: int | None, *, beat: bool) -> list[str]:
    threads = concurrency or settings.daemon.worker_concurrency
    name = f"syncd-{os.getpid()}@{socket.gethostname()}"
    args = ["worker", "--pool", "threads", "--concurrency", str(threads), "--hostname", name]
    args += ["--without-mingle", "--without-gossip"]
    if beat:
        args += ["--beat"]
    return args


def daemon_command(
    config: ConfigOption = DEFAULT_CONFIG, concurrency: ConcurrencyOption = None
) -> None:
    """Run the embedded daemon: worker and beat in one process, no broker server.

    Connectors with a ``schedule`` run on it, the inventory is listed on
    ``daemon.mirror_refresh``, and ``syncd trigger`` (or the HTTP API) starts runs on
    demand. SIGTERM or Ctrl-C stop it cleanly: the tasks in flight finish first.
    """
    settings = settings_from(config)
    if settings.daemon.scale_out:
        fail(
            ConfigError(
                [
                    Problem(
                        "daemon.broker_url",
                        "a Redis broker is the scale-out deployment: run `syncd worker` "
                        "(as many as you like) and `syncd beat` instead of `syncd daemon`",
                    )
                ]
            )
        )
    _celery(settings, config, *_worker_args(settings, concurrency, beat=True))


def worker_command(
    config: ConfigOption = DEFAULT_CONFIG, concurrency: ConcurrencyOption = None
) -> None:
    """Run one worker (scale-out: start as many as you like, on any machine)."""
    settings = settings_from(config)
    _celery(settings, config, *_worker_args(settings, concurrency, beat=False))


def beat_command(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Run beat, which sends the scheduled runs (scale-out: one is active at a time)."""
    settings = settings_from(config)
    _celery(settings, config, "beat")


def trigger_command(
    connector: Annotated[str, typer.Argument(help="the connector to run")],
    *,
    config: ConfigOption = DEFAULT_CONFIG,
    serial: Annotated[
        list[str] | None, typer.Option("--serial", help="only this device (repeatable)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan only, write nothing")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="wait until the run is over")] = False,
    timeout: Annotated[
        float, typer.Option(min=1, max=86400, help="seconds --wait waits at most")
    ] = 600,
) -> None:
    """Ask the daemon for a run of CONNECTOR now (requests that wait together are merged)."""
    from syncd import broker
    from syncd.service.daemon import request_run

    settings = settings_from(config)
    names = {c.name for c in settings.connectors if c.enabled}
    if connector not in names:
        shown = ", ".join(sorted(names)) or "none"
        err_console.print(f"no enabled connector {connector!r} (configured: {shown})")
        raise typer.Exit(EXIT_CONFIG)
    with _store(settings) as store:
        request = request_run(store, connector, serials=serial, dry_run=dry_run, source="cli")
        try:
            broker.send(settings, broker.RUN_CONNECTOR, connector, trigger="request")
        except Exception as exc:  # noqa: BLE001 - the sweeper takes the request anyway
            err_console.print(
                f"[yellow]the broker did not take the message[/] ({type(exc).__name__}); "
                f"the daemon's sweeper takes request {request} within "
                f"{settings.daemon.sweep_interval:.0f} s"
            )
        console.print(f"trigger request {request}: {connector} queued")
        if wait:
            _wait_for(store, request, timeout)


def _store(settings: Settings) -> Store:
    from syncd.store import Store

    try:
        return Store.from_settings(settings.store)
    except SyncdError as exc:
        fail(exc)


def _wait_for(store: Store, request: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    run_id: int | None = None
    while time.monotonic() < deadline:
        row = store.trigger(request)
        if row is not None and row.state in ("done", "failed", "skipped"):
            if row.run_id is None:  # skipped, failed before its run, or a dry run (kept none)
                line = f"request {request} {row.state}: {row.detail or ''}"
                if row.state == "done":
                    console.print(line, highlight=False)
                    raise typer.Exit(0)
                err_console.print(line, highlight=False)
                raise typer.Exit(EXIT_FAILED)
            run_id = row.run_id
            run = store.run(run_id)
            if run is not None and run.status not in ("planning", "applying"):
                counts = store.change_counts(run_id)
                console.print(f"run {run_id}: {run.status} {counts}", highlight=False)
                if run.error:
                    err_console.print(f"  {run.error}", highlight=False)
                code = {"done": 0, "held": EXIT_HELD}.get(run.status, EXIT_FAILED)
                raise typer.Exit(code)
        time.sleep(0.2)
    where = f"run {run_id}" if run_id is not None else f"request {request}"
    err_console.print(f"{where} is not over after {timeout:.0f} s")
    raise typer.Exit(EXIT_RETRIABLE)


def retry_command(
    config: ConfigOption = DEFAULT_CONFIG,
    run_id: Annotated[
        int | None, typer.Option("--run", min=1, max=2**63 - 1, help="failed changes of this run")
    ] = None,
    change: Annotated[
        list[int] | None, typer.Option("--change", min=1, max=2**63 - 1, help="this change")
    ] = None,
) -> None:
    """Send failed changes again (all, of one run, or some), now, in this process.

    A change a newer plan overtook is left alone; an update is read before it is
    written if the inventory listing is older than ``outbox.max_mirror_age``.
    """
    from syncd.cli.runs import open_runner
    from syncd.service.apply import apply_pending
    from syncd.service.outbox import requeue_failed

    settings = settings_from(config)
    with open_runner(settings, graceful=True) as runner:
        again = requeue_failed(runner.store, None, ids=change, run_id=run_id)
        if not again:
            console.print("no failed change to retry")
            return
        ids = {c.id for c in again}
        report = apply_pending(runner.store, runner.client, **runner.apply_args())
        failed = [c for c in runner.store.changes(status="failed", limit=1000) if c.id in ids]
    console.print(f"{len(again)} change(s) sent again: {report.applied} applied")
    for row in failed:
        err_console.print(f"  [red]failed[/] {row.serial_number}: {row.error}", highlight=False)
    if failed:
        raise typer.Exit(EXIT_FAILED)
