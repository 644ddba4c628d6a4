"""The one place where HTTP failures become the project's exceptions.

:func:`map_failure` turns an error response or an httpx transport error into a
:mod:`syncd.errors` exception; :func:`decode_model` turns a success body into a model or a
:class:`~syncd.errors.ProtocolError`. Every message names the method, the path and the
status (or what went wrong on the wire) plus a short, redacted excerpt of what the server
said. Request headers are never read here, so the token cannot reach a message.

======================================  ==========================================
failure                                 exception
======================================  ==========================================
429                                     RateLimitedError (``retry_after``)
502, 503, 504                           ServerUnavailableError (``retry_after``)
any httpx timeout                       TimeoutError_
connect error, dropped connection       ConnectionFailedError
TLS certificate rejected                ProtocolError (retrying cannot fix it)
400                                     ValidationRejectedError (``field_errors``)
404 / 409                               NotFoundError / AlreadyExistsError
401 / 403                               AuthenticationError / PermissionDeniedError
anything else, or a bad success body    ProtocolError
======================================  ==========================================
"""

from __future__ import annotations

import ipaddress
import json
import math
import ssl
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import orjson
from pydantic import BaseModel, SecretStr, ValidationError

from syncd.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConnectionFailedError,
    FatalError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    RejectedError,
    RetriableError,
    ServerUnavailableError,
    SyncdError,
    TimeoutError_,
    ValidationRejectedError,
)
from syncd.redact import redact, redact_value

M = TypeVar("M", bound=BaseModel)

#: Longest excerpt of a server message put into an exception message.
EXCERPT_CHARS = 200

_RETRIABLE: dict[int, type[RetriableError]] = {
    429: RateLimitedError,
    502: ServerUnavailableError,
    503: ServerUnavailableError,
    504: ServerUnavailableError,
}
_REJECTED: dict[int, type[RejectedError]] = {404: NotFoundError, 409: AlreadyExistsError}
_FATAL: dict[int, type[FatalError]] = {401: AuthenticationError, 403: PermissionDeniedError}


def map_failure(
    method: str,
    path: str,
    failure: httpx.Response | httpx.HTTPError,
    *,
    secrets: Iterable[str | SecretStr] = (),
) -> SyncdError:
    """The :mod:`syncd.errors` exception for a failed request.

    ``failure`` is either the response (any status the caller did not expect, success
    codes included) or the httpx exception raised instead of one. ``secrets`` are
    scrubbed from the message and the kept body. The caller raises the result
    ``from`` the httpx exception, which :func:`may_have_been_applied` relies on.
    """
    secrets = list(secrets)
    if isinstance(failure, httpx.Response):
        return _from_response(method, path, failure, secrets)
    return _from_transport(method, path, failure, secrets)


def _from_transport(
    method: str, path: str, exc: httpx.HTTPError, secrets: list[str | SecretStr]
) -> SyncdError:
    detail = redact(_one_line(str(exc)) or type(exc).__name__, secrets)
    where = f"{method} {path}"
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError_(f"{where}: {_TIMEOUT_KIND.get(type(exc), 'timed out')} ({detail})")
    if isinstance(exc, httpx.ConnectError) and _tls_rejected(exc):
        return ProtocolError(f"{where}: TLS certificate verification failed ({detail})")
    if isinstance(exc, httpx.ConnectError):
        host, port = _target(exc)
        failed = ConnectionFailedError(f"{where}: could not connect to {host}:{port} ({detail})")
        failed.nothing_listens = _refused(exc) and _loopback(host)
        return failed
    if isinstance(exc, httpx.RemoteProtocolError | httpx.NetworkError):
        return ConnectionFailedError(f"{where}: connection dropped ({detail})")
    if isinstance(exc, httpx.TooManyRedirects):
        return ProtocolError(f"{where}: too many redirects")
    return ProtocolError(f"{where}: request failed: {type(exc).__name__} ({detail})")


def _target(exc: httpx.HTTPError) -> tuple[str, int | str]:
    """The host and port the request went to (``?`` when httpx did not say)."""
    try:
        url = exc.request.url
    except RuntimeError:  # raised without its request
        return "?", "?"
    default: int | str = {"http": 80, "https": 443}.get(url.scheme, "?")
    return url.host, url.port or default


