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
from typing import Any, TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from syncd.cli.common import console
from syncd.engine import Operation, Plan
from syncd.service import RunResult
from syncd.store import ChangeRow

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
    console.print(plan_table(result.plan, limit=limit, more=result.operations_not_kept))
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


def plan_table(plan: Plan, *, limit: int, more: int = 0) -> Table:
    """The plan's operations as a table (the first ``limit``; ``more`` were recorded but
    not kept in memory)."""
    table = Table("operation", "serial", "fields", "reason", title="plan")
    shown = plan.operations if limit <= 0 else plan.operations[:limit]
    for op in shown:
        style = _KIND_STYLE.get(op.kind, "")
        table.add_row(
            f"[{style}]{op.kind}[/]", op.serial_number, _fields(op.kind, op.changes), op.reason
        )
    hidden = len(plan.operations) - len(shown) + more
    if hidden:
        table.add_row("...", f"{hidden} more", "", "")
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
    """The whole document ``write_plan_json`` streams (for callers that want a dict)."""
    return {**result.summary(), "plan": [operation_json(op) for op in result.plan.operations]}


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
