"""``python -m syncd.sandbox`` is ``syncd sandbox``."""

import typer

from syncd.cli.sandbox import sandbox_command

# no pretty tracebacks: they print local variables, and a local may hold a token
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(sandbox_command)
app()
