"""The inventory client: every endpoint of the Inventory Device Serial API, made safe.

::

    with InventoryClient.from_settings(settings.inventory) as client:
        listing = client.list_inventory(organization=7)
        for device in listing:
            ...
        if not listing.complete:
            print(listing.problems)
        client.patch_device("SN123", DevicePatch(location="Lab 2"))

What it does for the caller:

- **Retries** retriable failures (429, 502/503/504, timeouts, dropped connections) with
  exponential backoff and jitter, honouring ``Retry-After``, within the attempts and
  total time of :class:`~syncd.config.RetrySettings` (see :mod:`.retrying`).
- **Never creates twice.** A create is not blindly retried: after a failure that may
  hide an applied request (read timeout, dropped connection, 5xx) it reads the serial
  back; an equal device means the first try worked, a missing one means try again, a
  different one is :class:`~syncd.errors.AlreadyExistsError`.
- **Deletes once.** A ``404`` on a retried delete, after a try that may have been
  applied, means that try deleted it: success. A ``404`` on the first try is
  :class:`~syncd.errors.NotFoundError`.
- **Paces** every request, retries and read-backs included, through a
  :class:`~syncd.ratelimit.RateLimiter`, and pauses that limiter (all threads) when the
  server sends ``Retry-After``.
- **Maps** every failure to :mod:`syncd.errors` in one place (:mod:`.failures`).
- **Keeps the token secret**: it goes out only in the ``Authorization`` header; no repr,
  log line or exception message contains it.

Serials are case-sensitive and sent exactly as given, percent-encoded as one path
segment. Booleans go out as ``true``/``false``; instants as ISO 8601 in UTC, whole
seconds (naive datetimes are taken as UTC; sub-second parts are dropped, which can only
widen an "at or after" filter).

The client is thread-safe: share one instance between threads to share its connection
pool and limiter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, SecretStr

from syncd import metrics
from syncd.canonical import canonical_ip, canonical_mac
from syncd.config import InventorySettings, RetrySettings
from syncd.errors import (
    AlreadyExistsError,
    ConfigError,
    DataError,
    NotFoundError,
    Problem,
    ProtocolError,
    RetriableError,
)
from syncd.inventory.failures import decode_model, map_failure, may_have_been_applied
from syncd.inventory.listing import Listing, ListPage
from syncd.inventory.models import Device, DeviceCreate, DevicePatch, DeviceReplace, Page
from syncd.inventory.retrying import call_with_retries
from syncd.inventory.transport import build_http_client, display_url, normalise_base_url
from syncd.log import register_secret
from syncd.ratelimit import LimitsRateLimiter, RateLimiter, Unlimited
from syncd.redact import redact

__all__ = ["COLLECTION", "MAX_PAGE_SIZE", "InventoryClient"]

log = structlog.get_logger("syncd.inventory")

#: The collection's path, relative to the base URL.
COLLECTION = "inventory_device_serial/"
#: The server clamps ``limit`` to this.
MAX_PAGE_SIZE = 100

_OK = frozenset({200})
_CREATED = frozenset({201, 200})
_DELETED = frozenset({204, 200})

W = TypeVar("W", bound=BaseModel)


class InventoryClient:
    """A synchronous client for the Inventory Device Serial API (see the module docstring).

    Use it as a context manager, or call :meth:`close`, to release pooled connections.
    ``transport`` replaces the network (tests of error mapping); with it, the pool
    limits and ``verify_tls`` are the transport's business.
    """

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_connections: int = 10,
        max_keepalive_connections: int = 5,
        verify_tls: bool = True,
        page_size: int = MAX_PAGE_SIZE,
        retry: RetrySettings | None = None,
        rate_limiter: RateLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(token, SecretStr):
            # A plain str would show up in tracebacks' locals and in reprs.
            raise TypeError("token must be a pydantic SecretStr")
        _check_page_size(page_size)
        self._base_url = normalise_base_url(base_url)
        self._token = token
        self._secrets = (token,)
        register_secret(token)
        self._page_size = page_size
        self._retry = retry if retry is not None else RetrySettings()
        self._limiter: RateLimiter = rate_limiter if rate_limiter is not None else Unlimited()
        self._http = build_http_client(
            base_url=self._base_url,
            token=token,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            verify_tls=verify_tls,
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls,
        settings: InventorySettings,
        *,
        token: SecretStr | None = None,
        rate_limiter: RateLimiter | None = None,
        storage_uri: str = "memory://",
        rate_limit_key: str = "inventory",
        transport: httpx.BaseTransport | None = None,
    ) -> InventoryClient:
        """A client configured by ``[inventory]``.

        ``token`` defaults to the settings' (environment, then ``token_file``); no token
        at all is a ``ConfigError``. Without ``rate_limiter`` a :class:`LimitsRateLimiter`
        paced by ``inventory.rate_limit`` is made on ``storage_uri`` (``memory://``: this
        process only; ``redis://host:6379``: shared by every process using that Redis and
        the same ``rate_limit_key``; give each API token its own key).
        """
        secret = token if token is not None else settings.resolved_token()
        if secret is None or not secret.get_secret_value():
            raise ConfigError(
                [
                    Problem(
                        "inventory.token",
                        "no token: set SYNCD_INVENTORY__TOKEN or inventory.token_file",
                    )
                ]
            )
        limiter = rate_limiter
        if limiter is None:
            limiter = LimitsRateLimiter.from_settings(
                settings.rate_limit, storage_uri=storage_uri, key=rate_limit_key
            )
        return cls(
            settings.base_url,
            secret,
            timeout=settings.timeout,
            connect_timeout=settings.connect_timeout,
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
            verify_tls=settings.verify_tls,
            page_size=settings.page_size,
            retry=settings.retry,
            rate_limiter=limiter,
            transport=transport,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections. The client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"InventoryClient(base_url={display_url(self._base_url)!r}, "
            f"token=**********, page_size={self._page_size}, "
            f"attempts={self._retry.attempts}, retry_timeout={self._retry.timeout}, "
            f"rate_limiter={self._limiter!r})"
        )

    @property
    def base_url(self) -> str:
        """The API root, without a trailing slash."""
        return self._base_url

    @property
    def page_size(self) -> int:
        """Default page size of :meth:`list_inventory` and :meth:`iter_devices`."""
        return self._page_size

    # -- reading -----------------------------------------------------------------------------

    def list_devices(
        self,
        *,
        type: int | None = None,  # noqa: A002 - the API's parameter name
        status: bool | None = None,
        last_status_change_from: datetime | date | None = None,
        organization: int | None = None,
        pending: bool | None = None,
        update_status: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Page:
        """One page of ``GET /inventory_device_serial/``; only the given filters are sent.

        ``limit`` is clamped to 100 by the server; without it the server's default (20)
        applies. ``update_status=True`` makes the server check live and is slow.
        """
        params = _list_params(
            type=type,
            status=status,
            last_status_change_from=last_status_change_from,
            organization=organization,
            pending=pending,
            update_status=update_status,
        )
        if limit is not None:
            if limit < 1:
                raise ValueError("limit must be >= 1")
            params["limit"] = str(limit)
        if offset is not None:
            if offset < 0:
                raise ValueError("offset must be >= 0")
            params["offset"] = str(offset)
        return self._read(COLLECTION, params, Page)

    def list_inventory(
        self,
        *,
        type: int | None = None,  # noqa: A002 - the API's parameter name
        status: bool | None = None,
        last_status_change_from: datetime | date | None = None,
        organization: int | None = None,
        pending: bool | None = None,
        update_status: bool | None = None,
        page_size: int | None = None,
    ) -> Listing:
        """Every device matching the filters, as a lazy :class:`~.listing.Listing`.

        Pages are fetched as it is iterated (each with the usual retries), by offset
        (never the server's ``next`` links, which could name another host), each page
        after the first starting at the last row of the one before so that rows shifted
        by a concurrent add or remove show. A malformed row is skipped, not raised; a
        malformed page envelope raises ``ProtocolError``. Once exhausted,
        ``listing.complete`` says whether the walk saw the whole listing exactly once
        (``listing.problems`` says why not); only a complete, unfiltered listing may
        stand for the inventory (e.g. to call unseen serials absent).
        """
        size = self._page_size if page_size is None else page_size
        _check_page_size(size)
        filters = _list_params(
            type=type,
            status=status,
            last_status_change_from=last_status_change_from,
            organization=organization,
            pending=pending,
            update_status=update_status,
        )

        def fetch(offset: int, limit: int) -> ListPage:
            params = {**filters, "limit": str(limit), "offset": str(offset)}
            return self._read(COLLECTION, params, ListPage)

        narrowed = (type, status, last_status_change_from, organization)
        return Listing(
            fetch,
            page_size=size,
            filtered=any(f is not None for f in narrowed),
            secrets=self._secrets,
        )

    def iter_devices(
        self,
        *,
        type: int | None = None,  # noqa: A002 - the API's parameter name
        status: bool | None = None,
        last_status_change_from: datetime | date | None = None,
        organization: int | None = None,
        pending: bool | None = None,
        update_status: bool | None = None,
        page_size: int | None = None,
    ) -> Iterator[Device]:
        """Every device matching the filters, fetched lazily page by page.

        The same walk as :meth:`list_inventory`, for callers that do not need to know
        whether it was complete (its problems are still logged). Never use it to decide
        that a device is gone.
        """
        return self.list_inventory(
            type=type,
            status=status,
            last_status_change_from=last_status_change_from,
            organization=organization,
            pending=pending,
            update_status=update_status,
            page_size=page_size,
        )

    def get_device(
        self,
        serial: str,
        *,
        pending: bool | None = None,
        update_status: bool | None = None,
    ) -> Device:
        """``GET /inventory_device_serial/{serial}/`` (detail shape).

        ``pending=True`` adds ``pending_details``. Raises ``NotFoundError`` for an
        unknown serial.
        """
        params: dict[str, str] = {}
        if pending is not None:
            params["pending"] = _flag(pending)
        if update_status is not None:
            params["update_status"] = _flag(update_status)
        device = self._read(_item_path(serial), params, Device)
        self._check_serial("GET", serial, device)
        return device

    # -- writing -----------------------------------------------------------------------------

    def create_device(self, device: DeviceCreate | Mapping[str, Any]) -> Device:
        """``POST /inventory_device_serial/``: create, at most once (module docstring).

        Fields left ``None`` are not sent. Raises ``AlreadyExistsError`` when the serial
        exists (and, after an uncertain first try, differs from what was sent) and
        ``ValidationRejectedError`` with the server's ``field_errors``. A serial the
        server would store altered (surrounding whitespace) is a ``DataError``, not sent.
        """
        model = _as(DeviceCreate, device)
        body = model.model_dump(mode="json", exclude_none=True)
        serial = model.serial_number
        _check_new_serial(serial)
        maybe_applied = False

        def one_try() -> Device:
            nonlocal maybe_applied
            if maybe_applied:
                existing = self._lookup(serial)
                if existing is not None:
                    return self._adopt(existing, body)
            try:
                response = self._send("POST", COLLECTION, expected=_CREATED, body=body)
            except AlreadyExistsError:
                # Our earlier, uncertain try may have landed after the read-back said no.
                existing = self._lookup(serial) if maybe_applied else None
                if existing is not None:
                    return self._adopt(existing, body)
                raise
            except RetriableError as exc:
                maybe_applied = maybe_applied or may_have_been_applied(exc)
                raise
            created = self._decode(response, Device)
            self._check_serial("POST", serial, created)
            return created

        return call_with_retries(self._retry, one_try)

    def replace_device(self, serial: str, device: DeviceReplace | Mapping[str, Any]) -> Device:
        """``PUT /inventory_device_serial/{serial}/``: every writable field; the optional
        ones left ``None`` are omitted, which the server takes as "clear"."""
        body = _as(DeviceReplace, device).model_dump(mode="json", exclude_none=True)
        return self._write("PUT", serial, body)

    def patch_device(self, serial: str, patch: DevicePatch | Mapping[str, Any]) -> Device:
        """``PATCH /inventory_device_serial/{serial}/`` with only the fields set on
        ``patch`` (``model_dump(exclude_unset=True)``): a field explicitly set to ``None``
        is sent as ``null``; a field never set is not sent at all."""
        body = _as(DevicePatch, patch).model_dump(mode="json", exclude_unset=True)
        return self._write("PATCH", serial, body)

    def delete_device(self, serial: str) -> None:
        """``DELETE /inventory_device_serial/{serial}/`` (irreversible).

        ``NotFoundError`` if the serial is unknown on the first try; a ``404`` after a
        try that may have been applied counts as deleted.
        """
        path = _item_path(serial)
        maybe_applied = False

        def one_try() -> None:
            nonlocal maybe_applied
            try:
                self._send("DELETE", path, expected=_DELETED)
            except NotFoundError:
                if not maybe_applied:
                    raise
                log.info("inventory.delete_already_applied", serial=serial)
            except RetriableError as exc:
                maybe_applied = maybe_applied or may_have_been_applied(exc)
                raise

        call_with_retries(self._retry, one_try)

    # -- internals ---------------------------------------------------------------------------

    def _read(self, path: str, params: Mapping[str, str], model: type[W]) -> W:
        def one_try() -> W:
            return self._decode(self._send("GET", path, expected=_OK, params=params), model)

        return call_with_retries(self._retry, one_try)

    def _write(self, method: str, serial: str, body: dict[str, Any]) -> Device:
        path = _item_path(serial)

        def one_try() -> Device:
            device = self._decode(self._send(method, path, expected=_OK, body=body), Device)
            self._check_serial(method, serial, device)
            return device

        return call_with_retries(self._retry, one_try)

    def _lookup(self, serial: str) -> Device | None:
        """One try of the detail read; ``None`` for 404 (retriable errors propagate)."""
        try:
            response = self._send("GET", _item_path(serial), expected=_OK)
        except NotFoundError:
            return None
        device = self._decode(response, Device)
        self._check_serial("GET", serial, device)
        return device

    def _adopt(self, existing: Device, sent: Mapping[str, Any]) -> Device:
        """After an uncertain create: the device if it is what we sent, else 409."""
        differing = _differences(sent, existing)
        if differing:
            raise AlreadyExistsError(
                redact(
                    f"POST {self._path(COLLECTION)}: serial {existing.serial_number!r} already "
                    f"exists with different {', '.join(differing)} (created by someone else, or "
                    "changed since our uncertain first try)",
                    self._secrets,
                ),
                status_code=409,
                body=existing.model_dump(mode="json"),
            )
        log.info("inventory.create_already_applied", serial=existing.serial_number)
        return existing

    def _send(
        self,
        method: str,
        path: str,
        *,
        expected: frozenset[int],
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """One paced request. Returns a response with an ``expected`` status, or raises
        the mapped error (and pauses the limiter when the server asked for a pause)."""
        request = self._http.build_request(method, path, params=params, json=body)
        where = _where(request)
        self._limiter.acquire()
        started = time.monotonic()
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            metrics.request(method, None, time.monotonic() - started)
            log.debug(
                "inventory.request",
                method=method,
                path=where,
                error=type(exc).__name__,
                elapsed_ms=_ms_since(started),
            )
            raise map_failure(method, where, exc, secrets=self._secrets) from exc
        metrics.request(method, response.status_code, time.monotonic() - started)
        log.debug(
            "inventory.request",
            method=method,
            path=where,
            status=response.status_code,
            elapsed_ms=_ms_since(started),
        )
        if response.status_code in expected:
            return response
        error = map_failure(method, where, response, secrets=self._secrets)
        if isinstance(error, RetriableError) and error.retry_after:
            self._limiter.pause(error.retry_after)
        raise error

    def _path(self, relative: str) -> str:
        """The request path of ``relative`` as messages show it (``/api/v1/...``)."""
        return self._http.base_url.join(relative).raw_path.decode("ascii")

    def _check_serial(self, method: str, serial: str, device: Device) -> None:
        if device.serial_number != serial:
            raise ProtocolError(
                f"{method} {self._path(_item_path(serial))}: the server answered with serial "
                f"{device.serial_number!r}; serials are case-sensitive and never changed"
            )

    def _decode(self, response: httpx.Response, model: type[W]) -> W:
        return decode_model(
            response.request.method,
            _where(response.request),
            response,
            model,
            secrets=self._secrets,
        )


# -- helpers -------------------------------------------------------------------------------


def _check_page_size(size: int) -> None:
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")


def _item_path(serial: str) -> str:
    """The detail path of ``serial``: the whole serial as one percent-encoded segment."""
    if not isinstance(serial, str) or not serial:
        raise ValueError("serial must be a non-empty string")
    segment = quote(serial, safe="")
    if set(serial) == {"."}:
        # "." and ".." are dot-segments: URL normalisation would turn a DELETE of
        # serial ".." into a DELETE of the API root.
        segment = segment.replace(".", "%2E")
    return f"{COLLECTION}{segment}/"


def _check_new_serial(serial: str) -> None:
    # The API trims string fields (DRF's CharField), so " SN1 " would be stored as "SN1":
    # refuse rather than let the server normalise a serial behind our back.
    if serial != serial.strip() or "\x00" in serial:
        raise DataError(
            f"serial {serial!r} has surrounding whitespace or a NUL character; the API would "
            "store it altered. Fix it in the source, or normalise serials explicitly in config"
        )


def _where(request: httpx.Request) -> str:
    return request.url.raw_path.decode("ascii")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _instant(value: datetime | date) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).replace(microsecond=0).isoformat()
    return value.isoformat()


def _list_params(
    *,
    type: int | None,  # noqa: A002 - the API's parameter name
    status: bool | None,
    last_status_change_from: datetime | date | None,
    organization: int | None,
    pending: bool | None,
    update_status: bool | None,
) -> dict[str, str]:
    params: dict[str, str] = {}
    if type is not None:
        params["type"] = str(int(type))
    if status is not None:
        params["status"] = _flag(status)
    if last_status_change_from is not None:
        params["last_status_change_from"] = _instant(last_status_change_from)
    if organization is not None:
        params["organization"] = str(int(organization))
    if pending is not None:
        params["pending"] = _flag(pending)
    if update_status is not None:
        params["update_status"] = _flag(update_status)
    return params


def _as(model: type[W], value: W | Mapping[str, Any]) -> W:
    return value if isinstance(value, model) else model.model_validate(dict(value))


def _differences(sent: Mapping[str, Any], device: Device) -> list[str]:
    """Names of the sent fields the device's answer contradicts (absent ones are not)."""
    differing = []
    for name, value in sent.items():
        if name in ("type", "organization"):
            have: object = getattr(device, name).id
        elif name == "serial_number" or device.has_field(name):
            have = getattr(device, name)
        else:
            continue
        if not _same(name, value, have):
            differing.append(name)
    return differing


def _same(name: str, sent: object, have: object) -> bool:
    if sent == have:
        return True
    if not isinstance(sent, str) or not isinstance(have, str):
        return False
    # The API trims strings and may write addresses in its own canonical form.
    if name == "ip_address":
        return _ip(sent) == _ip(have)
    if name == "mac_address":
        return _mac(sent) == _mac(have)
    return sent.strip() == have.strip()


def _ip(value: str) -> str:
    return canonical_ip(value, interface=True) or value.strip()


def _mac(value: str) -> str:
    return canonical_mac(value) or value.strip()


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
