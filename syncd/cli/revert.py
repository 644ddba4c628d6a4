"""``syncd revert RUN`` (or ``--change ID``): undo what a run applied, as a run of its own."""

from __future__ import annotations

from typing import Annotated

import typer

from syncd.cli.common import (
    DEFAULT_CONFIG,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_HELD,
    INT64_MAX,
    ConfigOption,
    console,
    err_console,
    settings_from,
)


def revert_command(
    run_id: Annotated[
        int | None,
        typer.Argument(min=1, max=INT64_MAX, metavar="RUN", help="the run whose changes to undo"),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    change: Annotated[
        int | None, typer.Option("--change", min=1, max=INT64_MAX, help="undo only this change")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the inverse plan, write nothing")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, max=INT64_MAX, help="rows to show (0: all)")] = 50,
) -> None:
    """Undo the changes RUN applied (or one change): re-create what it deleted, restore what
    it updated, delete what it created.

    Each device is read first: one changed in the inventory since (by hand, or by a later
    run) is refused with its reason, never overwritten. The inverse plan goes through the
    same safety gates (held for `syncd approve` when they say so) and the same
    rate-limited path as any run.
    """
    from syncd.cli.render import show_result
    from syncd.cli.runs import exit_if_interrupted, open_runner
    from syncd.service.revert import revert

    if (run_id is None) == (change is None):
        err_console.print("name a run to revert, or one change with --change (not both)")
        raise typer.Exit(EXIT_CONFIG)
    settings = settings_from(config)
    with open_runner(settings, graceful=True) as runner:
        outcome = revert(runner, run_id=run_id, change_id=change, dry_run=dry_run)
    result = outcome.run
    what = f"change {change}" if change is not None else f"run {run_id}"
    console.rule(f"revert of {what}: run {result.run_id}")
    show_result(result, limit=limit)
    for refusal in outcome.refused:
        console.print(
            f"  [yellow]refused[/] {refusal.serial_number} (change {refusal.change_id}): "
            f"{refusal.reason}",
            highlight=False,
        )
    exit_if_interrupted(runner, result.status)
    if result.status == "held":
        raise typer.Exit(EXIT_HELD)
    if result.status == "failed" or outcome.refused:
        raise typer.Exit(EXIT_FAILED)
