"""What every command shares: loading the config, reporting errors, exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import structlog
import typer
from rich.console import Console

from syncd import log
from syncd.config import DEFAULT_CONFIG_FILE, Settings, load_settings
from syncd.errors import ConfigError, FatalError, RetriableError, SyncdError

console = Console()
err_console = Console(stderr=True)

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


def settings_from(path: Path) -> Settings:
    """Load the config (a missing default file means defaults) and set up logging."""
    explicit = path != Path(DEFAULT_CONFIG_FILE)
    try:
        settings = load_settings(path if (explicit or path.exists()) else None)
    except ConfigError as exc:
        fail(exc)
    log.configure(settings.logging.level, settings.logging.format)
    return settings


def fail(exc: BaseException) -> NoReturn:
    """Print ``exc`` for a person and exit with the code that says what kind of failure it was.

    With ``[logging] format = "json"`` the message is one JSON log line instead, so that
    nothing on stderr breaks a log collector.
    """
    if not isinstance(exc, SyncdError):
        raise exc
    text = log.redact(str(exc))
    kind, style, code = next((k, s, c) for cls, k, s, c in _KINDS if isinstance(exc, cls))
    if log.current_format() == "json":
        structlog.get_logger("syncd").error(kind, error=text, exit_code=code)
    else:
        err_console.print(f"[bold {style}]{kind}[/]: {text}", highlight=False)
    sys.exit(code)


#: Exception class -> (what it is called, colour, exit code); the first that fits wins.
_KINDS: tuple[tuple[type[SyncdError], str, str, int], ...] = (
    (ConfigError, "config error", "red", EXIT_CONFIG),
    (FatalError, "fatal", "red", EXIT_FATAL),
    (RetriableError, "temporary failure", "yellow", EXIT_RETRIABLE),
    (SyncdError, "error", "red", EXIT_FAILED),
)
