"""``syncd plan``, ``syncd run --once``, ``syncd approve``, and the audit views."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from syncd.cli.common import (
    DEFAULT_CONFIG,
    EXIT_FAILED,
    EXIT_HELD,
    EXIT_INTERRUPTED,
    EXIT_RETRIABLE,
    ConfigOption,
    console,
    err_console,
    fail,
    settings_from,
)
from syncd.config import INT64_MAX, Settings
from syncd.engine import Operation, Plan
from syncd.errors import SyncdError
from syncd.inventory import InventoryClient
from syncd.service import Runner, RunResult
from syncd.service.stop import stop_on_signals
from syncd.store import ChangeRow, Store

_KIND_STYLE = {
    "create": "green",
    "update": "yellow",
    "adopt": "cyan",
    "delete": "red",
    "conflict": "magenta",
    "reject": "bright_red",
    "skip": "dim",
}


@contextmanager
def open_runner(settings: Settings, *, graceful: bool = False) -> Iterator[Runner]:
    """A runner over the configured store and API client, closed afterwards.

    ``graceful``: the first SIGTERM or SIGINT stops the run at its next safe point
    (the command then exits 128 + the signal's number: 143 or 130); a second one stops
    it at once, leaving the change in flight to the next run's recovery.
    """
    try:
        store = Store.from_settings(settings.store)
    except SyncdError as exc:
        fail(exc)
    try:
        with (
            stop_on_signals() as stop,
            InventoryClient.from_settings(settings.inventory) as client,
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
    if as_json:
        console.print_json(json.dumps(plan_json(result)))
        return
    show_result(result, limit=limit)


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
    with open_runner(settings, graceful=True) as runner, _progress() as progress:
        if full:
            runner.force_full_pulls()
        result = runner.run(dry_run=False, trigger="cli", progress=progress)
    if as_json:
        console.print_json(json.dumps(plan_json(result)))
    else:
        show_result(result, limit=limit)
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
    settings = settings_from(config)
    with Store.from_settings(settings.store) as store:
        table = Table("run", "trigger", "started", "status", "summary")
        for run in store.runs(limit, idle=show_all):
            ops = run.summary.get("operations", {})
            brief = ", ".join(f"{k} {v}" for k, v in ops.items() if v and k in _KIND_STYLE)
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
    settings = settings_from(config)
    with Store.from_settings(settings.store) as store:
        rows = store.changes(run_id=run_id, serial=serial, limit=limit)
    if as_json:
        console.print_json(json.dumps([change_json(r) for r in rows]))
        return
    console.print(changes_table(rows))


def rejects_command(
    config: ConfigOption = DEFAULT_CONFIG,
    run_id: Annotated[
        int | None, typer.Option("--run", min=1, max=INT64_MAX, help="only this run")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, max=INT64_MAX, help="how many")] = 100,
) -> None:
    """Rows and records the sources could not use, with where and why."""
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
    settings = settings_from(config)
    with Store.from_settings(settings.store, migrate=False) as store:
        revision = store.upgrade()
        console.print(f"{store.url}: schema at {revision}")


# -- rendering ---------------------------------------------------------------------------------


class _Bar:
    """The apply step's progress, as a rich bar (only on a terminal)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("applying changes", total=None)

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def advance(self, change: ChangeRow, outcome: str) -> None:
        self._progress.advance(self._task)


@contextmanager
def _progress() -> Iterator[_Bar]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        yield _Bar(progress)


_CREATE_SUMMARY = ("name", "type", "organization", "ip_address")
_UNKNOWN = "?"  # a detail-only field the list endpoint does not show


def _fields(kind: str, changes: Any) -> str:
    """A short text of an operation's fields: creates by their key values, updates as
    ``field: before -> after``."""
    pairs: dict[str, tuple[object, object]] = {}
    for name, change in changes.items():
        if isinstance(change, dict):
            known = change.get("before_known", True)
            pairs[name] = (change.get("before") if known else _UNKNOWN, change.get("after"))
        else:
            pairs[name] = (change.before if change.before_known else _UNKNOWN, change.after)
    if kind == "create":
        shown = [f"{k}={pairs[k][1]}" for k in _CREATE_SUMMARY if k in pairs]
        more = len(pairs) - len(shown)
        return " ".join(shown) + (f" (+{more} fields)" if more > 0 else "")
    return "\n".join(f"{k}: {_short(b)} -> {_short(a)}" for k, (b, a) in pairs.items())


def _short(value: object, width: int = 24) -> str:
    text = "∅" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def show_result(result: RunResult, *, limit: int) -> None:
    """A readable account of a run: batches, the plan table, gates, outcome."""
    for batch in result.ingest.batches:
        mark = "[green]stored[/]" if batch.accepted else f"[red]refused[/]: {batch.reason}"
        console.print(
            f"source {batch.connector}: {batch.origin} ({batch.mode}) "
            f"{batch.records} records, {batch.rejects} rejects, {mark}",
            highlight=False,
        )
    for reject in result.rejects[: limit or None]:
        console.print(
            f"  [bright_red]rejected[/] {reject.location}: {reject.reason}", highlight=False
        )
    if limit and len(result.rejects) > limit:
        console.print(f"  ... see `syncd rejects --run {result.run_id}` for the rest")
    if result.listing_problems:
        console.print(
            "[yellow]the inventory listing was not complete[/] (no device was taken for "
            "gone): " + "; ".join(result.listing_problems[:5]),
            highlight=False,
        )
    console.print(plan_table(result.plan, limit=limit))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.plan.counts.items()) if v)
    console.print(f"plan: {counts or 'nothing to do'}", highlight=False)
    if result.plan.held:
        console.print("[bold yellow]HELD for approval[/]: " + "; ".join(result.plan.hold_reasons))
        console.print(f"release it with: syncd approve {result.run_id}")
    if result.dry_run:
        console.print(f"dry run {result.run_id}: nothing was written to the inventory")
    elif result.applied is not None:
        console.print(
            f"run {result.run_id}: {result.applied.applied} applied, "
            f"{result.applied.failed} failed ({result.status})"
        )
        for error in result.applied.errors[:10]:
            console.print(f"  [red]failed[/] {error}", highlight=False)
    elif result.status == "interrupted":
        console.print(f"run {result.run_id}: interrupted before its plan was applied")
    recovered = result.recovery
    if recovered.creates_found or recovered.abandoned or recovered.closed_runs:
        console.print(
            f"recovered from stopped processes: {recovered.creates_found} create(s) found as "
            f"sent, {recovered.abandoned} change(s) planned afresh, "
            f"{len(recovered.closed_runs)} run(s) closed",
            highlight=False,
        )
    if recovered.in_progress:
        console.print(
            f"[yellow]{recovered.in_progress} change(s) are being applied by another "
            "process[/] (or one on another machine that stopped: recovered once its lease "
            "runs out)",
            highlight=False,
        )


