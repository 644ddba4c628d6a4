"""The ``syncd`` command line: a thin face over the service functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from syncd.cli.common import EXIT_CONFIG, console, err_console
from syncd.config import load_settings
from syncd.errors import ConfigError

app = typer.Typer(
    help="syncd keeps the Inventory Device Serial API in step with NetBox and CSV drops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Check and explain the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="the TOML config file to check")],
) -> None:
    """Validate FILE (and the SYNCD_* environment); report every problem with where it is."""
    try:
        settings = load_settings(file, required=True)
    except ConfigError as exc:
        err_console.print(f"[bold red]{exc.source}[/]: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            err_console.print(f"  {problem.location}: {problem.message}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    token = "set" if settings.inventory.resolved_token() else "NOT SET (SYNCD_INVENTORY__TOKEN)"
    console.print(f"{file}: OK (inventory {settings.inventory.base_url}, token {token})")


def _register() -> None:
    from syncd.cli.sandbox import sandbox_command

    app.command("sandbox", help="Run the local sandbox of the inventory API.")(sandbox_command)


def main() -> None:
    """Console-script entry point."""
    _register()
    app()
