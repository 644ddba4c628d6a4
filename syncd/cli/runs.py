"""``syncd plan``, ``syncd run --once``, ``syncd approve``, and the audit views.

The store, the client, the service and the renderers are imported inside the
commands: building the command line (``syncd --help``) must not load them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from syncd.cli.common import (
    DEFAULT_CONFIG,
    EXIT_FAILED,
    EXIT_HELD,
    EXIT_INTERRUPTED,
    EXIT_RETRIABLE,
    INT64_MAX,
    ConfigOption,
    console,
    err_console,
    fail,
    settings_from,
)

if TYPE_CHECKING:
    from syncd.config import Settings
    from syncd.service import Runner
    from syncd.store import Store


@contextmanager
def open_runner(settings: Settings, *, graceful: bool = False) -> Iterator[Runner]:
    """A runner over the configured store and API client, closed afterwards.

    ``graceful``: the first SIGTERM or SIGINT stops the run at its next safe point
    (the command then exits 128 + the signal's number: 143 or 130); a second one stops
    it at once, leaving the change in flight to the next run's recovery.
    """
    from syncd.errors import SyncdError
    from syncd.service import Runner
    from syncd.service.daemon import build_client
    from syncd.service.stop import stop_on_signals
    from syncd.store import Store

    try:
        store = Store.from_settings(settings.store)
    except SyncdError as exc:
        fail(exc)
    try:
        with (
            stop_on_signals() as stop,
            build_client(settings) as client,
        ):
            yield Runner(settings, store, client, stop=stop if graceful else None)
    except SyncdError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err_console.print(
            "[bold yellow]stopped at once[/]: the changes in flight are recovered by the next "
            "run (a create is read back first)"
        )
        store.close()
        sys.stdout.flush()
        sys.stderr.flush()
        # At once: not even waiting for the requests in flight (threads would be joined
        # on a normal exit); their claims are marked given up for the next run.
        os._exit(stop.exit_code if stop.requested else EXIT_INTERRUPTED)
    finally:
        store.close()


def exit_if_interrupted(runner: Runner, status: str) -> None:
    """Exit 128 + the signal's number when the run was stopped by a signal."""
    if status == "interrupted":
        stop = runner.stop
        raise typer.Exit(stop.exit_code if stop is not None else EXIT_INTERRUPTED)


def plan_command(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
    limit: Annotated[int, typer.Option(min=0, max=INT64_MAX, help="rows to show (0: all)")] = 50,
    no_sources: Annotated[
        bool, typer.Option("--no-sources", help="plan from the stored snapshots only")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="full pulls from incremental sources")
    ] = False,
) -> None:
    """Dry run: read the sources and the inventory, show what a run would do.

    Nothing is written to the API and no change is recorded. Ready source batches
    are read into the state store (CSV files move to processed/), so the next run
    plans from them.
    """
    settings = settings_from(config)
    with open_runner(settings) as runner:
        if full:
            runner.force_full_pulls()
        result = runner.run(dry_run=True, trigger="plan", read_sources=not no_sources)
    from syncd.cli import render

    if as_json:
        render.print_plan_json(result)
        return
    render.show_result(result, limit=limit)