def plan_table(plan: Plan, *, limit: int) -> Table:
    table = Table("operation", "serial", "fields", "reason", title="plan")
    shown = plan.operations if limit <= 0 else plan.operations[:limit]
    for op in shown:
        style = _KIND_STYLE.get(op.kind, "")
        table.add_row(
            f"[{style}]{op.kind}[/]", op.serial_number, _fields(op.kind, op.changes), op.reason
        )
    if len(shown) < len(plan.operations):
        table.add_row("...", f"{len(plan.operations) - len(shown)} more", "", "")
    return table


def changes_table(rows: list[ChangeRow]) -> Table:
    table = Table("id", "run", "operation", "serial", "status", "fields", "reason / error")
    for row in rows:
        style = _KIND_STYLE.get(row.operation, "")
        table.add_row(
            str(row.id),
            str(row.run_id),
            f"[{style}]{row.operation}[/]",
            row.serial_number,
            row.status,
            _fields(row.operation, row.changes),
            row.error or row.reason,
        )
    return table


def operation_json(op: Operation) -> dict[str, Any]:
    return {
        "operation": op.kind,
        "serial_number": op.serial_number,
        "changes": {k: {"before": c.before, "after": c.after} for k, c in op.changes.items()},
        "reason": op.reason,
        "sources": list(op.sources),
        "origins": list(op.origins),
    }


def change_json(row: ChangeRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "run": row.run_id,
        "operation": row.operation,
        "serial_number": row.serial_number,
        "status": row.status,
        "changes": {k: dict(v) for k, v in row.changes.items()},
        "reason": row.reason,
        "error": row.error,
        "response": dict(row.response) if row.response else None,
        "attempts": row.attempts,
        "created_at": row.created_at.isoformat(),
        "applied_at": row.applied_at.isoformat() if row.applied_at else None,
    }


def plan_json(result: RunResult) -> dict[str, Any]:
    return {**result.summary(), "plan": [operation_json(op) for op in result.plan.operations]}
