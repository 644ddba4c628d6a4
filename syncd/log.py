"""Logging setup (structlog), with a last line of defence against leaked secrets.

Code never logs a token on purpose; ``register_secret`` adds the known secret
values to a redactor that rewrites any log event containing one, in case a
library (or a future bug) tries. The standard library's loggers (Alembic, httpx)
are rendered by the same processors, so they are redacted and, with
``format = "json"``, JSON too.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from io import StringIO
from typing import Any, TextIO

import structlog
from pydantic import SecretStr

from syncd.redact import RedactSecrets
from syncd.redact import redact as _redact

_secrets: set[str] = set()
_lock = threading.Lock()
#: What ``configure`` last set, for ``current_format``.
_configured: dict[str, str] = {"format": "console"}


def register_secret(value: str | SecretStr | None) -> None:
    """Never let ``value`` reach a log line or an error text printed by syncd.

    Every token syncd reads (inventory, NetBox) is registered when it is read. Values
    shorter than 6 characters are ignored (they would redact ordinary words).
    """
    plain = value.get_secret_value() if isinstance(value, SecretStr) else value
    if plain and len(plain) >= 6:
        with _lock:
            _secrets.add(plain)


def redact(text: str) -> str:
    """``text`` with every registered secret (in any of its spellings, see
    ``syncd.redact``) and any header credentials replaced."""
    return _redact(text, tuple(_secrets))  # a copy: another thread may register one


def _redact_processor(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return RedactSecrets(tuple(_secrets))(logger, method, event_dict)


def _redacted_traceback(sio: TextIO, exc_info: Any) -> None:
    """The console renderer's traceback, redacted: an exception's text may quote what a
    server said."""
    plain = StringIO()
    structlog.dev.plain_traceback(plain, exc_info)
    sio.write(redact(plain.getvalue()))


def current_format() -> str:
    """The format ``configure`` last set (``console`` before it is called)."""
    return _configured["format"]


def configure(level: str = "INFO", fmt: str = "console") -> None:
    """Set up structlog and the standard library's logging to write to stderr.

    Both go through the same processors and renderer: with ``fmt="json"`` every line on
    stderr is one JSON object, whichever library logged it (Alembic, httpx, Python
    warnings), and every line is redacted. Libraries' chatter below WARNING is dropped
    unless ``level`` is DEBUG.
    """
    _configured["format"] = fmt
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=_redacted_traceback
        )
    )
    # JSON needs the traceback as text before redaction; the console renderer formats it
    # itself, through _redacted_traceback.
    exceptions: list[Any] = [structlog.processors.format_exc_info] if fmt == "json" else []
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *exceptions,
        _redact_processor,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # One write per line (print() writes the newline apart): the standard library's
        # handler below writes each of its lines whole too, so lines logged by two
        # threads at once (concurrent applies) never end up on one line.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            # the run and serial bound by syncd.service reach the libraries' lines too
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                *shared,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    # httpx logs every request URL at INFO; ours are logged by the client already.
    # Alembic tells at INFO which dialect it found, on every start.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("httpx", "httpcore", "alembic"):
        logging.getLogger(name).setLevel(max(quiet, logging.getLevelName(level)))
