"""The ``syncd`` command line: a thin face over the service functions.

Every command pays for what it uses: the command modules import the store, the
client, the engine and rich inside the commands, so ``syncd --help`` loads little
more than typer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from syncd.cli.common import EXIT_CONFIG, console, err_console, fail
from syncd.errors import SyncdError

app = typer.Typer(
    help="syncd keeps the Inventory Device Serial API in step with NetBox and CSV drops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help text: rich's help formatter loads markdown parsing (a third of a second).
    rich_markup_mode=None,
)
config_app = typer.Typer(
    help="Check and explain the configuration.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="the TOML config file to check")],
) -> None:
    """Validate FILE (and the SYNCD_* environment); report every problem with where it is."""
    from syncd.config import load_settings
    from syncd.errors import ConfigError

    try:
        settings = load_settings(file, required=True)
    except ConfigError as exc:
        err_console.print(f"[bold red]{exc.source}[/]: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            err_console.print(f"  {problem.location}: {problem.message}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    try:
        token = "set" if settings.inventory.resolved_token() else "NOT SET (SYNCD_INVENTORY__TOKEN)"
    except ConfigError as exc:
        token = f"UNREADABLE ({exc.problems[0].message})"
    api, store = (_hide_userinfo(u) for u in (settings.inventory.base_url, settings.store.url))
    console.print(f"{file}: OK (inventory {api}, token {token}, store {store})")


def _hide_userinfo(url: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***@host``: URLs may carry secrets."""
    return re.sub(r"//[^/@]*@", "//***@", url)


@config_app.command("example")
def config_example() -> None:
    """Print a commented config with every setting and its default."""
    from syncd.cli.demo import example_file

    print(example_file("syncd.example.toml"), end="")  # noqa: T201 - plain text for a file


def _register() -> None:
    from syncd.cli import runs
    from syncd.cli.demo import demo_command
    from syncd.cli.sandbox import sandbox_command

    app.command("sandbox", help="Run the local sandbox of the inventory API.")(sandbox_command)
    app.command("plan")(runs.plan_command)
    app.command("run")(runs.run_command)
    app.command("approve")(runs.approve_command)
    app.command("discard")(runs.discard_command)
    app.command("runs")(runs.runs_command)
    app.command("changes")(runs.changes_command)
    app.command("rejects")(runs.rejects_command)
    app.command("demo")(demo_command)
    db_app = typer.Typer(help="The state store.", no_args_is_help=True, rich_markup_mode=None)
    db_app.command("upgrade")(runs.db_upgrade_command)
    app.add_typer(db_app, name="db")


def main() -> None:
    """Console-script entry point."""
    _register()
    try:
        app()
    except SyncdError as exc:  # every command: a clear message and an exit code, no traceback
        fail(exc)
