"""Scrub secrets out of text before it leaves the process.

The inventory client knows its own token; anything it puts into an exception message,
an exception's ``body`` or a log line passes through :func:`redact` first, so even a
server that echoes the ``Authorization`` header back in an error body cannot make the
token appear in a log. :class:`RedactSecrets` does the same for structlog event
dictionaries, for applications that want a last line of defence in their log pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from pydantic import SecretStr

REDACTED = "[redacted]"


def _plain(secrets: Iterable[str | SecretStr]) -> list[str]:
    values = (s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets)
    # Longest first, so a secret that contains another is replaced whole.
    return sorted({v for v in values if v}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str | SecretStr]) -> str:
    """``text`` with every occurrence of every secret replaced by ``[redacted]``."""
    for secret in _plain(secrets):
        text = text.replace(secret, REDACTED)
    return text


def redact_value(value: object, secrets: Iterable[str | SecretStr]) -> object:
    """A copy of ``value`` (JSON-like: str, list, dict, scalars) with secrets redacted
    from every string in it, keys included."""
    plain = _plain(secrets)
    if not plain:
        return value
    return _walk(value, plain)


def _walk(value: object, plain: list[str]) -> object:
    if isinstance(value, str):
        return redact(value, plain)
    if isinstance(value, Mapping):
        return {_walk(k, plain): _walk(v, plain) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, plain) for v in value]
    return value


class RedactSecrets:
    """A structlog processor that redacts the given secrets from every value of an event.

    Add it last-but-one (before the renderer) in ``structlog.configure(processors=...)``.
    """

    def __init__(self, secrets: Iterable[str | SecretStr]) -> None:
        self._secrets = _plain(secrets)

    def __repr__(self) -> str:
        return f"RedactSecrets(<{len(self._secrets)} secret(s)>)"

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Redact in place and return the event dictionary."""
        if not self._secrets:
            return event_dict
        for key, value in list(event_dict.items()):
            if isinstance(value, str | Mapping | list | tuple):
                event_dict[key] = _walk(value, self._secrets)
            elif isinstance(value, BaseException):
                event_dict[key] = redact(repr(value), self._secrets)
        return event_dict
