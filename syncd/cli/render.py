"""How the commands show runs, plans and changes: rich tables for people, plain JSON
for programs.

JSON is written straight to standard output as it is produced, one operation or
change per line, never through rich: a highlighter over a whole document of 100,000
changes took minutes and gigabytes, and a program reading it wants plain text anyway.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from syncd.cli.common import console
from syncd.engine import Catalogue, Plan
from syncd.engine.model import WRITE_KINDS
from syncd.service import BatchReport, RunResult
from syncd.service.audit import (
    ChangeView,
    DeviceHistory,
    Drift,
    DriftCounts,
    Labels,
    OrphanDue,
    RunDetail,
    change_json,
    location_now,
    operation_json,
    plan_json,
)
from syncd.store import ChangeRow, RunRow
from syncd.store.audit import ConflictRow

__all__ = ["change_json", "operation_json", "plan_json"]  # shapes defined in syncd.service.audit

_KIND_STYLE = {
    "create": "green",
    "update": "yellow",
    "adopt": "cyan",
    "delete": "red",
    "conflict": "magenta",
    "reject": "bright_red",
    "skip": "dim",
}

#: Operation kinds a run summary lists (``syncd runs``).
KINDS: frozenset[str] = frozenset(_KIND_STYLE)


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
def progress_bar() -> Iterator[_Bar]:
    """A progress bar for the apply step, shown only on a terminal."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console.get(),
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        yield _Bar(progress)


_CREATE_SUMMARY = ("name", "type", "organization", "ip_address")
_UNKNOWN = "?"  # a detail-only field the list endpoint does not show


_NO_LABELS = Labels(Catalogue())


def _fields(kind: str, changes: Any, labels: Labels = _NO_LABELS) -> str:
    """A short text of an operation's fields: creates by their key values, updates as
    ``field: before -> after``; ids of types and organizations with their names."""
    pairs: dict[str, tuple[object, object]] = {}
    for name, change in changes.items():
        if isinstance(change, Mapping):
            known = change.get("before_known", True)
            pairs[name] = (change.get("before") if known else _UNKNOWN, change.get("after"))
        else:
            pairs[name] = (change.before if change.before_known else _UNKNOWN, change.after)
    if kind == "create":
        shown = [
            f"{k}={_short(labels.show(k, pairs[k][1]))}" for k in _CREATE_SUMMARY if k in pairs
        ]
        more = len(pairs) - len(shown)
        return " ".join(shown) + (f" (+{more} fields)" if more > 0 else "")
    if kind == "delete":
        return ""  # what it removes is kept in the audit (--output json), not worth a screen
    return "\n".join(
        f"{k}: {_short(_show(labels, k, b))} -> {_short(_show(labels, k, a))}"
        for k, (b, a) in pairs.items()
    )


def _show(labels: Labels, name: str, value: object) -> str:
    return str(value) if value is _UNKNOWN else labels.show(name, value)


def _short(value: object, width: int = 30) -> str:
    text = "∅" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def show_result(
    result: RunResult,
    *,
    limit: int,
    labels: Labels = _NO_LABELS,
    drift: DriftCounts | None = None,
) -> None:
    """A readable account of a run: batches, the plan, gates, outcome, and what still
    differs (open conflicts, devices missing from the inventory, orphans waiting)."""
    _show_sources(result, limit)
    _show_plan(result, limit, labels)
    if drift is not None:
        _show_drift(drift)
    _show_outcome(result)
    _show_recovery(result)


def _show_sources(result: RunResult, limit: int) -> None:
    for batch in result.ingest.batches:
        _show_batch(batch)
    for note in result.ingest.waiting:
        console.print(f"source {note.connector}: {note.origin}: {note.reason}", highlight=False)
    for reject in result.rejects[: limit or None]:
        console.print(
            f"  [bright_red]rejected[/] {reject.location}: {reject.reason}", highlight=False
        )
    if limit and len(result.rejects) > limit:
        more = len(result.rejects) - limit
        where = (
            "--limit 0 shows them all"
            if result.dry_run
            else f"see `syncd rejects --run {result.run_id}`"
        )
        console.print(f"  ... {more} more rejected rows ({where})", highlight=False)
    if result.listing_problems:
        console.print(
            "[yellow]the inventory listing was not complete[/] (no device was taken for "
            "gone): " + "; ".join(result.listing_problems[:5]),
            highlight=False,
        )


