"""The ``syncd`` command line: a thin face over the service functions.

Every command pays for what it uses: the command modules import the store, the
client, the engine and rich inside the commands, so ``syncd --help`` loads little
more than typer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, get_args

import typer

from syncd.cli.common import DEFAULT_CONFIG, EXIT_CONFIG, EXIT_RETRIABLE, console, err_console, fail
from syncd.errors import SyncdError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from syncd.config import Settings
    from syncd.errors import Problem

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
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help=f"the TOML config file to check (default: ./{DEFAULT_CONFIG})"
        ),
    ] = DEFAULT_CONFIG,
    online: Annotated[
        bool, typer.Option("--online", help="also read one page of the inventory API")
    ] = False,
) -> None:
    """Validate FILE (and the SYNCD_* environment); report every problem with where it is.

    Beyond the file, what a run needs: a token (environment or token file), each
    connector's folders existing or creatable, the store opening (nothing is created or
    changed); with --online, the inventory API answering the token.
    """
    from syncd import log
    from syncd.checks import check_environment
    from syncd.config import load_settings
    from syncd.errors import ConfigError, Problem

    try:
        settings = load_settings(file, required=True)
    except ConfigError as exc:
        _print_problems(str(exc.source), exc.problems)
    report = check_environment(settings, file)
    problems = list(report.problems)
    secret = None
    try:
        secret = settings.inventory.resolved_token()
    except ConfigError as exc:
        problems += exc.problems
    else:
        if secret is None:
            missing = (
                "no token: set SYNCD_INVENTORY__TOKEN or inventory.token_file (a run needs it)"
            )
            problems.append(Problem("inventory.token", missing))
    if problems or secret is None:
        _print_problems(str(file), problems)
    said = "set"
    api, store = (_hide_userinfo(u) for u in (settings.inventory.base_url, settings.store.url))
    if report.unavailable is not None:
        err_console.print(
            f"{file}: the configuration is valid, but [bold yellow]the store cannot be "
            f"reached now[/]: {log.redact(str(report.unavailable))}",
            highlight=False,
        )
        raise typer.Exit(EXIT_RETRIABLE)
    if online:
        said = f"accepted: {_reach_api(settings, secret)} device(s) listed"
    console.print(f"{file}: OK (inventory {api}, token {said}, store {store})")


def _reach_api(settings: Settings, token: SecretStr) -> int:
    """One read of the inventory API with the token: how many devices it lists (a
    failure exits with its code and names what failed)."""
    from syncd.inventory import InventoryClient

    with InventoryClient.from_settings(settings.inventory, token=token) as client:
        return client.list_devices(limit=1).count


def _print_problems(source: str, problems: list[Problem]) -> NoReturn:
    err_console.print(f"[bold red]{source}[/]: {len(problems)} problem(s)", highlight=False)
    for problem in problems:
        err_console.print(f"  {problem.location}: {problem.message}", highlight=False)
    raise typer.Exit(EXIT_CONFIG)


def _hide_userinfo(url: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***@host``: URLs may carry secrets."""
    return re.sub(r"//[^/@]*@", "//***@", url)


@config_app.command("example")
def config_example() -> None:
    """Print a commented config with every setting and its default."""
    from syncd.cli.demo import example_file

    print(example_file("syncd.example.toml"), end="")  # noqa: T201 - plain text for a file


def _register() -> None:
    if any(command.name == "plan" for command in app.registered_commands):
        return  # done already (main() called again, in one process)
    from syncd.cli import api, audit, daemon, retention, revert, runs, tokens
    from syncd.cli.demo import demo_command
    from syncd.cli.sandbox import sandbox_command

    app.command("sandbox", help="Run the local sandbox of the inventory API.")(sandbox_command)
    app.command("plan")(runs.plan_command)
    app.command("run")(runs.run_command)
    app.command("approve")(runs.approve_command)
    app.command("discard")(runs.discard_command)
    app.command("revert")(revert.revert_command)
    app.command("runs")(audit.runs_command)
    app.command("changes")(audit.changes_command)
    app.command("rejects")(audit.rejects_command)
    app.command("show")(audit.show_command)
    app.add_typer(audit.conflicts_app, name="conflicts")
    app.command("drift")(audit.drift_command)
    app.command("history")(audit.history_command)
    app.command("demo")(demo_command)
    app.command("daemon")(daemon.daemon_command)
    app.command("worker")(daemon.worker_command)
    app.command("beat")(daemon.beat_command)
    app.command("trigger")(daemon.trigger_command)
    app.command("retry")(daemon.retry_command)
    app.command("serve")(api.serve_command)
    app.command("prune")(retention.prune_command)
    app.add_typer(tokens.tokens_app, name="tokens")
    db_app = typer.Typer(help="The state store.", no_args_is_help=True, rich_markup_mode=None)
    db_app.command("upgrade")(runs.db_upgrade_command)
    app.add_typer(db_app, name="db")


def main(args: Sequence[str] | None = None) -> None:
    """Console-script entry point; ``args`` instead of the command line (for tests)."""
    from typer.main import get_command

    _register()
    command = get_command(app)
    _plain_metavars(command)
    try:
        command(args=None if args is None else list(args))
    except SyncdError as exc:  # every command: a clear message and an exit code, no traceback
        fail(exc)


def _version(value: bool) -> None:
    if value:
        from syncd import __version__

        console.print(f"syncd {__version__}", highlight=False)
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """syncd keeps the Inventory Device Serial API in step with NetBox and CSV drops."""


def _plain_metavars(command: Any) -> None:
    """Help that names values as a person would (``--limit N``, ``--config PATH``), not
    as typer types them (``<int range>``, ``<list[str]>``): an option without a metavar
    of its own gets one from its type, and an argument shows its name alone."""
    from typer.core import TyperArgument, TyperOption

    for param in command.params:
        if isinstance(param, TyperArgument):
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
            setattr(param, "display_type_rich", _no_type)  # noqa: B010 - typer's hook
            setattr(param, "_usage_display_name", _usage_name(param))  # noqa: B010 - same
        elif isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
            param.metavar = _metavar(param)
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def _no_type(ctx: Any = None) -> None:
    return None


def _usage_name(param: Any) -> Callable[[], str]:
    """The usage line's name of an argument: ``RUN``, or ``[RUN]`` when it may be left
    out (typer writes a required one ``{RUN}``)."""
    name = str(param.display_name_raw)
    shown = name if param.required else f"[{name}]"
    return lambda: shown + ("..." if param.nargs != 1 else "")


def _metavar(param: Any) -> str | None:
    described = param.type_descriptor
    if described.is_choice:
        return None  # typer shows the choices: <table|json|csv>
    kind = get_args(described.annotation)[0] if described.is_list else described.annotation
    if param.name in ("run_id", "change", "change_id"):
        return "ID"
    if described.is_path:
        return "PATH"
    if kind is int:
        return "N"
    if kind is float:
        return "NUMBER"
    return "TEXT"