def run_command(
    config: ConfigOption = DEFAULT_CONFIG,
    once: Annotated[bool, typer.Option("--once", help="run one reconciliation and exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    limit: Annotated[int, typer.Option(min=0, max=INT64_MAX, help="rows to show (0: all)")] = 50,
    full: Annotated[
        bool, typer.Option("--full", help="full pulls from incremental sources")
    ] = False,
) -> None:
    """Reconcile: read sources and inventory, plan, and apply the plan through the API."""
    if not once:
        raise typer.BadParameter("only --once is available in-process (the daemon comes later)")
    settings = settings_from(config)
    from syncd.cli import render

    with open_runner(settings, graceful=True) as runner, render.progress_bar() as progress:
        if full:
            runner.force_full_pulls()
        result = runner.run(dry_run=False, trigger="cli", progress=progress)
    if as_json:
        render.print_plan_json(result)
    else:
        render.show_result(result, limit=limit)
    exit_if_interrupted(runner, result.status)
    if result.status == "applying":
        err_console.print(
            f"run {result.run_id}: {runner.store.count_pending(result.run_id)} change(s) wait "
            "behind changes of the same devices that another process is applying; a later "
            "run sends them"
        )
        raise typer.Exit(EXIT_RETRIABLE)
    if result.status == "held":
        raise typer.Exit(EXIT_HELD)
    if result.status == "failed":
        raise typer.Exit(EXIT_FAILED)


def approve_command(
    run_id: Annotated[int, typer.Argument(min=1, max=INT64_MAX, help="the held run to release")],
    config: ConfigOption = DEFAULT_CONFIG,
    by: Annotated[str, typer.Option(help="who approves (kept in the audit log)")] = "cli",
) -> None:
    """Release a plan that a safety gate held, and apply what still holds of it.

    Each change is checked against the inventory and the sources as they are now; one
    they have overtaken is skipped and planned afresh by the next run.
    """
    settings = settings_from(config)
    with open_runner(settings, graceful=True) as runner:
        _require_held(runner.store, run_id)
        result = runner.approve(run_id, by)
        counts = runner.store.change_counts(run_id)
    console.print(f"run {run_id}: {result.released} change(s) released by {by}")
    if result.stale:
        console.print(f"  {result.stale} skipped as stale (re-planned by the next run)")
    console.print(f"  now: {counts}", highlight=False)
    for error in result.applied.errors[:10]:
        console.print(f"  [red]failed[/] {error}", highlight=False)
    if result.applied.interrupted:
        exit_if_interrupted(runner, "interrupted")
    if result.applied.failed:
        raise typer.Exit(EXIT_FAILED)


def discard_command(
    run_id: Annotated[int, typer.Argument(min=1, max=INT64_MAX, help="the held run to refuse")],
    config: ConfigOption = DEFAULT_CONFIG,
    by: Annotated[str, typer.Option(help="who refuses (kept in the audit log)")] = "cli",
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")] = "",
) -> None:
    """Refuse a held plan: its changes are skipped, its serials planned afresh next run."""
    from syncd.store import Store

    settings = settings_from(config)
    with Store.from_settings(settings.store) as store:
        _require_held(store, run_id)
        skipped = store.discard_run(run_id, by, reason)
    console.print(f"run {run_id}: {skipped} change(s) discarded by {by}")


def _require_held(store: Store, run_id: int) -> None:
    run = store.run(run_id)
    if run is None or run.status != "held":
        state = "unknown" if run is None else run.status
        err_console.print(f"run {run_id} is not held (it is {state})")
        raise typer.Exit(EXIT_FAILED)


def runs_command(
    config: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[int, typer.Option(min=0, max=INT64_MAX, help="how many runs")] = 20,
    show_all: Annotated[
        bool, typer.Option("--all", help="also the daemon's idle polls (nothing to do)")
    ] = False,
) -> None:
    """The latest runs, newest first."""
    from rich.table import Table

    from syncd.cli.render import KINDS
    from syncd.store import Store

    settings = settings_from(config)
    with Store.from_settings(settings.store) as store:
        table = Table("run", "trigger", "started", "status", "summary")
        for run in store.runs(limit, idle=show_all):
            ops = run.summary.get("operations", {})
            brief = ", ".join(f"{k} {v}" for k, v in ops.items() if v and k in KINDS)
            table.add_row(
                str(run.id),
                run.trigger,
                f"{run.started_at:%Y-%m-%d %H:%M:%S}",
                run.status,
                brief or "-",
            )
        console.print(table)


def changes_command(
    config: ConfigOption = DEFAULT_CONFIG,
    run_id: Annotated[
        int | None, typer.Option("--run", min=1, max=INT64_MAX, help="only this run")
    ] = None,
    serial: Annotated[str | None, typer.Option(help="only this serial (exact)")] = None,
    limit: Annotated[int, typer.Option(min=0, max=INT64_MAX, help="how many changes")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log: recorded changes, newest first."""
    from syncd.cli import render
    from syncd.store import Store

    settings = settings_from(config)
    with Store.from_settings(settings.store) as store:
        rows = store.changes(run_id=run_id, serial=serial, limit=limit)
    if as_json:
        render.print_changes_json(rows)
        return
    console.print(render.changes_table(rows))


def rejects_command(
    config: ConfigOption = DEFAULT_CONFIG,
    run_id: Annotated[
        int | None, typer.Option("--run", min=1, max=INT64_MAX, help="only this run")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, max=INT64_MAX, help="how many")] = 100,
) -> None:
    """Rows and records the sources could not use, with where and why."""
    from rich.table import Table

    from syncd.store import Store

    settings = settings_from(config)
    with Store.from_settings(settings.store) as store:
        rows = store.rejects(run_id=run_id, limit=limit)
    table = Table("run", "source", "location", "serial", "reason")
    for row in rows:
        table.add_row(
            str(row.run_id), row.source, row.location, row.serial_number or "", row.reason
        )
    console.print(table)


def db_upgrade_command(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Migrate the state store to the newest schema."""
    from syncd.store import Store

    settings = settings_from(config)
    with Store.from_settings(settings.store, migrate=False) as store:
        revision = store.upgrade()
        console.print(f"{store.url}: schema at {revision}")