def _show_plan(result: RunResult, limit: int, labels: Labels) -> None:
    plan = result.plan
    if plan.operations or result.operations_not_kept:
        console.print(plan_table(plan, limit=limit, more=result.operations_not_kept, labels=labels))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(plan.counts.items()) if v and k in KINDS)
    if any(plan.counts.get(kind, 0) for kind in WRITE_KINDS):
        console.print(f"plan: {counts}", highlight=False)
    else:
        reported = f" (reported: {counts})" if counts else ""
        console.print(f"No changes. The inventory matches the sources{reported}.", highlight=False)
    if plan.held:
        console.print("[bold yellow]HELD for approval[/]: " + "; ".join(plan.hold_reasons))
        if not result.dry_run:
            console.print(f"release it with: syncd approve {result.run_id}")


def _show_outcome(result: RunResult) -> None:
    if result.dry_run:
        console.print("dry run: nothing was written to the inventory, nothing was recorded")
    elif result.applied is not None:
        console.print(
            f"run {result.run_id}: {result.applied.applied} applied, "
            f"{result.applied.failed} failed ({result.status})"
        )
        for error in result.applied.errors[:10]:
            console.print(f"  [red]failed[/] {error}", highlight=False)
    elif result.status == "interrupted":
        console.print(f"run {result.run_id}: interrupted before its plan was applied")
    elif not result.held:
        console.print(f"run {result.run_id}: {result.status}")


def _show_batch(batch: BatchReport) -> None:
    mark = "[green]stored[/]" if batch.accepted else f"[red]refused[/]: {batch.reason}"
    now = f"; now {batch.stored_at}" if batch.stored_at else ""
    console.print(
        f"source {batch.connector}: {batch.origin} ({batch.mode}) "
        f"{batch.records} records, {batch.rejects} rejects, {mark}{now}",
        highlight=False,
    )


def _show_drift(drift: DriftCounts) -> None:
    parts = []
    if drift.conflicts:
        parts.append(f"{drift.conflicts} open conflict(s): syncd conflicts")
    if drift.missing:
        parts.append(f"{drift.missing} device(s) in a source but not in the inventory: syncd drift")
    if drift.orphans:
        parts.append(f"{drift.orphans} orphan(s) waiting to be deleted: syncd drift")
    for part in parts:
        console.print(f"[yellow]still different[/]: {part}", highlight=False)


def _show_recovery(result: RunResult) -> None:
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


def plan_table(plan: Plan, *, limit: int, more: int = 0, labels: Labels = _NO_LABELS) -> Table:
    """The plan's operations as a table (the first ``limit``; ``more`` were recorded but
    not kept in memory)."""
    table = Table("operation", "serial", "fields", "reason", title="plan")
    table.columns[2].overflow = "fold"
    shown = plan.operations if limit <= 0 else plan.operations[:limit]
    for op in shown:
        style = _KIND_STYLE.get(op.kind, "")
        table.add_row(
            f"[{style}]{op.kind}[/]",
            op.serial_number,
            _fields(op.kind, op.changes, labels),
            op.reason,
        )
    hidden = len(plan.operations) - len(shown) + more
    if hidden:
        table.add_row("...", f"{hidden} more", "", "")
    return table


def changes_table(rows: Iterable[ChangeRow | ChangeView], labels: Labels = _NO_LABELS) -> Table:
    """Changes, one per row: what, to which serial, field by field, and what became of it."""
    table = Table("id", "run", "change", "serial", "fields", "why / answer")
    for item in rows:
        row = item.change if isinstance(item, ChangeView) else item
        run = f"{row.run_id}\n{item.trigger}" if isinstance(item, ChangeView) else str(row.run_id)
        style = _KIND_STYLE.get(row.operation, "")
        answer = row.error or row.reason
        status = (row.response or {}).get("status_code")
        if status is not None and row.status in ("applied", "failed"):
            answer = f"{answer}\nAPI {status}" if answer else f"API {status}"
        table.add_row(
            str(row.id),
            run,
            f"[{style}]{row.operation}[/]\n{row.status}",
            row.serial_number,
            _fields(row.operation, row.changes, labels),
            answer,
        )
    return table


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def write_json_object(
    head: Mapping[str, Any], key: str, items: Iterable[Mapping[str, Any]], out: TextIO
) -> None:
    """``{**head, key: [items...]}`` as plain JSON, each item written as it comes (one
    per line), so memory and time follow one item, not the document."""
    opening = _dumps(dict(head))[:-1]
    out.write(f"{opening}{', ' if head else ''}{_dumps(key)}: [")
    _write_items(items, out)
    out.write("]}\n")


