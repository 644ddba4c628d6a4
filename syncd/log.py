"""Logging setup (structlog), with a last line of defence against leaked secrets.

Code never logs a token on purpose; ``register_secret`` adds the known secret
values to a redactor that rewrites any log event containing one, in case a
library (or a future bug) tries.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

from syncd.redact import RedactSecrets
from syncd.redact import redact as _redact

_secrets: set[str] = set()
_lock = threading.Lock()


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
    """``text`` with every registered secret replaced."""
    return _redact(text, _secrets) if _secrets else text


def _redact_processor(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return RedactSecrets(_secrets)(logger, method, event_dict) if _secrets else event_dict


class _RedactingFilter(logging.Filter):
    """Applies the same redaction to records from the standard library's loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


def configure(level: str = "INFO", fmt: str = "console") -> None:
    """Set up structlog and the standard library's logging to write to stderr."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; ours are logged by the client already.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
