"""What every command shares: loading the config, reporting errors, exit codes.

Kept light on purpose: ``syncd --help`` imports this module, so it loads neither
pydantic (the config), structlog (the log) nor rich (the consoles) until a command
actually uses them.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from syncd import errors
from syncd.errors import SyncdError, failure_kind

if TYPE_CHECKING:
    from rich.console import Console

    from syncd.config import Settings

#: ``syncd.config.DEFAULT_CONFIG_FILE``, repeated here so that building the command line
#: does not load the config's models (a test keeps the two equal).
DEFAULT_CONFIG_FILE = "syncd.toml"
DEFAULT_CONFIG = Path(DEFAULT_CONFIG_FILE)
#: ``syncd.config.INT64_MAX`` (the largest id or limit a store can look up), repeated for
#: the same reason.
INT64_MAX = 2**63 - 1

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help=f"the TOML config file (default: ./{DEFAULT_CONFIG_FILE})",
        envvar="SYNCD_CONFIG",
    ),
]

# The exit codes of failures come from the one table of failure kinds (``syncd.errors``).
EXIT_FAILED = errors.EXIT_FAILED
EXIT_CONFIG = errors.EXIT_CONFIG
EXIT_FATAL = errors.EXIT_FATAL
EXIT_RETRIABLE = errors.EXIT_RETRIABLE
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
    """Print ``exc`` for a person and exit with the code that says what kind of failure it was
    (``syncd.errors.failure_kind``: the table the HTTP API answers from too).

    With ``[logging] format = "json"`` the message is one JSON log line instead, so that
    nothing on stderr breaks a log collector. Under ``plan --detailed-exitcode`` every
    failure exits 1, as Terraform's does (2 says "changes pending" there).
    """
    import structlog

    from syncd import log

    if not isinstance(exc, SyncdError):
        raise exc
    text = log.redact(str(exc))
    kind = failure_kind(exc)
    code = EXIT_FAILED if DETAILED_EXITCODE.get() else kind.exit_code
    if log.current_format() == "json":
        structlog.get_logger("syncd").error(kind.name, error=text, exit_code=code)
    else:
        err_console.print(f"[bold {kind.colour}]{kind.name}[/]: {text}", highlight=False)
    sys.exit(code)


#: Set while ``plan --detailed-exitcode`` runs: a failure then exits 1 whatever it was.
DETAILED_EXITCODE: ContextVar[bool] = ContextVar("syncd_detailed_exitcode", default=False)