def write_json_array(items: Iterable[Mapping[str, Any]], out: TextIO) -> None:
    """``[items...]`` as plain JSON, streamed like ``write_json_object``."""
    out.write("[")
    _write_items(items, out)
    out.write("]\n")


def _write_items(items: Iterable[Mapping[str, Any]], out: TextIO) -> None:
    separator = "\n"
    for item in items:
        out.write(separator)
        out.write(_dumps(item))
        separator = ",\n"
    if separator != "\n":
        out.write("\n")


def print_plan_json(result: RunResult, out: TextIO | None = None) -> None:
    """The run's summary and every operation of its plan, as plain JSON on ``out``."""
    stream = out if out is not None else sys.stdout
    ops = (operation_json(op) for op in result.plan.operations)
    head = result.summary()
    if result.operations_not_kept:
        # A recorded plan too large to keep: the rest is in the store, in full.
        head["plan_not_listed"] = result.operations_not_kept
        total = len(result.plan.operations) + result.operations_not_kept
        head["plan_in_full"] = f"syncd changes --run {result.run_id} --limit {total} --json"
    write_json_object(head, "plan", ops, stream)
    stream.flush()


def print_changes_json(rows: Iterable[ChangeRow], out: TextIO | None = None) -> None:
    """Change rows as a plain JSON array on ``out``."""
    stream = out if out is not None else sys.stdout
    write_json_array((change_json(row) for row in rows), stream)
    stream.flush()


# -- the audit, read (``syncd.cli.audit``) ---------------------------------------------------


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def runs_table(runs: Iterable[RunRow]) -> Table:
    """Runs, one per row: id, trigger, when, outcome, what it planned."""
    table = Table("run", "trigger", "started (UTC)", "status", "summary")
    table.columns[4].overflow = "fold"
    for run in runs:
        ops = run.summary.get("operations", {})
        brief = ", ".join(f"{k} {v}" for k, v in ops.items() if v and k in KINDS)
        if run.error:
            brief = f"{brief}\n[red]{run.error}[/]" if brief else f"[red]{run.error}[/]"
        table.add_row(str(run.id), run.trigger, _when(run.started_at), run.status, brief or "-")
    return table


def conflicts_table(conflicts: Iterable[ConflictRow], labels: Labels = _NO_LABELS) -> Table:
    """Open conflicts: which field, what the inventory has, what the source wants."""
    table = Table("serial", "field", "inventory has", "source wants", "since (UTC)")
    for row in conflicts:
        if row.field:
            has = _short(labels.show(row.field, row.inventory_value))
            wants = _short(labels.show(row.field, row.source_value))
            wants += f"\n[dim]{', '.join(row.sources)}[/]"
        else:
            has, wants = "", row.reason
        table.add_row(
            row.serial_number, row.field or "(serial)", has, wants, _when(row.first_seen_at)
        )
    return table


def print_run_detail(detail: RunDetail, labels: Labels = _NO_LABELS) -> None:
    """``syncd show RUN`` as text."""
    run = detail.run
    console.print(f"[bold]run {run.id}[/]: {run.status} ({run.trigger})", highlight=False)
    console.print(f"  started  {_when(run.started_at)} UTC", highlight=False)
    console.print(f"  finished {_when(run.finished_at)} UTC", highlight=False)
    if run.approved_by:
        console.print(
            f"  approved by {run.approved_by} at {_when(run.approved_at)}", highlight=False
        )
    if run.error:
        console.print(f"  [red]error[/]: {run.error}", highlight=False)
    if run.summary.get("hold_reasons"):
        console.print("  held: " + "; ".join(run.summary["hold_reasons"]), highlight=False)
    ops = ", ".join(f"{k} {v}" for k, v in sorted(detail.operations.items()))
    states = ", ".join(f"{k} {v}" for k, v in sorted(detail.statuses.items()))
    console.print(
        f"  changes: {ops or 'none'}" + (f" ({states})" if states else ""), highlight=False
    )
    for batch in detail.batches:
        verdict = "stored" if batch.accepted else f"refused: {batch.reason}"
        now = f"\n    now: {batch.stored_at}" if batch.stored_at else ""
        console.print(
            f"  source {batch.connector}: {batch.origin}: {batch.records} records, "
            f"{batch.rejects} rejects, {verdict}{now}",
            highlight=False,
        )
    if detail.rejects:
        console.print("[bold]rejected rows[/] (where they lie now):")
        for place in detail.rejects:
            console.print(f"  {location_now(place)}: {place.reject.reason}", highlight=False)
    if detail.changes.items:
        console.print(changes_table(detail.changes.items, labels))
        if detail.changes.next_before is not None:
            console.print(
                f"more: syncd changes --run {run.id} --before {detail.changes.next_before}",
                highlight=False,
            )
    _print_orphans(detail.orphans)


