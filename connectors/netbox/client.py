"""pynetbox, made fit for long unattended pulls.

- **Timeouts.** requests has none by default, so a NetBox that stops answering would
  hang a pull for ever; a transport adapter gives every request ``(connect, read)``.
- **TLS.** Verification is on unless the config turns it off. The adapter applies
  ``verify_tls`` / ``ca_bundle`` itself, because requests lets ``REQUESTS_CA_BUNDLE``
  silently override a session's ``verify``.
- **Retries per request.** pynetbox's own paging restarts nothing: one failed page
  loses the whole list. Here each page is one pynetbox call (``filter(limit=,
  offset=)``) retried on its own, with stamina's exponential backoff and jitter, for
  unreachable / timed-out / dropped / 5xx / 429 (honouring ``Retry-After``); 401/403
  and other refusals are not retried.
- **Raw pages.** A page is read from the ``RecordSet``'s underlying response (plain
  JSON dicts plus the ``count``), not as pynetbox ``Record``s: a ``Record`` fetches
  the full object behind your back when a missing attribute is read, and converting
  50 000 of them back to dicts costs more than the request.
- **Threading.** With ``threading = true`` the pages after the first are fetched by
  ``max_workers`` threads (pynetbox's threaded mode, but each page still retried),
  and handed back in order.

The token goes to pynetbox, which sends ``Authorization: Bearer nbt_…`` for NetBox
4.5+ v2 tokens (``nbt_<key>.<secret>``) and ``Token …`` for legacy ones; it appears in
no message, repr or log line here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import pynetbox
import requests
import stamina
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from connectors.netbox.config import NetBoxConfig
from connectors.netbox.errors import (
    NetBoxAuthError,
    NetBoxRequestError,
    NetBoxUnavailableError,
    translate,
)
from syncd.config import RetrySettings

T = TypeVar("T")

Params = Mapping[str, str | Sequence[str]]

#: What a failed pynetbox call may raise (anything else is a bug, not NetBox's answer).
_CALL_ERRORS: tuple[type[BaseException], ...] = (
    pynetbox.RequestError,
    pynetbox.ContentError,
    requests.exceptions.RequestException,
    ValueError,
)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a NetBox list: where it starts, the list's total, and its objects."""

    offset: int
    count: int
    results: list[dict[str, Any]]


class _Adapter(HTTPAdapter):
    """Gives every request the configured timeout and TLS verification."""

    def __init__(self, *, timeout: tuple[float, float], verify: bool | str) -> None:
        super().__init__()
        self._timeout = timeout
        self._verify = verify

    def send(  # noqa: PLR0917 - requests' signature
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        """Send with the configured timeout (unless the call set one) and verification."""
        return super().send(
            request,
            stream=stream,
            timeout=timeout if timeout is not None else self._timeout,
            verify=self._verify,
            cert=cert,
            proxies=proxies,
        )


class NetBoxClient:
    """The connector's only way to NetBox. ``close()`` when done (or use ``with``)."""

    def __init__(self, config: NetBoxConfig, token: SecretStr) -> None:
        self.url = config.url
        self._token = token
        self._retry: RetrySettings = config.retry
        self._auth_attempts = config.auth_attempts
        self._lock = threading.Lock()
        self.requests = 0
        verify: bool | str = str(config.ca_bundle) if config.ca_bundle else config.verify_tls
        if verify is False:
            import urllib3

            # The operator chose this; one warning in our log beats one per request.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        session = requests.Session()
        adapter = _Adapter(timeout=(config.connect_timeout, config.timeout), verify=verify)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session
        self.api = pynetbox.api(config.url, token=token.get_secret_value())
        self.api.http_session = session

    def __repr__(self) -> str:
        return f"NetBoxClient({self.url!r})"

    def __enter__(self) -> NetBoxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    # -- calls -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """NetBox's ``/api/status/`` (version, plugins, workers)."""
        result = self.call(f"GET {self.url}/api/status/", self.api.status)
        if not isinstance(result, dict):
            raise NetBoxRequestError(f"GET {self.url}/api/status/: not a status object")
        return result

    def page(self, endpoint: str, params: Params, *, limit: int, offset: int) -> Page:
        """One page of ``endpoint`` (``"dcim.devices"``) under ``params``, retried."""
        app, _, name = endpoint.partition(".")
        target = getattr(getattr(self.api, app), name)
        path = f"/api/{app}/{name.replace('_', '-')}/"
        query = urlencode([*_pairs(params), ("limit", limit), ("offset", offset)])
        where = f"GET {self.url}{path}?{query}"

        def once() -> Page:
            found = target.filter(**params, limit=limit, offset=offset)
            results = list(found.response)
            count = getattr(found.request, "count", None)
            if not isinstance(count, int) or not all(isinstance(r, dict) for r in results):
                raise NetBoxRequestError(f"{where}: the answer is not a NetBox list page")
            return Page(offset, count, results)

        return self.call(where, once)

    def pages(
        self,
        endpoint: str,
        params: Params,
        *,
        page_size: int,
        threads: int = 0,
    ) -> Iterator[Page]:
        """Every page of a list, in order. With ``threads`` > 1 the pages after the
        first are fetched concurrently. The stride is the first page's real length, so
        a NetBox whose ``MAX_PAGE_SIZE`` is below ``page_size`` skips nothing."""
        first = self.page(endpoint, params, limit=page_size, offset=0)
        yield first
        stride = len(first.results)
        if stride == 0 or first.count <= stride:
            return
        offsets = range(stride, first.count, stride)
        if threads <= 1:
            for offset in offsets:
                yield self.page(endpoint, params, limit=stride, offset=offset)
            return
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="netbox-page") as pool:
            futures: list[Future[Page]] = [
                pool.submit(self.page, endpoint, params, limit=stride, offset=offset)
                for offset in offsets
            ]
            try:
                for future in futures:
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()

    def call(self, where: str, fn: Callable[[], T]) -> T:
        """``fn()`` (one pynetbox call), its failures translated, retried while retriable."""
        settings = self._retry
        started = time.monotonic()
        tries = 0

        def backoff(exc: BaseException) -> bool | float:
            if isinstance(exc, NetBoxAuthError):
                return tries < self._auth_attempts
            if not isinstance(exc, NetBoxUnavailableError):
                return False
            if exc.retry_after is None:
                return True
            left = settings.timeout - (time.monotonic() - started)
            # A Retry-After beyond the budget is not waited for: give up now.
            return exc.retry_after if exc.retry_after <= left else False

        try:
            for attempt in stamina.retry_context(
                on=backoff,
                attempts=settings.attempts,
                timeout=settings.timeout,
                wait_initial=settings.wait_initial,
                wait_max=settings.wait_max,
                wait_jitter=settings.wait_jitter,
            ):
                with attempt:
                    tries += 1
                    with self._lock:
                        self.requests += 1
                    try:
                        return fn()
                    except _CALL_ERRORS as exc:
                        raise translate(exc, where=where, secrets=[self._token]) from exc
        except NetBoxUnavailableError as exc:
            spent = time.monotonic() - started
            raise NetBoxUnavailableError(
                f"{exc} (gave up after {tries} attempt(s) in {spent:.1f}s)",
                retry_after=exc.retry_after,
            ) from exc
        except NetBoxAuthError as exc:
            raise NetBoxAuthError(
                f"{exc} (refused {tries} time(s))", status_code=exc.status_code
            ) from exc
        raise AssertionError("unreachable: stamina re-raises the last error")


def _pairs(params: Params) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, str):
            pairs.append((key, value))
        else:
            pairs.extend((key, v) for v in value)
    return pairs
