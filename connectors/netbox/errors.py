"""The NetBox connector's exceptions, and the one function that makes them.

::

    SourceError
    └── NetBoxError                      the failure is NetBox's (not the inventory's)
        ├── NetBoxUnavailableError       + RetriableError: unreachable, timed out, dropped,
        │                                  5xx, 429 (after the retries ran out)
        ├── NetBoxAuthError              + FatalError: 401/403 (token refused)
        └── NetBoxRequestError           + FatalError: 400 (bad filter), 404 (wrong URL),
                                           not JSON, TLS verification failed, other statuses

Raised from ``Batch.items()``, they void the pull: the pipeline stores nothing of a
batch whose items raised, so a NetBox outage can never turn into deletions.

:func:`translate` maps pynetbox and requests exceptions; messages name NetBox's
address, the path and what went wrong, and pass through :func:`syncd.redact.redact`
with the token, though neither pynetbox nor requests put request headers into them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pynetbox
import requests
from pydantic import SecretStr

from syncd.errors import FatalError, RetriableError, SourceError
from syncd.redact import redact

#: Longest excerpt of NetBox's answer put into a message.
EXCERPT_CHARS = 300


class NetBoxError(SourceError):
    """Reading NetBox failed; the pull that raised it is void."""


class NetBoxUnavailableError(NetBoxError, RetriableError):
    """NetBox could not be reached or could not answer (try again later)."""


class NetBoxAuthError(NetBoxError, FatalError):
    """NetBox refused the token (401/403): fix the token or its permissions."""


class NetBoxRequestError(NetBoxError, FatalError):
    """NetBox refused the request or answered something unusable: fix the configuration."""


def translate(  # noqa: PLR0911 - one return per kind of failure
    exc: BaseException, *, where: str, secrets: Iterable[str | SecretStr] = ()
) -> NetBoxError:
    """The ``NetBoxError`` for a pynetbox / requests exception raised by ``where``
    (``"GET https://netbox/api/dcim/devices/?limit=250"``)."""
    message = _describe(exc, where)
    secrets = list(secrets)
    if isinstance(exc, pynetbox.RequestError):
        status = int(exc.req.status_code)
        said = redact(message, secrets)
        if status in (401, 403):
            hint = (
                "check the token (environment variable or token_file) and that it may "
                "read dcim.device and core.objectchange"
            )
            return NetBoxAuthError(f"{said}; {hint}", status_code=status)
        if status == 429 or status >= 500:
            return NetBoxUnavailableError(said, retry_after=_retry_after(exc.req))
        if status == 400:
            return NetBoxRequestError(f"{said}; check the connector's filters", status_code=400)
        if status == 404:
            return NetBoxRequestError(f"{said}; is the NetBox url right?", status_code=404)
        return NetBoxRequestError(said, status_code=status)
    if isinstance(exc, requests.exceptions.SSLError):
        return NetBoxRequestError(
            redact(f"{message}; TLS verification failed (set ca_bundle, or verify_tls)", secrets)
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return NetBoxUnavailableError(redact(message, secrets))
    return NetBoxRequestError(redact(message, secrets))


def _describe(exc: BaseException, where: str) -> str:  # noqa: PLR0911 - one per kind
    if isinstance(exc, pynetbox.RequestError):
        req = exc.req
        return f"{where} -> {req.status_code} {req.reason or ''}".rstrip() + _excerpt(req)
    if isinstance(exc, pynetbox.ContentError):
        return f"{where}: the answer is not JSON (is this NetBox's address?)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"{where}: connect timed out"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{where}: timed out waiting for the answer"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"{where}: {_first_line(exc)}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"{where}: could not connect or the connection dropped ({_first_line(exc)})"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"{where}: the answer was cut off ({_first_line(exc)})"
    return f"{where}: unusable answer ({type(exc).__name__}: {_first_line(exc)})"


def _excerpt(req: requests.Response) -> str:
    try:
        body = req.json()
    except ValueError:
        text = req.text.strip()
        return f": {text[:EXCERPT_CHARS]}" if text else ""
    said = body.get("detail", body) if isinstance(body, dict) else body
    blob = said if isinstance(said, str) else json.dumps(said, ensure_ascii=False)
    return f": {blob[:EXCERPT_CHARS]}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:EXCERPT_CHARS]


def _retry_after(req: requests.Response) -> float | None:
    value = req.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
