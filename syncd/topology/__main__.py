"""``python -m syncd.topology`` (``scripts/local.sh``): start the local topology, print
where everything is, and run until Ctrl-C or SIGTERM; ``--check`` runs the end to end
instead of waiting, and exits 0 when it passed and everything stopped cleanly, else 1.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from syncd.errors import SyncdError
from syncd.topology.stack import OPERATOR, Options, Stack

EXIT_OK, EXIT_FAILED = 0, 1


def main(
    workdir: Annotated[
        Path, typer.Option(help="where the config, secrets, logs and data go (wiped at start)")
    ] = Path("var/local"),
    postgres: Annotated[
        bool, typer.Option("--postgres", help="a throw-away PostgreSQL store instead of SQLite")
    ] = False,
    scale_out: Annotated[
        bool,
        typer.Option(
            "--scale-out", help="redis-server, --workers `syncd worker`s and `syncd beat`"
        ),
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=16, help="workers with --scale-out")] = 2,
    check: Annotated[
        bool, typer.Option("--check", help="run a short end to end, stop, exit 0 or 1")
    ] = False,
) -> None:
    """Start syncd's deployment (sandbox, store, daemon, HTTP app) as local processes
    on 127.0.0.1."""
    _forget_syncd_environment()
    options = Options(workdir.resolve(), postgres=postgres, scale_out=scale_out, workers=workers)
    stack = Stack(options)
    _stop_on(signal.SIGINT)  # also when started in the background, where it is ignored
    _stop_on(signal.SIGTERM)
    failed = False
    try:
        stack.start()
        _describe(stack)
        if check:
            from syncd.topology.check import run_check

            run_check(stack, typer.echo)
        else:
            _wait(stack)
    except KeyboardInterrupt:
        typer.echo("stopping")
    except SyncdError as exc:
        typer.echo(f"error: {exc}", err=True)
        failed = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        problems = stack.stop()
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if not failed and not problems:
        typer.echo("stopped cleanly" + (": check passed" if check else ""))
    raise typer.Exit(EXIT_FAILED if failed or problems else EXIT_OK)


def _forget_syncd_environment() -> None:
    """The processes run with the config file written and nothing else: a ``SYNCD_*``
    variable left in this shell would override it unseen."""
    for name in [n for n in os.environ if n.upper().startswith("SYNCD_")]:
        del os.environ[name]
        typer.echo(f"note: {name} is ignored here (the config file says everything)", err=True)


def _stop_on(signum: int) -> None:
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signum, interrupt)


def _wait(stack: Stack) -> None:
    """Until a signal (``KeyboardInterrupt``), or a process dies (``LocalStackError``)."""
    while True:
        dead = stack.dead()
        if dead is not None:
            raise dead.died()
        time.sleep(0.5)


def _describe(stack: Stack) -> None:
    """Where everything is. Tokens are named by their file and variable, never shown."""
    lines = [
        f"config   {stack.config}",
        f"sandbox  {stack.sandbox_url}",
        f"         its token: the file {stack.secret('inventory_token')} "
        "(inventory.token_file; SYNCD_INVENTORY__TOKEN overrides it)",
        f"store    {stack.store_url}",
    ]
    if stack.broker_url:
        lines.append(f"broker   {stack.broker_url}")
    lines += [
        f"api      {stack.api_url}  (/healthz, /readyz, /metrics, POST /v1/triggers)",
        f"         operator token {OPERATOR!r}: the file {stack.secret('operator_token')}",
        f"         API tokens are hashed with the pepper in {stack.secret('token_pepper')} "
        "(api.token_pepper_file; SYNCD_API__TOKEN_PEPPER overrides it)",
        f"logs     {stack.logs}",
        f"commands syncd runs --config {stack.config}",
        f'         curl -H "Authorization: Bearer $(cat {stack.secret("operator_token")})" '
        f'-d \'{{"connector": "procurement"}}\' {stack.api_url}/v1/triggers',
    ]
    for line in lines:
        typer.echo(line)


if __name__ == "__main__":
    typer.run(main)