def _print_orphans(orphans: Iterable[OrphanDue]) -> None:
    listed = list(orphans)
    if not listed:
        return
    console.print("[bold]orphans waiting[/] (owned, no source wants them):")
    for due in listed:
        orphan = due.orphan
        since = f"missing since {_when(orphan.first_missing)} UTC, {orphan.runs_missing} run(s)"
        if due.kept:
            when = "kept: delete_orphans is false"
        elif due.runs_left:
            when = (
                f"deleted once {due.runs_left} more run(s) miss it, "
                f"not before {_when(due.not_before)} UTC"
            )
        else:
            when = f"deleted by the first run after {_when(due.not_before)} UTC"
        console.print(
            f"  {orphan.serial_number} ({orphan.ownership}): {since}; {when}", highlight=False
        )


def print_drift(found: Drift, labels: Labels = _NO_LABELS) -> None:
    """``syncd drift`` as text."""
    if not (found.missing or found.orphans or found.conflicts):
        console.print("No drift: the inventory holds what the sources want.")
    if found.missing:
        console.print(f"[bold]in a source but not in the inventory[/] ({found.missing_total}):")
        for row in found.missing:
            last = row.last_change
            why = "not planned yet"
            if last is not None:
                why = f"{last.operation} {last.status}"
                detail = last.error or last.reason
                why += f": {detail}" if detail else ""
            console.print(f"  {row.serial_number} ({row.origin}): {why}", highlight=False)
        if found.missing_total > len(found.missing):
            console.print(f"  ... {found.missing_total - len(found.missing)} more", highlight=False)
    _print_orphans(found.orphans)
    if found.conflicts:
        console.print("[bold]open conflicts[/]:")
        console.print(conflicts_table(found.conflicts, labels))
    if found.kept:
        console.print(f"values kept by decision: {len(found.kept)} (syncd history SERIAL)")


def print_history(history: DeviceHistory, labels: Labels = _NO_LABELS) -> None:
    """``syncd history SERIAL`` as text."""
    console.print(f"[bold]{history.serial_number}[/]", highlight=False)
    inventory = history.inventory
    if inventory is None:
        console.print("  inventory: never seen")
    else:
        state = "present" if inventory["present"] else "gone"
        console.print(f"  inventory: {state}, {inventory['ownership']}", highlight=False)
        for name, value in inventory["values"].items():
            console.print(f"    {name}: {labels.show(name, value)}", highlight=False)
    for row in history.sources:
        wanted = "wanted" if row["wanted"] and row["action"] == "upsert" else "not wanted"
        console.print(f"  source {row['connector']}: {row['origin']} ({wanted})", highlight=False)
    for conflict in history.conflicts:
        console.print(
            f"  [magenta]open conflict[/] {conflict.field or '(serial)'}: inventory "
            f"{labels.show(conflict.field, conflict.inventory_value)}, source wants "
            f"{labels.show(conflict.field, conflict.source_value)}",
            highlight=False,
        )
    for kept in history.kept:
        console.print(
            f"  kept {kept.field} = {labels.show(kept.field, kept.inventory_value)} over "
            f"{labels.show(kept.field, kept.source_value)} (by {kept.decided_by})",
            highlight=False,
        )
    if history.changes.items:
        console.print(changes_table(history.changes.items, labels))
    for place in history.rejects:
        console.print(f"  rejected {location_now(place)}: {place.reject.reason}", highlight=False)
