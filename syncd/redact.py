"""Scrub secrets out of text before it leaves the process.

The inventory client knows its own token; anything it puts into an exception message,
an exception's ``body`` or a log line passes through :func:`redact` first, so even a
server that echoes the ``Authorization`` header back in an error body cannot make the
token appear in a log. :class:`RedactSecrets` does the same for structlog event
dictionaries, for applications that want a last line of defence in their log pipeline.

A server or a library does not always echo a secret the way it was sent, so a secret
is matched in any letter case (a proxy that upper-cases header values, an error page
that shouts), with any of its characters percent-encoded (``%2F``/``%2f``, ``+`` for a
space: a token echoed in a URL or form body) or JSON-escaped (``\\u0041``, ``\\/``).
Independently of the registered secrets, the credentials of an ``Authorization``
header line and of a ``Bearer`` token, and anything shaped like a syncd API token
(``syncd_`` and 40 or more URL-safe characters), are redacted wherever they appear,
which also covers tokens nobody registered (a wrong or rotated one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from functools import lru_cache
from typing import Any

from pydantic import SecretStr

REDACTED = "[redacted]"

#: ``Authorization: Bearer abc``, ``"authorization": "Token abc"``, ``authorization=Basic abc``:
#: the header's name, its separator and the scheme are kept, the credentials go.
_HEADER = re.compile(
    r"""(?ix)
    (\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?)   # the header name and separator
    ((?:bearer|token|basic|digest|apikey)\s+)?+         # the scheme, if any
    (?!\[redacted\])[^\s"',;]+                          # the credentials
    """
)
#: ``Bearer <token>`` anywhere (RFC 6750 b64token). A word such as "Bearer token" is
#: left alone: the credential must have 8+ characters and a digit or punctuation.
_BEARER = re.compile(
    r"(?i)\b(bearer\s+)(?=[A-Za-z0-9\-._~+/]*[0-9\-._~+/])[A-Za-z0-9\-._~+/]{8,}=*"
)

#: A syncd API token (``syncd tokens add``: ``syncd_`` and 43 URL-safe characters),
#: anyone's, registered or not.
_API_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])syncd_[A-Za-z0-9_-]{40,}")


def _plain(secrets: Iterable[str | SecretStr]) -> list[str]:
    values = (s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets)
    # Longest first, so a secret that contains another is replaced whole.
    return sorted({v for v in values if v}, key=len, reverse=True)


def _spellings(char: str) -> str:
    """A regex for one character of a secret: itself (any case, by the pattern's flag),
    percent-encoded (UTF-8), JSON ``\\uXXXX``-escaped, and the odd special forms."""
    options = [re.escape(char)]
    options.append("".join(f"%{byte:02x}" for byte in char.encode("utf-8")))
    if len(char) == 1 and ord(char) <= 0xFFFF:
        options.append(re.escape(f"\\u{ord(char):04x}"))
    if char == " ":
        options.append(r"\+")
    elif char == "/":
        options.append(r"\\/")
    return "(?:" + "|".join(options) + ")"


@lru_cache(maxsize=64)
def _compiled(plain: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern matching every spelling of every secret (longest secret first)."""
    if not plain:
        return None
    alternatives = ("".join(_spellings(c) for c in secret) for secret in plain)
    return re.compile("|".join(alternatives), re.IGNORECASE)


def redact_credentials(text: str) -> str:
    """``text`` with ``Authorization`` header credentials, ``Bearer`` tokens and syncd API
    tokens replaced, whoever's they are."""
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _API_TOKEN.sub(REDACTED, text)


def _redact_plain(text: str, plain: list[str]) -> str:
    pattern = _compiled(tuple(plain))
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return redact_credentials(text)


def redact(text: str, secrets: Iterable[str | SecretStr]) -> str:
    """``text`` with every spelling of every secret replaced by ``[redacted]`` (see the
    module docstring), and any header credentials with it."""
    return _redact_plain(text, _plain(secrets))


def redact_value(value: object, secrets: Iterable[str | SecretStr]) -> object:
    """A copy of ``value`` (JSON-like: str, list, dict, scalars) with secrets redacted
    from every string in it, keys included."""
    return _walk(value, _plain(secrets))


def _walk(value: object, plain: list[str]) -> object:
    if isinstance(value, str):
        return _redact_plain(value, plain)
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
        """Redact in place and return the event dictionary.

        ``exc_info`` is left for the renderer, which must format it redacted; keys
        starting with ``_`` are the logging machinery's own (the stdlib record)."""
        for key, value in list(event_dict.items()):
            if key == "exc_info" or key.startswith("_"):
                continue
            if isinstance(value, str | Mapping | list | tuple):
                event_dict[key] = _walk(value, self._secrets)
            elif isinstance(value, BaseException):
                event_dict[key] = _redact_plain(repr(value), self._secrets)
        return event_dict
