"""``syncd plan``, ``syncd run --once``, ``syncd approve``, and the audit views.

The store, the client, the service and the renderers are imported inside the
commands: building the command line (``syncd --help``) must not load them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from syncd.cli.common import (
    DEFAULT_CONFIG,
    DETAILED_EXITCODE,
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
    from syncd.service import Runner, RunResult


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
    *,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
    limit: Annotated[
        int, typer.Option(min=0, max=INT64_MAX, metavar="N", help="rows to show (0: all)")
    ] = 50,
    no_sources: Annotated[
        bool, typer.Option("--no-sources", help="plan from the stored snapshots only")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="full pulls from incremental sources")
    ] = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="exit 0: no changes, 2: changes to make, 1: problems (rows rejected, a file "
            "refused, an incomplete listing, or any failure), as Terraform's plan",
        ),
    ] = False,
) -> None:
    """Dry run: read the sources and the inventory, show what a run would do.

    Nothing is written to the API, nothing is recorded, and the sources are left as they
    are: a dropped CSV file is read where it lies (not moved to processed/, its content
    not remembered as accepted), so the next run takes it as if no plan had been made.
    Open conflicts and other drift are counted below the plan until resolved.
    """
    token = DETAILED_EXITCODE.set(detailed_exitcode)
    try:
        code = _plan(config, as_json=as_json, limit=limit, no_sources=no_sources, full=full)
    finally:
        DETAILED_EXITCODE.reset(token)
    if detailed_exitcode and code:
        raise typer.Exit(code)


def _plan(config: Path, *, as_json: bool, limit: int, no_sources: bool, full: bool) -> int:
    """The plan shown; returns its detailed exit code (0 nothing, 2 changes, 1 problems)."""
    from syncd.service.audit import Labels

    settings = settings_from(config)
    with open_runner(settings) as runner:
        if full:
            runner.force_full_pulls()
        result = runner.run(
            dry_run=True, trigger="plan", read_sources=not no_sources, measure_drift=True
        )
        labels = Labels.of(runner.store, settings.policy)
    from syncd.cli import render

    exit_if_interrupted(runner, result.status)
    if as_json:
        render.print_plan_json(result)
    else:
        render.show_result(result, limit=limit, labels=labels, drift=result.drift)
    return plan_exit_code(result)


#: ``--detailed-exitcode``: the plan would change the inventory.
EXIT_CHANGES = 2


def plan_exit_code(result: RunResult) -> int:
    """Terraform's convention: 1 when something needs a look (rows rejected, a batch
    refused whole, an incomplete inventory listing), else 2 when the plan writes, else 0."""
    if result.rejects or result.ingest.rejects or result.ingest.refused or result.listing_problems:
        return EXIT_FAILED
    if any(result.plan.counts.get(kind, 0) for kind in ("create", "adopt", "update", "delete")):
        return EXIT_CHANGES
    return 0


def run_command(
    config: ConfigOption = DEFAULT_CONFIG,
    once: Annotated[bool, typer.Option("--once", help="run one reconciliation and exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    limit: Annotated[
        int, typer.Option(min=0, max=INT64_MAX, metavar="N", help="rows to show (0: all)")
    ] = 50,
    full: Annotated[
        bool, typer.Option("--full", help="full pulls from incremental sources")
    ] = False,
) -> None:
    """Reconcile: read sources and inventory, plan, and apply the plan through the API."""
    if not once:
        raise typer.BadParameter("only --once is available in-process (the daemon comes later)")
    settings = settings_from(config)
    from syncd.cli import render
    from syncd.service.audit import Labels, drift_counts

    with open_runner(settings, graceful=True) as runner, render.progress_bar() as progress:
        if full:
            runner.force_full_pulls()
        result = runner.run(dry_run=False, trigger="cli", progress=progress)
        result.drift = drift_counts(runner.store)
        labels = Labels.of(runner.store, settings.policy)
    if as_json:
        render.print_plan_json(result)
    else:
        render.show_result(result, limit=limit, labels=labels, drift=result.drift)
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
    run_id: Annotated[
        int, typer.Argument(min=1, max=INT64_MAX, metavar="RUN", help="the held run to release")
    ],
    config: ConfigOption = DEFAULT_CONFIG,
    by: Annotated[
        str, typer.Option(metavar="WHO", help="who approves (kept in the audit log)")
    ] = "cli",
) -> None:
    """Release a plan that a safety gate held, and apply what still holds of it.

    Each change is checked against the inventory and the sources as they are now; one
    they have overtaken is skipped and planned afresh by the next run.
    """
    from syncd.service.actions import approve, require_held

    settings = settings_from(config)
    with open_runner(settings, graceful=True) as runner:
        require_held(runner.store, run_id)  # before the inventory is read
        result = approve(runner, run_id, by)
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
    run_id: Annotated[
        int, typer.Argument(min=1, max=INT64_MAX, metavar="RUN", help="the held run to refuse")
    ],
    config: ConfigOption = DEFAULT_CONFIG,
    by: Annotated[
        str, typer.Option(metavar="WHO", help="who refuses (kept in the audit log)")
    ] = "cli",
    reason: Annotated[str, typer.Option(metavar="TEXT", help="why (kept in the audit log)")] = "",
) -> None:
    """Refuse a held plan: its changes are skipped, its serials planned afresh next run."""
    from syncd.cli.audit import open_store
    from syncd.service.actions import discard

    settings = settings_from(config)
    with open_store(settings) as store:
        skipped = discard(store, run_id, by, reason)
    console.print(f"run {run_id}: {skipped} change(s) discarded by {by}")


def db_upgrade_command(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Migrate the state store to the newest schema."""
    from syncd.store import Store

    settings = settings_from(config)
    with Store.from_settings(settings.store, migrate=False) as store:
        revision = store.upgrade()
        console.print(f"{store.url}: schema at {revision}")
