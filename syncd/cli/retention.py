"""``syncd prune``: keep the audit log bounded (``[retention]``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from syncd.cli.common import DEFAULT_CONFIG, ConfigOption, console, err_console, settings_from

if TYPE_CHECKING:  # imported where used: `syncd --help` stays light
    from syncd.config import RetentionSettings
    from syncd.store.retention import KindReport, PruneReport


def prune_command(
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only say what would go, and where it would go")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Export, then delete, audit detail past the limits of the retention section.

    Final change rows and rejects older than their age, or beyond the newest N, are
    written to gzip'd JSON lines under retention.export_dir and then deleted; idle
    polls go after their short age. Run summaries stay, with a note of where their
    detail went. Changes pending, on their way or held are never pruned. The first
    Ctrl-C stops after the chunk in hand; what is done stays done.
    """
    from syncd.service.retention import prune
    from syncd.service.stop import stop_on_signals
    from syncd.store import Store

    settings = settings_from(config)
    with Store.from_settings(settings.store) as store, stop_on_signals() as stop:
        report = prune(store, settings.retention, dry_run=dry_run, stop=stop)
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        show_report(report, settings.retention)
    if report.stopped and stop.requested:
        raise typer.Exit(stop.exit_code)


def show_report(report: PruneReport, settings: RetentionSettings) -> None:
    """What went (or would go), how much, and where it was (or would be) exported."""
    from rich.table import Table

    for note in report.settled:
        err_console.print(f"settled from an earlier prune: {note}", highlight=False)
    console.print(f"limits: {limits_text(settings)}", highlight=False)
    verb = "would go" if report.dry_run else "pruned"
    table = Table("", verb, "of runs", "from", "to", "exported")
    for label, kind in (("changes", report.changes), ("rejects", report.rejects)):
        table.add_row(
            label,
            f"{kind.rows:,}",
            f"{kind.runs:,}",
            _day(kind.oldest),
            _day(kind.newest),
            _exported(report, kind, settings.chunk_rows),
        )
    table.add_row("idle runs", f"{report.idle_runs:,}", "", "", "", "not exported")
    console.print(table)
    if report.export_dir is None:
        console.print("nothing is exported (retention.export = false)")
    else:
        where = "would be exported to" if report.dry_run else "exported to"
        console.print(f"{where} {report.export_dir}", highlight=False)
    console.print("run summaries are kept; changes on their way or held are never pruned")
    if report.stopped:
        console.print("[yellow]stopped before the end[/]: run it again to go on")


def limits_text(settings: RetentionSettings) -> str:
    """The configured limits, in words."""
    parts = []
    for label, days, count in (
        ("changes", settings.changes_max_age_days, settings.changes_max_count),
        ("rejects", settings.rejects_max_age_days, settings.rejects_max_count),
    ):
        rules = [f"older than {days:g} days"] if days else []
        rules += [f"beyond the newest {count:,}"] if count else []
        parts.append(f"{label} {' or '.join(rules)}" if rules else f"{label} kept forever")
    hours = settings.idle_runs_max_age_hours
    parts.append(f"idle runs older than {hours:g} hours" if hours else "idle runs kept forever")
    return "; ".join(parts)


def _day(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d}"


def _exported(report: PruneReport, kind: KindReport, chunk: int) -> str:
    if report.export_dir is None or not kind.rows:
        return "-"
    if report.dry_run:
        return f"~{-(-kind.rows // chunk):,} file(s)"
    return f"{len(kind.files):,} file(s), {kind.bytes / 1e6:,.1f} MB"
