"""What every command shares: loading the config, reporting errors, exit codes.

Kept light on purpose: ``syncd --help`` imports this module, so it loads neither
pydantic (the config), structlog (the log) nor rich (the consoles) until a command
actually uses them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from syncd.config import Settings

#: ``syncd.config.DEFAULT_CONFIG_FILE``, repeated here so that building the command line
#: does not load the config's models (a test keeps the two equal).
DEFAULT_CONFIG_FILE = "syncd.toml"
DEFAULT_CONFIG = Path(DEFAULT_CONFIG_FILE)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help=f"the TOML config file (default: ./{DEFAULT_CONFIG_FILE})",
        envvar="SYNCD_CONFIG",
    ),
]

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_FATAL = 3
EXIT_RETRIABLE = 4
EXIT_HELD = 5
#: Stopped by SIGINT (128 + 2); SIGTERM exits 143 (128 + 15).
EXIT_INTERRUPTED = 130


class _LazyConsole:
    """A rich ``Console`` made on first use (importing rich costs a tenth of a second)."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        """The console itself."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


console: Any = _LazyConsole(stderr=False)
err_console: Any = _LazyConsole(stderr=True)


def settings_from(path: Path) -> Settings:
    """Load the config (a missing default file means defaults) and set up logging."""
    from syncd import log
    from syncd.config import load_settings
    from syncd.errors import ConfigError

    explicit = path != Path(DEFAULT_CONFIG_FILE)
    try:
        settings = load_settings(path if (explicit or path.exists()) else None)
    except ConfigError as exc:
        fail(exc)
    log.configure(settings.logging.level, settings.logging.format)
    return settings


def fail(exc: BaseException) -> NoReturn:
    """Print ``exc`` for a person and exit with the code that says what kind of failure it was."""
    from syncd import log
    from syncd.errors import ConfigError, FatalError, RejectedError, RetriableError, SyncdError

    text = log.redact(str(exc))
    if isinstance(exc, ConfigError):
        err_console.print(f"[bold red]config error[/]: {text}", highlight=False)
        sys.exit(EXIT_CONFIG)
    if isinstance(exc, FatalError):
        err_console.print(f"[bold red]fatal[/]: {text}", highlight=False)
        sys.exit(EXIT_FATAL)
    if isinstance(exc, RetriableError):
        err_console.print(f"[bold yellow]temporary failure[/]: {text}", highlight=False)
        sys.exit(EXIT_RETRIABLE)
    if isinstance(exc, RejectedError | SyncdError):
        err_console.print(f"[bold red]error[/]: {text}", highlight=False)
        sys.exit(EXIT_FAILED)
    raise exc
