"""The audit, read: ``syncd runs``, ``changes``, ``rejects``, ``show RUN``, ``conflicts``,
``drift`` and ``history SERIAL``.

Every command reads through ``syncd.service.audit`` (the HTTP API reads the same) and
prints ``--output table`` (for people, at 80 columns), ``json`` (streamed, one item per
line) or ``csv`` (``syncd.cli.output``). Listings are newest first; ``--limit`` bounds
them (0: all, read page by page) and ``--before ID`` starts below an id (the cursor a
table's last line names). Times (``--since``, ``--until``) are ISO dates or times
(``2026-12-07``, ``2026-12-07T10:30``, UTC unless a zone is given) or ages (``2h``,
``7d``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from syncd.cli.common import (
    DEFAULT_CONFIG,
    INT64_MAX,
    ConfigOption,
    console,
    fail,
    settings_from,
)
from syncd.cli.output import JsonFlag, Output, OutputOption, chosen, write_csv

if TYPE_CHECKING:
    from datetime import datetime

    from syncd.config import Settings
    from syncd.service.audit import ChangeView, Labels, Page
    from syncd.store import ChangeRow, Store

T = TypeVar("T")

LimitOption = Annotated[
    int, typer.Option(min=0, max=INT64_MAX, metavar="N", help="how many, newest first (0: all)")
]
BeforeOption = Annotated[
    int | None,
    typer.Option(
        "--before", min=1, max=INT64_MAX, metavar="ID", help="only older than this id (next page)"
    ),
]
RunFilter = Annotated[
    int | None, typer.Option("--run", min=1, max=INT64_MAX, metavar="RUN", help="only this run")
]
SerialFilter = Annotated[
    str | None, typer.Option("--serial", metavar="SERIAL", help="only this serial (exact)")
]
SourceFilter = Annotated[
    str | None,
    typer.Option(
        "--source", "--connector", metavar="NAME", help="only what this connector asked for"
    ),
]
SinceFilter = Annotated[
    str | None,
    typer.Option(metavar="WHEN", help="only since then: 2026-12-07, 2026-12-07T10:30, 2h, 7d"),
]
UntilFilter = Annotated[
    str | None, typer.Option(metavar="WHEN", help="only before then (as --since)")
]


def open_store(settings: Settings) -> Store:
    """The configured store (a failure to open it exits with its code)."""
    from syncd.errors import SyncdError
    from syncd.store import Store

    try:
        return Store.from_settings(settings.store)
    except SyncdError as exc:
        fail(exc)


def _when(text: str | None, name: str) -> datetime | None:
    from datetime import UTC, datetime

    from syncd.service.audit import parse_when

    return None if text is None else parse_when(text, now=datetime.now(UTC), name=name)


def _each(
    fetch: Callable[[int, int | None], Page[T]], limit: int, before: int | None
) -> tuple[Iterator[T], list[int | None]]:
    """The items of successive pages (``limit`` in all, 0: every one), and a one-item
    list that holds the cursor of what was left unread once they are consumed."""
    from syncd.service.audit import MAX_PAGE

    left: list[int | None] = [None]

    def items() -> Iterator[T]:
        cursor, wanted = before, limit or None
        while True:
            size = MAX_PAGE if wanted is None else min(wanted, MAX_PAGE)
            page = fetch(size, cursor)
            yield from page.items
            if wanted is not None:
                wanted -= len(page.items)
            cursor = page.next_before
            if cursor is None or wanted == 0:
                left[0] = cursor
                return

    return items(), left


def _more(left: list[int | None], command: str) -> None:
    if left[0] is not None:
        console.print(f"more: {command} --before {left[0]}", highlight=False)


def _labels(store: Store, settings: Settings) -> Labels:
    from syncd.service.audit import Labels

    return Labels.of(store, settings.policy)


# -- runs ------------------------------------------------------------------------------------


def runs_command(
    *,
    config: ConfigOption = DEFAULT_CONFIG,
    status: Annotated[
        list[str] | None, typer.Option(metavar="STATUS", help="only runs in this status")
    ] = None,
    trigger: Annotated[
        list[str] | None,
        typer.Option(metavar="TRIGGER", help="only runs of this trigger (schedule, cli, ...)"),
    ] = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="also the daemon's idle polls (nothing to do)")
    ] = False,
    limit: LimitOption = 20,
    before: BeforeOption = None,
    output: OutputOption = Output.table,
    as_json: JsonFlag = False,
) -> None:
    """The latest runs, newest first."""
    from syncd.cli.render import runs_table, write_json_array
    from syncd.service import audit

    settings = settings_from(config)
    with open_store(settings) as store:
        start, end = _when(since, "--since"), _when(until, "--until")

        def fetch(size: int, cursor: int | None) -> Page[Any]:
            return audit.list_runs(
                store,
                statuses=status or (),
                triggers=trigger or (),
                since=start,
                until=end,
                idle=show_all,
                limit=size,
                before=cursor,
            )

        items, left = _each(fetch, limit, before)
        form = chosen(output, as_json)
        if form is Output.json:
            write_json_array((audit.run_json(run) for run in items), _stdout())
        elif form is Output.csv:
            write_csv(RUN_COLUMNS, (_run_cells(run) for run in items))
        else:
            rows = list(items)
            if not rows:
                console.print("No runs.")
                return
            console.print(runs_table(rows))
            _more(left, "syncd runs")


RUN_COLUMNS = ("id", "trigger", "status", "started_at", "finished_at", "operations", "error")


def _run_cells(run: Any) -> list[Any]:
    ops = run.summary.get("operations", {})
    brief = "; ".join(f"{k}={v}" for k, v in ops.items() if v)
    return [
        run.id,
        run.trigger,
        run.status,
        run.started_at.isoformat(),
        run.finished_at.isoformat() if run.finished_at else "",
        brief,
        run.error or "",
    ]


def _stdout() -> Any:
    import sys

    return sys.stdout


# -- changes ---------------------------------------------------------------------------------


def changes_command(
    *,
    config: ConfigOption = DEFAULT_CONFIG,
    run_id: RunFilter = None,
    serial: SerialFilter = None,
    source: SourceFilter = None,
    operation: Annotated[
        list[str] | None,
        typer.Option(metavar="OP", help="only create, adopt, update, delete, conflict... "),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(metavar="STATUS", help="only pending, held, applied, failed, skipped..."),
    ] = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    conflicts: Annotated[bool, typer.Option("--conflicts", help="only conflicts")] = False,
    held: Annotated[bool, typer.Option("--held", help="only changes held for approval")] = False,
    limit: LimitOption = 50,
    before: BeforeOption = None,
    output: OutputOption = Output.table,
    as_json: JsonFlag = False,
) -> None:
    """The audit log: recorded changes, newest first, each with its fields' before and
    after, the source that asked, its run's trigger and the API's answer."""
    from syncd.cli.render import changes_table, write_json_array
    from syncd.service import audit

    settings = settings_from(config)
    with open_store(settings) as store:
        start, end = _when(since, "--since"), _when(until, "--until")

        def fetch(size: int, cursor: int | None) -> Page[ChangeView]:
            return audit.list_changes(
                store,
                run_id=run_id,
                serial=serial,
                source=source,
                operations=operation or (),
                statuses=status or (),
                since=start,
                until=end,
                conflicts_only=conflicts,
                held_only=held,
                limit=size,
                before=cursor,
            )

        items, left = _each(fetch, limit, before)
        form = chosen(output, as_json)
        if form is Output.json:
            write_json_array((audit.change_json(view) for view in items), _stdout())
        elif form is Output.csv:
            write_csv(CHANGE_COLUMNS, (row for view in items for row in change_cells(view)))
        else:
            views = list(items)
            if not views:
                console.print("No changes recorded" + (" that match." if _narrowed() else "."))
                return
            console.print(changes_table(views, _labels(store, settings)))
            _more(left, "syncd changes")


#: The options of ``syncd changes`` that narrow what it lists.
_FILTERS: tuple[str, ...] = ("run_id", "serial", "source", "operation", "status", "since")
_FILTERS += ("until", "before", "conflicts", "held")


def _narrowed() -> bool:
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    return any(
        ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        for name in _FILTERS
    )


CHANGE_COLUMNS = (
    "id",
    "run",
    "trigger",
    "operation",
    "serial_number",
    "status",
    "field",
    "before",
    "after",
    "sources",
    "origins",
    "reason",
    "error",
    "api_status",
    "created_at",
    "applied_at",
)


def change_cells(view: ChangeView | ChangeRow, trigger: str = "") -> Iterator[list[Any]]:
    """A change as CSV rows: one per field it changes (field, before, after), or one row
    without a field when it changes none."""
    from syncd.service.audit import ChangeView

    row = view.change if isinstance(view, ChangeView) else view
    run_trigger = view.trigger if isinstance(view, ChangeView) else trigger
    head = [row.id, row.run_id, run_trigger, row.operation, row.serial_number, row.status]
    tail = [
        list(row.sources),
        list(row.origins),
        row.reason,
        row.error or "",
        (row.response or {}).get("status_code", ""),
        row.created_at.isoformat(),
        row.applied_at.isoformat() if row.applied_at else "",
    ]
    fields = [
        (
            name,
            change.get("before") if change.get("before_known", True) else "?",
            change.get("after"),
        )
        for name, change in row.changes.items()
    ] or [("", "", "")]
    for name, before_value, after_value in fields:
        yield [*head, name, _cell(before_value), _cell(after_value), *tail]


def _cell(value: object) -> object:
    return "" if value is None else value


# -- rejects ---------------------------------------------------------------------------------


def rejects_command(
    *,
    config: ConfigOption = DEFAULT_CONFIG,
    run_id: RunFilter = None,
    serial: SerialFilter = None,
    source: SourceFilter = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    limit: LimitOption = 100,
    before: BeforeOption = None,
    output: OutputOption = Output.table,
    as_json: JsonFlag = False,
) -> None:
    """Rows and records the sources could not use: where each lies now (the file moved to
    processed/ or failed/, and its line) and why."""
    from syncd.cli.render import write_json_array
    from syncd.service import audit

    settings = settings_from(config)
    with open_store(settings) as store:
        start, end = _when(since, "--since"), _when(until, "--until")

        def fetch(size: int, cursor: int | None) -> Page[Any]:
            return audit.list_rejects(
                store,
                run_id=run_id,
                serial=serial,
                source=source,
                since=start,
                until=end,
                limit=size,
                before=cursor,
            )

        items, left = _each(fetch, limit, before)
        form = chosen(output, as_json)
        if form is Output.json:
            write_json_array((audit.reject_json(place) for place in items), _stdout())
        elif form is Output.csv:
            write_csv(
                REJECT_COLUMNS,
                (
                    [
                        p.reject.id,
                        p.reject.run_id,
                        p.reject.source,
                        audit.location_now(p),
                        p.reject.location,
                        p.reject.serial_number,
                        p.reject.reason,
                        p.reject.created_at.isoformat(),
                    ]
                    for p in items
                ),
            )
        else:
            shown = 0
            for place in items:
                shown += 1
                _print_reject(place)
            if not shown:
                console.print("No rejects.")
                return
            _more(left, "syncd rejects")


REJECT_COLUMNS = (
    "id",
    "run",
    "source",
    "location_now",
    "location_read",
    "serial_number",
    "reason",
    "created_at",
)


def _print_reject(place: Any) -> None:
    """``file:line: reason``, as compilers write it (never cut at any width), then what
    run, source and serial it was."""
    from syncd.service.audit import location_now

    reject = place.reject
    serial = f", serial {reject.serial_number}" if reject.serial_number else ""
    console.print(
        f"[bold]{location_now(place)}[/]: {reject.reason}", highlight=False, soft_wrap=True
    )
    console.print(f"  [dim]run {reject.run_id}, source {reject.source}{serial}[/]", highlight=False)


# -- one run ---------------------------------------------------------------------------------


def show_command(
    run_id: Annotated[int, typer.Argument(min=1, max=INT64_MAX, metavar="RUN", help="the run")],
    config: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="changes and rejects to show")
    ] = 50,
    output: OutputOption = Output.table,
    as_json: JsonFlag = False,
) -> None:
    """One run: what made it, its outcome and error, the files it read and where they lie
    now, its rejects, its changes, and the orphans waiting to be deleted."""
    from syncd.cli.render import print_run_detail, write_json_object
    from syncd.service import audit

    settings = settings_from(config)
    with open_store(settings) as store:
        detail = audit.run_detail(store, run_id, policy=settings.policy, limit=limit)
        form = chosen(output, as_json)
        if form is Output.json:
            document = audit.run_detail_json(detail)
            changes = document.pop("changes")
            write_json_object(document, "changes", changes, _stdout())
        elif form is Output.csv:
            write_csv(
                CHANGE_COLUMNS,
                (row for c in detail.changes.items for row in change_cells(c, detail.run.trigger)),
            )
        else:
            print_run_detail(detail, _labels(store, settings))


# -- conflicts and drift ---------------------------------------------------------------------

conflicts_app = typer.Typer(
    help="Open conflicts: fields the inventory and the sources disagree on, left alone "
    "until a person decides.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


@conflicts_app.callback()
def conflicts_command(
    ctx: typer.Context,
    config: ConfigOption = DEFAULT_CONFIG,
    serial: SerialFilter = None,
    output: OutputOption = Output.table,
    as_json: JsonFlag = False,
) -> None:
    """List the open conflicts (every plan counts them until they are resolved); resolve
    one with `syncd conflicts resolve SERIAL FIELD --keep-inventory|--take-source`."""
    if ctx.invoked_subcommand is not None:
        return
    from syncd.cli.render import conflicts_table, write_json_array
    from syncd.service import audit

    settings = settings_from(config)
    with open_store(settings) as store:
        rows = store.open_conflicts(serial=serial)
        form = chosen(output, as_json)
        if form is Output.json:
            write_json_array((audit.conflict_json(c) for c in rows), _stdout())
        elif form is Output.csv:
            write_csv(
                CONFLICT_COLUMNS,
                (
                    [
                        c.serial_number,
                        c.field,
                        _cell(c.inventory_value),
                        _cell(c.source_value),
                        list(c.sources),
                        list(c.origins),
                        c.first_seen_at.isoformat(),
                        c.reason,
                    ]
                    for c in rows
                ),
            )
        elif not rows:
            console.print("No open conflicts.")
        else:
            console.print(conflicts_table(rows, _labels(store, settings)))
            console.print(
                "resolve one: syncd conflicts resolve SERIAL FIELD "
                "--keep-inventory | --take-source",
                highlight=False,
            )


CONFLICT_COLUMNS = (
    "serial_number",
    "field",
    "inventory_value",
    "source_value",
    "sources",
    "origins",
    "first_seen_at",
    "reason",
)


@conflicts_app.command("resolve")
def resolve_command(
    serial: Annotated[str, typer.Argument(metavar="SERIAL", help="the device (exact serial)")],
    field: Annotated[
        str, typer.Argument(metavar="FIELD", help="the field (API name: name, type...)")
    ],
    *,
    config: ConfigOption = DEFAULT_CONFIG,
    keep_inventory: Annotated[
        bool,
        typer.Option(
            "--keep-inventory",
            help="keep the inventory's value: no longer written nor reported while both "
            "sides stay as they are",
        ),
    ] = False,
    take_source: Annotated[
        bool,
        typer.Option(
            "--take-source",
            help="write the source's value now, through the outbox (the device is read first)",
        ),
    ] = False,
    by: Annotated[
        str, typer.Option(metavar="WHO", help="who decides (kept in the audit log)")
    ] = "cli",
) -> None:
    """Resolve one open conflict: keep the inventory's value, or take the source's."""
    from syncd.cli.common import EXIT_CONFIG, EXIT_FAILED, err_console
    from syncd.cli.runs import open_runner
    from syncd.service.actions import resolve_conflict

    if keep_inventory == take_source:
        err_console.print("say which value wins: --keep-inventory or --take-source (one of them)")
        raise typer.Exit(EXIT_CONFIG)
    settings = settings_from(config)
    with open_runner(settings, graceful=True) as runner:
        done = resolve_conflict(runner, serial, field, keep_inventory=keep_inventory, by=by)
        labels = _labels(runner.store, settings)
    conflict = done.conflict
    if done.kept:
        console.print(
            f"{serial} {field}: the inventory's value "
            f"{labels.show(field, conflict.inventory_value)} is kept (the sources want "
            f"{labels.show(field, conflict.source_value)}); decided by {by}",
            highlight=False,
        )
        return
    result = done.run
    assert result is not None
    applied = result.applied.applied if result.applied else 0
    console.print(
        f"{serial} {field}: {labels.show(field, conflict.source_value)} written from the source "
        f"(run {result.run_id}: {applied} applied, {result.status}); decided by {by}",
        highlight=False,
    )
    if result.status != "done":
        for error in (result.applied.errors if result.applied else [])[:5]:
            err_console.print(f"  [red]failed[/] {error}", highlight=False)
        raise typer.Exit(EXIT_FAILED)


def drift_command(
    *,
    config: ConfigOption = DEFAULT_CONFIG,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, metavar="N", help="rows per section")
    ] = 100,
    output: OutputOption = Output.table,
    as_json: JsonFlag = False,
) -> None:
    """What differs and stays so: devices a source wants that the inventory does not hold
    (and why), owned orphans waiting to be deleted (and when), open conflicts."""
    from syncd.cli.render import print_drift, write_json_object
    from syncd.service import audit

    settings = settings_from(config)
    with open_store(settings) as store:
        found = audit.drift(store, policy=settings.policy, limit=limit)
        form = chosen(output, as_json)
        if form is Output.json:
            document = audit.drift_json(found)
            conflicts = document.pop("conflicts")
            write_json_object(document, "conflicts", conflicts, _stdout())
        elif form is Output.csv:
            write_csv(DRIFT_COLUMNS, _drift_cells(found))
        else:
            print_drift(found, _labels(store, settings))


DRIFT_COLUMNS = ("kind", "serial_number", "field", "detail", "since", "due_not_before")


def _drift_cells(found: Any) -> Iterator[list[Any]]:
    for missing in found.missing:
        last = missing.last_change
        why = f"{last.operation} {last.status}: {last.error or last.reason}" if last else ""
        yield ["missing", missing.serial_number, "", f"{missing.origin}; {why}", "", ""]
    for due in found.orphans:
        orphan = due.orphan
        detail = "kept (delete_orphans = false)" if due.kept else f"{due.runs_left} run(s) left"
        yield [
            "orphan",
            orphan.serial_number,
            "",
            detail,
            orphan.first_missing.isoformat(),
            due.not_before.isoformat(),
        ]
    for conflict in found.conflicts:
        yield [
            "conflict",
            conflict.serial_number,
            conflict.field,
            f"inventory {conflict.inventory_value!r}, source {conflict.source_value!r}",
            conflict.first_seen_at.isoformat(),
            "",
        ]


def history_command(
    serial: Annotated[str, typer.Argument(metavar="SERIAL", help="the device (exact serial)")],
    *,
    config: ConfigOption = DEFAULT_CONFIG,
    limit: LimitOption = 50,
    before: BeforeOption = None,
    output: OutputOption = Output.table,
    as_json: JsonFlag = False,
) -> None:
    """One device's story: the inventory's values, each source's row, open conflicts,
    and every change syncd planned for it (newest first)."""
    from syncd.cli.render import print_history
    from syncd.service import audit

    settings = settings_from(config)
    with open_store(settings) as store:
        history = audit.device_history(store, serial, limit=limit or 50, before=before)
        form = chosen(output, as_json)
        if form is Output.json:
            import json

            print(json.dumps(audit.device_history_json(history), ensure_ascii=False, default=str))  # noqa: T201
        elif form is Output.csv:
            write_csv(
                CHANGE_COLUMNS, (row for v in history.changes.items for row in change_cells(v))
            )
        else:
            print_history(history, _labels(store, settings))