def _refused(exc: BaseException) -> bool:
    """Whether the connection was refused (the host answered: nothing listens there)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "Connection refused" in str(exc)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


_TIMEOUT_KIND: dict[type[httpx.TimeoutException], str] = {
    httpx.ConnectTimeout: "connect timed out",
    httpx.ReadTimeout: "read timed out",
    httpx.WriteTimeout: "write timed out",
    httpx.PoolTimeout: "timed out waiting for a pooled connection",
}


def _tls_rejected(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _from_response(
    method: str, path: str, response: httpx.Response, secrets: list[str | SecretStr]
) -> SyncdError:
    status = response.status_code
    body = redact_value(_body(response), secrets)
    said = redact(_excerpt(body, response), secrets)
    prefix = f"{method} {path} -> {status}"
    message = f"{prefix}: {said}" if said else prefix
    if status in _RETRIABLE:
        return _RETRIABLE[status](message, retry_after=retry_after_of(response))
    if status == 400:
        return ValidationRejectedError(message, body=body, field_errors=field_errors_of(body))
    if status in _REJECTED:
        return _REJECTED[status](message, status_code=status, body=body)
    if status in _FATAL:
        return _FATAL[status](message, status_code=status)
    if 300 <= status < 400:
        location = redact(response.headers.get("location", "?"), secrets)
        return ProtocolError(
            f"{prefix}: unexpected redirect to {location} (is base_url right?)",
            status_code=status,
        )
    return ProtocolError(f"{prefix}: unexpected status; {said or 'no body'}", status_code=status)


def decode_model(
    method: str,
    path: str,
    response: httpx.Response,
    model: type[M],
    *,
    secrets: Iterable[str | SecretStr] = (),
) -> M:
    """Parse a success body as ``model``, or raise a :class:`ProtocolError` saying what
    was wrong with it and where."""
    prefix = f"{method} {path} -> {response.status_code}"
    try:
        data = _json_of(response)
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = response.headers.get("content-type", "no content-type")
        raise ProtocolError(
            f"{prefix}: body is not JSON ({kind}, {len(response.content)} bytes)",
            status_code=response.status_code,
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:5]
        )
        more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise ProtocolError(
            redact(f"{prefix}: body is not a valid {model.__name__}: {problems}{more}", secrets),
            status_code=response.status_code,
        ) from None


def _json_of(response: httpx.Response) -> Any:
    """The body's JSON: orjson's fast decoder (a list page of 100 devices), and the
    standard one whenever orjson refuses (another encoding, integers beyond 64 bits,
    ``NaN``), so what is accepted, and how it reads, is what ``response.json()`` gives."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.json()


def retry_after_of(response: httpx.Response, *, now: float | None = None) -> float | None:
    """The ``Retry-After`` delay in seconds (from seconds or an HTTP-date), or ``None``."""
    return parse_retry_after(response.headers.get("retry-after"), now=now)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date
    (a date in the past means 0). ``None`` when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def field_errors_of(body: object) -> dict[str, list[str]]:
    """Per-field messages from a DRF-style 400 body (``{"field": ["msg", ...]}``).

    ``detail`` is a whole-request message, not a field; nested objects become dotted
    names (``type.id``); anything else yields no field errors.
    """
    if not isinstance(body, Mapping):
        return {}
    out: dict[str, list[str]] = {}
    for key, value in body.items():
        if key == "detail":
            continue
        _collect(str(key), value, out)
    return out


def _collect(name: str, value: object, out: dict[str, list[str]]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _collect(f"{name}.{key}", inner, out)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, Mapping):
                _collect(name, item, out)
            else:
                out.setdefault(name, []).append(str(item))
    else:
        out.setdefault(name, []).append(str(value))


def may_have_been_applied(exc: BaseException) -> bool:
    """Whether the server may have carried out a request that failed with ``exc``.

    ``False`` only when the request certainly never reached the application: a refused
    connection, a connect or pool timeout, or a 429 (refused before processing). A read
    timeout, a dropped connection or a 5xx (a gateway may have passed it on) may hide
    a request that was applied.
    """
    if isinstance(exc, RateLimitedError):
        return False
    cause = exc.__cause__
    if isinstance(exc, TimeoutError_ | ConnectionFailedError) and isinstance(
        cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
    ):
        return False
    return isinstance(exc, RetriableError)


# -- message helpers -----------------------------------------------------------------------


def _body(response: httpx.Response) -> object:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text if response.content else None


def _excerpt(body: object, response: httpx.Response) -> str:
    if body is None or body == "":
        return ""
    if isinstance(body, Mapping) and "detail" in body and len(body) == 1:
        text = str(body["detail"])
    elif isinstance(body, Mapping | list):
        text = json.dumps(body, ensure_ascii=False, default=str)
    else:
        kind = response.headers.get("content-type", "").split(";")[0] or "no content-type"
        text = f"non-JSON body ({kind}): {body}"
    text = _one_line(text)
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())
